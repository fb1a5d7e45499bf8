package classify

import (
	"bytes"
	"mime"
	"strings"
)

// ParseResponse reads token usage and output texts from a complete
// response body of the given request shape. Streamed bodies (SSE, NDJSON,
// AWS event stream, chosen by contentType, else by shape) are decoded with
// a StreamDecoder and their text is returned joined as one string; plain
// JSON bodies give one string per output text item. It never panics.
func ParseResponse(shape, contentType string, body []byte) (u Usage, texts []string) {
	defer func() {
		if recover() != nil {
			u, texts = Usage{}, nil
		}
	}()
	return parseResponse(shape, contentType, body)
}

func parseResponse(shape, contentType string, body []byte) (u Usage, texts []string) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if streamFormatFor(mt, "") != fmtNone {
		d := NewStreamDecoder(shape, contentType)
		var sb strings.Builder
		d.OnText = func(s string) {
			if sb.Len() < DefaultMaxDecoded {
				sb.WriteString(s)
			}
		}
		d.write(body)
		d.Close()
		if sb.Len() > 0 {
			texts = []string{sb.String()}
		}
		return d.Usage(), texts
	}
	v, err := parseJSON(body)
	if err != nil {
		// A stream sent without its content type: decode by shape.
		if mt == "" || mt == "application/json" || mt == "text/plain" {
			if t := bytes.TrimSpace(body); bytes.HasPrefix(t, []byte("data:")) || bytes.HasPrefix(t, []byte("event:")) {
				return parseResponse(shape, "text/event-stream", body)
			} else if bytes.HasPrefix(t, []byte("{")) && bytes.Contains(t, []byte("}\n{")) {
				return parseResponse(shape, "application/x-ndjson", body)
			}
		}
		return Usage{}, nil
	}
	d := &StreamDecoder{shape: shape}
	d.OnText = func(s string) { texts = append(texts, s) }
	if v.kind == jArr { // Gemini streamGenerateContent without alt=sse: a JSON array of chunks
		for _, el := range v.vals {
			d.handle("", el)
		}
	} else {
		d.handle("", v)
	}
	return d.usage, texts
}

// setInt stores a JSON integer into dst when present.
func setInt(dst *int64, v *jval) bool {
	n, ok := v.int64v()
	if ok {
		*dst = n
	}
	return ok
}

// usageFrom merges a usage object of any known provider into u. Fields
// present overwrite (providers report cumulative counts), absent fields
// are kept.
func usageFrom(u *Usage, v *jval) {
	if v == nil || v.kind != jObj {
		return
	}
	// OpenAI chat/completions/embeddings, Mistral, OpenAI-compatible.
	setInt(&u.Input, v.get("prompt_tokens"))
	setInt(&u.Output, v.get("completion_tokens"))
	setInt(&u.Cached, v.path("prompt_tokens_details", "cached_tokens"))
	setInt(&u.Reasoning, v.path("completion_tokens_details", "reasoning_tokens"))
	// OpenAI Responses, Anthropic, Cohere billed units.
	var in, cr, cw int64
	hasIn := setInt(&in, v.get("input_tokens"))
	hasCR := setInt(&cr, v.get("cache_read_input_tokens"))
	hasCW := setInt(&cw, v.get("cache_creation_input_tokens"))
	if hasIn {
		u.Input = in + cr + cw
	} else if hasCR || hasCW {
		u.Input += cr + cw
	}
	if hasCR {
		u.Cached = cr
	}
	setInt(&u.Output, v.get("output_tokens"))
	setInt(&u.Cached, v.path("input_tokens_details", "cached_tokens"))
	setInt(&u.Reasoning, v.path("output_tokens_details", "reasoning_tokens"))
	// Bedrock Converse.
	var bin, bcr, bcw int64
	hasBIn := setInt(&bin, v.get("inputTokens"))
	hasBCR := setInt(&bcr, v.get("cacheReadInputTokens"))
	setInt(&bcw, v.get("cacheWriteInputTokens"))
	if hasBIn {
		u.Input = bin + bcr + bcw
	}
	if hasBCR {
		u.Cached = bcr
	}
	setInt(&u.Output, v.get("outputTokens"))
	// Bedrock invocation metrics.
	setInt(&u.Input, v.get("inputTokenCount"))
	setInt(&u.Output, v.get("outputTokenCount"))
	// Gemini usageMetadata.
	setInt(&u.Input, v.get("promptTokenCount"))
	setInt(&u.Cached, v.get("cachedContentTokenCount"))
	var cand, thoughts int64
	hasCand := setInt(&cand, v.get("candidatesTokenCount"))
	hasTh := setInt(&thoughts, v.get("thoughtsTokenCount"))
	if hasCand || hasTh {
		u.Output = cand + thoughts
	}
	if hasTh {
		u.Reasoning = thoughts
	}
	// Ollama.
	setInt(&u.Input, v.get("prompt_eval_count"))
	setInt(&u.Output, v.get("eval_count"))
	// Cohere: billed_units (v1 meta, v2 usage), else tokens.
	if bu := v.get("billed_units"); bu != nil {
		usageFrom(u, bu)
	} else if t := v.get("tokens"); t != nil && t.kind == jObj {
		usageFrom(u, t)
	}
}

