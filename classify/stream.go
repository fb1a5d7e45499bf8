package classify

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"mime"
	"strings"
)

// Stream formats.
const (
	fmtNone = iota
	fmtSSE
	fmtNDJSON
	fmtAWS
)

// streamMaxEvent bounds one buffered event (SSE event, NDJSON line, AWS
// frame). Larger events are skipped and counted.
const streamMaxEvent = 1 << 20

func streamFormatFor(mt, shape string) int {
	switch mt {
	case "text/event-stream":
		return fmtSSE
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/stream+json", "application/json-seq":
		return fmtNDJSON
	case "application/vnd.amazon.eventstream":
		return fmtAWS
	}
	if shape == "" {
		return fmtNone
	}
	switch {
	case shape == "ollama" || shape == "cohere.v1":
		return fmtNDJSON
	case strings.HasPrefix(shape, "bedrock."):
		return fmtAWS
	}
	return fmtSSE
}

// StreamDecoder follows a streamed response (SSE, NDJSON or AWS event
// stream) written to it in arbitrary pieces, reports output text deltas
// through OnText as soon as each event is complete, and keeps token usage.
// It is not safe for concurrent use. Write never fails.
type StreamDecoder struct {
	// OnText, when set, is called with each output text delta.
	OnText func(string)

	shape  string
	format int
	buf    []byte

	// SSE state.
	evName   string
	data     []byte
	hasData  bool
	skipLine bool // discarding the rest of an oversize line
	skipEv   bool // discarding the rest of an oversize event
	// AWS state.
	skipN  int  // bytes of an oversize frame still to discard
	resync bool // looking for a valid prelude after a bad one

	jp jsonParser // recycled across events

	events, oversize, bad int
	usage                 Usage

	cgLen    int  // chatgpt.web: length of the text seen so far
	cgAppend bool // chatgpt.web: the last patch path was the message text
}

// NewStreamDecoder returns a decoder for a response of the given request
// shape ("openai.chat", "bedrock.converse", ...) and Content-Type.
func NewStreamDecoder(shape, contentType string) *StreamDecoder {
	mt, _, _ := mime.ParseMediaType(contentType)
	return &StreamDecoder{shape: shape, format: streamFormatFor(mt, shape)}
}

// Usage returns the token usage seen so far.
func (d *StreamDecoder) Usage() Usage { return d.usage }

// Events returns the number of complete events decoded.
func (d *StreamDecoder) Events() int { return d.events }

// Oversize returns the number of events skipped for being larger than 1 MiB.
func (d *StreamDecoder) Oversize() int { return d.oversize }

// BadFrames returns the number of AWS event-stream frames with a bad CRC
// or header (and malformed SSE/NDJSON events are not counted here).
func (d *StreamDecoder) BadFrames() int { return d.bad }

// Write consumes the next piece of the stream.
func (d *StreamDecoder) Write(p []byte) (n int, err error) {
	n = len(p)
	defer func() {
		if recover() != nil { // never let a decoder bug break the proxied stream
			d.buf, d.data = nil, nil
		}
	}()
	d.write(p)
	return n, nil
}

func (d *StreamDecoder) write(p []byte) {
	if d.format == fmtAWS {
		d.writeAWS(p)
	} else {
		d.writeLines(p)
	}
}

// Close flushes a final event not terminated by a blank line or newline.
func (d *StreamDecoder) Close() {
	if d.format == fmtAWS {
		return
	}
	if len(d.buf) > 0 && !d.skipLine {
		d.line(d.buf)
	}
	d.buf = d.buf[:0]
	if d.format == fmtSSE {
		d.line(nil)
	}
}

func (d *StreamDecoder) writeLines(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if d.skipLine {
				return
			}
			if len(d.buf)+len(p) > streamMaxEvent {
				d.skipLine = true
				d.buf = d.buf[:0]
				d.oversize++
				d.skipEv = d.format == fmtSSE
				return
			}
			d.buf = append(d.buf, p...)
			return
		}
		seg := p[:i]
		p = p[i+1:]
		if d.skipLine {
			d.skipLine = false
			continue
		}
		if len(d.buf)+len(seg) > streamMaxEvent {
			d.buf = d.buf[:0]
			d.oversize++
			d.skipEv = d.format == fmtSSE
			continue
		}
		if len(d.buf) > 0 {
			d.buf = append(d.buf, seg...)
			seg = d.buf
		}
		d.line(seg)
		d.buf = d.buf[:0]
	}
}

