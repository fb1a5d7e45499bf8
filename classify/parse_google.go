package classify

import (
	"bytes"
	"net/url"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Gemini API (generativelanguage.googleapis.com), Vertex AI publisher
// models and gemini.google.com web.

// geminiModelMethod splits ".../models/{model}:{method}".
func geminiModelMethod(p string) (model, method string, ok bool) {
	i := strings.LastIndex(p, "/models/")
	if i < 0 {
		i = strings.LastIndex(p, "/tunedModels/")
		if i < 0 {
			return "", "", false
		}
		p = p[i+len("/tunedModels/"):]
	} else {
		p = p[i+len("/models/"):]
	}
	model, method, ok = strings.Cut(p, ":")
	if !ok || model == "" || strings.Contains(model, "/") {
		return "", "", false
	}
	return unescapePath(model), method, true
}

func geminiRoute(p string, q url.Values) (route, bool) {
	model, method, ok := geminiModelMethod(p)
	if !ok {
		return route{}, false
	}
	rt := route{shape: "gemini.generate", endpoint: EndpointGenerate, model: model, parse: parseGemini}
	switch method {
	case "generateContent", "countTokens":
	case "streamGenerateContent":
		rt.stream = true
	case "embedContent", "batchEmbedContents":
		rt.endpoint = EndpointEmbeddings
	default:
		rt.endpoint = EndpointOther
	}
	if q.Get("alt") == "sse" {
		rt.stream = true
	}
	return rt, true
}

// vertexRoute: /v1/projects/{p}/locations/{l}/publishers/{pub}/models/{model}:{method}.
func vertexRoute(p string) (route, bool) {
	pub, _, ok := segAfter(p, "/publishers/")
	if !ok {
		return route{}, false
	}
	model, method, ok := geminiModelMethod(p)
	if !ok {
		return route{}, false
	}
	stream := strings.HasPrefix(method, "stream")
	switch pub {
	case "google":
		rt, _ := geminiRoute(p, nil)
		return rt, true
	case "anthropic":
		return route{provider: "anthropic", shape: "anthropic.messages", endpoint: EndpointMessages, model: model, stream: stream, parse: parseAnthropicMessages}, true
	}
	return route{shape: "json.generic", endpoint: EndpointOther, model: model, stream: stream}, true
}

func geminiRole(r string) string {
	switch r {
	case "", "user":
		return RoleUser
	case "model":
		return RoleAssistant
	case "function", "tool":
		return RoleTool
	}
	return normRole(r)
}

func parseGemini(s *reqState) {
	root := s.root
	if g := root.get("generateContentRequest"); g != nil { // countTokens
		root = g
	}
	si := root.get("systemInstruction")
	if si == nil {
		si = root.get("system_instruction")
	}
	s.geminiContent(si, RoleSystem)
	contents := root.get("contents")
	if contents != nil && contents.kind == jObj {
		s.geminiContent(contents, geminiRole(contents.gstr("role")))
	}
	for _, c := range contents.items() {
		s.geminiContent(c, geminiRole(c.gstr("role")))
	}
	s.geminiContent(root.get("content"), RoleUser) // embedContent
	for _, rq := range root.get("requests").items() {
		s.geminiContent(rq.get("content"), RoleUser)
	}
}

func (s *reqState) geminiContent(c *jval, role string) {
	if c.isStr() {
		s.part(c, role)
		return
	}
	for _, p := range c.get("parts").items() {
		s.part(p.get("text"), role)
		inl := p.get("inlineData")
		if inl == nil {
			inl = p.get("inline_data")
		}
		if inl != nil {
			mt := inl.gstr("mimeType")
			if mt == "" {
				mt = inl.gstr("mime_type")
			}
			s.attachB64(inl.gstr("displayName"), mt, inl.gstr("data"))
		}
		if fc := p.get("functionCall"); fc != nil {
			s.partsIn(fc.get("args"), RoleAssistant)
		}
		if fr := p.get("functionResponse"); fr != nil {
			s.partsIn(fr.get("response"), RoleTool)
		}
		s.part(p.path("executableCode", "code"), RoleAssistant)
	}
}

// parseGeminiWeb handles the form-encoded StreamGenerate body
// (f.req=[null,"<inner JSON>"]&at=...). The prompt is at inner[0][0].
// Parts are Raw and their offsets delimit the prompt's encoded bytes.
func parseGeminiWeb(r *Request) {
	body := r.Body
	vs, ve := -1, -1
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '&')
		end := len(body)
		if j >= 0 {
			end = i + j
		}
		if bytes.HasPrefix(body[i:end], []byte("f.req=")) {
			vs, ve = i+len("f.req="), end
			break
		}
		i = end + 1
	}
	if vs < 0 {
		genericNonJSON(r)
		return
	}
	dec, pos := formUnescapeMap(body[vs:ve])
	for k := range pos {
		pos[k] += vs
	}
	outer, err := parseJSON(dec)
	if err != nil {
		r.Uninspectable = "malformed_json"
		return
	}
	for _, el := range outer.items() {
		if !el.isStr() {
			continue
		}
		tok := dec[el.start:el.end]
		inner, ipos := jsonUnescapeMap(tok)
		iv, err := parseJSON(inner)
		if err != nil {
			continue
		}
		prompt := iv.items()
		if len(prompt) == 0 {
			continue
		}
		pv := prompt[0].items()
		if len(pv) == 0 || !pv[0].isStr() || pv[0].s == "" {
			continue
		}
		t := pv[0]
		ds := el.start + ipos[t.start+1]
		de := el.start + ipos[t.end-1]
		r.Parts = append(r.Parts, Part{Role: RoleUser, Text: t.s, Start: pos[ds], End: pos[de], Raw: true})
		return
	}
	// Fallback: every string of the decoded f.req.
	outer.walkStrings(func(v *jval) {
		if v.s != "" {
			r.Parts = append(r.Parts, Part{Role: RoleUnknown, Text: v.s, Start: pos[v.start+1], End: pos[v.end-1], Raw: true})
		}
	})
}

