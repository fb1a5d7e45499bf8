package classify

// Request parsing: design notes.
//
//   - ParseRequest never returns nil, never panics and never logs. Whatever
//     goes wrong (encoding, size, JSON) is reported in Request.Uninspectable
//     ("too_large", "bomb", "encoding:<name>", "malformed_json",
//     "malformed_multipart", and "parser_error" if a parser bug panicked: the
//     panic is recovered so the proxy survives) and the
//     facts known without the body (provider, endpoint, model, stream from
//     host, path and query) are still filled. A malformed body that is valid
//     UTF-8 text is also given as one Raw part, so detectors still see it.
//   - Dispatch is on host, then path (then method): one parser per API shape
//     family (parse_openai.go, parse_anthropic.go, parse_google.go,
//     parse_bedrock.go, parse_cohere.go, parse_ollama.go, parse_generic.go).
//     An AI host with an unknown shape gets "json.generic": every JSON string
//     value becomes a RoleUnknown part, so new fields never escape
//     inspection; a non-JSON text body becomes one Raw part; a binary body
//     one Attachment.
//   - JSON is parsed by a small strict parser (parse_json.go) that keeps byte
//     offsets, because Part.Start/End must delimit the whole string token in
//     the decoded body for in-place redaction. encoding/json/jsontext needs
//     GOEXPERIMENT=jsonv2 in Go 1.26, which we do not want to require.
//   - The provider comes from a small host suffix table kept here (this file
//     must not depend on the catalog); hosts not in the table take the
//     provider native to the shape (ollama), else "unknown".
//   - Base64 media (images, documents, audio) become Attachments with the
//     size and SHA-256 of the decoded bytes; their content is not a Part
//     since its offsets could not be mapped to the body for redaction.
//   - gemini.web is best effort: the prompt sits inside JSON inside a JSON
//     string inside a form field. Its Part is Raw, Text is the prompt and
//     Start/End delimit the prompt's still-encoded bytes in the body (the
//     only shape where Body[Start:End] != Text for a Raw part).
//   - Token usage: Usage.Input counts every prompt token (Anthropic and
//     Bedrock cache reads and writes are added in), Cached is the subset read
//     from cache; Output counts every generated token including reasoning,
//     Reasoning is that subset (Gemini thoughts are added in).

import (
	"errors"
	"mime"
	"net/url"
	"strings"
	"unicode/utf8"
)

// providerSuffixes maps host suffixes to providers. Longest match wins
// because entries are checked in order, specific before general.
var providerSuffixes = []struct{ suffix, provider string }{
	{"api.openai.com", "openai"},
	{"chatgpt.com", "openai"},
	{"chat.openai.com", "openai"},
	{"openai.com", "openai"},
	{"openai.azure.com", "azure"},
	{"cognitiveservices.azure.com", "azure"},
	{"services.ai.azure.com", "azure"},
	{"api.anthropic.com", "anthropic"},
	{"claude.ai", "anthropic"},
	{"anthropic.com", "anthropic"},
	{"generativelanguage.googleapis.com", "google"},
	{"aiplatform.googleapis.com", "google"},
	{"gemini.google.com", "google"},
	{"amazonaws.com", "aws"},
	{"mistral.ai", "mistral"},
	{"cohere.com", "cohere"},
	{"cohere.ai", "cohere"},
	{"groq.com", "groq"},
	{"together.xyz", "together"},
	{"together.ai", "together"},
	{"deepseek.com", "deepseek"},
	{"x.ai", "xai"},
	{"openrouter.ai", "openrouter"},
	{"perplexity.ai", "perplexity"},
	{"fireworks.ai", "fireworks"},
	{"cerebras.ai", "cerebras"},
	{"deepinfra.com", "deepinfra"},
	{"ollama.com", "ollama"},
}

func providerForHost(host string) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if strings.HasSuffix(host, "-aiplatform.googleapis.com") { // regional Vertex AI
		return "google"
	}
	for _, e := range providerSuffixes {
		if host == e.suffix || strings.HasSuffix(host, "."+e.suffix) {
			return e.provider
		}
	}
	return ""
}

// reqState is what a shape parser works on.
type reqState struct {
	r    *Request
	root *jval
}

