package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runScan executes `scan args...` in-process and returns stdout and the
// exit code that main would use.
func runScan(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := newScanCmd()
	var out bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.Execute()
	if err == nil {
		return out.String(), 0
	}
	var ec interface{ ExitCode() int }
	if !errors.As(err, &ec) {
		t.Fatalf("error without exit code: %v", err)
	}
	if ec.ExitCode() == 2 {
		out.WriteString("ERROR: " + err.Error())
	}
	return out.String(), ec.ExitCode()
}

const fakeAWS = "AKIAIOSFODNN7EXAMPLE"

func TestScanCommand(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "leak.env")
	if err := os.WriteFile(secretFile, []byte("AWS_ACCESS_KEY_ID="+fakeAWS+"\nmail=jane.doe@acme-corp.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cleanFile := filepath.Join(dir, "clean.txt")
	if err := os.WriteFile(cleanFile, []byte("nothing to see here, version 1.2.3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		stdin    string
		args     []string
		code     int
		contains []string
		absent   []string
	}{
		{name: "ok/file_table", args: []string{secretFile}, code: 1,
			contains: []string{"aws_access_key", "secret", "email", "AKIA…", "2 finding(s)"}, absent: []string{fakeAWS, "jane.doe@"}},
		{name: "ok/stdin_dash", stdin: "key " + fakeAWS, args: []string{"-"}, code: 1, contains: []string{"aws_access_key"}},
		{name: "ok/stdin_default_clean", stdin: "hello world", code: 0, contains: []string{"no findings"}},
		{name: "ok/clean_file_json", args: []string{"--json", cleanFile}, code: 0, contains: []string{`{"findings":[]}`}},
		{name: "ok/request_openai", stdin: `{"model":"gpt-4o","messages":[{"role":"system","content":"be nice"},{"role":"user","content":"my key is ` + fakeAWS + `"}]}`,
			args: []string{"--host", "api.openai.com", "--path", "/v1/chat/completions"}, code: 1,
			contains: []string{"provider: openai", "model:    gpt-4o", "aws_access_key", "user"}, absent: []string{fakeAWS}},
		{name: "fail/missing_file", args: []string{filepath.Join(dir, "nope")}, code: 2, contains: []string{"scan: open input"}},
		{name: "fail/host_without_path", stdin: "{}", args: []string{"--host", "api.openai.com"}, code: 2, contains: []string{"--host and --path"}},
		{name: "fail/two_files", args: []string{"a", "b"}, code: 2, contains: []string{"at most one FILE"}},
		{name: "fail/bad_flag", args: []string{"--nope"}, code: 2, contains: []string{"unknown flag"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := runScan(t, c.stdin, c.args...)
			if code != c.code {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, c.code, out)
			}
			for _, s := range c.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range c.absent {
				if strings.Contains(out, s) {
					t.Errorf("output leaks %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestScanJSONExactShape(t *testing.T) {
	in := "x " + fakeAWS + " y"
	out, code := runScan(t, in, "--json")
	if code != 1 {
		t.Fatalf("code %d: %s", code, out)
	}
	var got struct {
		Findings []map[string]any `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Findings) != 1 {
		t.Fatalf("findings %v", got.Findings)
	}
	f := got.Findings[0]
	if len(f) != 5 {
		t.Errorf("keys %v, want exactly type, category, start, end, confidence", f)
	}
	start, end := int(f["start"].(float64)), int(f["end"].(float64))
	if in[start:end] != fakeAWS || f["type"] != "aws_access_key" || f["category"] != "secret" {
		t.Errorf("finding %v", f)
	}
}

func TestScanRequestJSON(t *testing.T) {
	body := `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"mail bob@acme-corp.com"}]}`
	out, code := runScan(t, body, "--json", "--host", "api.anthropic.com", "--path", "/v1/messages")
	if code != 1 {
		t.Fatalf("code %d: %s", code, out)
	}
	var got struct {
		Provider string `json:"provider"`
		Model    string `json:"model"`
		Findings []struct {
			Part  int    `json:"part"`
			Role  string `json:"role"`
			Type  string `json:"type"`
			Start int    `json:"start"`
			End   int    `json:"end"`
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Provider != "anthropic" || got.Model != "claude-sonnet-4-5" || len(got.Findings) != 1 {
		t.Fatalf("got %+v", got)
	}
	f := got.Findings[0]
	if f.Type != "email" || f.Role != "user" || "mail bob@acme-corp.com"[f.Start:f.End] != "bob@acme-corp.com" {
		t.Errorf("finding %+v", f)
	}
}

func TestScanRefusesHugeInput(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse file: 64 MiB + 1 byte without writing it all.
	if err := f.Truncate(maxScanInput + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, code := runScan(t, "", big)
	if code != 2 || !strings.Contains(out, "larger than 64 MiB") {
		t.Fatalf("code %d out %s", code, out)
	}
}

func TestMaskExcerpt(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"ok/long", fakeAWS, "AKIA…"},
		{"ok/short", "abcdef", "ab…"},
		{"ok/control", "\n\x01abcdefghijklmnop", "..ab…"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := maskExcerpt([]byte(c.in)); got != c.want {
				t.Errorf("got %q want %q", got, c.want)
			}
		})
	}
}
