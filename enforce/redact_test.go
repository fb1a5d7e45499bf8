package enforce

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/aigress/aigress/classify"
)

const redactPolicy = policyHead + `
rules:
  - id: redact
    match: {findings: {categories: [secret, pii]}}
    action: redact
    redaction: {mode: placeholder, restore: true}
  - id: hash
    match: {findings: {types: [phone]}}
    action: redact
    redaction: {mode: hash}
redaction: {hash_key: test-key}
`

const awsKey = "AKIAIOSFODNN7EXAMPLE"

func redactFindings(req *classify.Request) []classify.PartFinding {
	f := findText(req, "aws_access_key", "secret", 0.95, awsKey)
	f = append(f, findText(req, "email", "pii", 0.9, "jane@corp.example")...)
	f = append(f, findText(req, "email", "pii", 0.9, "bob@corp.example")...)
	return f
}

func TestRedactJSON(t *testing.T) {
	p := mustParse(t, redactPolicy)
	body := []byte(`{"model":"gpt-4o",  "messages":[{"role":"system","content":"Be brief.\u00e9"},` + "\n" +
		`  {"role":"user","content":"key ` + awsKey + ` mail jane@corp.example and \"bob@corp.example\" \u2603 again ` + awsKey + `"}],"temperature":0.70,"n":1e0}`)
	req := testRequest(t, "openai", "gpt-4o", body)
	fs := redactFindings(req)
	d := p.Decide(Input{Request: req, Findings: fs})
	if d.Action != ActionRedact || d.RuleID != "redact" {
		t.Fatalf("decision %v", d)
	}
	out, n, rest := p.Redact(req, fs, d)
	want := `{"model":"gpt-4o",  "messages":[{"role":"system","content":"Be brief.\u00e9"},` + "\n" +
		`  {"role":"user","content":"key [AWS_ACCESS_KEY_1] mail [EMAIL_1] and \"[EMAIL_2]\" \u2603 again [AWS_ACCESS_KEY_1]"}],"temperature":0.70,"n":1e0}`
	if string(out) != want {
		t.Fatalf("redacted body\n got %s\nwant %s", out, want)
	}
	if n != 4 || rest.Len() != 3 {
		t.Fatalf("n=%d placeholders=%d", n, rest.Len())
	}
	if !bytes.Equal(req.Body, body) {
		t.Fatal("input body modified")
	}
	// Restoring the model's echo gives the originals back, JSON-escaped.
	answer := []byte(`{"choices":[{"message":{"content":"Your key [AWS_ACCESS_KEY_1] and [EMAIL_2]."}}]}`)
	got := rest.RestoreBody(answer)
	if string(got) != `{"choices":[{"message":{"content":"Your key `+awsKey+` and bob@corp.example."}}]}` {
		t.Fatalf("restored %s", got)
	}
	if string(rest.RestoreBody([]byte("plain [EMAIL_1]"))) != "plain jane@corp.example" {
		t.Fatal("plain restore")
	}
	var nilR *Restorer
	if string(nilR.RestoreBody(answer)) != string(answer) || nilR.NewStream().Write([]byte("x"))[0] != 'x' {
		t.Fatal("nil restorer")
	}
}

func TestRedactEscapedSpan(t *testing.T) {
	// The finding's text is written with escapes in the body: the whole
	// escaped span is replaced, neighbours keep their escapes.
	p := mustParse(t, redactPolicy)
	body := []byte(`{"messages":[{"content":"a\tjane\u0040corp.example\n\ud83d\ude00 z"}]}`)
	req := testRequest(t, "openai", "", body)
	fs := findText(req, "email", "pii", 0.9, "jane@corp.example")
	out, n, _ := p.Redact(req, fs, Decision{Action: ActionRedact, RuleID: "redact"})
	if want := `{"messages":[{"content":"a\t[EMAIL_1]\n\ud83d\ude00 z"}]}`; string(out) != want || n != 1 {
		t.Fatalf("got %s", out)
	}
	// A finding covering half of a surrogate pair's bytes takes the pair.
	emoji := findText(req, "x", "pii", 1, "\U0001F600")
	emoji[0].End -= 2
	out, _, _ = p.Redact(req, emoji, Decision{Action: ActionRedact, RuleID: "redact"})
	if want := `{"messages":[{"content":"a\tjane\u0040corp.example\n[X_1] z"}]}`; string(out) != want {
		t.Fatalf("got %s", out)
	}
}

