package test

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/test/mockllm"
)

// wsFrame builds one masked client text frame.
func wsFrame(payload []byte) []byte {
	var h []byte
	switch n := len(payload); {
	case n < 126:
		h = []byte{0x81, 0x80 | byte(n)}
	case n < 65536:
		h = []byte{0x81, 0x80 | 126, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h = make([]byte, 10)
		h[0], h[1] = 0x81, 0x80|127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	out := append(h, key[:]...)
	for i, b := range payload {
		out = append(out, b^key[i%4])
	}
	return out
}

// readWSText reads one unmasked server text frame.
func readWSText(r *bufio.Reader) (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		io.ReadFull(r, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		io.ReadFull(r, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return string(p), err
}

// TestRealtimeWebSocketInspected: an OpenAI Realtime session relayed
// through the proxy has its client events scanned and its usage read from
// server events; bytes pass unchanged both ways.
func TestRealtimeWebSocketInspected(t *testing.T) {
	m := startMock(t, mockllm.Options{})
	in := startAigress(t, baseConfig(t, m, ""), nil)
	c, err := net.DialTimeout("tcp", in.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", err, resp)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "api.openai.com", RootCAs: in.caPool(t), NextProtos: []string{"http/1.1"}})
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(tc, "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\nHost: api.openai.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nAuthorization: Bearer sk-rt-test-not-real\r\n\r\n", base64.StdEncoding.EncodeToString(key))
	tr := bufio.NewReader(tc)
	up, err := http.ReadResponse(tr, nil)
	if err != nil || up.StatusCode != 101 {
		t.Fatalf("upgrade: %v %+v", err, up)
	}
	msgs := []string{
		`{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"deploy with AKIAIOSFODNN7EXAMPLQ please"}]}}`,
		// The mock echoes: this comes back as a server event with usage.
		`{"type":"response.done","response":{"usage":{"input_tokens":21,"output_tokens":9,"input_token_details":{"cached_tokens":5}}}}`,
	}
	for _, msg := range msgs {
		if _, err := tc.Write(wsFrame([]byte(msg))); err != nil {
			t.Fatal(err)
		}
		got, err := readWSText(tr)
		if err != nil || got != msg {
			t.Fatalf("echo: %v %q", err, got)
		}
	}
	tc.Write([]byte{0x88, 0x80, 1, 2, 3, 4}) // close
	tc.Close()
	e := in.events(t, 1)[0]
	if e.Endpoint != "realtime" || e.Findings["aws_access_key"] != 1 || e.Response == nil ||
		e.Response.Tokens.Input != 21 || e.Response.Tokens.Output != 9 || e.Response.Tokens.Cached != 5 {
		t.Fatalf("realtime event: endpoint %q findings %v response %+v", e.Endpoint, e.Findings, e.Response)
	}
	if strings.Contains(in.rawTrail(t), "AKIAIOSFODNN7EXAMPLQ") {
		t.Fatal("the key reached the audit trail")
	}
}
