package mockllm

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const testDelay = 40 * time.Millisecond

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start(Options{Hosts: []string{"api.openai.com", "api.anthropic.com"}, ChunkDelay: testDelay, Chunks: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func post(t *testing.T, s *Server, path, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeJSON(t *testing.T, r io.Reader) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// dig walks a JSON value by map keys and slice indexes.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func num(v any) int { f, _ := v.(float64); return int(f) }

func TestJSONShapes(t *testing.T) {
	s := start(t)
	cases := []struct {
		name  string
		path  string
		body  string
		text  []any
		usage map[string][]any // expected value -> path
	}{
		{"ok/openai-chat", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
			[]any{"choices", 0, "message", "content"},
			map[string][]any{"in": {"usage", "prompt_tokens"}, "out": {"usage", "completion_tokens"}, "cached": {"usage", "prompt_tokens_details", "cached_tokens"}, "reasoning": {"usage", "completion_tokens_details", "reasoning_tokens"}}},
		{"ok/openai-responses", "/v1/responses", `{"model":"gpt-4o","input":"hi"}`,
			[]any{"output", 0, "content", 0, "text"},
			map[string][]any{"in": {"usage", "input_tokens"}, "out": {"usage", "output_tokens"}, "cached": {"usage", "input_tokens_details", "cached_tokens"}, "reasoning": {"usage", "output_tokens_details", "reasoning_tokens"}}},
		{"ok/anthropic", "/v1/messages", `{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
			[]any{"content", 0, "text"},
			map[string][]any{"in": {"usage", "input_tokens"}, "out": {"usage", "output_tokens"}, "cached": {"usage", "cache_read_input_tokens"}}},
		{"ok/gemini", "/v1beta/models/gemini-2.0-flash:generateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`,
			[]any{"candidates", 0, "content", "parts", 0, "text"},
			map[string][]any{"in": {"usageMetadata", "promptTokenCount"}, "out": {"usageMetadata", "candidatesTokenCount"}, "cached": {"usageMetadata", "cachedContentTokenCount"}, "reasoning": {"usageMetadata", "thoughtsTokenCount"}}},
		{"ok/bedrock-converse", "/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`,
			[]any{"output", "message", "content", 0, "text"},
			map[string][]any{"in": {"usage", "inputTokens"}, "out": {"usage", "outputTokens"}, "cached": {"usage", "cacheReadInputTokens"}}},
		{"ok/ollama-chat", "/api/chat", `{"model":"llama3","stream":false,"messages":[{"role":"user","content":"hi"}]}`,
			[]any{"message", "content"},
			map[string][]any{"in": {"prompt_eval_count"}, "out": {"eval_count"}}},
		{"ok/ollama-generate", "/api/generate", `{"model":"llama3","stream":false,"prompt":"hi"}`,
			[]any{"response"},
			map[string][]any{"in": {"prompt_eval_count"}, "out": {"eval_count"}}},
	}
	want := map[string]int{"in": UsageInput, "out": UsageOutput, "cached": UsageCached, "reasoning": UsageReasoning}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, s, tc.path, tc.body, map[string]string{HeaderReply: "mail bob@example.com"})
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			m := decodeJSON(t, resp.Body)
			if got := dig(m, tc.text...); got != "mail bob@example.com" {
				t.Fatalf("text %v in %v", got, m)
			}
			for k, p := range tc.usage {
				if got := num(dig(m, p...)); got != want[k] {
					t.Errorf("usage %s at %v = %d, want %d", k, p, got, want[k])
				}
			}
		})
	}
	t.Run("ok/embeddings", func(t *testing.T) {
		resp := post(t, s, "/v1/embeddings", `{"model":"text-embedding-3-small","input":["a","b"]}`, nil)
		m := decodeJSON(t, resp.Body)
		if d, _ := m["data"].([]any); len(d) != 2 || len(dig(m, "data", 1, "embedding").([]any)) != EmbeddingDims {
			t.Fatalf("embeddings %v", m)
		}
		if num(dig(m, "usage", "prompt_tokens")) != UsageInput {
			t.Fatalf("usage %v", m["usage"])
		}
	})
	t.Run("fail/unknown-path", func(t *testing.T) {
		resp := post(t, s, "/v2/nothing", `{}`, nil)
		if resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestErrorStatus(t *testing.T) {
	s := start(t)
	cases := []struct {
		name string
		path string
		msg  []any
	}{
		{"fail/openai", "/v1/chat/completions", []any{"error", "message"}},
		{"fail/responses", "/v1/responses", []any{"error", "message"}},
		{"fail/anthropic", "/v1/messages", []any{"error", "message"}},
		{"fail/gemini", "/v1beta/models/g:generateContent", []any{"error", "message"}},
		{"fail/bedrock", "/model/m/converse-stream", []any{"message"}},
		{"fail/ollama", "/api/chat", []any{"error"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, s, tc.path, `{"stream":true}`, map[string]string{HeaderStatus: "429"})
			if resp.StatusCode != 429 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			m := decodeJSON(t, resp.Body)
			if msg, _ := dig(m, tc.msg...).(string); !strings.Contains(msg, "Too Many Requests") {
				t.Fatalf("error body %v", m)
			}
		})
	}
	t.Run("fail/anthropic-type", func(t *testing.T) {
		m := decodeJSON(t, post(t, s, "/v1/messages", `{}`, map[string]string{HeaderStatus: "529"}).Body)
		if m["type"] != "error" || dig(m, "error", "type") != "overloaded_error" {
			t.Fatalf("body %v", m)
		}
	})
}

// delta is one text delta as it arrived.
type delta struct {
	at   time.Time
	text string
}

type sseEvent struct{ event, data string }

// readSSE reads events, stamping each as it completes.
func readSSE(t *testing.T, r io.Reader, onEvent func(sseEvent, time.Time)) {
	t.Helper()
	br := bufio.NewReader(r)
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		case line == "" && ev.data != "":
			onEvent(ev, time.Now())
			ev = sseEvent{}
		}
		if err != nil {
			return
		}
	}
}