func (s *reqState) part(v *jval, role string) {
	if v == nil || v.kind != jStr || v.s == "" {
		return
	}
	s.r.Parts = append(s.r.Parts, Part{Role: role, Text: v.s, Start: v.start, End: v.end})
}

// partsIn adds every string value under v (used for tool arguments and
// other free-form JSON).
func (s *reqState) partsIn(v *jval, role string) {
	v.walkStrings(func(x *jval) { s.part(x, role) })
}

// ParseRequest understands one request. It never returns nil.
func ParseRequest(in RequestInput) (r *Request) {
	defer func() {
		if recover() != nil { // defensive: a parser bug must not kill the proxy
			r = &Request{Provider: providerForHost(in.Host), Shape: "json.generic", Parts: []Part{}, Uninspectable: "parser_error"}
		}
	}()
	return parseRequest(in)
}

// parseRequest is ParseRequest without the panic guard (tests call it so
// that bugs are seen).
func parseRequest(in RequestInput) *Request {
	r := &Request{Provider: providerForHost(in.Host), Parts: []Part{}}
	r.Account = accountFrom(in)

	route := routeRequest(in)
	r.Shape, r.Endpoint, r.Model, r.Stream = route.shape, route.endpoint, route.model, route.stream
	if r.Provider == "" {
		r.Provider = route.provider
	}
	if r.Provider == "" {
		r.Provider = "unknown"
	}
	if route.org != "" {
		r.Account.Org = route.org
	}

	ce := ""
	if in.Header != nil {
		ce = strings.TrimSpace(in.Header.Get("Content-Encoding"))
	}
	body := in.Body
	if ce != "" && !strings.EqualFold(ce, "identity") {
		dec, err := DecodeBody(ce, in.Body, in.MaxDecoded)
		switch {
		case err == nil:
			r.Encoding = ce
			body = dec
		case errors.Is(err, ErrBomb):
			r.Uninspectable = "bomb"
			return r
		case errors.Is(err, ErrTooLarge):
			r.Uninspectable = "too_large"
			return r
		default:
			r.Uninspectable = "encoding:" + strings.ToLower(ce)
			return r
		}
	} else {
		max := in.MaxDecoded
		if max <= 0 {
			max = DefaultMaxDecoded
		}
		if len(body) > max {
			r.Uninspectable = "too_large"
			return r
		}
	}
	r.Body = body
	if len(body) == 0 {
		return r
	}

	ctype := ""
	if in.Header != nil {
		ctype = in.Header.Get("Content-Type")
	}
	mt, params, _ := mime.ParseMediaType(ctype)
	if mt == "multipart/form-data" {
		if r.Shape == "json.generic" {
			r.Shape = "multipart.generic"
		}
		parseMultipart(r, params["boundary"])
		return r
	}
	if route.raw != nil {
		route.raw(r)
		return r
	}

	root, err := parseJSON(body)
	if err != nil {
		if route.parse == nil && r.Shape == "json.generic" {
			genericNonJSON(r)
			return r
		}
		r.Uninspectable = "malformed_json"
		if utf8.Valid(body) {
			r.Parts = append(r.Parts, Part{Role: RoleUnknown, Text: string(body), Start: 0, End: len(body), Raw: true})
		}
		return r
	}
	s := &reqState{r: r, root: root}
	if route.parse != nil {
		route.parse(s)
	} else {
		s.partsIn(root, RoleUnknown)
	}
	return r
}

// route is the result of dispatch before the body is read.
type route struct {
	provider string // used only when the host is not in the table
	shape    string
	endpoint string
	model    string
	stream   bool
	org      string
	parse    func(*reqState) // nil: json.generic
	raw      func(*Request)  // non-JSON body parser
}