func (d *StreamDecoder) line(l []byte) {
	l = bytes.TrimSuffix(l, []byte("\r"))
	if d.format == fmtNDJSON {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			return
		}
		d.events++
		if v, err := d.jp.parse(l); err == nil {
			d.handle("", v)
		}
		return
	}
	// SSE.
	if len(l) == 0 {
		if d.hasData && !d.skipEv {
			d.events++
			data := bytes.TrimSpace(d.data)
			if !bytes.Equal(data, []byte("[DONE]")) {
				if v, err := d.jp.parse(data); err == nil {
					d.handle(d.evName, v)
				}
			}
		}
		d.evName, d.data, d.hasData, d.skipEv = "", d.data[:0], false, false
		return
	}
	if l[0] == ':' || d.skipEv {
		return
	}
	field, val, _ := bytes.Cut(l, []byte(":"))
	val = bytes.TrimPrefix(val, []byte(" "))
	switch string(field) {
	case "event":
		d.evName = string(val)
	case "data":
		if len(d.data)+len(val)+1 > streamMaxEvent {
			d.oversize++
			d.skipEv = true
			d.data = d.data[:0]
			return
		}
		if d.hasData {
			d.data = append(d.data, '\n')
		}
		d.data = append(d.data, val...)
		d.hasData = true
	}
}

// writeAWS decodes application/vnd.amazon.eventstream frames:
// total length (4) | headers length (4) | prelude CRC (4) | headers |
// payload | message CRC (4), all big-endian, CRC-32 IEEE.
func (d *StreamDecoder) writeAWS(p []byte) {
	if d.skipN > 0 {
		k := min(d.skipN, len(p))
		d.skipN -= k
		p = p[k:]
	}
	d.buf = append(d.buf, p...)
	off := 0
	for len(d.buf)-off >= 12 {
		b := d.buf[off:]
		total := int(binary.BigEndian.Uint32(b[0:4]))
		hlen := int(binary.BigEndian.Uint32(b[4:8]))
		if crc32.ChecksumIEEE(b[0:8]) != binary.BigEndian.Uint32(b[8:12]) || total < 16 || hlen > total-16 {
			if !d.resync {
				d.bad++
				d.resync = true
			}
			off++
			continue
		}
		d.resync = false
		if total > streamMaxEvent {
			d.oversize++
			if len(b) >= total {
				off += total
				continue
			}
			d.skipN = total - len(b)
			off = len(d.buf)
			break
		}
		if len(b) < total {
			break
		}
		frame := b[:total]
		off += total
		if crc32.ChecksumIEEE(frame[:total-4]) != binary.BigEndian.Uint32(frame[total-4:]) {
			d.bad++
			continue
		}
		evType, msgType, ok := awsHeaders(frame[12 : 12+hlen])
		if !ok {
			d.bad++
			continue
		}
		d.events++
		if msgType != "" && msgType != "event" {
			continue
		}
		if v, err := d.jp.parse(frame[12+hlen : total-4]); err == nil {
			d.handle(evType, v)
		}
	}
	n := copy(d.buf, d.buf[off:])
	d.buf = d.buf[:n]
	if d.resync && len(d.buf) > streamMaxEvent {
		d.buf = d.buf[len(d.buf)-11:]
	}
}

// awsHeaders returns :event-type and :message-type.
func awsHeaders(h []byte) (evType, msgType string, ok bool) {
	for len(h) > 0 {
		nl := int(h[0])
		if len(h) < 1+nl+1 {
			return "", "", false
		}
		name := string(h[1 : 1+nl])
		typ := h[1+nl]
		h = h[2+nl:]
		var size int
		switch typ {
		case 0, 1:
			size = 0
		case 2:
			size = 1
		case 3:
			size = 2
		case 4:
			size = 4
		case 5, 8:
			size = 8
		case 9:
			size = 16
		case 6, 7:
			if len(h) < 2 {
				return "", "", false
			}
			size = 2 + int(binary.BigEndian.Uint16(h))
		default:
			return "", "", false
		}
		if len(h) < size {
			return "", "", false
		}
		if typ == 7 {
			switch name {
			case ":event-type":
				evType = string(h[2:size])
			case ":message-type":
				msgType = string(h[2:size])
			}
		}
		h = h[size:]
	}
	return evType, msgType, true
}
