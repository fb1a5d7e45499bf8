package enforce

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/aigress/aigress/classify"
)

// edit replaces body[start:end] with repl.
type edit struct {
	start, end int
	repl       []byte
}

// span is a merged finding inside one part's text.
type span struct {
	part       int
	start, end int
	typ        string
}

// Redact rewrites the findings selected by the redact rule that made d,
// and nothing else: in a JSON part only the bytes of the offending text
// inside its string token change (escapes elsewhere in the string are
// kept); in a raw part the text bytes are replaced in place. Every byte
// outside the rewritten spans is identical. It returns the new decoded
// body, the number of spans replaced and, when the rule asks for
// restoration, a Restorer (nil otherwise). When d is not a redact
// decision of this policy, the body is returned unchanged.
//
// The caller sets Content-Length from len(body) and, when req.Encoding is
// set, either re-encodes the body or drops Content-Encoding.
func (p *Policy) Redact(req *classify.Request, findings []classify.PartFinding, d Decision) ([]byte, int, *Restorer) {
	if req == nil {
		return nil, 0, nil
	}
	if d.Action != ActionRedact {
		return req.Body, 0, nil
	}
	var r *rule
	for _, x := range p.rules {
		if x.id == d.RuleID {
			r = x
			break
		}
	}
	if r == nil || r.m.findings == nil {
		return req.Body, 0, nil
	}
	spans := mergeSpans(req, r.m.findings.matched(findings))
	if len(spans) == 0 {
		return req.Body, 0, nil
	}
	var rest *Restorer
	if r.restore {
		rest = &Restorer{orig: map[string]string{}}
	}
	names := map[string]string{} // type + value -> placeholder
	counters := map[string]int{}
	placeholder := func(typ, value string) string {
		k := typ + "\x00" + value
		if ph, ok := names[k]; ok {
			return ph
		}
		label := placeholderLabel(typ)
		var ph string
		if r.mode == "hash" {
			m := hmac.New(sha256.New, p.hashKey)
			m.Write([]byte(typ))
			m.Write([]byte{0})
			m.Write([]byte(value))
			ph = "[" + label + ":" + hex.EncodeToString(m.Sum(nil)[:4]) + "]"
		} else {
			counters[label]++
			ph = "[" + label + "_" + itoa(counters[label]) + "]"
		}
		names[k] = ph
		if rest != nil {
			rest.add(ph, value)
		}
		return ph
	}

	var edits []edit
	n := 0
	for i := 0; i < len(spans); {
		j := i
		for j < len(spans) && spans[j].part == spans[i].part {
			j++
		}
		pe, cnt := partEdits(req, spans[i:j], placeholder)
		edits = append(edits, pe...)
		n += cnt
		i = j
	}
	if len(edits) == 0 {
		return req.Body, 0, rest
	}
	// Apply the edits in one pass, in body order (equivalent to applying
	// them right to left). Overlapping edits (overlapping parts, which a
	// parser should not produce) keep the first.
	sort.Slice(edits, func(a, b int) bool { return edits[a].start < edits[b].start })
	grow := 0
	for _, e := range edits {
		grow += len(e.repl)
	}
	out := make([]byte, 0, len(req.Body)+grow)
	prev := 0
	for _, e := range edits {
		if e.start < prev {
			continue
		}
		out = append(out, req.Body[prev:e.start]...)
		out = append(out, e.repl...)
		prev = e.end
	}
	out = append(out, req.Body[prev:]...)
	if rest != nil {
		rest.build()
	}
	return out, n, rest
}

