package classify

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the want sections of classify golden files")

// txtarSection is one "-- name --" section of a txtar file.
type txtarSection struct {
	name string
	data []byte
}

// parseTxtar splits a txtar file into its comment and sections.
func parseTxtar(b []byte) (comment []byte, secs []txtarSection) {
	lines := bytes.SplitAfter(b, []byte("\n"))
	cur := -1
	for _, l := range lines {
		t := bytes.TrimRight(l, "\r\n")
		if bytes.HasPrefix(t, []byte("-- ")) && bytes.HasSuffix(t, []byte(" --")) && len(t) >= 6 {
			secs = append(secs, txtarSection{name: string(bytes.TrimSpace(t[3 : len(t)-3]))})
			cur = len(secs) - 1
			continue
		}
		if cur < 0 {
			comment = append(comment, l...)
		} else {
			secs[cur].data = append(secs[cur].data, l...)
		}
	}
	return comment, secs
}

func formatTxtar(comment []byte, secs []txtarSection) []byte {
	var out bytes.Buffer
	out.Write(comment)
	for _, s := range secs {
		out.WriteString("-- " + s.name + " --\n")
		out.Write(s.data)
		if len(s.data) > 0 && s.data[len(s.data)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

func section(secs []txtarSection, name string) ([]byte, bool) {
	for _, s := range secs {
		if s.name == name {
			return s.data, true
		}
	}
	return nil, false
}

// requestFromTxtar reads "METHOD URL" then header lines, and the body.
func requestFromTxtar(t testing.TB, secs []txtarSection) RequestInput {
	t.Helper()
	reqSec, ok := section(secs, "request")
	if !ok {
		t.Fatal("no request section")
	}
	lines := strings.Split(strings.TrimRight(string(reqSec), "\n"), "\n")
	method, rawURL, _ := strings.Cut(lines[0], " ")
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	body, _ := section(secs, "body")
	body = bytes.TrimSuffix(body, []byte("\n"))
	return RequestInput{Method: method, Host: u.Hostname(), Path: u.Path, Query: u.RawQuery, Header: h, Body: body}
}

type goldenPart struct {
	Role string `json:"role"`
	Text string `json:"text"`
	Raw  bool   `json:"raw,omitempty"`
}

type goldenAccount struct {
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	Org            string `json:"org,omitempty"`
	Project        string `json:"project,omitempty"`
	Email          string `json:"email,omitempty"`
}

type goldenRequest struct {
	Provider      string        `json:"provider"`
	Shape         string        `json:"shape"`
	Endpoint      string        `json:"endpoint"`
	Model         string        `json:"model"`
	Stream        bool          `json:"stream"`
	Encoding      string        `json:"encoding,omitempty"`
	Uninspectable string        `json:"uninspectable,omitempty"`
	Parts         []goldenPart  `json:"parts"`
	Attachments   []Attachment  `json:"attachments,omitempty"`
	Account       goldenAccount `json:"account"`
}

func toGolden(r *Request) goldenRequest {
	g := goldenRequest{Provider: r.Provider, Shape: r.Shape, Endpoint: r.Endpoint, Model: r.Model, Stream: r.Stream,
		Encoding: r.Encoding, Uninspectable: r.Uninspectable, Parts: []goldenPart{}, Attachments: r.Attachments,
		Account: goldenAccount{r.Account.KeyFingerprint, r.Account.Org, r.Account.Project, r.Account.Email}}
	for _, p := range r.Parts {
		g.Parts = append(g.Parts, goldenPart{p.Role, p.Text, p.Raw})
	}
	return g
}

// checkParts asserts the offset contract of every part.
func checkParts(t testing.TB, r *Request) {
	t.Helper()
	for i, p := range r.Parts {
		if p.Start < 0 || p.End > len(r.Body) || p.Start > p.End {
			t.Fatalf("part %d: bad offsets %d..%d of %d", i, p.Start, p.End, len(r.Body))
		}
		tok := r.Body[p.Start:p.End]
		if p.Raw {
			if r.Shape == "gemini.web" {
				continue // encoded span, see request.go notes
			}
			if string(tok) != p.Text {
				t.Fatalf("part %d: raw span %q != text %q", i, tok, p.Text)
			}
			continue
		}
		var s string
		if err := json.Unmarshal(tok, &s); err != nil {
			t.Fatalf("part %d: span %q is not a JSON string: %v", i, tok, err)
		}
		if s != p.Text {
			t.Fatalf("part %d: span decodes to %q, text is %q", i, s, p.Text)
		}
	}
}

func TestParseRequestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/requests/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txtar")
		t.Run("ok/"+name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			comment, secs := parseTxtar(raw)
			in := requestFromTxtar(t, secs)
			r := ParseRequest(in)
			checkParts(t, r)
			got, _ := json.MarshalIndent(toGolden(r), "", "  ")
			got = append(got, '\n')
			want, ok := section(secs, "want")
			if *updateGolden {
				var out []txtarSection
				for _, s := range secs {
					if s.name != "want" {
						out = append(out, s)
					}
				}
				out = append(out, txtarSection{name: "want", data: got})
				if err := os.WriteFile(f, formatTxtar(comment, out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !ok {
				t.Fatal("no want section (run with -update)")
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func multipartBody(boundary string) []byte {
	return []byte("--" + boundary + "\r\n" +
		"Content-Disposition: form-data; name=\"purpose\"\r\n\r\n" +
		"assistants\r\n" +
		"--" + boundary + "\r\n" +
		"Content-Disposition: form-data; name=\"file\"; filename=\"secrets.py\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n" +
		"AWS_KEY = 'AKIAIOSFODNN7EXAMPLE'\nprint(1)\n\r\n" +
		"--" + boundary + "\r\n" +
		"Content-Disposition: form-data; name=\"file2\"; filename=\"scan.pdf\"\r\n" +
		"Content-Type: application/pdf\r\n\r\n" +
		"%PDF-1.4\x00\x01\x02\r\n" +
		"--" + boundary + "--\r\n")
}

func TestParseRequestTable(t *testing.T) {
	chat := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hello \u00e9"}]}`)
	type want struct {
		shape, endpoint, model, uninspectable, encoding string
		stream                                          bool
		parts                                           []goldenPart
		attachments                                     int
	}
	cases := []struct {
		name string
		in   RequestInput
		want want
	}{
		{name: "ok/multipart_files", in: RequestInput{Method: "POST", Host: "api.openai.com", Path: "/v1/files",
			Header: http.Header{"Content-Type": {"multipart/form-data; boundary=XyZ"}}, Body: multipartBody("XyZ")},
			want: want{shape: "openai.files", endpoint: EndpointFiles, attachments: 2,
				parts: []goldenPart{{Role: RoleUser, Text: "AWS_KEY = 'AKIAIOSFODNN7EXAMPLE'\nprint(1)\n", Raw: true}}}},
		{name: "ok/multipart_transcription_prompt", in: RequestInput{Method: "POST", Host: "api.openai.com", Path: "/v1/audio/transcriptions",
			Header: http.Header{"Content-Type": {"multipart/form-data; boundary=b"}},
			Body:   []byte("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nNames: Zoë\r\n--b--\r\n")},
			want: want{shape: "multipart.generic", endpoint: EndpointOther, model: "whisper-1", parts: []goldenPart{{Role: RoleUser, Text: "Names: Zoë", Raw: true}}}},
		{name: "fail/multipart_truncated", in: RequestInput{Host: "api.openai.com", Path: "/v1/files",
			Header: http.Header{"Content-Type": {"multipart/form-data; boundary=XyZ"}}, Body: multipartBody("XyZ")[:150]},
			want: want{shape: "openai.files", endpoint: EndpointFiles, uninspectable: "malformed_multipart", parts: []goldenPart{}}},
		{name: "ok/gzip_body", in: RequestInput{Host: "api.openai.com", Path: "/v1/chat/completions",
			Header: http.Header{"Content-Encoding": {"gzip"}}, Body: gzipBytes(chat)},
			want: want{shape: "openai.chat", endpoint: EndpointChat, model: "gpt-4o", encoding: "gzip", parts: []goldenPart{{Role: RoleUser, Text: "hello é"}}}},
		{name: "ok/zstd_br_body", in: RequestInput{Host: "api.openai.com", Path: "/v1/chat/completions",
			Header: http.Header{"Content-Encoding": {"zstd, br"}}, Body: brBytes(zstdBytes(chat))},
			want: want{shape: "openai.chat", endpoint: EndpointChat, model: "gpt-4o", encoding: "zstd, br", parts: []goldenPart{{Role: RoleUser, Text: "hello é"}}}},
		{name: "fail/unknown_encoding", in: RequestInput{Host: "api.anthropic.com", Path: "/v1/messages",
			Header: http.Header{"Content-Encoding": {"lzma"}}, Body: chat},
			want: want{shape: "anthropic.messages", endpoint: EndpointMessages, uninspectable: "encoding:lzma", parts: []goldenPart{}}},
		{name: "fail/too_large", in: RequestInput{Host: "generativelanguage.googleapis.com", Path: "/v1beta/models/gemini-pro:streamGenerateContent", Body: chat, MaxDecoded: 10},
			want: want{shape: "gemini.generate", endpoint: EndpointGenerate, model: "gemini-pro", stream: true, uninspectable: "too_large", parts: []goldenPart{}}},
		{name: "fail/bomb", in: RequestInput{Host: "api.openai.com", Path: "/v1/chat/completions",
			Header: http.Header{"Content-Encoding": {"gzip"}}, Body: gzipBytes(make([]byte, 3<<20)), MaxDecoded: 2 << 20},
			want: want{shape: "openai.chat", endpoint: EndpointChat, uninspectable: "bomb", parts: []goldenPart{}}},
		{name: "ok/ollama_stream_false", in: RequestInput{Host: "localhost", Path: "/api/chat", Body: []byte(`{"model":"m","stream":false,"messages":[]}`)},
			want: want{shape: "ollama", endpoint: EndpointChat, model: "m", parts: []goldenPart{}}},
		{name: "ok/bedrock_arn_model", in: RequestInput{Host: "bedrock-runtime.us-east-1.amazonaws.com",
			Path: "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse", Body: []byte(`{"messages":[]}`)},
			want: want{shape: "bedrock.converse", endpoint: EndpointConverse, model: "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0", parts: []goldenPart{}}},
		{name: "ok/vertex_anthropic", in: RequestInput{Host: "us-east5-aiplatform.googleapis.com",
			Path: "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict",
			Body: []byte(`{"anthropic_version":"vertex-2023-10-16","messages":[{"role":"user","content":"hi"}]}`)},
			want: want{shape: "anthropic.messages", endpoint: EndpointMessages, model: "claude-sonnet-4@20250514", stream: true, parts: []goldenPart{{Role: RoleUser, Text: "hi"}}}},
		{name: "ok/binary_body_generic", in: RequestInput{Host: "api.openai.com", Path: "/v1/unknown", Body: []byte{0, 1, 2, 3, 0xff}},
			want: want{shape: "json.generic", endpoint: EndpointOther, attachments: 1, parts: []goldenPart{}}},
		{name: "ok/empty_body", in: RequestInput{Method: "GET", Host: "api.openai.com", Path: "/v1/models"},
			want: want{shape: "json.generic", endpoint: EndpointOther, parts: []goldenPart{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := parseRequest(tc.in)
			checkParts(t, r)
			g := toGolden(r)
			if g.Shape != tc.want.shape || g.Endpoint != tc.want.endpoint || g.Model != tc.want.model || g.Stream != tc.want.stream ||
				g.Uninspectable != tc.want.uninspectable || g.Encoding != tc.want.encoding || len(g.Attachments) != tc.want.attachments {
				t.Fatalf("got %+v", g)
			}
			if len(g.Parts) != len(tc.want.parts) {
				t.Fatalf("parts: got %+v want %+v", g.Parts, tc.want.parts)
			}
			for i := range g.Parts {
				if g.Parts[i] != tc.want.parts[i] {
					t.Fatalf("part %d: got %+v want %+v", i, g.Parts[i], tc.want.parts[i])
				}
			}
		})
	}
}

func TestParseRequestMultipartAttachment(t *testing.T) {
	r := parseRequest(RequestInput{Host: "api.openai.com", Path: "/v1/files",
		Header: http.Header{"Content-Type": {"multipart/form-data; boundary=XyZ"}}, Body: multipartBody("XyZ")})
	if len(r.Attachments) != 2 {
		t.Fatalf("got %+v", r.Attachments)
	}
	py, pdf := r.Attachments[0], r.Attachments[1]
	if py.Name != "secrets.py" || py.MediaType != "text/plain" || !py.Inspected || py.Size != 42 {
		t.Fatalf("py: %+v", py)
	}
	if pdf.Name != "scan.pdf" || pdf.MediaType != "application/pdf" || pdf.Inspected || pdf.Size != 11 || pdf.SHA256 != sha256Hex([]byte("%PDF-1.4\x00\x01\x02")) {
		t.Fatalf("pdf: %+v", pdf)
	}
}

func TestParseRealtimeMessage(t *testing.T) {
	cases := []struct {
		name  string
		msg   string
		model string
		parts []goldenPart
		bad   bool
	}{
		{name: "ok/session_update", msg: `{"type":"session.update","session":{"type":"realtime","model":"gpt-realtime","instructions":"Be \"nice\"."}}`,
			model: "gpt-realtime", parts: []goldenPart{{Role: RoleSystem, Text: `Be "nice".`}}},
		{name: "ok/item_create", msg: `{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"My card is 4111 1111 1111 1111"},{"type":"input_audio","audio":"AAAA"}]}}`,
			parts: []goldenPart{{Role: RoleUser, Text: "My card is 4111 1111 1111 1111"}}},
		{name: "ok/function_output", msg: `{"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"c","output":"{\"temp\":20}"}}`,
			parts: []goldenPart{{Role: RoleTool, Text: `{"temp":20}`}}},
		{name: "ok/response_create", msg: `{"type":"response.create","response":{"instructions":"Say hi","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"ctx"}]}]}}`,
			parts: []goldenPart{{Role: RoleSystem, Text: "Say hi"}, {Role: RoleUser, Text: "ctx"}}},
		{name: "ok/audio_append_ignored", msg: `{"type":"input_audio_buffer.append","audio":"AAAA"}`, parts: nil},
		{name: "fail/not_json", msg: `{"type":`, bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := parseRealtimeMessage([]byte(tc.msg))
			checkParts(t, r)
			if (r.Uninspectable != "") != tc.bad || r.Model != tc.model || r.Shape != "openai.realtime" {
				t.Fatalf("got %+v", r)
			}
			g := toGolden(r)
			if len(g.Parts) != len(tc.parts) {
				t.Fatalf("parts: got %+v", g.Parts)
			}
			for i := range g.Parts {
				if g.Parts[i] != tc.parts[i] {
					t.Fatalf("part %d: got %+v", i, g.Parts[i])
				}
			}
		})
	}
}

// fuzzHosts are host/path seeds for every shape.
var fuzzRoutes = [][2]string{
	{"api.openai.com", "/v1/chat/completions"}, {"api.openai.com", "/v1/completions"}, {"api.openai.com", "/v1/responses"},
	{"api.openai.com", "/v1/embeddings"}, {"api.openai.com", "/v1/files"}, {"api.openai.com", "/v1/realtime/sessions"},
	{"x.openai.azure.com", "/openai/deployments/d/chat/completions"}, {"api.anthropic.com", "/v1/messages"},
	{"generativelanguage.googleapis.com", "/v1beta/models/gemini-2.0-flash:generateContent"},
	{"us-central1-aiplatform.googleapis.com", "/v1/projects/p/locations/l/publishers/google/models/g:streamGenerateContent"},
	{"bedrock-runtime.us-east-1.amazonaws.com", "/model/m/converse"}, {"bedrock-runtime.us-east-1.amazonaws.com", "/model/m/invoke"},
	{"api.mistral.ai", "/v1/chat/completions"}, {"api.mistral.ai", "/v1/fim/completions"}, {"api.cohere.com", "/v1/chat"},
	{"api.cohere.com", "/v2/chat"}, {"localhost", "/api/chat"}, {"localhost", "/api/generate"}, {"api.groq.com", "/openai/v1/chat/completions"},
	{"chatgpt.com", "/backend-api/conversation"}, {"claude.ai", "/api/organizations/o/chat_conversations/c/completion"},
	{"gemini.google.com", "/_/BardChatUi/data/assistant.lamda.BardFrontendService/StreamGenerate"}, {"api.openai.com", "/v1/new"},
}

func FuzzParseRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/requests/*.txtar")
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		_, secs := parseTxtar(raw)
		in := requestFromTxtar(f, secs)
		f.Add(uint8(0), in.Body, in.Header.Get("Content-Type"))
		for i, r := range fuzzRoutes {
			if r[0] == in.Host && r[1] == in.Path {
				f.Add(uint8(i), in.Body, in.Header.Get("Content-Type"))
			}
		}
	}
	f.Add(uint8(4), multipartBody("XyZ"), "multipart/form-data; boundary=XyZ")
	f.Fuzz(func(t *testing.T, route uint8, body []byte, ctype string) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		in := RequestInput{Method: "POST", Host: r[0], Path: r[1], Header: http.Header{"Content-Type": {ctype}}, Body: body}
		req := parseRequest(in)
		if req == nil {
			t.Fatal("nil request")
		}
		checkParts(t, req)
	})
}

func FuzzParseRealtimeMessage(f *testing.F) {
	f.Add([]byte(`{"type":"session.update","session":{"instructions":"x"}}`))
	f.Add([]byte(`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"\ud83d\ude00 hi"}]}}`))
	f.Add([]byte(`{"type":"response.create","response":{"instructions":"\u00e9","input":[]}}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkParts(t, parseRealtimeMessage(msg))
	})
}

func BenchmarkParseRequest4KB(b *testing.B) {
	var body bytes.Buffer
	body.WriteString(`{"model":"gpt-4o","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant that answers questions about the company handbook."}`)
	for i := 0; body.Len() < 4000; i++ {
		if i%2 == 0 {
			body.WriteString(`,{"role":"user","content":"Can you explain the travel expense policy for international trips, including per diem rates and the approval process?"}`)
		} else {
			body.WriteString(`,{"role":"assistant","content":"Sure. International travel requires manager approval two weeks ahead; per diem follows the government rate table.\nReceipts over 25 EUR are mandatory."}`)
		}
	}
	body.WriteString(`],"temperature":0.2}`)
	in := RequestInput{Method: "POST", Host: "api.openai.com", Path: "/v1/chat/completions",
		Header: http.Header{"Authorization": {"Bearer sk-proj-0123456789"}, "Content-Type": {"application/json"}}, Body: body.Bytes()}
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		_ = ParseRequest(in)
	}
}
