package classify

import "strings"

// Amazon Bedrock runtime: Converse and InvokeModel.

// bedrockRoute: /model/{modelId}/{converse|converse-stream|invoke|invoke-with-response-stream}.
func bedrockRoute(p string) (route, bool) {
	if !strings.HasPrefix(p, "/model/") {
		return route{}, false
	}
	rest := p[len("/model/"):]
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return route{}, false
	}
	model, action := unescapePath(rest[:i]), rest[i+1:]
	switch action {
	case "converse":
		return route{shape: "bedrock.converse", endpoint: EndpointConverse, model: model, parse: parseBedrockConverse}, true
	case "converse-stream":
		return route{shape: "bedrock.converse", endpoint: EndpointConverse, model: model, stream: true, parse: parseBedrockConverse}, true
	case "invoke":
		return route{shape: "bedrock.invoke", endpoint: EndpointInvoke, model: model, parse: parseBedrockInvoke}, true
	case "invoke-with-response-stream":
		return route{shape: "bedrock.invoke", endpoint: EndpointInvoke, model: model, stream: true, parse: parseBedrockInvoke}, true
	}
	return route{}, false
}

func parseBedrockConverse(s *reqState) {
	for _, b := range s.root.get("system").items() {
		s.bedrockBlock(b, RoleSystem)
	}
	for _, m := range s.root.get("messages").items() {
		role := normRole(m.gstr("role"))
		for _, b := range m.get("content").items() {
			s.bedrockBlock(b, role)
		}
	}
}

func (s *reqState) bedrockBlock(b *jval, role string) {
	s.part(b.get("text"), role)
	if img := b.get("image"); img != nil {
		s.attachB64("", "image/"+img.gstr("format"), img.path("source", "bytes").str())
	}
	if doc := b.get("document"); doc != nil {
		src := doc.get("source")
		if src.get("text").isStr() {
			s.part(src.get("text"), role)
		}
		s.attachB64(doc.gstr("name"), mediaTypeByName("x."+doc.gstr("format")), src.gstr("bytes"))
	}
	if v := b.get("video"); v != nil {
		s.attachB64("", "video/"+v.gstr("format"), v.path("source", "bytes").str())
	}
	if tu := b.get("toolUse"); tu != nil {
		s.partsIn(tu.get("input"), RoleAssistant)
	}
	if tr := b.get("toolResult"); tr != nil {
		for _, c := range tr.get("content").items() {
			s.part(c.get("text"), RoleTool)
			s.partsIn(c.get("json"), RoleTool)
		}
	}
	s.part(b.path("reasoningContent", "reasoningText", "text"), role)
}

// parseBedrockInvoke reads the model vendor's native body.
func parseBedrockInvoke(s *reqState) {
	root := s.root
	switch {
	case root.get("anthropic_version") != nil:
		s.anthropicBody()
	case root.get("messages") != nil:
		// Converse-like (Nova) or OpenAI-like (Llama, Mistral, gpt-oss).
		if ms := root.get("messages").items(); len(ms) > 0 && ms[0].get("content").isArrOfObjWith("text") && ms[0].get("content").items()[0].get("type") == nil {
			parseBedrockConverse(s)
		} else {
			for _, b := range root.get("system").items() {
				s.bedrockBlock(b, RoleSystem)
			}
			for _, m := range root.get("messages").items() {
				s.openAIContent(m.get("content"), normRole(m.gstr("role")))
			}
		}
	case root.get("prompt") != nil:
		s.stringOrList(root.get("prompt"), RoleUser)
	case root.get("inputText") != nil:
		s.part(root.get("inputText"), RoleUser)
	case root.get("message") != nil:
		parseCohereV1Body(s)
	case root.get("texts") != nil:
		s.stringOrList(root.get("texts"), RoleUser)
	default:
		s.r.Shape = "bedrock.invoke"
		s.partsIn(root, RoleUnknown)
	}
}

// isArrOfObjWith reports whether v is an array whose first element is an
// object with key.
func (v *jval) isArrOfObjWith(key string) bool {
	it := v.items()
	return len(it) > 0 && it[0].get(key) != nil
}
