package enforce

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBlockResponse(t *testing.T) {
	d := Decision{Action: ActionBlock, RuleID: "no-gpt35", Reason: "model gpt-3.5 is not approved"}
	q := Decision{Action: ActionQuota, RuleID: "per-user", Reason: "quota per-user exceeded"}
	cases := []struct {
		name, provider, shape string
		d                     Decision
		status                int
		ctype                 string
		path                  []string // JSON path to the message
		typePath              []string
		typ                   string
	}{
		{"ok/openai", "openai", "openai.chat", d, 403, "application/json", []string{"error", "message"}, []string{"error", "type"}, "aigress_policy"},
		{"ok/openai-compatible", "mistral", "json.generic", d, 403, "application/json", []string{"error", "message"}, []string{"error", "code"}, "policy_violation"},
		{"ok/openai-quota", "openai", "openai.chat", q, 429, "application/json", []string{"error", "message"}, []string{"error", "type"}, "insufficient_quota"},
		{"ok/anthropic", "anthropic", "anthropic.messages", d, 403, "application/json", []string{"error", "message"}, []string{"error", "type"}, "permission_error"},
		{"ok/anthropic-quota", "anthropic", "", q, 429, "application/json", []string{"error", "message"}, []string{"error", "type"}, "rate_limit_error"},
		{"ok/gemini", "google", "gemini.generate", d, 403, "application/json", []string{"error", "message"}, []string{"error", "status"}, "PERMISSION_DENIED"},
		{"ok/gemini-quota", "google", "gemini.generate", q, 429, "application/json", []string{"error", "message"}, []string{"error", "status"}, "RESOURCE_EXHAUSTED"},
		{"ok/bedrock", "aws", "bedrock.converse", d, 403, "application/json", []string{"message"}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := BlockResponse(c.provider, c.shape, 0, c.d, "01JEVENT")
			if r.Status != c.status || !strings.HasPrefix(r.Header.Get("Content-Type"), c.ctype) {
				t.Fatalf("status %d ctype %q", r.Status, r.Header.Get("Content-Type"))
			}
			var v map[string]any
			if err := json.Unmarshal(r.Body, &v); err != nil {
				t.Fatal(err)
			}
			get := func(path []string) any {
				var cur any = v
				for _, k := range path {
					m, _ := cur.(map[string]any)
					cur = m[k]
				}
				return cur
			}
			msg, _ := get(c.path).(string)
			if !strings.Contains(msg, c.d.Reason) || !strings.Contains(msg, "(aigress event 01JEVENT)") {
				t.Fatalf("message %q", msg)
			}
			if c.typePath != nil && get(c.typePath) != c.typ {
				t.Fatalf("type %v want %s", get(c.typePath), c.typ)
			}
		})
	}
	r := BlockResponse("aws", "bedrock.invoke", 429, q, "E")
	if r.Header.Get("X-Amzn-ErrorType") != "ThrottlingException" {
		t.Fatalf("bedrock header %v", r.Header)
	}
	if v := string(BlockResponse("anthropic", "anthropic.messages", 0, Decision{Action: ActionBlock, Reason: "r", Message: "custom text"}, "E").Body); !strings.Contains(v, "custom text") || strings.Contains(v, `"r"`) {
		t.Fatalf("message not preferred: %s", v)
	}
}

func TestBlockPage(t *testing.T) {
	d := Decision{Action: ActionBlock, RuleID: "r<1>", Reason: `<script>alert("x")</script>`}
	r := BlockResponse("openai", "web.chatgpt", 0, d, "E&1")
	body := string(r.Body)
	if r.Status != 403 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status/type %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;") || !strings.Contains(body, "aigress event E&amp;1") || len(body) > 4096 {
		t.Fatalf("page not escaped or too big: %s", body)
	}
}

func TestStreamErrorEvent(t *testing.T) {
	d := Decision{Action: ActionBlock, RuleID: "out", Reason: "model output contains credentials"}
	cases := []struct{ name, provider, shape, prefix string }{
		{"ok/openai", "openai", "openai.chat", `data: {"error":`},
		{"ok/responses", "openai", "openai.responses", "event: error\ndata: {"},
		{"ok/anthropic", "anthropic", "anthropic.messages", "event: error\ndata: {"},
		{"ok/gemini", "google", "gemini.generate", `data: {"error":`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := string(StreamErrorEvent(c.provider, c.shape, d, "E9"))
			if !strings.HasPrefix(ev, c.prefix) || !strings.HasSuffix(ev, "\n\n") || !strings.Contains(ev, "aigress event E9") {
				t.Fatalf("event %q", ev)
			}
			data := ev[strings.Index(ev, "data: ")+6 : len(ev)-2]
			if !json.Valid([]byte(data)) {
				t.Fatalf("invalid JSON %q", data)
			}
		})
	}
}