func routeRequest(in RequestInput) route {
	host := strings.TrimSuffix(strings.ToLower(in.Host), ".")
	p := in.Path
	q, _ := url.ParseQuery(in.Query)

	switch {
	case host == "chatgpt.com" || host == "chat.openai.com" || strings.HasSuffix(host, ".chatgpt.com"):
		if p == "/backend-api/conversation" || p == "/backend-api/f/conversation" {
			return route{shape: "chatgpt.web", endpoint: EndpointWebChat, stream: true, parse: parseChatGPTWeb}
		}
	case host == "claude.ai" || strings.HasSuffix(host, ".claude.ai"):
		if org, ok := claudeWebPath(p); ok {
			return route{shape: "claude.web", endpoint: EndpointWebChat, stream: true, org: org, parse: parseClaudeWeb}
		}
	case host == "gemini.google.com":
		if strings.Contains(p, "StreamGenerate") {
			return route{shape: "gemini.web", endpoint: EndpointWebChat, stream: true, raw: parseGeminiWeb}
		}
	case strings.HasPrefix(host, "bedrock-runtime") && strings.HasSuffix(host, ".amazonaws.com"):
		if rt, ok := bedrockRoute(p); ok {
			return rt
		}
	case strings.HasSuffix(host, "aiplatform.googleapis.com"):
		if rt, ok := vertexRoute(p); ok {
			return rt
		}
	case host == "generativelanguage.googleapis.com":
		if rt, ok := geminiRoute(p, q); ok {
			return rt
		}
	case strings.HasSuffix(host, ".openai.azure.com") || strings.HasSuffix(host, ".cognitiveservices.azure.com") || strings.HasSuffix(host, ".services.ai.azure.com"):
		if rt, ok := azureRoute(p); ok {
			return rt
		}
	case strings.HasSuffix(host, "cohere.com") || strings.HasSuffix(host, "cohere.ai"):
		switch p {
		case "/v1/chat":
			return route{shape: "cohere.v1", endpoint: EndpointChat, parse: parseCohereV1}
		case "/v2/chat":
			return route{shape: "cohere.v2", endpoint: EndpointChat, parse: parseCohereV2}
		}
	case strings.HasSuffix(host, "mistral.ai"):
		switch p {
		case "/v1/chat/completions":
			return route{shape: "mistral.chat", endpoint: EndpointChat, parse: parseOpenAIChat}
		case "/v1/fim/completions":
			return route{shape: "mistral.fim", endpoint: EndpointFIM, parse: parseMistralFIM}
		}
	case host == "api.anthropic.com":
		if p == "/v1/messages" {
			return route{shape: "anthropic.messages", endpoint: EndpointMessages, parse: parseAnthropicMessages}
		}
	}
	// Shapes recognised by path on any host.
	switch {
	case p == "/v1/messages":
		return route{shape: "anthropic.messages", endpoint: EndpointMessages, parse: parseAnthropicMessages}
	case p == "/api/chat":
		return route{provider: "ollama", shape: "ollama", endpoint: EndpointChat, stream: true, parse: parseOllama}
	case p == "/api/generate":
		return route{provider: "ollama", shape: "ollama", endpoint: EndpointGenerate, stream: true, parse: parseOllama}
	case strings.HasSuffix(p, "/realtime") || strings.Contains(p, "/realtime/"):
		return route{shape: "openai.realtime", endpoint: EndpointRealtime, stream: true, model: q.Get("model"), parse: parseRealtimeSession}
	case strings.HasSuffix(p, "/chat/completions"):
		return route{shape: "openai.chat", endpoint: EndpointChat, parse: parseOpenAIChat}
	case strings.HasSuffix(p, "/completions"):
		return route{shape: "openai.completions", endpoint: EndpointCompletions, parse: parseOpenAICompletions}
	case strings.HasSuffix(p, "/responses"):
		return route{shape: "openai.responses", endpoint: EndpointResponses, parse: parseOpenAIResponses}
	case strings.HasSuffix(p, "/embeddings"):
		return route{shape: "openai.embeddings", endpoint: EndpointEmbeddings, parse: parseOpenAIEmbeddings}
	case strings.HasSuffix(p, "/files") || strings.Contains(p, "/uploads"):
		return route{shape: "openai.files", endpoint: EndpointFiles}
	}
	return route{shape: "json.generic", endpoint: EndpointOther}
}

// segAfter returns the path segment after prefix up to the next '/', and
// the rest of the path.
func segAfter(p, prefix string) (string, string, bool) {
	i := strings.Index(p, prefix)
	if i < 0 {
		return "", "", false
	}
	rest := p[i+len(prefix):]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return rest, "", rest != ""
	}
	return rest[:j], rest[j:], rest[:j] != ""
}

func unescapePath(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
