package classify

// Cohere chat: v1 (message, preamble, chat_history) and v2 (messages).

func parseCohereV1(s *reqState) {
	s.common()
	parseCohereV1Body(s)
}

func parseCohereV1Body(s *reqState) {
	s.part(s.root.get("preamble"), RoleSystem)
	for _, m := range s.root.get("chat_history").items() {
		s.part(m.get("message"), normRole(m.gstr("role")))
	}
	s.part(s.root.get("message"), RoleUser)
	s.cohereDocuments(s.root.get("documents"))
}

func parseCohereV2(s *reqState) {
	s.common()
	for _, m := range s.root.get("messages").items() {
		role := normRole(m.gstr("role"))
		c := m.get("content")
		if c.isStr() {
			s.part(c, role)
		}
		for _, b := range c.items() {
			switch b.gstr("type") {
			case "image_url":
				s.attachDataURL(b.path("image_url", "url").str(), "", "image/*")
			case "document":
				s.cohereDocuments(b.get("document"))
			default:
				s.part(b.get("text"), role)
			}
		}
		for _, tc := range m.get("tool_calls").items() {
			s.part(tc.path("function", "arguments"), role)
		}
	}
	s.cohereDocuments(s.root.get("documents"))
}

// cohereDocuments: strings, or objects of string fields (v1), or {data:{...}} (v2).
func (s *reqState) cohereDocuments(v *jval) {
	if v == nil {
		return
	}
	if v.kind == jObj {
		if d := v.get("data"); d != nil {
			v = d
		}
		s.partsIn(v, RoleUser)
		return
	}
	for _, d := range v.items() {
		s.cohereDocuments(d)
		if d.isStr() {
			s.part(d, RoleUser)
		}
	}
}
