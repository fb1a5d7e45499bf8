package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aigress/aigress/audit"
)

func TestReportCmd(t *testing.T) {
	dir := audcmdStore(t)
	period := []string{"--data-dir", dir, "--from", "2026-11-02", "--to", "2026-11-03", "--tz", "UTC"}
	t.Run("ok/json-stdout", func(t *testing.T) {
		out, err := audcmdRun(t, append([]string{"report", "--format", "json"}, period...)...)
		if err != nil {
			t.Fatal(err)
		}
		var r audit.ReportData
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		s := r.Summary
		if s.Events != 7 || s.Requests != 4 || s.Blocked != 2 || s.Alerted != 1 || s.Findings != 1 ||
			s.SensorFlows != 2 || s.Services != 3 || s.Users != 3 || s.PersonalAccounts != 1 || s.Unsanctioned != 1 {
			t.Errorf("summary = %+v", s)
		}
		if r.Bucket != "hour" || len(r.Timeline) != 48 || len(r.Policies) != 2 {
			t.Errorf("bucket %s × %d, policies %d", r.Bucket, len(r.Timeline), len(r.Policies))
		}
		if strings.Contains(out, "PROMPT-TEXT-X") {
			t.Error("report holds prompt text")
		}
	})
	for _, format := range []string{"html", "csv"} {
		t.Run("ok/"+format+"-file", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "report."+format)
			if _, err := audcmdRun(t, append([]string{"report", "--format", format, "--out", path}, period...)...); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			body := string(data)
			want := "summary,,requests,4"
			if format == "html" {
				want = "<svg"
			}
			if !strings.Contains(body, want) || !strings.Contains(body, "deepseek-chat") || strings.Contains(body, "PROMPT-TEXT-X") {
				t.Errorf("%s report lacks %q or holds prompt text", format, want)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
				t.Errorf("mode %v", st.Mode().Perm())
			}
		})
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"fail/format", []string{"--format", "pdf"}},
		{"fail/tz", []string{"--tz", "Mars/Olympus"}},
		{"fail/out-dir-missing", []string{"--out", filepath.Join(dir, "no", "such", "dir", "r.html")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := audcmdRun(t, append(append([]string{"report"}, period...), c.args...)...); err == nil {
				t.Errorf("%v succeeded", c.args)
			}
		})
	}
}
