package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runPolicyCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newPolicyCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: aigress/v1\nkind: Policy\nrules:\n  - id: r\n    match:\n      modle: x\n    action: allow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, file, want string
		fail             bool
	}{
		{"ok/default", "../../policies/default.yaml", "ok: default (sha256:", false},
		{"ok/strict", "../../policies/strict.yaml", "ok: strict (sha256:", false},
		{"ok/developers", "../../policies/developers.yaml", "ok: developers (sha256:", false},
		{"fail/unknown-field", bad, `bad.yaml:6:7: unknown field "modle"`, true},
		{"fail/missing", filepath.Join(dir, "nope.yaml"), "no such file", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runPolicyCLI(t, "", "check", c.file)
			if c.fail {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err %v, want %q", err, c.want)
				}
				return
			}
			if err != nil || !strings.Contains(out, c.want) {
				t.Fatalf("out %q err %v", out, err)
			}
		})
	}
}

func TestPolicyTest(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pol, []byte(`apiVersion: aigress/v1
kind: Policy
identity:
  groups: [{name: eng, cidrs: [10.1.0.0/16]}]
rules:
  - id: redact-all
    match: {findings: {categories: [secret, pii]}}
    action: redact
    redaction: {restore: true}
  - id: eng-4o
    match: {groups: [eng], models: ["gpt-4o*"]}
    action: allow
default_action: block
`), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"key AKIAIOSFODNN7EXAMPLE mail jane.doe@acme-corp.io"}]}`
	reqFile := filepath.Join(dir, "req.json")
	if err := os.WriteFile(reqFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		stdin string
		args  []string
		want  []string
		not   []string
	}{
		{"ok/redacted", "", []string{"test", pol, "--host", "api.openai.com", "--path", "/v1/chat/completions", "--body", reqFile, "--ip", "10.1.2.3"},
			[]string{"groups=[eng]", "model=\"gpt-4o\"", "aws_access_key", "decision:  redact by redact-all", "[AWS_ACCESS_KEY_1]", "[EMAIL_1]"},
			[]string{"AKIAIOSFODNN7EXAMPLE", "jane.doe@acme-corp.io"}},
		{"ok/stdin-blocked-model", `{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"hi"}]}`,
			[]string{"test", pol, "--host", "api.openai.com", "--path", "/v1/chat/completions", "--body", "-", "--ip", "10.1.2.3", "--user", "alice", "--header", "Content-Type: application/json"},
			[]string{`user="alice"`, "decision:  block by default", "response:  403", "aigress event test"}, nil},
		{"fail/other-group", "", []string{"test", pol, "--host", "api.openai.com", "--path", "/v1/chat/completions", "--body", reqFile, "--ip", "10.9.9.9"},
			[]string{"decision:  block by default"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runPolicyCLI(t, c.stdin, c.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range c.not {
				if strings.Contains(out, n) {
					t.Errorf("output contains %q:\n%s", n, out)
				}
			}
		})
	}
	if _, err := runPolicyCLI(t, "", "test", pol, "--host", "x", "--body", reqFile, "--ip", "nope"); err == nil {
		t.Fatal("bad --ip accepted")
	}
}