// handle interprets one JSON event or plain body of any known shape.
func (d *StreamDecoder) handle(ev string, v *jval) {
	if v == nil || v.kind != jObj {
		return
	}
	if d.shape == "chatgpt.web" {
		d.handleChatGPT(v)
		return
	}
	// Bedrock event-stream event types.
	switch ev {
	case "chunk":
		if b := decodeB64(v.gstr("bytes")); b != nil {
			if iv, err := parseJSON(b); err == nil {
				d.handle("", iv)
			}
		}
		return
	case "contentBlockDelta":
		d.text(v.path("delta", "text").str())
		return
	case "metadata":
		usageFrom(&d.usage, v.get("usage"))
		return
	case "messageStart", "messageStop", "contentBlockStart", "contentBlockStop":
		return
	}
	if m := v.get("amazon-bedrock-invocationMetrics"); m != nil {
		usageFrom(&d.usage, m)
	}
	t := v.gstr("type")
	switch t {
	case "message_start":
		msg := v.get("message")
		d.model(msg.gstr("model"))
		usageFrom(&d.usage, msg.get("usage"))
		return
	case "content_block_start":
		d.text(v.path("content_block", "text").str())
		return
	case "content_block_delta":
		d.text(v.path("delta", "text").str())
		return
	case "message_delta":
		usageFrom(&d.usage, v.get("usage"))
		return
	case "message":
		d.model(v.gstr("model"))
		for _, b := range v.get("content").items() {
			if b.gstr("type") == "text" {
				d.text(b.gstr("text"))
			}
		}
		usageFrom(&d.usage, v.get("usage"))
		return
	case "response.output_text.delta":
		d.text(v.gstr("delta"))
		return
	case "response.created", "response.in_progress", "response.completed", "response.incomplete", "response.failed", "response.done":
		r := v.get("response")
		d.model(r.gstr("model"))
		usageFrom(&d.usage, r.get("usage"))
		return
	case "completion": // claude.ai legacy stream
		d.text(v.gstr("completion"))
		d.model(v.gstr("model"))
		return
	case "content-delta": // Cohere v2 stream
		d.text(v.path("delta", "message", "content", "text").str())
		return
	case "message-end":
		usageFrom(&d.usage, v.path("delta", "usage"))
		return
	}
	if strings.HasPrefix(t, "response.") || strings.HasPrefix(t, "content_block") || t == "ping" || t == "message_stop" || t == "error" {
		return
	}
	switch v.gstr("event_type") { // Cohere v1 stream
	case "":
	case "text-generation":
		d.text(v.gstr("text"))
		return
	case "stream-end":
		usageFrom(&d.usage, v.path("response", "meta"))
		return
	default:
		return
	}
	// Structural: plain bodies and simple chunks.
	d.model(v.gstr("model"))
	d.model(v.gstr("modelVersion"))
	for _, c := range v.get("choices").items() {
		d.text(c.path("delta", "content").str())
		d.text(c.path("message", "content").str())
		for _, p := range c.path("message", "content").items() {
			d.text(p.gstr("text"))
		}
		d.text(c.gstr("text"))
	}
	for _, o := range v.get("output").items() { // Responses API body
		for _, c := range o.get("content").items() {
			if c.gstr("type") == "output_text" {
				d.text(c.gstr("text"))
			}
		}
	}
	for _, c := range v.get("candidates").items() {
		for _, p := range c.path("content", "parts").items() {
			if th, _ := p.get("thought").boolean(); !th {
				d.text(p.gstr("text"))
			}
		}
	}
	usageFrom(&d.usage, v.get("usageMetadata"))
	for _, c := range v.path("output", "message", "content").items() { // Bedrock Converse
		d.text(c.gstr("text"))
	}
	if m := v.get("message"); m != nil { // Ollama chat, Cohere v2
		d.text(m.get("content").str())
		for _, c := range m.get("content").items() {
			d.text(c.gstr("text"))
		}
	}
	d.text(v.gstr("response"))   // Ollama generate
	d.text(v.gstr("text"))       // Cohere v1
	d.text(v.gstr("generation")) // Llama on Bedrock
	d.text(v.gstr("completion")) // legacy Anthropic text completions
	for _, r := range v.get("results").items() {
		d.text(r.gstr("outputText")) // Titan
	}
	for _, o := range v.get("outputs").items() {
		d.text(o.gstr("text")) // Mistral on Bedrock
	}
	usageFrom(&d.usage, v.get("usage"))
	usageFrom(&d.usage, v.get("meta"))
	if _, ok := v.get("prompt_eval_count").int64v(); ok {
		usageFrom(&d.usage, v)
	} else if _, ok := v.get("eval_count").int64v(); ok {
		usageFrom(&d.usage, v)
	}
}