func TestStreams(t *testing.T) {
	s := start(t)
	const reply = "Contact [EMAIL_1] today"
	type result struct {
		deltas []delta
		last   map[string]any // the event carrying usage
		events []string
	}
	sse := func(textPath []any, usageKey func(ev sseEvent, m map[string]any) bool) func(*testing.T, io.Reader) result {
		return func(t *testing.T, r io.Reader) result {
			var res result
			readSSE(t, r, func(ev sseEvent, at time.Time) {
				res.events = append(res.events, ev.event)
				if ev.data == "[DONE]" {
					res.events[len(res.events)-1] = "[DONE]"
					return
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
					t.Fatalf("event %q: %v", ev.data, err)
				}
				if txt, ok := dig(m, textPath...).(string); ok && txt != "" {
					res.deltas = append(res.deltas, delta{at, txt})
				}
				if usageKey(ev, m) {
					res.last = m
				}
			})
			return res
		}
	}
	cases := []struct {
		name   string
		path   string
		body   string
		read   func(*testing.T, io.Reader) result
		ctype  string
		usage  [][]any // in, out paths in result.last
		events []string
	}{
		{"ok/openai-chat", "/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`,
			sse([]any{"choices", 0, "delta", "content"}, func(_ sseEvent, m map[string]any) bool { return m["usage"] != nil }),
			"text/event-stream", [][]any{{"usage", "prompt_tokens"}, {"usage", "completion_tokens"}}, nil},
		{"ok/openai-responses", "/v1/responses", `{"model":"m","stream":true}`,
			sse([]any{"delta"}, func(ev sseEvent, _ map[string]any) bool { return ev.event == "response.completed" }),
			"text/event-stream", [][]any{{"response", "usage", "input_tokens"}, {"response", "usage", "output_tokens"}},
			[]string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
				"response.output_text.delta", "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
				"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}},
		{"ok/anthropic", "/v1/messages", `{"model":"m","stream":true}`,
			sse([]any{"delta", "text"}, func(ev sseEvent, _ map[string]any) bool { return ev.event == "message_delta" }),
			"text/event-stream", [][]any{nil, {"usage", "output_tokens"}},
			[]string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
				"content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}},
		{"ok/gemini", "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", `{}`,
			sse([]any{"candidates", 0, "content", "parts", 0, "text"}, func(_ sseEvent, m map[string]any) bool {
				return dig(m, "candidates", 0, "finishReason") == "STOP"
			}),
			"text/event-stream", [][]any{{"usageMetadata", "promptTokenCount"}, {"usageMetadata", "candidatesTokenCount"}}, nil},
		{"ok/bedrock", "/model/m/converse-stream", `{}`, func(t *testing.T, r io.Reader) result {
			var res result
			for {
				m, err := ReadEventStreamMessage(r)
				if errors.Is(err, io.EOF) {
					return res
				}
				if err != nil {
					t.Fatal(err)
				}
				at := time.Now()
				res.events = append(res.events, m.Headers[":event-type"])
				var p map[string]any
				if err := json.Unmarshal(m.Payload, &p); err != nil {
					t.Fatal(err)
				}
				if txt, ok := dig(p, "delta", "text").(string); ok {
					res.deltas = append(res.deltas, delta{at, txt})
				}
				if m.Headers[":event-type"] == "metadata" {
					res.last = p
				}
			}
		}, "application/vnd.amazon.eventstream", [][]any{{"usage", "inputTokens"}, {"usage", "outputTokens"}},
			[]string{"messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta", "contentBlockDelta",
				"contentBlockStop", "messageStop", "metadata"}},
		{"ok/ollama", "/api/chat", `{"model":"llama3"}`, func(t *testing.T, r io.Reader) result {
			var res result
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatal(err)
				}
				if txt, _ := dig(m, "message", "content").(string); txt != "" {
					res.deltas = append(res.deltas, delta{time.Now(), txt})
				}
				if m["done"] == true {
					res.last = m
				}
			}
			return res
		}, "application/x-ndjson", [][]any{{"prompt_eval_count"}, {"eval_count"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sent := time.Now()
			resp := post(t, s, tc.path, tc.body, map[string]string{HeaderReply: reply})
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) {
				t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			res := tc.read(t, resp.Body)
			var text strings.Builder
			for _, d := range res.deltas {
				text.WriteString(d.text)
			}
			if text.String() != reply || len(res.deltas) != 4 {
				t.Fatalf("deltas %q (%d), want %q in 4", text.String(), len(res.deltas), reply)
			}
			// Paced: delta i cannot arrive before i pauses have passed, and
			// the median gap between deltas is more than half a pause (one
			// late read on a loaded machine may bunch two deltas).
			var gaps []time.Duration
			for i, d := range res.deltas {
				if floor := time.Duration(i+1) * testDelay; d.at.Sub(sent) < floor {
					t.Errorf("delta %d arrived %v after the request, before %v of pacing", i, d.at.Sub(sent), floor)
				}
				if i > 0 {
					gaps = append(gaps, d.at.Sub(res.deltas[i-1].at))
				}
			}
			slices.Sort(gaps)
			if med := gaps[len(gaps)/2]; med < testDelay/2 {
				t.Errorf("median gap %v (gaps %v), want > %v", med, gaps, testDelay/2)
			}
			if res.last == nil {
				t.Fatal("no usage event")
			}
			if p := tc.usage[0]; p != nil && num(dig(res.last, p...)) != UsageInput {
				t.Errorf("input tokens at %v: %v", p, dig(res.last, p...))
			}
			if p := tc.usage[1]; num(dig(res.last, p...)) != UsageOutput {
				t.Errorf("output tokens at %v: %v", p, dig(res.last, p...))
			}
			if tc.events != nil && !reflect.DeepEqual(res.events, tc.events) {
				t.Errorf("events %q\nwant %q", res.events, tc.events)
			}
		})
	}
}

func TestOpenAIChatStreamShape(t *testing.T) {
	s := start(t)
	for _, tc := range []struct {
		name  string
		body  string
		usage bool
	}{
		{"ok/with-usage", `{"stream":true,"stream_options":{"include_usage":true}}`, true},
		{"ok/without-usage", `{"stream":true}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, s, "/v1/chat/completions", tc.body, map[string]string{HeaderDelayMs: "0", HeaderChunks: "2"})
			b, _ := io.ReadAll(resp.Body)
			if !bytes.HasSuffix(b, []byte("data: [DONE]\n\n")) {
				t.Fatalf("no [DONE] at the end: %q", b)
			}
			if got := bytes.Contains(b, []byte(`"choices":[]`)); got != tc.usage {
				t.Fatalf("usage chunk present=%v, want %v: %s", got, tc.usage, b)
			}
			if n := bytes.Count(b, []byte("data: ")); n != 5+btoi(tc.usage) {
				t.Fatalf("%d events", n)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestRecordedAndProto(t *testing.T) {
	s := start(t)
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/v1/chat/completions?api-version=1", strings.NewReader(`{"model":"x"}`))
	req.Host = "api.openai.com"
	req.Header.Set("Authorization", "Bearer sk-test")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// An HTTP/1.1-only client.
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(s.CAPEM()), NextProtos: []string{"http/1.1"}}}}
	resp, err = h1.Post(s.URL()+"/v1/embeddings", "application/json", strings.NewReader(`{"input":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := s.Requests()
	if len(got) != 2 {
		t.Fatalf("%d recorded", len(got))
	}
	r0 := got[0]
	if r0.Method != "POST" || r0.Host != "api.openai.com" || r0.Path != "/v1/chat/completions" || r0.Query != "api-version=1" ||
		string(r0.Body) != `{"model":"x"}` || r0.Header.Get("Authorization") != "Bearer sk-test" || r0.Proto != "HTTP/2.0" {
		t.Fatalf("recorded %+v", r0)
	}
	if got[1].Proto != "HTTP/1.1" {
		t.Fatalf("proto %q, want HTTP/1.1", got[1].Proto)
	}
	got[0].Header.Set("Authorization", "changed")
	if s.Requests()[0].Header.Get("Authorization") != "Bearer sk-test" {
		t.Fatal("Requests does not return clones")
	}
	s.Reset()
	if len(s.Requests()) != 0 {
		t.Fatal("Reset kept requests")
	}
}

func TestCertificates(t *testing.T) {
	s := start(t)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := s.WriteCA(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.Equal(b, s.CAPEM()) {
		t.Fatal("WriteCA differs from CAPEM")
	}
	dial := func(addr, name string, roots *x509.CertPool) (*tls.ConnectionState, error) {
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.ConnectionState()
		return &st, nil
	}
	for _, name := range []string{"api.openai.com", "localhost", "127.0.0.1"} {
		if _, err := dial(s.Addr(), name, poolOf(s.CAPEM())); err != nil {
			t.Errorf("ok/mock %s: %v", name, err)
		}
	}
	bank, err := StartPlainTLS("bank.example")
	if err != nil {
		t.Fatal(err)
	}
	defer bank.Close()
	st, err := dial(bank.Addr(), "bank.example", poolOf(bank.CAPEM()))
	if err != nil {
		t.Fatalf("ok/bank: %v", err)
	}
	if Fingerprint(st.PeerCertificates[0].Raw) != bank.Fingerprint() {
		t.Fatal("bank fingerprint differs")
	}
	if _, err := dial(bank.Addr(), "bank.example", poolOf(s.CAPEM())); err == nil {
		t.Fatal("fail/bank-with-mock-CA: verified, want distinct CAs")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(bank.CAPEM()), ServerName: "bank.example"}}}
	resp, err := hc.Get("https://" + bank.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != BankBody || bank.Hits() != 1 {
		t.Fatalf("bank body %q hits %d", body, bank.Hits())
	}

	un, err := StartUntrusted("api.openai.com")
	if err != nil {
		t.Fatal(err)
	}
	defer un.Close()
	if un.CAPEM() != nil {
		t.Fatal("untrusted server exposes its CA")
	}
	_, err = dial(un.Addr(), "api.openai.com", poolOf(s.CAPEM()))
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("fail/untrusted: err %v, want unknown authority", err)
	}
}

func TestWebSocket(t *testing.T) {
	s := start(t)
	c, err := tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: poolOf(s.CAPEM()), ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	_, err = io.WriteString(c, "GET /v1/realtime?model=gpt-4o-realtime HTTP/1.1\r\nHost: api.openai.com\r\nUpgrade: websocket\r\n"+
		"Connection: Upgrade\r\nSec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: realtime, x\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 6455 section 1.3 example.
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" || resp.Header.Get("Sec-WebSocket-Protocol") != "realtime" {
		t.Fatalf("handshake %d %v", resp.StatusCode, resp.Header)
	}
	send := func(op byte, payload []byte) {
		var mask [4]byte
		_, _ = rand.Read(mask[:])
		f := []byte{0x80 | op}
		switch {
		case len(payload) < 126:
			f = append(f, 0x80|byte(len(payload)))
		default:
			f = append(f, 0x80|126)
			f = binary.BigEndian.AppendUint16(f, uint16(len(payload)))
		}
		f = append(f, mask[:]...)
		for i, b := range payload {
			f = append(f, b^mask[i%4])
		}
		if _, err := c.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() (byte, []byte) {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatal(err)
		}
		if h[1]&0x80 != 0 {
			t.Fatal("server frame is masked")
		}
		n := int(h[1] & 0x7f)
		if n == 126 {
			var l [2]byte
			_, _ = io.ReadFull(br, l[:])
			n = int(binary.BigEndian.Uint16(l[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		return h[0] & 0x0f, p
	}
	cases := []struct {
		name   string
		op     byte
		data   []byte
		wantOp byte
	}{
		{"ok/text", 0x1, []byte(`{"type":"session.update"}`), 0x1},
		{"ok/binary-300", 0x2, bytes.Repeat([]byte{7}, 300), 0x2},
		{"ok/ping", 0x9, []byte("p"), 0xA},
		{"ok/close", 0x8, []byte{0x03, 0xe8}, 0x8},
	}
	for _, tc := range cases {
		send(tc.op, tc.data)
		op, p := recv()
		if op != tc.wantOp || !bytes.Equal(p, tc.data) {
			t.Fatalf("%s: got op %x %q", tc.name, op, p)
		}
	}
	if got := s.Requests(); len(got) != 1 || got[0].Path != "/v1/realtime" || got[0].Query != "model=gpt-4o-realtime" {
		t.Fatalf("recorded %+v", got)
	}
}

func TestEventStreamCodec(t *testing.T) {
	frame := EncodeEvent("contentBlockDelta", []byte(`{"delta":{"text":"hi"}}`))
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		ok     bool
	}{
		{"ok/roundtrip", func(b []byte) []byte { return b }, true},
		{"fail/prelude-crc", func(b []byte) []byte { b[1] ^= 1; return b }, false},
		{"fail/payload-crc", func(b []byte) []byte { b[len(b)-6] ^= 1; return b }, false},
		{"fail/short", func(b []byte) []byte { return b[:len(b)-3] }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(bytes.Clone(frame))
			msgs, err := DecodeEventStream(bytes.NewReader(b))
			if (err == nil) != tc.ok {
				t.Fatalf("err %v", err)
			}
			if tc.ok {
				if len(msgs) != 1 || msgs[0].Headers[":event-type"] != "contentBlockDelta" ||
					msgs[0].Headers[":message-type"] != "event" || string(msgs[0].Payload) != `{"delta":{"text":"hi"}}` {
					t.Fatalf("decoded %+v", msgs)
				}
			}
		})
	}
}

func TestSplitReply(t *testing.T) {
	cases := []struct {
		name string
		s    string
		n    int
		want []string
	}{
		{"ok/even", "abcdef", 3, []string{"ab", "cd", "ef"}},
		{"ok/uneven", "abcde", 2, []string{"ab", "cde"}},
		{"ok/short", "ab", 5, []string{"a", "b"}},
		{"ok/runes", "héllo", 5, []string{"h", "é", "l", "l", "o"}},
		{"ok/empty", "", 3, []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := splitReply(tc.s, tc.n); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q", got)
			}
		})
	}
}

func FuzzReadEventStream(f *testing.F) {
	f.Add(EncodeEvent("messageStart", []byte(`{"role":"assistant"}`)))
	f.Add(append(EncodeEvent("a", nil), EncodeMessage([][2]string{{"x", "y"}}, []byte("z"))...))
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := DecodeEventStream(bytes.NewReader(b))
		if err != nil {
			return
		}
		var again []byte
		for _, m := range msgs {
			var hs [][2]string
			for k, v := range m.Headers {
				hs = append(hs, [2]string{k, v})
			}
			again = append(again, EncodeMessage(hs, m.Payload)...)
		}
		if _, err := DecodeEventStream(bytes.NewReader(again)); err != nil {
			t.Fatalf("re-encoded stream does not decode: %v", err)
		}
	})
}
