package classify

import "strings"

// Anthropic Messages API (direct, on Bedrock invoke and on Vertex
// rawPredict) and claude.ai web.

func parseAnthropicMessages(s *reqState) {
	s.common()
	s.anthropicBody()
}

// anthropicBody reads system and messages without touching model/stream.
func (s *reqState) anthropicBody() {
	s.anthropicContent(s.root.get("system"), RoleSystem)
	for _, m := range s.root.get("messages").items() {
		s.anthropicContent(m.get("content"), normRole(m.gstr("role")))
	}
}

func (s *reqState) anthropicContent(v *jval, role string) {
	if v.isStr() {
		s.part(v, role)
		return
	}
	for _, b := range v.items() {
		s.anthropicBlock(b, role)
	}
}

func (s *reqState) anthropicBlock(b *jval, role string) {
	if b.isStr() {
		s.part(b, role)
		return
	}
	switch b.gstr("type") {
	case "text":
		s.part(b.get("text"), role)
	case "thinking":
		s.part(b.get("thinking"), role)
	case "image", "document":
		src := b.get("source")
		switch src.gstr("type") {
		case "base64":
			s.attachB64(b.gstr("title"), src.gstr("media_type"), src.gstr("data"))
		case "text":
			s.part(src.get("data"), role)
		case "content":
			s.anthropicContent(src.get("content"), role)
		}
		s.part(b.get("context"), role)
	case "tool_use", "server_tool_use":
		s.partsIn(b.get("input"), RoleAssistant)
	case "tool_result":
		s.anthropicContent(b.get("content"), RoleTool)
	case "search_result":
		s.anthropicContent(b.get("content"), role)
	case "redacted_thinking":
	default:
		s.part(b.get("text"), role)
	}
}

// claudeWebPath matches /api/organizations/{org}/chat_conversations/{id}/completion
// (and retry_completion) and returns the organization id.
func claudeWebPath(p string) (string, bool) {
	org, rest, ok := segAfter(p, "/api/organizations/")
	if !ok || !strings.HasPrefix(rest, "/chat_conversations/") {
		return "", false
	}
	if !strings.HasSuffix(rest, "/completion") && !strings.HasSuffix(rest, "/retry_completion") {
		return "", false
	}
	return org, true
}

func parseClaudeWeb(s *reqState) {
	s.r.Model = s.root.gstr("model")
	s.part(s.root.get("prompt"), RoleUser)
	for _, a := range s.root.get("attachments").items() {
		ec := a.get("extracted_content")
		s.part(ec, RoleUser)
		name := a.gstr("file_name")
		mt := a.gstr("file_type")
		if mt == "" {
			mt = mediaTypeByName(name)
		}
		size := len(ec.str())
		if n, ok := a.get("file_size").int64v(); ok && n >= 0 && n < 1<<40 {
			size = int(n)
		}
		s.r.Attachments = append(s.r.Attachments, Attachment{
			Name: name, MediaType: mt, Size: size, SHA256: sha256Hex([]byte(ec.str())), Inspected: ec.isStr(),
		})
	}
}
