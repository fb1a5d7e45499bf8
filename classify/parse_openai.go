package classify

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// OpenAI API shapes (chat, completions, responses, embeddings, realtime),
// the OpenAI-compatible family, Azure OpenAI, Mistral and ChatGPT web.

func normRole(role string) string {
	switch strings.ToLower(role) {
	case "system", "developer", "preamble":
		return RoleSystem
	case "user", "human":
		return RoleUser
	case "assistant", "model", "chatbot", "ai":
		return RoleAssistant
	case "tool", "function", "ipython":
		return RoleTool
	}
	return RoleUnknown
}

// common fills model and stream from the body when the path did not.
func (s *reqState) common() {
	if s.r.Model == "" {
		s.r.Model = s.root.gstr("model")
	}
	if b, ok := s.root.get("stream").boolean(); ok {
		s.r.Stream = b
	}
}

// attachB64 records base64 media as an attachment (size and hash of the
// decoded bytes). Invalid base64 is recorded with the size of the text.
func (s *reqState) attachB64(name, mediaType, data string) {
	if data == "" {
		return
	}
	raw := decodeB64(data)
	if raw == nil {
		raw = []byte(data)
	}
	sum := sha256.Sum256(raw)
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	s.r.Attachments = append(s.r.Attachments, Attachment{
		Name: name, MediaType: mediaType, Size: len(raw), SHA256: hex.EncodeToString(sum[:]),
	})
}

func decodeB64(data string) []byte {
	data = strings.TrimSpace(data)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(data); err == nil {
			return b
		}
	}
	return nil
}

// attachDataURL records a data: URL; other URLs are references, not content.
func (s *reqState) attachDataURL(u, name, fallbackType string) {
	if !strings.HasPrefix(u, "data:") {
		return
	}
	meta, data, ok := strings.Cut(u[5:], ",")
	if !ok {
		return
	}
	mt := fallbackType
	if m, _, _ := strings.Cut(meta, ";"); m != "" {
		mt = m
	}
	if !strings.HasSuffix(meta, ";base64") {
		data = strings.ReplaceAll(data, "%20", " ")
		sum := sha256.Sum256([]byte(data))
		s.r.Attachments = append(s.r.Attachments, Attachment{Name: name, MediaType: mt, Size: len(data), SHA256: hex.EncodeToString(sum[:])})
		return
	}
	s.attachB64(name, mt, data)
}

// openAIContentPart handles one element of a chat/responses content array.
func (s *reqState) openAIContentPart(c *jval, role string) {
	if c.isStr() {
		s.part(c, role)
		return
	}
	switch c.gstr("type") {
	case "text", "input_text", "output_text":
		s.part(c.get("text"), role)
	case "refusal":
		s.part(c.get("refusal"), role)
	case "image_url":
		iu := c.get("image_url")
		if iu.isStr() {
			s.attachDataURL(iu.s, "", "image/*")
		} else {
			s.attachDataURL(iu.gstr("url"), "", "image/*")
		}
	case "input_image":
		s.attachDataURL(c.gstr("image_url"), "", "image/*")
	case "input_audio":
		a := c.get("input_audio")
		f := a.gstr("format")
		if f == "" {
			f = "*"
		}
		s.attachB64("", "audio/"+f, a.gstr("data"))
	case "file":
		f := c.get("file")
		s.openAIFileData(f.gstr("file_data"), f.gstr("filename"))
	case "input_file":
		s.openAIFileData(c.gstr("file_data"), c.gstr("filename"))
	default:
		s.part(c.get("text"), role)
	}
}

func (s *reqState) openAIFileData(data, name string) {
	if data == "" {
		return
	}
	if strings.HasPrefix(data, "data:") {
		s.attachDataURL(data, name, "application/octet-stream")
		return
	}
	s.attachB64(name, mediaTypeByName(name), data)
}

func (s *reqState) openAIContent(v *jval, role string) {
	if v.isStr() {
		s.part(v, role)
		return
	}
	for _, c := range v.items() {
		s.openAIContentPart(c, role)
	}
}

func parseOpenAIChat(s *reqState) {
	s.common()
	for _, m := range s.root.get("messages").items() {
		role := normRole(m.gstr("role"))
		s.openAIContent(m.get("content"), role)
		for _, tc := range m.get("tool_calls").items() {
			s.part(tc.path("function", "arguments"), role)
		}
		s.part(m.path("function_call", "arguments"), role)
	}
	s.openAIContent(s.root.path("prediction", "content"), RoleUser)
}

func parseOpenAICompletions(s *reqState) {
	s.common()
	s.stringOrList(s.root.get("prompt"), RoleUser)
	s.part(s.root.get("suffix"), RoleUser)
}

func (s *reqState) stringOrList(v *jval, role string) {
	if v.isStr() {
		s.part(v, role)
		return
	}
	for _, x := range v.items() {
		s.part(x, role)
	}
}

func parseOpenAIEmbeddings(s *reqState) {
	s.common()
	s.stringOrList(s.root.get("input"), RoleUser)
}

func parseOpenAIResponses(s *reqState) {
	s.common()
	s.part(s.root.get("instructions"), RoleSystem)
	in := s.root.get("input")
	if in.isStr() {
		s.part(in, RoleUser)
	}
	for _, it := range in.items() {
		s.responsesItem(it)
	}
	for _, v := range s.root.path("prompt", "variables").fields() {
		s.openAIContentPart(v, RoleUser)
	}
}