func TestRedactHashAndRaw(t *testing.T) {
	p := mustParse(t, redactPolicy)
	body := []byte("call +44 20 7946 0958 now")
	req := &classify.Request{Body: body, Parts: []classify.Part{{Role: "user", Text: string(body), Start: 0, End: len(body), Raw: true}}}
	fs := findText(req, "phone", "pii", 0.9, "+44 20 7946 0958")
	for i := range fs {
		fs[i].Category = "other"
	}
	d := p.Decide(Input{Request: req, Findings: fs})
	if d.RuleID != "hash" {
		t.Fatalf("decision %v", d)
	}
	out, n, rest := p.Redact(req, fs, d)
	if !regexp.MustCompile(`^call \[PHONE:[0-9a-f]{8}\] now$`).Match(out) || n != 1 || rest != nil {
		t.Fatalf("got %s n=%d rest=%v", out, n, rest)
	}
	again, _, _ := p.Redact(req, fs, d)
	if !bytes.Equal(out, again) {
		t.Fatal("keyed hash not stable")
	}
	// Not a redact decision: body unchanged.
	if o, n, _ := p.Redact(req, fs, Decision{Action: ActionAlert, RuleID: "hash"}); n != 0 || !bytes.Equal(o, body) {
		t.Fatal("non-redact decision changed the body")
	}
}

func TestRedactOverlapsAndBadOffsets(t *testing.T) {
	p := mustParse(t, redactPolicy)
	body := []byte(`{"messages":[{"content":"token=` + awsKey + `xyz"}]}`)
	req := testRequest(t, "openai", "", body)
	fs := findText(req, "aws_access_key", "secret", 1, awsKey)
	fs = append(fs, findText(req, "generic_secret", "secret", 1, "token="+awsKey)...)
	fs = append(fs, classify.PartFinding{Part: 7, Finding: classify.Finding{Category: "secret", Confidence: 1}},
		classify.PartFinding{Part: 0, Finding: classify.Finding{Category: "secret", Start: 5, End: 500, Confidence: 1}})
	out, n, _ := p.Redact(req, fs, Decision{Action: ActionRedact, RuleID: "redact"})
	if string(out) != `{"messages":[{"content":"[GENERIC_SECRET_1]xyz"}]}` || n != 1 {
		t.Fatalf("got %s n=%d", out, n)
	}
}