// formUnescapeMap decodes application/x-www-form-urlencoded bytes; pos[i]
// is the offset in b where decoded byte i came from, pos[len(out)] == len(b).
func formUnescapeMap(b []byte) ([]byte, []int) {
	out := make([]byte, 0, len(b))
	pos := make([]int, 0, len(b)+1)
	for i := 0; i < len(b); {
		c := b[i]
		pos = append(pos, i)
		switch {
		case c == '+':
			out = append(out, ' ')
			i++
		case c == '%' && i+2 < len(b)+0 && hexVal(b[i+1]) >= 0 && hexVal(b[i+2]) >= 0:
			out = append(out, byte(hexVal(b[i+1])<<4|hexVal(b[i+2])))
			i += 3
		default:
			out = append(out, c)
			i++
		}
	}
	pos = append(pos, len(b))
	return out, pos
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// jsonUnescapeMap unescapes a JSON string token (quotes included); pos[i]
// is the offset in tok of the source of output byte i, and
// pos[len(out)] is the offset of the closing quote.
func jsonUnescapeMap(tok []byte) ([]byte, []int) {
	if len(tok) < 2 {
		return nil, []int{0}
	}
	out := make([]byte, 0, len(tok))
	pos := make([]int, 0, len(tok)+1)
	end := len(tok) - 1
	for i := 1; i < end; {
		c := tok[i]
		if c != '\\' || i+1 >= end {
			out = append(out, c)
			pos = append(pos, i)
			i++
			continue
		}
		e := tok[i+1]
		var r rune = -1
		n := 2
		switch e {
		case 'n':
			r = '\n'
		case 't':
			r = '\t'
		case 'r':
			r = '\r'
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'u':
			r = hex4(tok, i+2)
			n = 6
			if r >= 0 && utf16.IsSurrogate(r) && i+12 <= end && tok[i+6] == '\\' && tok[i+7] == 'u' {
				if d := utf16.DecodeRune(r, hex4(tok, i+8)); d != utf8.RuneError {
					r, n = d, 12
				}
			}
			if r < 0 {
				r, n = utf8.RuneError, 2
			}
		default:
			r = rune(e)
		}
		var tmp [4]byte
		k := utf8.EncodeRune(tmp[:], r)
		for j := 0; j < k; j++ {
			out = append(out, tmp[j])
			pos = append(pos, i)
		}
		i += n
	}
	pos = append(pos, end)
	return out, pos
}
