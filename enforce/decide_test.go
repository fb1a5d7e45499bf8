package enforce

import (
	"strings"
	"testing"

	"github.com/aigress/aigress/classify"
)

const decidePolicy = policyHead + `
identity:
  groups:
    - {name: eng, cidrs: [10.1.0.0/16]}
    - {name: office, cidrs: [10.2.0.0/16]}
accounts:
  corporate: {orgs: [org-corp], email_domains: [corp.example]}
  personal_action: block
rules:
  - id: block-secrets
    match: {findings: {categories: [secret], min_confidence: 0.7}}
    action: block
    message: remove the key
  - id: redact-pii
    match: {findings: {types: [email, phone]}}
    action: redact
  - id: eng-openai
    match: {groups: [eng], providers: [openai], models: ["GPT-4o*", "o3"]}
    action: allow
  - id: office-chat
    match: {groups: [office], categories: [chat]}
    action: alert
  - id: no-gemini
    match: {providers: [google]}
    action: block
    reason: Gemini is not approved
default_action: block
uninspectable:
  default: fail_closed
  per_service: {ChatGPT: fail_open}
`

func TestDecide(t *testing.T) {
	p := mustParse(t, decidePolicy)
	openai := classify.Service{Provider: "openai", Service: "OpenAI API", Category: classify.CategoryAPI, Inspect: true}
	chatgpt := classify.Service{Provider: "openai", Service: "ChatGPT", Category: classify.CategoryChat, Inspect: true}
	gemini := classify.Service{Provider: "google", Service: "Gemini API", Category: classify.CategoryAPI, Inspect: true}
	eng := Identity{IP: ip("10.1.2.3"), Groups: []string{"eng"}}
	office := Identity{IP: ip("10.2.2.3"), Groups: []string{"office"}}
	req := func(model string) *classify.Request { return &classify.Request{Provider: "openai", Model: model} }
	secret := []classify.PartFinding{{Finding: classify.Finding{Type: "aws_access_key", Category: "secret", Confidence: 0.9}}}
	weakSecret := []classify.PartFinding{{Finding: classify.Finding{Type: "generic_secret", Category: "secret", Confidence: 0.3}}}
	email := []classify.PartFinding{{Finding: classify.Finding{Type: "email", Category: "pii", Confidence: 0.9}}}
	yes, no := true, false
	cases := []struct {
		name   string
		in     Input
		action Action
		rule   string
		reason string
	}{
		{"ok/allowed-model", Input{Identity: eng, Service: openai, Request: req("gpt-4o-mini")}, ActionAllow, "eng-openai", ""},
		{"ok/model-glob-case-insensitive", Input{Identity: eng, Service: openai, Request: req("gpt-4O-2024")}, ActionAllow, "eng-openai", ""},
		{"ok/exact-model", Input{Identity: eng, Service: openai, Request: req("o3")}, ActionAllow, "eng-openai", ""},
		{"ok/office-chat-alert", Input{Identity: office, Service: chatgpt, Request: req("")}, ActionAlert, "office-chat", ""},
		{"ok/redact-email", Input{Identity: eng, Service: openai, Request: req("gpt-4o"), Findings: email}, ActionRedact, "redact-pii", "1 email"},
		{"ok/weak-secret-ignored", Input{Identity: eng, Service: openai, Request: req("gpt-4o"), Findings: weakSecret}, ActionAllow, "eng-openai", ""},
		{"ok/corporate-account", Input{Identity: eng, Service: openai, Request: req("gpt-4o"), Account: AccountInfo{Corporate: &yes}}, ActionAllow, "eng-openai", ""},
		{"ok/uninspectable-fail-open", Input{Identity: office, Service: chatgpt, Request: &classify.Request{Uninspectable: "too large"}}, ActionAlert, "office-chat", ""},
		{"fail/model-not-allowed", Input{Identity: eng, Service: openai, Request: req("gpt-3.5-turbo")}, ActionBlock, "default", "not on the allow-list"},
		{"fail/other-group", Input{Identity: office, Service: openai, Request: req("gpt-4o")}, ActionBlock, "default", ""},
		{"fail/secret", Input{Identity: eng, Service: openai, Request: req("gpt-4o"), Findings: append(email, secret...)}, ActionBlock, "block-secrets", "1 aws_access_key"},
		{"fail/redaction-does-not-unblock", Input{Identity: office, Service: gemini, Request: req("gemini-2.0"), Findings: email}, ActionBlock, "no-gemini", "Gemini is not approved"},
		{"fail/personal-account", Input{Identity: eng, Service: openai, Request: req("gpt-4o"), Account: AccountInfo{Corporate: &no}}, ActionBlock, RulePersonal, "personal"},
		{"fail/uninspectable-fail-closed", Input{Identity: eng, Service: openai, Request: &classify.Request{Model: "gpt-4o", Uninspectable: "unknown encoding"}}, ActionBlock, RuleUninspectable, "unknown encoding"},
		{"fail/no-request", Input{Identity: eng, Service: gemini}, ActionBlock, "no-gemini", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.Decide(c.in)
			if d.Action != c.action || d.RuleID != c.rule || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("got %v, want %s by %s containing %q", d, c.action, c.rule, c.reason)
			}
		})
	}
	if d := p.Decide(Input{Identity: eng, Service: openai, Request: req("gpt-4o"), Findings: secret}); d.UserMessage() != "remove the key" {
		t.Fatalf("message: %+v", d)
	}
}

