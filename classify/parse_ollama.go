package classify

// Ollama: /api/chat and /api/generate. "stream" defaults to true.

func parseOllama(s *reqState) {
	s.common() // route default Stream=true; an explicit "stream": false wins
	s.part(s.root.get("system"), RoleSystem)
	s.part(s.root.get("prompt"), RoleUser)
	s.part(s.root.get("suffix"), RoleUser)
	for _, img := range s.root.get("images").items() {
		s.attachB64("", "image/*", img.str())
	}
	for _, m := range s.root.get("messages").items() {
		role := normRole(m.gstr("role"))
		s.part(m.get("content"), role)
		s.part(m.get("thinking"), role)
		for _, img := range m.get("images").items() {
			s.attachB64("", "image/*", img.str())
		}
		for _, tc := range m.get("tool_calls").items() {
			s.partsIn(tc.path("function", "arguments"), role)
		}
	}
}