func (s *reqState) responsesItem(it *jval) {
	if it.isStr() {
		s.part(it, RoleUser)
		return
	}
	switch t := it.gstr("type"); t {
	case "", "message":
		s.openAIContent(it.get("content"), normRole(it.gstr("role")))
	case "function_call", "custom_tool_call":
		s.part(it.get("arguments"), RoleAssistant)
		s.part(it.get("input"), RoleAssistant)
	case "reasoning", "item_reference":
	default:
		if strings.HasSuffix(t, "_output") {
			out := it.get("output")
			if out.isStr() {
				s.part(out, RoleTool)
			} else {
				for _, c := range out.items() {
					s.openAIContentPart(c, RoleTool)
				}
			}
		}
	}
}

// azureRoute: /openai/deployments/{name}/{chat/completions|completions|embeddings|...}
// and the v1 API /openai/v1/... whose model is in the body.
func azureRoute(p string) (route, bool) {
	if !strings.HasPrefix(p, "/openai/") {
		return route{}, false
	}
	rt := route{shape: "azure.openai", endpoint: EndpointOther}
	if dep, _, ok := segAfter(p, "/openai/deployments/"); ok {
		rt.model = unescapePath(dep)
	}
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
		rt.endpoint, rt.parse = EndpointChat, parseOpenAIChat
	case strings.HasSuffix(p, "/completions"):
		rt.endpoint, rt.parse = EndpointCompletions, parseOpenAICompletions
	case strings.HasSuffix(p, "/embeddings"):
		rt.endpoint, rt.parse = EndpointEmbeddings, parseOpenAIEmbeddings
	case strings.HasSuffix(p, "/responses"):
		rt.endpoint, rt.parse = EndpointResponses, parseOpenAIResponses
	case strings.Contains(p, "/realtime"):
		rt.endpoint, rt.parse, rt.stream = EndpointRealtime, parseRealtimeSession, true
	case strings.HasSuffix(p, "/files"):
		rt.endpoint = EndpointFiles
	}
	return rt, true
}

func parseMistralFIM(s *reqState) {
	s.common()
	s.part(s.root.get("prompt"), RoleUser)
	s.part(s.root.get("suffix"), RoleUser)
}

// parseRealtimeSession handles session creation bodies (POST
// /v1/realtime/sessions, /v1/realtime/client_secrets, /v1/realtime/calls).
func parseRealtimeSession(s *reqState) {
	sess := s.root
	if x := s.root.get("session"); x != nil {
		sess = x
	}
	if s.r.Model == "" {
		s.r.Model = sess.gstr("model")
	}
	s.part(sess.get("instructions"), RoleSystem)
}

// ParseRealtimeMessage understands one OpenAI Realtime client event (a JSON
// WebSocket text message). Part offsets refer to msg. It never returns nil.
func ParseRealtimeMessage(msg []byte) (r *Request) {
	defer func() {
		if recover() != nil {
			r = &Request{Provider: "openai", Shape: "openai.realtime", Endpoint: EndpointRealtime, Stream: true, Body: msg, Parts: []Part{}, Uninspectable: "parser_error"}
		}
	}()
	return parseRealtimeMessage(msg)
}

func parseRealtimeMessage(msg []byte) *Request {
	r := &Request{Provider: "openai", Shape: "openai.realtime", Endpoint: EndpointRealtime, Stream: true, Body: msg, Parts: []Part{}}
	root, err := parseJSON(msg)
	if err != nil {
		r.Uninspectable = "malformed_json"
		return r
	}
	s := &reqState{r: r, root: root}
	switch root.gstr("type") {
	case "session.update":
		sess := root.get("session")
		r.Model = sess.gstr("model")
		s.part(sess.get("instructions"), RoleSystem)
	case "conversation.item.create":
		s.realtimeItem(root.get("item"))
	case "response.create":
		resp := root.get("response")
		s.part(resp.get("instructions"), RoleSystem)
		for _, it := range resp.get("input").items() {
			s.realtimeItem(it)
		}
	}
	return r
}

func (s *reqState) realtimeItem(it *jval) {
	switch it.gstr("type") {
	case "", "message":
		role := normRole(it.gstr("role"))
		for _, c := range it.get("content").items() {
			switch c.gstr("type") {
			case "input_text", "text", "output_text":
				s.part(c.get("text"), role)
			case "input_audio", "audio", "output_audio":
				s.part(c.get("transcript"), role)
			case "input_image":
				s.attachDataURL(c.gstr("image_url"), "", "image/*")
			}
		}
	case "function_call_output":
		s.part(it.get("output"), RoleTool)
	case "function_call":
		s.part(it.get("arguments"), RoleAssistant)
	}
}

// parseChatGPTWeb: chatgpt.com /backend-api/conversation.
func parseChatGPTWeb(s *reqState) {
	s.r.Model = s.root.gstr("model")
	for _, m := range s.root.get("messages").items() {
		role := normRole(m.path("author", "role").str())
		content := m.get("content")
		for _, p := range content.get("parts").items() {
			if p.isStr() {
				s.part(p, role)
			}
		}
		s.part(content.get("text"), role)
	}
}