// mergeSpans sorts findings by part and offset and merges overlaps.
func mergeSpans(req *classify.Request, fs []classify.PartFinding) []span {
	var spans []span
	for _, f := range fs {
		if f.Part < 0 || f.Part >= len(req.Parts) {
			continue
		}
		t := req.Parts[f.Part].Text
		if f.Start < 0 || f.End > len(t) || f.Start >= f.End {
			continue
		}
		spans = append(spans, span{part: f.Part, start: f.Start, end: f.End, typ: f.Type})
	}
	sort.Slice(spans, func(a, b int) bool {
		if spans[a].part != spans[b].part {
			return spans[a].part < spans[b].part
		}
		if spans[a].start != spans[b].start {
			return spans[a].start < spans[b].start
		}
		return spans[a].end > spans[b].end
	})
	out := spans[:0]
	for _, s := range spans {
		if k := len(out) - 1; k >= 0 && out[k].part == s.part && s.start < out[k].end {
			if s.end > out[k].end {
				out[k].end = s.end
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// partEdits returns the body edits for the spans of one part.
func partEdits(req *classify.Request, spans []span, placeholder func(typ, value string) string) ([]edit, int) {
	pt := req.Parts[spans[0].part]
	if pt.Start < 0 || pt.End > len(req.Body) || pt.Start >= pt.End {
		return nil, 0
	}
	tok := req.Body[pt.Start:pt.End]
	if pt.Raw {
		if string(tok) != pt.Text {
			return nil, 0
		}
		var edits []edit
		for _, s := range spans {
			edits = append(edits, edit{pt.Start + s.start, pt.Start + s.end, []byte(placeholder(s.typ, pt.Text[s.start:s.end]))})
		}
		return edits, len(spans)
	}
	if bytes.IndexByte(tok, '\\') < 0 && utf8.Valid(tok) && string(tok[1:len(tok)-1]) == pt.Text {
		// Fast path, no escapes: text offset i is token offset i+1.
		var edits []edit
		for _, s := range spans {
			ph := placeholder(s.typ, pt.Text[s.start:s.end])
			edits = append(edits, edit{pt.Start + 1 + s.start, pt.Start + 1 + s.end, []byte(ph)})
		}
		return edits, len(spans)
	}
	starts := make([]int, 0, len(tok)+1)
	text, ok := decodeJSONString(tok, &starts)
	if ok && string(text) == pt.Text {
		// Replace only the token bytes that encode each span.
		var edits []edit
		for _, s := range spans {
			a := starts[s.start]
			b := starts[len(starts)-1]
			for k := s.end; k < len(starts)-1; k++ {
				if starts[k] != starts[s.end-1] {
					b = starts[k]
					break
				}
			}
			ph := placeholder(s.typ, pt.Text[s.start:s.end])
			edits = append(edits, edit{pt.Start + a, pt.Start + b, appendJSONContent(nil, ph)})
		}
		return edits, len(spans)
	}
	// The token does not decode to the part text (should not happen):
	// re-encode the whole string from the redacted text.
	var b strings.Builder
	prev := 0
	for _, s := range spans {
		b.WriteString(pt.Text[prev:s.start])
		b.WriteString(placeholder(s.typ, pt.Text[s.start:s.end]))
		prev = s.end
	}
	b.WriteString(pt.Text[prev:])
	return []edit{{pt.Start, pt.End, appendJSONString(nil, b.String())}}, len(spans)
}

// placeholderLabel turns "aws_access_key" into "AWS_ACCESS_KEY".
func placeholderLabel(typ string) string {
	b := []byte(strings.ToUpper(typ))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "REDACTED"
	}
	return string(b)
}

// Restorer maps placeholders back to the original values, so a user sees
// their own data in the model's answer while the provider never saw it.
// A nil *Restorer restores nothing.
type Restorer struct {
	orig   map[string]string
	phs    []string
	maxLen int
	raw    *strings.Replacer
	esc    *strings.Replacer
}

func (r *Restorer) add(ph, value string) {
	if _, ok := r.orig[ph]; ok {
		return
	}
	r.orig[ph] = value
	r.phs = append(r.phs, ph)
	if len(ph) > r.maxLen {
		r.maxLen = len(ph)
	}
}

func (r *Restorer) build() {
	var raw, esc []string
	for _, ph := range r.phs {
		raw = append(raw, ph, r.orig[ph])
		esc = append(esc, ph, string(appendJSONContent(nil, r.orig[ph])))
	}
	r.raw = strings.NewReplacer(raw...)
	r.esc = strings.NewReplacer(esc...)
}

// Len is the number of placeholders known.
func (r *Restorer) Len() int {
	if r == nil {
		return 0
	}
	return len(r.phs)
}

// MaxPlaceholderLen bounds how much text a RestoreStream holds back.
func (r *Restorer) MaxPlaceholderLen() int {
	if r == nil {
		return 0
	}
	return r.maxLen
}

// looksJSON reports whether a body is a JSON object or array (and not
// text that starts with a placeholder).
func looksJSON(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return false
	}
	if b[0] == '{' {
		return true
	}
	if b[0] != '[' {
		return false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	return len(b) == 0 || strings.IndexByte("{[\"]-0123456789tfn", b[0]) >= 0
}

// RestoreBody replaces every placeholder in a complete response body.
// Originals are JSON-escaped when the body is JSON.
func (r *Restorer) RestoreBody(b []byte) []byte {
	if r == nil || len(r.phs) == 0 || !bytes.Contains(b, []byte("[")) {
		return b
	}
	if looksJSON(b) {
		return []byte(r.esc.Replace(string(b)))
	}
	return []byte(r.raw.Replace(string(b)))
}

// prefixOfPlaceholder reports whether s is a proper prefix of a known
// placeholder.
func (r *Restorer) prefixOfPlaceholder(s []byte) bool {
	if len(s) == 0 || len(s) >= r.maxLen || s[0] != '[' {
		return false
	}
	for _, ph := range r.phs {
		if len(s) < len(ph) && ph[:len(s)] == string(s) {
			return true
		}
	}
	return false
}

// heldSuffix returns where a trailing possible placeholder prefix starts
// (len(b) when there is none).
func (r *Restorer) heldSuffix(b []byte) int {
	lo := len(b) - r.maxLen + 1
	if lo < 0 {
		lo = 0
	}
	for i := len(b) - 1; i >= lo; i-- {
		if b[i] == '[' && r.prefixOfPlaceholder(b[i:]) {
			return i
		}
	}
	return len(b)
}

// NewStream starts restoring a streamed answer.
func (r *Restorer) NewStream() *RestoreStream {
	return &RestoreStream{r: r}
}

// maxEventBytes bounds one buffered SSE event; beyond it the stream
// passes through with only whole placeholders restored.
const maxEventBytes = 1 << 20

// RestoreStream restores placeholders in a streamed answer, including a
// placeholder split across two SSE events' text deltas or across network
// reads. For SSE it forwards every complete event at once and holds back
// at most the text of one incomplete placeholder (shorter than the
// longest placeholder), plus an incomplete event's bytes until its end
// arrives. Other streams (NDJSON, raw text) hold back at most the longest
// placeholder's length minus one byte.
type RestoreStream struct {
	r    *Restorer
	mode int // 0 undetermined, 1 SSE, 2 raw
	json bool
	buf  []byte
	// SSE: held text and the event it came from, as a template.
	hold            []byte
	tplPre, tplPost []byte
}

// Write takes the next chunk of the stream and returns the bytes to
// forward now.
func (s *RestoreStream) Write(chunk []byte) []byte {
	if s == nil || s.r == nil || len(s.r.phs) == 0 {
		return chunk
	}
	s.buf = append(s.buf, chunk...)
	if s.mode == 0 {
		t := bytes.TrimLeft(s.buf, " \t\r\n")
		if len(t) == 0 {
			return nil
		}
		switch sseStart(t) {
		case 1:
			s.mode = 1
		case 0:
			return nil // too few bytes to tell (at most 6 are held)
		default:
			s.mode, s.json = 2, t[0] == '{'
		}
	}
	if s.mode == 2 {
		return s.writeRaw(false)
	}
	var out []byte
	for {
		end, next := eventEnd(s.buf)
		if end < 0 {
			break
		}
		out = append(out, s.event(s.buf[:next])...)
		s.buf = s.buf[next:]
	}
	if len(s.buf) > maxEventBytes {
		// A runaway event: give up holding it, restore whole placeholders.
		out = append(out, s.flushHold()...)
		out = append(out, s.r.esc.Replace(string(s.buf))...)
		s.buf = s.buf[:0]
	}
	return out
}

// Flush returns whatever is still held at the end of the stream.
func (s *RestoreStream) Flush() []byte {
	if s == nil || s.r == nil || len(s.r.phs) == 0 {
		return nil
	}
	if s.mode == 2 {
		return s.writeRaw(true)
	}
	var out []byte
	if len(s.buf) > 0 {
		out = append(out, s.event(s.buf)...)
		s.buf = nil
	}
	return append(out, s.flushHold()...)
}

// sseStart tells whether a stream starts like SSE: 1 yes, -1 no, 0 not
// enough bytes yet.
func sseStart(b []byte) int {
	res := -1
	for _, p := range []string{"data:", "event:", "id:", "retry:", ":"} {
		if bytes.HasPrefix(b, []byte(p)) {
			return 1
		}
		if len(b) < len(p) && p[:len(b)] == string(b) {
			res = 0
		}
	}
	return res
}

// eventEnd finds the end of the first SSE event: the blank line. It
// returns the offset of the separator and the offset after it.
func eventEnd(b []byte) (int, int) {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		j := i + 1
		if j < len(b) && b[j] == '\r' {
			j++
		}
		if j < len(b) && b[j] == '\n' {
			return i, j + 1
		}
	}
	return -1, -1
}

func (s *RestoreStream) writeRaw(final bool) []byte {
	cut := len(s.buf)
	if !final {
		cut = s.r.heldSuffix(s.buf)
	}
	emit := s.buf[:cut]
	var out []byte
	if s.json {
		out = []byte(s.r.esc.Replace(string(emit)))
	} else {
		out = []byte(s.r.raw.Replace(string(emit)))
	}
	s.buf = append(s.buf[:0], s.buf[cut:]...)
	return out
}

// flushHold emits held text as a copy of the event it came from.
func (s *RestoreStream) flushHold() []byte {
	if len(s.hold) == 0 {
		return nil
	}
	out := make([]byte, 0, len(s.tplPre)+len(s.hold)+len(s.tplPost)+8)
	out = append(out, s.tplPre...)
	out = appendJSONString(out, string(s.hold))
	out = append(out, s.tplPost...)
	s.hold = s.hold[:0]
	return out
}

// event rewrites one SSE event (separator included).
func (s *RestoreStream) event(ev []byte) []byte {
	// Find the data line.
	ds, de := -1, -1
	for off := 0; off < len(ev); {
		nl := bytes.IndexByte(ev[off:], '\n')
		line := ev[off:]
		if nl >= 0 {
			line = ev[off : off+nl]
		}
		if bytes.HasPrefix(line, []byte("data:")) {
			ds = off + 5
			if ds < len(ev) && ev[ds] == ' ' {
				ds++
			}
			de = off + len(bytes.TrimRight(line, "\r"))
			break
		}
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	if ds < 0 || ds > de {
		return append(s.flushHold(), s.r.esc.Replace(string(ev))...)
	}
	data := ev[ds:de]
	ts, te, ok := stringAfterKey(data, "content", "text", "delta")
	if !ok {
		return append(s.flushHold(), s.r.esc.Replace(string(ev))...)
	}
	text, ok := decodeJSONString(data[ts:te], nil)
	if !ok {
		return append(s.flushHold(), s.r.esc.Replace(string(ev))...)
	}
	full := append(append([]byte(nil), s.hold...), text...)
	s.hold = s.hold[:0]
	cut := s.r.heldSuffix(full)
	s.hold = append(s.hold, full[cut:]...)
	restored := s.r.raw.Replace(string(full[:cut]))
	pre := ev[:ds+ts]
	post := ev[ds+te:]
	s.tplPre = append(s.tplPre[:0], pre...)
	s.tplPost = append(s.tplPost[:0], post...)
	out := make([]byte, 0, len(ev)+len(restored))
	out = append(out, s.r.esc.Replace(string(pre))...)
	out = appendJSONString(out, restored)
	out = append(out, s.r.esc.Replace(string(post))...)
	return out
}