func TestConnectDecision(t *testing.T) {
	p := mustParse(t, policyHead+`
identity:
  groups:
    - {name: eng, cidrs: [10.1.0.0/16]}
rules:
  - id: redact
    match: {findings: {categories: [secret]}}
    action: redact
  - id: eng-openai
    match: {groups: [eng], providers: [openai], models: ["gpt-4o*"]}
    action: allow
  - id: no-gemini
    match: {providers: [google]}
    action: block
  - id: anthropic-ok
    match: {providers: [anthropic]}
    action: allow
connect:
  block_unlisted_ai: true
  block: ["*.deepseek.com"]
uninspectable:
  default: fail_open
  per_service: {Copilot: fail_closed}
`)
	eng := Identity{IP: ip("10.1.0.9"), Groups: []string{"eng"}}
	other := Identity{IP: ip("10.9.0.9")}
	cases := []struct {
		name   string
		id     Identity
		host   string
		svc    classify.Service
		known  bool
		action Action
		rule   string
	}{
		{"ok/not-ai", other, "example.org", classify.Service{}, false, ActionAllow, RuleConnect},
		{"ok/request-level-rule-defers", eng, "api.openai.com", classify.Service{Provider: "openai", Service: "OpenAI API", Inspect: true}, true, ActionAllow, RuleConnect},
		{"ok/allowed-provider", other, "api.anthropic.com", classify.Service{Provider: "anthropic", Inspect: true}, true, ActionAllow, RuleConnect},
		{"fail/blocked-provider", eng, "generativelanguage.googleapis.com", classify.Service{Provider: "google", Service: "Gemini API", Inspect: true}, true, ActionBlock, "no-gemini"},
		{"fail/host-glob", eng, "chat.DeepSeek.com.", classify.Service{}, false, ActionBlock, RuleConnect},
		{"fail/unlisted-ai", other, "api.mistral.ai", classify.Service{Provider: "mistral", Service: "Mistral API", Inspect: true}, true, ActionBlock, RuleConnect},
		{"fail/pinned-fail-closed", eng, "copilot.example", classify.Service{Provider: "anthropic", Service: "Copilot", Inspect: false}, true, ActionBlock, RuleUninspectable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.ConnectDecision(c.id, c.host, c.svc, c.known)
			if d.Action != c.action || d.RuleID != c.rule {
				t.Fatalf("got %v, want %s by %s", d, c.action, c.rule)
			}
		})
	}
}

func TestDecideOutput(t *testing.T) {
	p := mustParse(t, policyHead+`
output:
  window_bytes: 128
  rules:
    - id: keys
      findings: {types: [private_key]}
      action: block
    - id: pii
      match: {providers: [openai]}
      findings: {categories: [pii], min_confidence: 0.5}
      action: alert
`)
	op := p.OutputRules()
	if !op.Enabled || !op.MayBlock || op.WindowBytes != 128 {
		t.Fatalf("output policy %+v", op)
	}
	openai := classify.Service{Provider: "openai"}
	cases := []struct {
		name     string
		svc      classify.Service
		findings []classify.Finding
		action   Action
	}{
		{"ok/none", openai, nil, ActionAllow},
		{"ok/pii-other-provider", classify.Service{Provider: "anthropic"}, []classify.Finding{{Type: "email", Category: "pii", Confidence: 1}}, ActionAllow},
		{"ok/pii-alert", openai, []classify.Finding{{Type: "email", Category: "pii", Confidence: 1}}, ActionAlert},
		{"fail/private-key", openai, []classify.Finding{{Type: "email", Category: "pii", Confidence: 1}, {Type: "private_key", Category: "secret", Confidence: 1}}, ActionBlock},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if d := p.DecideOutput(Identity{}, c.svc, c.findings); d.Action != c.action {
				t.Fatalf("got %v want %s", d, c.action)
			}
		})
	}
	if op := mustParse(t, policyHead).OutputRules(); op.Enabled || op.WindowBytes != DefaultWindowBytes {
		t.Fatalf("empty output policy %+v", op)
	}
}