func (d *StreamDecoder) model(m string) {
	if m != "" {
		d.usage.Model = m
	}
}

func (d *StreamDecoder) text(s string) {
	if s != "" && d.OnText != nil {
		d.OnText(s)
	}
}

// handleChatGPT follows chatgpt.com's stream: whole message snapshots
// (cumulative parts) and the "delta encoding" patches
// ({"p":"/message/content/parts/0","o":"append","v":"..."}, {"v":"..."}).
func (d *StreamDecoder) handleChatGPT(v *jval) {
	if m := v.get("message"); m != nil {
		d.chatgptSnapshot(m)
	}
	if v.get("message") != nil || v.get("v") == nil {
		return
	}
	d.chatgptPatch(v)
}

func (d *StreamDecoder) chatgptSnapshot(m *jval) {
	if m.path("author", "role").str() != "assistant" {
		return
	}
	d.model(m.path("metadata", "model_slug").str())
	parts := m.path("content", "parts").items()
	if len(parts) == 0 || !parts[0].isStr() {
		return
	}
	s := parts[0].s
	if len(s) >= d.cgLen {
		d.text(s[d.cgLen:])
	} else {
		d.text(s)
	}
	d.cgLen = len(s)
	d.cgAppend = true
}

func (d *StreamDecoder) chatgptPatch(v *jval) {
	p, o, val := v.get("p"), v.gstr("o"), v.get("v")
	if p.isStr() {
		d.cgAppend = strings.HasPrefix(p.s, "/message/content/parts/")
	}
	switch {
	case o == "patch":
		for _, x := range val.items() {
			d.chatgptPatch(x)
		}
	case o == "add" && val.get("message") != nil:
		d.cgLen = 0
		d.chatgptSnapshot(val.get("message"))
	case val.isStr() && (o == "" || o == "append") && d.cgAppend:
		d.text(val.s)
		d.cgLen += len(val.s)
	}
}
