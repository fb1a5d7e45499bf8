package mockllm

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxWSFrame bounds one echoed frame.
const maxWSFrame = 1 << 20

// wsAccept is the Sec-WebSocket-Accept value for key (RFC 6455 4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// websocket answers GET /v1/realtime: an RFC 6455 handshake over HTTP/1.1,
// then every data frame is echoed back (unmasked), pings get pongs and a
// close is answered with a close.
func (s *Server) websocket(c *call) {
	r := c.r
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.ProtoMajor != 1 || !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") ||
		key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		openAIError(c, http.StatusBadRequest, "expected a WebSocket upgrade (HTTP/1.1, version 13)")
		return
	}
	hj, ok := c.w.(http.Hijacker)
	if !ok {
		openAIError(c, http.StatusInternalServerError, "cannot hijack")
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + wsAccept(key) + "\r\n"
	if p := r.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		resp += "Sec-WebSocket-Protocol: " + strings.TrimSpace(strings.Split(p, ",")[0]) + "\r\n"
	}
	resp += "\r\n"
	if _, err := brw.WriteString(resp); err != nil || brw.Flush() != nil {
		return
	}
	_ = wsEcho(conn, brw.Reader)
}

func wsEcho(conn net.Conn, br *bufio.Reader) error {
	for {
		_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
		fin, op, payload, err := readWSFrame(br)
		if err != nil {
			return err
		}
		switch op {
		case 0x8: // close
			_, _ = conn.Write(wsFrame(true, 0x8, payload))
			return nil
		case 0x9: // ping
			if _, err := conn.Write(wsFrame(true, 0xA, payload)); err != nil {
				return err
			}
		case 0xA: // pong
		default:
			if _, err := conn.Write(wsFrame(fin, op, payload)); err != nil {
				return err
			}
		}
	}
}

// readWSFrame reads one client frame, which must be masked.
func readWSFrame(r io.Reader) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	if h[1]&0x80 == 0 {
		return fin, op, nil, errors.New("mockllm: websocket: unmasked client frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > maxWSFrame {
		return fin, op, nil, errors.New("mockllm: websocket: frame too large")
	}
	var mask [4]byte
	if _, err = io.ReadFull(r, mask[:]); err != nil {
		return
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return fin, op, payload, nil
}

// wsFrame builds an unmasked (server) frame.
func wsFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op & 0x0f
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xffff:
		out = append(out, 126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	return append(out, payload...)
}
