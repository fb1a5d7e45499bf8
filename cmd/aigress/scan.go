package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/aigress/aigress/classify"
	"github.com/spf13/cobra"
)

// maxScanInput bounds what `aigress scan` reads.
const maxScanInput = 64 << 20

// exitCodeError carries a process exit code through cobra; main calls
// os.Exit(ExitCode()). A nil err means "exit quietly with code".
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// ExitCode is the process exit code.
func (e exitCodeError) ExitCode() int { return e.code }

func (e exitCodeError) Unwrap() error { return e.err }

func scanFail(format string, a ...any) error {
	return exitCodeError{code: 2, err: fmt.Errorf("scan: "+format, a...)}
}

type scanJSONFinding struct {
	Type       string  `json:"type"`
	Category   string  `json:"category"`
	Start      int     `json:"start"`
	End        int     `json:"end"`
	Confidence float64 `json:"confidence"`
}

type scanJSONPartFinding struct {
	Part int    `json:"part"`
	Role string `json:"role"`
	scanJSONFinding
}

func newScanCmd() *cobra.Command {
	var host, path string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "scan [--host H --path P] [--json] [FILE|-]",
		Short: "Detect secrets and personal data in a file, stdin or a request body",
		Long: `scan runs aigress's detectors over FILE (or stdin when FILE is "-" or absent).

With --host and --path the input is treated as the JSON body of a POST to
that AI host and path: the request is parsed like the proxy does, and
findings are reported per prompt part.

Exit status: 0 when nothing is found, 1 when something is found, 2 on error.
Raw secrets are never printed: excerpts are masked.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return scanFail("at most one FILE argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if (host == "") != (path == "") {
				return scanFail("--host and --path must be given together")
			}
			input, err := readScanInput(cmd, args)
			if err != nil {
				return err
			}
			det, err := classify.NewDetector(classify.DetectorOptions{})
			if err != nil {
				return exitCodeError{code: 2, err: err}
			}
			out := cmd.OutOrStdout()
			var n int
			if host != "" {
				n, err = scanRequest(out, det, input, host, path, asJSON)
			} else {
				n, err = scanText(out, det, input, asJSON)
			}
			if err != nil {
				return exitCodeError{code: 2, err: fmt.Errorf("scan: write output: %w", err)}
			}
			if n > 0 {
				return exitCodeError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "treat the input as a request body sent to this AI host")
	cmd.Flags().StringVar(&path, "path", "", "URL path of the request (with --host)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print findings as JSON")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return exitCodeError{code: 2, err: fmt.Errorf("scan: %w", err)}
	})
	return cmd
}

func readScanInput(cmd *cobra.Command, args []string) ([]byte, error) {
	var r io.Reader = cmd.InOrStdin()
	name := "stdin"
	if len(args) == 1 && args[0] != "-" {
		name = args[0]
		f, err := os.Open(name)
		if err != nil {
			return nil, scanFail("open input: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxScanInput+1))
	if err != nil {
		return nil, scanFail("read %s: %w", name, err)
	}
	if len(b) > maxScanInput {
		return nil, scanFail("%s is larger than %d MiB; refusing to scan it", name, maxScanInput>>20)
	}
	return b, nil
}

func toJSONFinding(f classify.Finding) scanJSONFinding {
	return scanJSONFinding{Type: f.Type, Category: f.Category, Start: f.Start, End: f.End, Confidence: f.Confidence}
}

func scanText(w io.Writer, det *classify.Detector, input []byte, asJSON bool) (int, error) {
	fs := det.Scan(input)
	if asJSON {
		out := struct {
			Findings []scanJSONFinding `json:"findings"`
		}{Findings: make([]scanJSONFinding, 0, len(fs))}
		for _, f := range fs {
			out.Findings = append(out.Findings, toJSONFinding(f))
		}
		return len(fs), writeJSON(w, out)
	}
	if len(fs) == 0 {
		_, err := fmt.Fprintln(w, "no findings")
		return 0, err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tCATEGORY\tSTART\tEND\tCONFIDENCE\tEXCERPT")
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f\t%s\n", f.Type, f.Category, f.Start, f.End, f.Confidence, maskExcerpt(input[f.Start:f.End]))
	}
	if err := tw.Flush(); err != nil {
		return len(fs), err
	}
	_, err := fmt.Fprintf(w, "%d finding(s)\n", len(fs))
	return len(fs), err
}

func scanRequest(w io.Writer, det *classify.Detector, input []byte, host, path string, asJSON bool) (int, error) {
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json")
	req := classify.ParseRequest(classify.RequestInput{Method: "POST", Host: host, Path: path, Header: hdr, Body: input})
	pfs := det.ScanRequest(req)
	role := func(i int) string {
		if i >= 0 && i < len(req.Parts) {
			return req.Parts[i].Role
		}
		return classify.RoleUnknown
	}
	if asJSON {
		out := struct {
			Provider      string                `json:"provider"`
			Shape         string                `json:"shape"`
			Endpoint      string                `json:"endpoint"`
			Model         string                `json:"model"`
			Parts         int                   `json:"parts"`
			Uninspectable string                `json:"uninspectable,omitempty"`
			Findings      []scanJSONPartFinding `json:"findings"`
		}{Provider: req.Provider, Shape: req.Shape, Endpoint: req.Endpoint, Model: req.Model, Parts: len(req.Parts),
			Uninspectable: req.Uninspectable, Findings: make([]scanJSONPartFinding, 0, len(pfs))}
		for _, pf := range pfs {
			out.Findings = append(out.Findings, scanJSONPartFinding{Part: pf.Part, Role: role(pf.Part), scanJSONFinding: toJSONFinding(pf.Finding)})
		}
		return len(pfs), writeJSON(w, out)
	}
	fmt.Fprintf(w, "provider: %s\nshape:    %s\nendpoint: %s\nmodel:    %s\nparts:    %d\n", orDash(req.Provider), orDash(req.Shape), orDash(req.Endpoint), orDash(req.Model), len(req.Parts))
	if req.Uninspectable != "" {
		fmt.Fprintf(w, "uninspectable: %s\n", req.Uninspectable)
	}
	if len(pfs) == 0 {
		_, err := fmt.Fprintln(w, "no findings")
		return 0, err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PART\tROLE\tTYPE\tCATEGORY\tSTART\tEND\tCONFIDENCE\tEXCERPT")
	for _, pf := range pfs {
		txt := req.Parts[pf.Part].Text
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%.2f\t%s\n", pf.Part, role(pf.Part), pf.Type, pf.Category, pf.Start, pf.End, pf.Confidence, maskExcerpt([]byte(txt[pf.Start:pf.End])))
	}
	if err := tw.Flush(); err != nil {
		return len(pfs), err
	}
	_, err := fmt.Fprintf(w, "%d finding(s)\n", len(pfs))
	return len(pfs), err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// maskExcerpt shows at most the first 4 characters of a finding (fewer for
// short ones, so that most of it stays hidden) followed by "…".
func maskExcerpt(b []byte) string {
	keep := 4
	if n := utf8.RuneCount(b); n < 12 {
		keep = n / 3
	}
	var sb strings.Builder
	for i := 0; i < keep && len(b) > 0; i++ {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			r = '.'
		}
		sb.WriteRune(r)
	}
	sb.WriteString("…")
	return sb.String()
}
