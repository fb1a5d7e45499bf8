package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/aigress/aigress/audit"
	"github.com/spf13/cobra"
)

func newReportCmd() *cobra.Command {
	var (
		pf     periodFlags
		format string
		out    string
		title  string
		tz     string
		top    int
	)
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write a compliance report (html, csv or json) for a period",
		Long: `report reads the event store and writes a report for the period: the policy
versions in force, how the data was collected (proxy, DNS, sensor), AI usage
over time, top services and users, findings by type, blocked, redacted and
alerted requests, unsanctioned services, credentials, and notable events.

html is one self-contained file (inline CSS and SVG charts, print-ready).
csv is a long table: section,item,metric,value. json is the report data.
The report never holds prompt text or secret values.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case audit.FormatHTML, audit.FormatCSV, audit.FormatJSON:
			default:
				return fmt.Errorf("--format %q: want html, csv or json", format)
			}
			loc := time.Local
			if tz != "" {
				l, err := time.LoadLocation(tz)
				if err != nil {
					return fmt.Errorf("--tz: %w", err)
				}
				loc = l
			}
			sanction, err := pf.sanctionFunc()
			if err != nil {
				return err
			}
			now := time.Now()
			from, to, s, err := pf.resolve(now, loc)
			if err != nil {
				return err
			}
			defer s.Close()
			if to.IsZero() {
				to = now
			}
			data, err := s.Report(context.Background(), from, to, audit.ReportOptions{
				Title: title, GeneratedAt: now, Location: loc, TopN: top, Sanctioned: sanction,
			})
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				return audit.RenderReport(cmd.OutOrStdout(), format, data)
			}
			if err := writeFileAtomic(out, func(w io.Writer) error { return audit.RenderReport(w, format, data) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "report: wrote %s (%d events, %s to %s)\n", out, data.Summary.Events,
				data.From.In(loc).Format(time.RFC3339), data.To.In(loc).Format(time.RFC3339))
			return nil
		},
	}
	pf.register(cmd, "7d", " (default 7d)")
	f := cmd.Flags()
	f.StringVar(&format, "format", audit.FormatHTML, "report format: html, csv or json")
	f.StringVarP(&out, "out", "o", "-", "output file (- for stdout)")
	f.StringVar(&title, "title", "", "report title (default \"AI Usage and Compliance Report\")")
	f.StringVar(&tz, "tz", "", "time zone of --from/--to dates and of the report's dates and buckets, e.g. Europe/Paris (default local)")
	f.IntVar(&top, "top", 10, "rows in the top services and users tables")
	return cmd
}

// writeFileAtomic writes through a temporary file in the same directory
// and renames it into place, so that a reader never sees half a report.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return fmt.Errorf("report: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
