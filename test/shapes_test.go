package test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/test/mockllm"
)

// TestAPIShapesAudited: through the proxy, each provider API shape (plain
// and streamed) gives an audit event with the right provider, model, token
// usage and finding counts.
func TestAPIShapesAudited(t *testing.T) {
	m := startMock(t, mockllm.Options{ChunkDelay: 2 * time.Millisecond})
	in := startAigress(t, baseConfig(t, m, ""), nil)
	c := in.client(t)
	const pii = "please email the summary to maria.rossi@example-corp.it"
	cases := []struct {
		name, url, body string
		provider, model string
		stream          bool
		tokens          audit.Tokens
	}{
		{"openai-responses-stream", "https://api.openai.com/v1/responses",
			`{"model":"gpt-5","stream":true,"input":[{"role":"user","content":"` + pii + `"}]}`,
			"openai", "gpt-5", true, audit.Tokens{Input: 11, Output: 7, Cached: 3, Reasoning: 2}},
		{"openai-responses", "https://api.openai.com/v1/responses",
			`{"model":"gpt-5","input":"` + pii + `"}`,
			"openai", "gpt-5", false, audit.Tokens{Input: 11, Output: 7, Cached: 3, Reasoning: 2}},
		{"anthropic-stream", "https://api.anthropic.com/v1/messages",
			`{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"` + pii + `"}]}`,
			"anthropic", "claude-sonnet-4-5", true, audit.Tokens{Input: 14, Output: 7, Cached: 3}},
		{"gemini-stream", "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
			`{"contents":[{"role":"user","parts":[{"text":"` + pii + `"}]}]}`,
			"google", "gemini-2.5-pro", true, audit.Tokens{Input: 11, Output: 9, Cached: 3, Reasoning: 2}},
		{"gemini", "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent",
			`{"contents":[{"role":"user","parts":[{"text":"` + pii + `"}]}]}`,
			"google", "gemini-2.5-pro", false, audit.Tokens{Input: 11, Output: 9, Cached: 3, Reasoning: 2}},
		{"bedrock-converse-stream", "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse-stream",
			`{"messages":[{"role":"user","content":[{"text":"` + pii + `"}]}]}`,
			"aws", "anthropic.claude-3-5-sonnet-20240620-v1:0", true, audit.Tokens{Input: 14, Output: 7, Cached: 3}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", tc.url, strings.NewReader(tc.body))
			if st, body := doJSON(t, c, req); st != 200 {
				t.Fatalf("status %d: %s", st, body)
			}
			e := in.events(t, i+1)[i]
			t.Logf("%s: provider=%s model=%s stream=%v tokens=%+v findings=%v", tc.name, e.Provider, e.Model, e.Stream, e.Response.Tokens, e.Findings)
			if e.Provider != tc.provider || e.Model != tc.model || e.Stream != tc.stream {
				t.Fatalf("event %s/%s stream=%v", e.Provider, e.Model, e.Stream)
			}
			if e.Response.Tokens != tc.tokens {
				t.Fatalf("tokens %+v, want %+v", e.Response.Tokens, tc.tokens)
			}
			if e.Response.Tokens.Output == 0 {
				t.Fatal("no output tokens recorded")
			}
			if e.Findings["email"] != 1 {
				t.Fatalf("findings %v, want one email", e.Findings)
			}
		})
	}
}
