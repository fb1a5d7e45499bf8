package enforce

import (
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/classify"
)

const quotaPolicy = policyHead + `
identity:
  groups: [{name: eng, cidrs: [10.1.0.0/16]}]
quotas:
  - id: rpm
    per: user
    match: {providers: [openai]}
    requests_per_minute: 2
  - id: eng-tokens
    per: group
    match: {groups: [eng], models: ["gpt-4o*"]}
    tokens_per_day: 100
    message: the team's daily token budget is spent
`

func TestQuotas(t *testing.T) {
	p := mustParse(t, quotaPolicy)
	q := NewQuotas(NewMemoryStore(0))
	now := timeNow()
	alice := Identity{IP: ip("10.1.0.1"), User: "alice", Groups: []string{"eng"}}
	bob := Identity{IP: ip("10.1.0.2"), User: "bob", Groups: []string{"eng"}}
	anon := Identity{IP: ip("10.9.0.2")}

	steps := []struct {
		name   string
		id     Identity
		prov   string
		model  string
		at     time.Duration
		action Action
		reason string
	}{
		{"ok/first", alice, "openai", "gpt-4o", 0, ActionAllow, ""},
		{"ok/second", alice, "openai", "gpt-4o", time.Second, ActionAllow, ""},
		{"fail/third-in-minute", alice, "openai", "gpt-4o", 2 * time.Second, ActionQuota, "quota rpm exceeded: 2 of 2 requests per minute used by user:alice"},
		{"ok/other-user", bob, "openai", "gpt-4o", 3 * time.Second, ActionAllow, ""},
		{"ok/other-provider", alice, "anthropic", "claude", 3 * time.Second, ActionAllow, ""},
		{"ok/next-minute", alice, "openai", "gpt-4o", time.Minute, ActionAllow, ""},
		{"ok/anon-by-ip", anon, "openai", "x", 0, ActionAllow, ""},
	}
	for _, s := range steps {
		d := q.Check(p, s.id, s.prov, s.model, now.Add(s.at))
		if d.Action != s.action || !strings.Contains(d.Reason, s.reason) {
			t.Fatalf("%s: %v", s.name, d)
		}
	}
	// Tokens: alice and bob share the eng group budget; charged from usage.
	q.Charge(p, alice, "openai", "gpt-4o", classify.Usage{Input: 60, Output: 30}, now)
	if d := q.Check(p, bob, "anthropic", "gpt-4o-mini", now.Add(5*time.Second)); d.Action != ActionAllow {
		t.Fatalf("under budget: %v", d)
	}
	q.Charge(p, bob, "anthropic", "", classify.Usage{Input: 5, Output: 5, Model: "gpt-4o-mini"}, now)
	d := q.Check(p, bob, "anthropic", "gpt-4o", now.Add(6*time.Second))
	if d.Action != ActionQuota || d.RuleID != "eng-tokens" || !strings.Contains(d.Reason, "100 of 100 tokens per day used by group:eng") {
		t.Fatalf("token quota: %v", d)
	}
	r := BlockResponse("openai", "openai.chat", 0, d, "E1")
	if r.Status != 429 || !strings.Contains(string(r.Body), "daily token budget") {
		t.Fatalf("429 response %d %s", r.Status, r.Body)
	}
	// A new day resets it.
	if d := q.Check(p, bob, "anthropic", "gpt-4o", now.Add(24*time.Hour)); d.Action != ActionAllow {
		t.Fatalf("next day: %v", d)
	}
	// Quotas survive a policy reload (same IDs).
	p2 := mustParse(t, quotaPolicy+"\n# edited\n")
	if d := q.Check(p2, alice, "openai", "o3", now.Add(time.Minute+time.Second)); d.Action != ActionAllow {
		t.Fatalf("after reload 1: %v", d)
	}
	if d := q.Check(p2, alice, "openai", "o3", now.Add(time.Minute+2*time.Second)); d.Action != ActionQuota {
		t.Fatalf("after reload 2: %v", d)
	}
}

func TestMemoryStoreBounded(t *testing.T) {
	s := NewMemoryStore(10)
	now := timeNow()
	for i := 0; i < 100; i++ {
		s.Add("k"+itoa(i), time.Minute, 1, now)
	}
	if s.Len() > 10 {
		t.Fatalf("store grew to %d", s.Len())
	}
	if s.Add("x", time.Minute, 2, now) != 2 || s.Get("x", time.Minute, now) != 2 || s.Get("x", time.Minute, now.Add(time.Minute)) != 0 {
		t.Fatal("window arithmetic")
	}
	if s.Add("x", time.Minute, 1, now.Add(time.Minute)) != 1 {
		t.Fatal("window did not roll")
	}
}