// sseOpenAI builds an OpenAI chat SSE stream with one delta per piece.
func sseOpenAI(pieces ...string) string {
	var b strings.Builder
	for _, p := range pieces {
		c, _ := json.Marshal(p)
		b.WriteString(`data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":` + string(c) + `}}]}` + "\n\n")
	}
	b.WriteString(`data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n")
	return b.String()
}

func sseAnthropic(pieces ...string) string {
	var b strings.Builder
	b.WriteString("event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"content\":[]}}\r\n\r\n")
	for _, p := range pieces {
		c, _ := json.Marshal(p)
		b.WriteString("event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":" + string(c) + "}}\r\n\r\n")
	}
	b.WriteString("event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\nevent: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n")
	return b.String()
}

// streamText extracts the concatenated text deltas of an SSE stream.
func streamText(t *testing.T, s string) string {
	t.Helper()
	var out strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r")
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		if !json.Valid([]byte(data)) {
			t.Fatalf("invalid event JSON %q", data)
		}
		if s, e, ok := stringAfterKey([]byte(data), "content", "text", "delta"); ok {
			txt, _ := decodeJSONString([]byte(data)[s:e], nil)
			out.Write(txt)
		}
	}
	return out.String()
}

func newRestorer(pairs ...string) *Restorer {
	r := &Restorer{orig: map[string]string{}}
	for i := 0; i < len(pairs); i += 2 {
		r.add(pairs[i], pairs[i+1])
	}
	r.build()
	return r
}

func TestRestoreStream(t *testing.T) {
	r := newRestorer("[EMAIL_1]", `jane"q"@corp.example`, "[AWS_ACCESS_KEY_1]", awsKey)
	want := `Mail jane"q"@corp.example, key ` + awsKey + `, [not a placeholder] [EM end`
	cases := []struct {
		name, stream string
	}{
		{"ok/openai-split-placeholder", sseOpenAI("Mail [EMA", "IL_1], key [", "AWS_ACCESS_KEY_1], [not a placeholder] [EM", " end")},
		{"ok/openai-whole", sseOpenAI("Mail [EMAIL_1], key [AWS_ACCESS_KEY_1], [not a placeholder] [EM end")},
		{"ok/openai-three-way-split", sseOpenAI("Mail [", "EMAIL", "_1], key [AWS_ACCESS_KEY_1], [not a placeholder] [EM", " end")},
		{"ok/anthropic-split", sseAnthropic("Mail [EMAIL_", "1], key [AWS_ACC", "ESS_KEY_1", "], [not a placeholder] [EM end")},
		{"ok/held-at-end", sseOpenAI("Mail [EMAIL_1], key [AWS_ACCESS_KEY_1], [not a placeholder] [EM", " end")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Every chunking of the raw bytes gives the same result.
			for _, size := range []int{1, 2, 3, 7, 16, 64, 1 << 20} {
				st := r.NewStream()
				var out []byte
				for i := 0; i < len(c.stream); i += size {
					out = append(out, st.Write([]byte(c.stream[i:min(i+size, len(c.stream))]))...)
				}
				out = append(out, st.Flush()...)
				if got := streamText(t, string(out)); got != want {
					t.Fatalf("chunk %d: text %q", size, got)
				}
				if bytes.Contains(out, []byte("EMAIL_1")) {
					t.Fatalf("chunk %d: placeholder left: %s", size, out)
				}
			}
		})
	}
	// The stream is forwarded as it arrives: a complete event without a
	// placeholder prefix comes out of the same Write.
	st := r.NewStream()
	ev := `data: {"choices":[{"delta":{"content":"hello"}}]}` + "\n\n"
	if got := st.Write([]byte(ev)); string(got) != ev {
		t.Fatalf("not forwarded at once: %q", got)
	}
	// Only the possible placeholder prefix is held.
	got := st.Write([]byte(`data: {"choices":[{"delta":{"content":"ab [AWS_ACC"}}]}` + "\n\n"))
	if streamText(t, string(got)) != "ab " {
		t.Fatalf("held too much: %q", got)
	}
}

func TestRestoreStreamRaw(t *testing.T) {
	r := newRestorer("[EMAIL_1]", "jane@corp.example")
	in := `{"message":{"content":"to [EMAIL_1]"},"done":false}` + "\n" + `{"message":{"content":"[EMA`
	in2 := `IL_1]!"},"done":true}` + "\n"
	for _, size := range []int{1, 5, 1000} {
		st := r.NewStream()
		var out []byte
		all := in + in2
		for i := 0; i < len(all); i += size {
			out = append(out, st.Write([]byte(all[i:min(i+size, len(all))]))...)
		}
		out = append(out, st.Flush()...)
		if want := strings.ReplaceAll(all, "[EMAIL_1]", "jane@corp.example"); string(out) != want {
			t.Fatalf("size %d: %s", size, out)
		}
	}
}

func FuzzRestoreStream(f *testing.F) {
	f.Add([]byte(sseOpenAI("a [EMA", "IL_1] b")), 3)
	f.Add([]byte(sseAnthropic("[EMAIL_1]")), 1)
	f.Add([]byte(`{"x":"[EMAIL_1]"}`), 2)
	f.Add([]byte("data: {\"content\":\"\\"), 1)
	r := newRestorer("[EMAIL_1]", "jane@corp.example")
	f.Fuzz(func(t *testing.T, data []byte, size int) {
		if size <= 0 || size > len(data)+1 {
			size = len(data) + 1
		}
		st := r.NewStream()
		total := 0
		for i := 0; i < len(data); i += size {
			total += len(st.Write(data[i:min(i+size, len(data))]))
		}
		total += len(st.Flush())
		if total > 4*len(data)+1024 {
			t.Fatalf("output grew to %d from %d", total, len(data))
		}
	})
}

func FuzzDecodeJSONString(f *testing.F) {
	f.Add([]byte(`"a\u00e9\ud83d\ude00\n"`))
	f.Add([]byte(`"\ud800x"`))
	f.Add([]byte("\"\xff\""))
	f.Fuzz(func(t *testing.T, tok []byte) {
		var starts []int
		got, ok := decodeJSONString(tok, &starts)
		var want string
		err := json.Unmarshal(tok, &want)
		quoted := len(tok) >= 2 && tok[0] == '"' && tok[len(tok)-1] == '"'
		if quoted && ok != (err == nil) {
			// encoding/json accepts exactly the tokens we accept.
			t.Fatalf("%q: ok=%v err=%v", tok, ok, err)
		}
		if ok && (string(got) != want || len(starts) != len(got)+1) {
			t.Fatalf("%q: got %q want %q", tok, got, want)
		}
		if ok {
			var back string
			if err := json.Unmarshal(appendJSONString(nil, want), &back); err != nil || back != want {
				t.Fatalf("re-encode %q: %v", want, err)
			}
		}
	})
}
