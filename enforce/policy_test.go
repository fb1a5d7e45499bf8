package enforce

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want string // substring of the error; "" for success
	}{
		{"ok/minimal", policyHead, ""},
		{"ok/full-rule", policyHead + `rules:
  - id: r1
    match: {groups: [g], models: ["gpt-4o*"], account: corporate, findings: {categories: [secret], min_confidence: 0.5}}
    action: redact
    redaction: {mode: hash, restore: true}
identity:
  groups: [{name: g, cidrs: [10.0.0.0/8, "::1"]}]
`, ""},
		{"fail/unknown-field", policyHead + "rules:\n  - id: r1\n    match:\n      modle: x\n    action: allow\n", `test.yaml:6:7: unknown field "modle"`},
		{"fail/top-level-unknown", policyHead + "defaults: allow\n", `test.yaml:3:1: unknown field "defaults"`},
		{"fail/api-version", "apiVersion: v2\nkind: Policy\n", `test.yaml:1:13: apiVersion: apiVersion must be "aigress/v1"`},
		{"fail/kind", "apiVersion: aigress/v1\nkind: Nope\n", `test.yaml:2:7: kind: kind must be "Policy"`},
		{"fail/bad-cidr", policyHead + "identity:\n  groups:\n    - name: a\n      cidrs: [10.0.0.0/33]\n", `test.yaml:6:15: identity.groups[0].cidrs[0]: bad CIDR "10.0.0.0/33"`},
		{"fail/bad-action", policyHead + "rules:\n  - id: r1\n    action: blok\n", `test.yaml:5:13: rules[0].action: unknown action "blok"`},
		{"fail/dup-id", policyHead + "rules:\n  - id: r1\n    action: allow\n  - id: r1\n    action: block\n", `test.yaml:6:9: rules[1].id: duplicate id "r1"`},
		{"fail/missing-id", policyHead + "rules:\n  - action: allow\n", `rules[0]: needs an id`},
		{"fail/bad-glob", policyHead + "rules:\n  - id: r\n    match: {models: [\"gpt-[\"]}\n    action: allow\n", `rules[0].match.models[0]: bad glob "gpt-["`},
		{"fail/bad-regex", policyHead + "detectors:\n  - id: d\n    regex: 'a(b'\n", `detectors[0].regex: bad regex`},
		{"fail/redact-without-findings", policyHead + "rules:\n  - id: r\n    action: redact\n", `a redact rule needs match.findings`},
		{"fail/bad-category", policyHead + "rules:\n  - id: r\n    match: {findings: {categories: [secrets]}}\n    action: alert\n", `unknown finding category "secrets"`},
		{"fail/fail-mode", policyHead + "uninspectable:\n  default: fail_sideways\n", `test.yaml:4:12: uninspectable.default: unknown fail mode`},
		{"fail/per-service", policyHead + "uninspectable:\n  per_service:\n    OpenAI API: maybe\n", `test.yaml:5:17: uninspectable.per_service.'OpenAI API': unknown fail mode "maybe"`},
		{"fail/retention", policyHead + "audit:\n  prompt_retention: all\n", `unknown retention "all"`},
		{"fail/quota-no-limit", policyHead + "quotas:\n  - id: q\n", `quota "q" sets no limit`},
		{"fail/quota-per", policyHead + "quotas:\n  - id: q\n    per: team\n    requests_per_day: 1\n", `unknown quota key "team"`},
		{"fail/output-action", policyHead + "output:\n  rules:\n    - id: o\n      action: redact\n", `unknown output action "redact"`},
		{"fail/trusted-header-no-proxies", policyHead + "identity:\n  trusted_header:\n    name: X-User\n", `needs trusted_proxies`},
		{"fail/htpasswd-missing", policyHead + "identity:\n  auth:\n    htpasswd: /nonexistent/htpasswd\n", `identity.auth.htpasswd: htpasswd:`},
		{"fail/type-mismatch", policyHead + "limits:\n  max_body_bytes: lots\n", `test.yaml:4:19:`},
		{"fail/empty", "", `empty policy`},
		{"fail/syntax", "apiVersion: [\n", `test.yaml:`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse([]byte(c.yaml), "test.yaml")
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if p.Name() != "test" || !strings.HasPrefix(p.Hash(), "sha256:") || len(p.Hash()) != 19 {
					t.Fatalf("name %q hash %q", p.Name(), p.Hash())
				}
				return
			}
			if err == nil {
				t.Fatalf("want error %q, got none", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "enforce: ") {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	p := mustParse(t, policyHead+"rules:\n  - id: r\n    match: {findings: {types: [aws_acces_key]}}\n    action: alert\n")
	w := p.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], `unknown finding type "aws_acces_key"`) {
		t.Fatalf("warnings %q", w)
	}
}

