package mockllm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of plain values are marshalled here
	}
	return b
}

func bedrockErrorType(status int) string {
	switch status {
	case 400:
		return "ValidationException"
	case 403:
		return "AccessDeniedException"
	case 404:
		return "ResourceNotFoundException"
	case 429:
		return "ThrottlingException"
	case 503:
		return "ServiceUnavailableException"
	}
	return "InternalServerException"
}

// bedrock serves /model/{id}/converse and /model/{id}/converse-stream.
func bedrock(c *call) {
	if c.status != 0 {
		c.w.Header().Set("x-amzn-ErrorType", bedrockErrorType(c.status))
		writeJSON(c.w, c.status, map[string]any{"message": mockMessage(c.status)})
		return
	}
	rest := strings.TrimPrefix(c.r.URL.Path, "/model/")
	usage := map[string]any{
		"inputTokens": UsageInput, "outputTokens": UsageOutput, "totalTokens": UsageInput + UsageOutput,
		"cacheReadInputTokens": UsageCached, "cacheWriteInputTokens": 0,
	}
	switch {
	case strings.HasSuffix(rest, "/converse"):
		writeJSON(c.w, 200, map[string]any{
			"output":     map[string]any{"message": map[string]any{"role": "assistant", "content": []any{map[string]any{"text": c.reply}}}},
			"stopReason": "end_turn", "usage": usage, "metrics": map[string]any{"latencyMs": 42},
		})
	case strings.HasSuffix(rest, "/converse-stream"):
		c.w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		c.w.Header().Set("x-amzn-RequestId", "mock-request")
		c.w.WriteHeader(200)
		c.flush()
		send := func(event string, payload map[string]any) {
			_, _ = c.w.Write(EncodeEvent(event, mustJSON(payload)))
			c.flush()
		}
		send("messageStart", map[string]any{"role": "assistant"})
		for _, piece := range splitReply(c.reply, c.chunks) {
			if !c.pace() {
				return
			}
			send("contentBlockDelta", map[string]any{"contentBlockIndex": 0, "delta": map[string]any{"text": piece}})
		}
		send("contentBlockStop", map[string]any{"contentBlockIndex": 0})
		send("messageStop", map[string]any{"stopReason": "end_turn"})
		send("metadata", map[string]any{"usage": usage, "metrics": map[string]any{"latencyMs": 42}})
	default:
		c.w.Header().Set("x-amzn-ErrorType", "UnknownOperationException")
		writeJSON(c.w, http.StatusNotFound, map[string]any{"message": "unknown operation " + c.r.URL.Path})
	}
}

// EventStreamMessage is one frame of application/vnd.amazon.eventstream.
type EventStreamMessage struct {
	Headers map[string]string // string-typed headers (":event-type", ...)
	Payload []byte
}

// EncodeEvent builds one event-stream frame with the headers AWS sends for
// a Converse stream event: :event-type, :content-type application/json,
// :message-type event.
func EncodeEvent(eventType string, payload []byte) []byte {
	return EncodeMessage([][2]string{
		{":event-type", eventType},
		{":content-type", "application/json"},
		{":message-type", "event"},
	}, payload)
}

// EncodeMessage builds one frame with string headers (in order):
// total length, headers length, prelude CRC32, headers, payload, message
// CRC32 (IEEE, big-endian).
func EncodeMessage(headers [][2]string, payload []byte) []byte {
	var hb bytes.Buffer
	for _, h := range headers {
		hb.WriteByte(byte(len(h[0])))
		hb.WriteString(h[0])
		hb.WriteByte(7) // string
		_ = binary.Write(&hb, binary.BigEndian, uint16(len(h[1])))
		hb.WriteString(h[1])
	}
	total := 12 + hb.Len() + len(payload) + 4
	out := make([]byte, 0, total)
	out = binary.BigEndian.AppendUint32(out, uint32(total))
	out = binary.BigEndian.AppendUint32(out, uint32(hb.Len()))
	out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[:8]))
	out = append(out, hb.Bytes()...)
	out = append(out, payload...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out))
}

// maxFrame bounds a decoded frame (AWS allows 16 MB).
const maxFrame = 16 << 20

// ReadEventStreamMessage reads and checks one frame (both CRCs). It returns
// io.EOF at a clean end of stream.
func ReadEventStreamMessage(r io.Reader) (EventStreamMessage, error) {
	var prelude [12]byte
	if _, err := io.ReadFull(r, prelude[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return EventStreamMessage{}, fmt.Errorf("mockllm: eventstream: short prelude: %w", err)
		}
		return EventStreamMessage{}, err
	}
	total := binary.BigEndian.Uint32(prelude[0:4])
	hlen := binary.BigEndian.Uint32(prelude[4:8])
	if crc32.ChecksumIEEE(prelude[:8]) != binary.BigEndian.Uint32(prelude[8:12]) {
		return EventStreamMessage{}, errors.New("mockllm: eventstream: prelude CRC mismatch")
	}
	if total < 16 || total > maxFrame || uint64(hlen) > uint64(total)-16 {
		return EventStreamMessage{}, fmt.Errorf("mockllm: eventstream: bad lengths total=%d headers=%d", total, hlen)
	}
	frame := make([]byte, total)
	copy(frame, prelude[:])
	if _, err := io.ReadFull(r, frame[12:]); err != nil {
		return EventStreamMessage{}, fmt.Errorf("mockllm: eventstream: short frame: %w", err)
	}
	if crc32.ChecksumIEEE(frame[:total-4]) != binary.BigEndian.Uint32(frame[total-4:]) {
		return EventStreamMessage{}, errors.New("mockllm: eventstream: message CRC mismatch")
	}
	msg := EventStreamMessage{Headers: map[string]string{}, Payload: frame[12+hlen : total-4]}
	h := frame[12 : 12+hlen]
	for len(h) > 0 {
		nl := int(h[0])
		if len(h) < 1+nl+1 {
			return msg, errors.New("mockllm: eventstream: truncated header")
		}
		name := string(h[1 : 1+nl])
		typ := h[1+nl]
		h = h[2+nl:]
		var size int
		switch typ {
		case 0, 1: // bool true / false
			size = 0
		case 2: // byte
			size = 1
		case 3: // int16
			size = 2
		case 4: // int32
			size = 4
		case 5, 8: // int64, timestamp
			size = 8
		case 9: // uuid
			size = 16
		case 6, 7: // bytes, string
			if len(h) < 2 {
				return msg, errors.New("mockllm: eventstream: truncated header value")
			}
			size = int(binary.BigEndian.Uint16(h[:2]))
			h = h[2:]
		default:
			return msg, fmt.Errorf("mockllm: eventstream: header type %d", typ)
		}
		if len(h) < size {
			return msg, errors.New("mockllm: eventstream: truncated header value")
		}
		if typ == 7 {
			msg.Headers[name] = string(h[:size])
		}
		h = h[size:]
	}
	return msg, nil
}

// DecodeEventStream reads frames until EOF.
func DecodeEventStream(r io.Reader) ([]EventStreamMessage, error) {
	var out []EventStreamMessage
	for {
		m, err := ReadEventStreamMessage(r)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}
