package mitm

import (
	"encoding/binary"
	"io"
	"sync"
)

// WebSocketStage sees the messages of an intercepted WebSocket (for
// example the OpenAI Realtime API), reassembled from frames, as they are
// relayed. It must not block: the relay waits for it. fromClient tells the
// direction. Only text and binary messages are delivered, up to
// maxWSMessage bytes each (larger messages are counted in the flow as
// uninspected and passed through). payload is only valid during the call.
type WebSocketStage interface {
	Message(f *Flow, fromClient bool, text bool, payload []byte)
}

const maxWSMessage = 1 << 20

// wsTap sits on the upstream side of a relayed WebSocket: bytes the client
// sends are written to it, bytes the server sends are read from it. It
// parses both directions' frames without changing a byte, and ends the
// flow when goproxy closes it.
type wsTap struct {
	rw     io.ReadWriter
	closer io.Closer
	f      *Flow
	p      *Proxy
	up     wsParser // client → server (masked frames)
	down   wsParser // server → client
	once   sync.Once
}

func newWSTap(body io.ReadCloser, f *Flow, p *Proxy) (io.ReadWriteCloser, bool) {
	rw, ok := body.(io.ReadWriter)
	if !ok {
		return nil, false
	}
	t := &wsTap{rw: rw, closer: body, f: f, p: p}
	t.up.deliver = func(text bool, msg []byte) { p.wsMessage(f, true, text, msg) }
	t.down.deliver = func(text bool, msg []byte) { p.wsMessage(f, false, text, msg) }
	return t, true
}

func (t *wsTap) Write(b []byte) (int, error) {
	t.up.feed(b)
	t.f.mu.Lock()
	t.f.ReqBytes += int64(len(b))
	t.f.mu.Unlock()
	return t.rw.Write(b)
}

func (t *wsTap) Read(b []byte) (int, error) {
	n, err := t.rw.Read(b)
	if n > 0 {
		t.down.feed(b[:n])
		t.f.mu.Lock()
		t.f.RespBytes += int64(n)
		t.f.mu.Unlock()
	}
	return n, err
}

func (t *wsTap) Close() error {
	err := t.closer.Close()
	t.once.Do(func() { t.p.finish(t.f) })
	return err
}

func (p *Proxy) wsMessage(f *Flow, fromClient, text bool, msg []byte) {
	defer func() {
		if r := recover(); r != nil {
			p.log.WithField("event_id", f.ID).Errorf("mitm: websocket stage panicked: %v", r)
		}
	}()
	for _, s := range p.pipe.ws {
		s.Message(f, fromClient, text, msg)
	}
}

// wsParser reassembles RFC 6455 frames from a byte stream, incrementally
// and with bounded memory. It never fails: a malformed stream simply stops
// being parsed (the bytes still pass through untouched).
type wsParser struct {
	buf     []byte
	msg     []byte
	msgText bool
	inMsg   bool
	skip    bool // current message too large
	broken  bool
	deliver func(text bool, msg []byte)
}

func (w *wsParser) feed(b []byte) {
	if w.broken {
		return
	}
	w.buf = append(w.buf, b...)
	for !w.broken {
		n := w.frame()
		if n == 0 {
			break
		}
		w.buf = w.buf[n:]
	}
	if len(w.buf) == 0 {
		w.buf = nil
	} else if len(w.buf) > maxWSMessage+16 {
		// A frame larger than we keep: stop inspecting this connection.
		w.broken = true
		w.buf = nil
	}
}

// frame consumes one complete frame from w.buf and returns its length, or
// 0 when more bytes are needed.
func (w *wsParser) frame() int {
	b := w.buf
	if len(b) < 2 {
		return 0
	}
	fin := b[0]&0x80 != 0
	op := b[0] & 0x0f
	masked := b[1]&0x80 != 0
	plen := uint64(b[1] & 0x7f)
	h := 2
	switch plen {
	case 126:
		if len(b) < 4 {
			return 0
		}
		plen = uint64(binary.BigEndian.Uint16(b[2:4]))
		h = 4
	case 127:
		if len(b) < 10 {
			return 0
		}
		plen = binary.BigEndian.Uint64(b[2:10])
		h = 10
	}
	if plen > maxWSMessage {
		w.broken = true
		return 0
	}
	var key [4]byte
	if masked {
		if len(b) < h+4 {
			return 0
		}
		copy(key[:], b[h:h+4])
		h += 4
	}
	total := h + int(plen)
	if len(b) < total {
		return 0
	}
	payload := b[h:total]
	if op >= 0x8 { // control frame: ping, pong, close
		return total
	}
	switch op {
	case 0x1, 0x2:
		w.inMsg, w.msgText, w.skip = true, op == 0x1, false
		w.msg = w.msg[:0]
	case 0x0:
		if !w.inMsg {
			return total
		}
	default:
		return total
	}
	if !w.skip {
		if len(w.msg)+len(payload) > maxWSMessage {
			w.skip = true
			w.msg = nil
		} else {
			start := len(w.msg)
			w.msg = append(w.msg, payload...)
			if masked {
				for i := range payload {
					w.msg[start+i] ^= key[i%4]
				}
			}
		}
	}
	if fin {
		if !w.skip && w.deliver != nil {
			w.deliver(w.msgText, w.msg)
		}
		w.inMsg = false
		w.msg = w.msg[:0]
	}
	return total
}
