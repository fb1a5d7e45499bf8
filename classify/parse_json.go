package classify

import (
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// A small JSON parser that keeps the byte offsets of every value, so that
// string tokens can be replaced in place by redaction. encoding/json/jsontext
// needs GOEXPERIMENT=jsonv2 in Go 1.26, hence this hand-written one. It is
// strict (RFC 8259) and unescapes strings exactly as encoding/json does
// (invalid UTF-8 and lone surrogates become U+FFFD), so a Part's Text always
// equals json.Unmarshal of Body[Start:End].

const (
	jNull byte = iota
	jBool
	jNum
	jStr
	jArr
	jObj
)

// jsonMaxDepth bounds nesting so hostile bodies cannot exhaust the stack.
const jsonMaxDepth = 512

var errJSONSyntax = errors.New("classify: malformed JSON")

// jval is one JSON value. Start/End delimit the whole token (quotes
// included for strings, brackets for containers).
type jval struct {
	kind       byte
	truth      bool
	start, end int
	s          string   // unescaped string value, or raw number text
	keys       [][]byte // object keys: sub-slices of the input unless escaped
	vals       []*jval
}

// jsonParser may be reused (StreamDecoder does) to recycle its nodes: a
// parse invalidates every node returned by the previous one.
type jsonParser struct {
	b      []byte
	i      int
	chunks [][]jval
	ci, cj int
}

// parseJSON parses a complete JSON document.
func parseJSON(b []byte) (*jval, error) {
	var p jsonParser
	return p.parse(b)
}

func (p *jsonParser) parse(b []byte) (*jval, error) {
	p.b, p.i, p.ci, p.cj = b, 0, 0, 0
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(b) {
		return nil, errJSONSyntax
	}
	return v, nil
}

// node returns a cleared node, keeping the capacity of recycled slices.
func (p *jsonParser) node() *jval {
	for {
		if p.ci == len(p.chunks) {
			size := min(max(len(p.b)/24, 16), 1024)
			if p.ci > 0 {
				size = 2 * len(p.chunks[p.ci-1])
			}
			p.chunks = append(p.chunks, make([]jval, size))
		}
		if c := p.chunks[p.ci]; p.cj < len(c) {
			n := &c[p.cj]
			p.cj++
			*n = jval{keys: n.keys[:0], vals: n.vals[:0]}
			return n
		}
		p.ci++
		p.cj = 0
	}
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*jval, error) {
	if depth > jsonMaxDepth {
		return nil, errJSONSyntax
	}
	if p.i >= len(p.b) {
		return nil, errJSONSyntax
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		start := p.i
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		n := p.node()
		n.kind, n.start, n.end, n.s = jStr, start, p.i, string(s)
		return n, nil
	case c == 't':
		return p.lit("true", jBool, true)
	case c == 'f':
		return p.lit("false", jBool, false)
	case c == 'n':
		return p.lit("null", jNull, false)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.num()
	}
	return nil, errJSONSyntax
}

func (p *jsonParser) lit(word string, kind byte, truth bool) (*jval, error) {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return nil, errJSONSyntax
	}
	n := p.node()
	n.kind, n.truth, n.start, n.end = kind, truth, p.i, p.i+len(word)
	p.i += len(word)
	return n, nil
}

func (p *jsonParser) digits() int {
	n := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

func (p *jsonParser) num() (*jval, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	if p.i >= len(p.b) {
		return nil, errJSONSyntax
	}
	if p.b[p.i] == '0' {
		p.i++
	} else if p.digits() == 0 {
		return nil, errJSONSyntax
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return nil, errJSONSyntax
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return nil, errJSONSyntax
		}
	}
	n := p.node()
	n.kind, n.start, n.end, n.s = jNum, start, p.i, string(p.b[start:p.i])
	return n, nil
}

