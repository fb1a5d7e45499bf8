package enforce

import (
	"strings"
	"testing"

	"github.com/aigress/aigress/classify"
)

func BenchmarkDecide(b *testing.B) {
	p, err := Parse([]byte(decidePolicy), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	in := Input{
		Identity: Identity{IP: ip("10.1.2.3"), Groups: []string{"eng"}},
		Service:  classify.Service{Provider: "openai", Service: "OpenAI API", Category: classify.CategoryAPI, Inspect: true},
		Request:  &classify.Request{Provider: "openai", Model: "gpt-4o-mini"},
		Findings: []classify.PartFinding{{Finding: classify.Finding{Type: "email", Category: "pii", Confidence: 0.9}}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if d := p.Decide(in); d.Action != ActionRedact {
			b.Fatal(d)
		}
	}
}

// BenchmarkRedact4KB redacts an AWS key and an e-mail in a 4 KB chat
// request (the Redact step only; detection is classify's).
func BenchmarkRedact4KB(b *testing.B) {
	p, err := Parse([]byte(redactPolicy), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	filler := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 80)
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"` +
		filler[:1800] + ` my key is ` + awsKey + ` and mail jane@corp.example ` + filler[:1900] + `"}],"stream":true}`)
	req := testRequest(b, "openai", "gpt-4o", body)
	fs := redactFindings(req)
	d := Decision{Action: ActionRedact, RuleID: "redact"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, n, _ := p.Redact(req, fs, d); n != 2 {
			b.Fatal(n)
		}
	}
}