func TestParseMultipleErrors(t *testing.T) {
	_, err := Parse([]byte(policyHead+"default_action: maybe\naudit:\n  prompt_retention: x\n"), "p.yaml")
	if err == nil || strings.Count(err.Error(), "enforce: p.yaml:") != 2 {
		t.Fatalf("want two positioned errors, got %v", err)
	}
}

func TestDefaultsAndAccessors(t *testing.T) {
	p := mustParse(t, policyHead+"name: x\nuninspectable:\n  default: fail_closed\n  per_service:\n    OpenAI API: fail_open\ndetectors:\n  - id: code\n    words: [BLUE]\n")
	if p.Name() != "x" || p.Retention() != RetentionNone || p.MaxBodyBytes() != DefaultMaxBodyBytes || p.MaxDecodedBytes() != DefaultMaxDecodedBytes {
		t.Fatalf("defaults: %q %q %d", p.Name(), p.Retention(), p.MaxBodyBytes())
	}
	if p.FailMode("openai api") != ActionAllow || p.FailMode("Claude") != ActionBlock {
		t.Fatal("fail modes")
	}
	cr := p.CustomRules()
	if len(cr) != 1 || cr[0].ID != "code" || cr[0].Confidence != 0.9 || cr[0].Words[0] != "BLUE" {
		t.Fatalf("custom rules %+v", cr)
	}
}

func TestLoadFileHtpasswdRelative(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("alice:$2a$04$C8eRkY7gkp7m0TNOjnN5ye1pLK0XY5Bp0oNwqozj40tpYp8Fu6lku\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(f, []byte(policyHead+"identity:\n  auth: {required: true, htpasswd: users}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if !p.AuthRequired() || len(p.htpasswd) != 1 {
		t.Fatal("htpasswd not loaded")
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "enforce: load policy") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestHtpasswd(t *testing.T) {
	cases := []struct {
		name, data, want string
	}{
		{"ok/bcrypt", "# c\n\nalice:$2y$04$C8eRkY7gkp7m0TNOjnN5ye1pLK0XY5Bp0oNwqozj40tpYp8Fu6lku\n", ""},
		{"fail/apr1", "bob:$apr1$abc$def\n", `unsupported hash type apr1 (MD5)`},
		{"fail/sha", "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", `unsupported hash type SHA1`},
		{"fail/plain", "bob:secret\n", `unsupported hash type unknown/plain text`},
		{"fail/shape", "bob\n", `want user:hash`},
		{"fail/dup", "a:$2y$04$C8eRkY7gkp7m0TNOjnN5ye1pLK0XY5Bp0oNwqozj40tpYp8Fu6lku\na:$2y$04$C8eRkY7gkp7m0TNOjnN5ye1pLK0XY5Bp0oNwqozj40tpYp8Fu6lku\n", `duplicate user`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseHtpasswd([]byte(c.data), "h")
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(policyHead))
	f.Add([]byte(policyHead + "rules:\n  - id: r\n    match: {models: [\"gpt-*\"]}\n    action: block\n"))
	f.Add([]byte("apiVersion: [\n"))
	f.Add([]byte(policyHead + "quotas:\n  - {id: q, requests_per_day: 3}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err == nil && p == nil {
			t.Fatal("nil policy without error")
		}
	})
}