func (p *jsonParser) array(depth int) (*jval, error) {
	n := p.node()
	n.kind, n.start = jArr, p.i
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		n.end = p.i
		return n, nil
	}
	for {
		p.ws()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		n.vals = append(n.vals, v)
		p.ws()
		if p.i >= len(p.b) {
			return nil, errJSONSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			n.end = p.i
			return n, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

func (p *jsonParser) object(depth int) (*jval, error) {
	n := p.node()
	n.kind, n.start = jObj, p.i
	p.i++
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		n.end = p.i
		return n, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, errJSONSyntax
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, errJSONSyntax
		}
		p.i++
		p.ws()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		n.keys = append(n.keys, k)
		n.vals = append(n.vals, v)
		p.ws()
		if p.i >= len(p.b) {
			return nil, errJSONSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			n.end = p.i
			return n, nil
		default:
			return nil, errJSONSyntax
		}
	}
}

// str reads a string token at p.i (which is '"') and returns its value,
// a sub-slice of the input when nothing needed unescaping.
func (p *jsonParser) str() ([]byte, error) {
	b := p.b
	i := p.i + 1
	start := i
	// Fast path: plain ASCII/valid UTF-8 without escapes.
	for i < len(b) {
		c := b[i]
		if c == '"' {
			p.i = i + 1
			return b[start:i:i], nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	// Slow path.
	out := make([]byte, 0, i-start+16)
	out = append(out, b[start:i]...)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			p.i = i + 1
			return out, nil
		case c < 0x20:
			return nil, errJSONSyntax
		case c == '\\':
			if i+1 >= len(b) {
				return nil, errJSONSyntax
			}
			e := b[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b, i)
				if r < 0 {
					return nil, errJSONSyntax
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
						r2 = hex4(b, i+2)
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						i += 6
						r = d
					} else {
						r = utf8.RuneError
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				return nil, errJSONSyntax
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			i += size
			out = utf8.AppendRune(out, r)
		}
	}
	return nil, errJSONSyntax
}

func hex4(b []byte, i int) rune {
	if i+4 > len(b) {
		return -1
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// get returns the value of key in an object, or nil.
func (v *jval) get(key string) *jval {
	if v == nil || v.kind != jObj {
		return nil
	}
	for i, k := range v.keys {
		if string(k) == key {
			return v.vals[i]
		}
	}
	return nil
}

// path follows object keys.
func (v *jval) path(keys ...string) *jval {
	for _, k := range keys {
		v = v.get(k)
	}
	return v
}

// str returns the string value of v, or "".
func (v *jval) str() string {
	if v == nil || v.kind != jStr {
		return ""
	}
	return v.s
}

// gstr returns the string value of key.
func (v *jval) gstr(key string) string { return v.get(key).str() }

func (v *jval) isStr() bool { return v != nil && v.kind == jStr }

// items returns array elements (nil for non-arrays).
func (v *jval) items() []*jval {
	if v == nil || v.kind != jArr {
		return nil
	}
	return v.vals
}

// fields returns object values (nil for non-objects).
func (v *jval) fields() []*jval {
	if v == nil || v.kind != jObj {
		return nil
	}
	return v.vals
}

// boolean returns (value, present).
func (v *jval) boolean() (bool, bool) {
	if v == nil || v.kind != jBool {
		return false, false
	}
	return v.truth, true
}

// int64v returns an integer value of a number (fractions truncated).
func (v *jval) int64v() (int64, bool) {
	if v == nil || v.kind != jNum {
		return 0, false
	}
	var n int64
	neg := false
	for i := 0; i < len(v.s); i++ {
		c := v.s[i]
		switch {
		case c == '-' && i == 0:
			neg = true
		case c >= '0' && c <= '9':
			if n > (1<<62)/10 {
				return 0, false
			}
			n = n*10 + int64(c-'0')
		default:
			if neg {
				n = -n
			}
			return n, c == '.' // exponents are not token counts
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// walkStrings calls f for every string value (not keys) under v, in
// document order.
func (v *jval) walkStrings(f func(*jval)) {
	if v == nil {
		return
	}
	switch v.kind {
	case jStr:
		f(v)
	case jArr, jObj:
		for _, c := range v.vals {
			c.walkStrings(f)
		}
	}
}
