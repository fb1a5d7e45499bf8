package main

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aigress/aigress/classify"
	"github.com/aigress/aigress/enforce"
	"github.com/spf13/cobra"
)

// newPolicyCmd is `aigress policy check|test`.
func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check a policy file, or test what it does to a request",
	}
	cmd.AddCommand(newPolicyCheckCmd(), newPolicyTestCmd())
	return cmd
}

func newPolicyCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a policy file (errors carry line and column)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := enforce.LoadFile(args[0])
			if err != nil {
				return err
			}
			if _, err := classify.NewDetector(classify.DetectorOptions{Custom: p.CustomRules()}); err != nil {
				return fmt.Errorf("policy: %s: custom detectors: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			for _, w := range p.Warnings() {
				fmt.Fprintf(out, "warning: %s\n", w)
			}
			fmt.Fprintf(out, "ok: %s (%s)\n", p.Name(), p.Hash())
			return nil
		},
	}
}

type policyTestFlags struct {
	host, path, body, method, user, ip string
	headers                            []string
}

func newPolicyTestCmd() *cobra.Command {
	var f policyTestFlags
	cmd := &cobra.Command{
		Use:   "test FILE --host H --path P --body req.json|-",
		Short: "Show the identity, classification, findings, decision and outgoing body for a request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPolicyTest(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.host, "host", "", "destination host, e.g. api.openai.com (required)")
	fl.StringVar(&f.path, "path", "/", "request path, e.g. /v1/chat/completions")
	fl.StringVar(&f.body, "body", "", "request body file, or - for stdin (required)")
	fl.StringVar(&f.method, "method", http.MethodPost, "request method")
	fl.StringVar(&f.user, "user", "", "proxy user (sent as Proxy-Authorization is not needed: the user is taken as authenticated)")
	fl.StringVar(&f.ip, "ip", "127.0.0.1", "client IP address")
	fl.StringArrayVar(&f.headers, "header", nil, "request header 'Key: Value' (repeatable)")
	_ = cmd.MarkFlagRequired("host")
	_ = cmd.MarkFlagRequired("body")
	return cmd
}

func runPolicyTest(cmd *cobra.Command, file string, f policyTestFlags) error {
	p, err := enforce.LoadFile(file)
	if err != nil {
		return err
	}
	var body []byte
	if f.body == "-" {
		body, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), p.MaxBodyBytes()+1))
	} else {
		body, err = os.ReadFile(f.body)
	}
	if err != nil {
		return fmt.Errorf("policy: read body: %w", err)
	}
	addr, err := netip.ParseAddr(f.ip)
	if err != nil {
		return fmt.Errorf("policy: --ip %q: %w", f.ip, err)
	}
	h := http.Header{}
	for _, kv := range f.headers {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			return fmt.Errorf("policy: --header %q: want 'Key: Value'", kv)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	out := cmd.OutOrStdout()
	det, err := classify.NewDetector(classify.DetectorOptions{Custom: p.CustomRules()})
	if err != nil {
		return fmt.Errorf("policy: custom detectors: %w", err)
	}

	// Identity. --user stands for an authenticated proxy user.
	idHeader := h.Clone()
	if f.user != "" {
		idHeader.Del("Proxy-Authorization")
	}
	id, idErr := p.Identify(addr, idHeader)
	if f.user != "" && (idErr != nil || id.User == "") {
		id.User, id.Authenticated, id.Source, idErr = f.user, true, enforce.SourceProxyAuth, nil
		id.Groups = identityGroups(p, addr, f.user)
	}
	fmt.Fprintf(out, "policy:    %s (%s)\n", p.Name(), p.Hash())
	fmt.Fprintf(out, "identity:  ip=%s user=%q groups=[%s] source=%s\n", id.IP, id.User, strings.Join(id.Groups, ","), id.Source)
	if id.Note != "" {
		fmt.Fprintf(out, "note:      %s\n", id.Note)
	}
	if idErr != nil {
		r := enforce.AuthRequiredResponse("test")
		fmt.Fprintf(out, "decision:  proxy authentication required (%v)\n", idErr)
		fmt.Fprintf(out, "response:  %d %s\n", r.Status, r.Header.Get("Proxy-Authenticate"))
		return nil
	}

	svc, known := classify.DefaultCatalog().LookupPath(f.host, f.path)
	if cd := p.ConnectDecision(id, f.host, svc, known); cd.Action == enforce.ActionBlock {
		fmt.Fprintf(out, "service:   %s / %s (%s) known=%v\n", svc.Provider, svc.Service, svc.Category, known)
		fmt.Fprintf(out, "decision:  %s (refused at CONNECT, before TLS)\n", cd)
		return nil
	}
	req := classify.ParseRequest(classify.RequestInput{
		Method: f.method, Host: f.host, Path: f.path, Header: h, Body: body,
		MaxDecoded: int(p.MaxDecodedBytes()),
	})
	if int64(len(body)) > p.MaxBodyBytes() && req.Uninspectable == "" {
		req.Uninspectable = fmt.Sprintf("body exceeds %d bytes", p.MaxBodyBytes())
	}
	provider := svc.Provider
	if provider == "" {
		provider = req.Provider
	}
	fmt.Fprintf(out, "service:   %s / %s (%s) known=%v inspect=%v\n", provider, svc.Service, svc.Category, known, svc.Inspect)
	fmt.Fprintf(out, "request:   shape=%s endpoint=%s model=%q stream=%v parts=%d attachments=%d\n",
		req.Shape, req.Endpoint, req.Model, req.Stream, len(req.Parts), len(req.Attachments))
	if req.Uninspectable != "" {
		fmt.Fprintf(out, "           uninspectable: %s\n", req.Uninspectable)
	}
	acct := p.ClassifyAccount(req.Account)
	fmt.Fprintf(out, "account:   %s", acct.Class())
	if acct.KeyFingerprint != "" {
		fmt.Fprintf(out, " key=%s", acct.KeyFingerprint)
	}
	if acct.Org != "" {
		fmt.Fprintf(out, " org=%s", acct.Org)
	}
	if acct.EmailHash != "" {
		fmt.Fprintf(out, " email=%s", acct.EmailHash)
	}
	fmt.Fprintln(out)

	var findings []classify.PartFinding
	if req.Uninspectable == "" {
		findings = det.ScanRequest(req)
	}
	counts := map[string]int{}
	for _, fd := range findings {
		counts[fd.Type+" ("+fd.Category+")"]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(out, "findings:  %d\n", len(findings))
	for _, k := range keys {
		fmt.Fprintf(out, "           %d x %s\n", counts[k], k)
	}

	d := p.Decide(enforce.Input{Identity: id, Service: svc, Request: req, Findings: findings, Account: acct})
	if d.Action != enforce.ActionBlock {
		if q := enforce.NewQuotas(nil).Check(p, id, provider, req.Model, time.Now()); q.Action == enforce.ActionQuota {
			d = q
		}
	}
	fmt.Fprintf(out, "decision:  %s\n", d)
	switch d.Action {
	case enforce.ActionBlock, enforce.ActionQuota:
		r := enforce.BlockResponse(provider, req.Shape, 0, d, "test")
		fmt.Fprintf(out, "response:  %d %s\n%s\n", r.Status, r.Header.Get("Content-Type"), r.Body)
	default:
		outBody, n, rest := p.Redact(req, findings, d)
		fmt.Fprintf(out, "redactions: %d", n)
		if rest != nil {
			fmt.Fprintf(out, " (restored in answers: %d placeholders)", rest.Len())
		}
		fmt.Fprintln(out)
		enc := ""
		if req.Encoding != "" && n > 0 {
			enc = " (decoded; Content-Encoding " + req.Encoding + " is re-applied by the proxy)"
		}
		fmt.Fprintf(out, "outgoing body%s:\n%s\n", enc, outBody)
	}
	return nil
}

// identityGroups is the group set for an assumed user at addr.
func identityGroups(p *enforce.Policy, addr netip.Addr, user string) []string {
	id, _ := p.Identify(addr, http.Header{})
	groups := id.Groups
	for _, g := range p.Document().Identity.Groups {
		for _, u := range g.Users {
			if u == user {
				groups = append(groups, g.Name)
			}
		}
	}
	return groups
}
