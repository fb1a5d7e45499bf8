package mitm

import (
	"bytes"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/aigress/aigress/classify"
)

// Flow kinds, as recorded by audit.
const (
	KindIntercept    = "intercept"
	KindTunnel       = "tunnel"
	KindConnectBlock = "connect_block"
)

// Modes say how a connection reached aigress.
const (
	ModeExplicit    = "explicit"
	ModeTransparent = "transparent"
	ModeEBPF        = "ebpf"
)

// Process is the local program behind a connection, when known (eBPF mode).
type Process struct {
	PID       uint32
	UID       uint32
	Comm      string
	Cgroup    string
	Unit      string
	Container string
}

// Client is who opened the connection.
type Client struct {
	Addr    netip.AddrPort
	Process *Process
}

// Dest is where the client wanted to go.
type Dest struct {
	Host     string         // host name (CONNECT host, SNI or Host header), no port
	Port     int            // destination port
	SNI      string         // TLS server name from the client, when seen
	OrigAddr netip.AddrPort // original destination (transparent and eBPF modes)
}

// Flow carries everything known about one exchange: one intercepted HTTP
// request and its response, or one tunnelled or refused connection.
//
// Ownership: mitm creates the Flow and calls the stages in order from the
// goroutine serving the request; stream filters run on the goroutine that
// copies the response body. Stages must not keep the Flow after Done.
type Flow struct {
	ID    string
	Start time.Time
	Kind  string
	Mode  string

	Client Client
	Dest   Dest
	// Connect is the CONNECT request (explicit mode) or a synthesized one
	// (transparent mode). Its headers carry Proxy-Authorization.
	Connect *http.Request

	// In is the request as received. Read-only: its Body has been consumed
	// into InBody. Stages change Out.
	In *http.Request
	// InBody holds the raw request body as received (Content-Encoding not
	// removed), up to the body limit. When the body was larger, InBody is
	// nil, BodyTooLarge is true and the body streams through uninspected.
	InBody       []byte
	BodyTooLarge bool
	// InBodyPrefix is the first bytes (up to 64 KiB) of a body too large
	// to inspect, for facts found near the start (the model).
	InBodyPrefix []byte
	// Out is what goes upstream. Use SetOutBody to replace its body.
	Out *http.Request

	// Response, when set by a Request stage, short-circuits the exchange:
	// the upstream is never contacted. After the upstream answered it holds
	// the upstream's response (headers; its body streams through filters).
	Response     *http.Response
	ShortCircuit bool

	Status    int
	ReqBytes  int64
	RespBytes int64

	UpstreamStart time.Time
	UpstreamDone  time.Time // headers received
	FirstByte     time.Time // first response body byte to the client
	End           time.Time
	Err           error

	filters []StreamFilter

	mu     sync.Mutex
	values map[any]any
	done   sync.Once
}

// Value returns a stage's value stored under key.
func (f *Flow) Value(key any) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.values[key]
}

// SetValue stores a stage's value under key (use an unexported key type).
func (f *Flow) SetValue(key, v any) {
	f.mu.Lock()
	if f.values == nil {
		f.values = map[any]any{}
	}
	f.values[key] = v
	f.mu.Unlock()
}

// SetOutBody replaces the outgoing body with b, sent without
// Content-Encoding, and fixes Content-Length.
func (f *Flow) SetOutBody(b []byte) {
	if f.Out == nil {
		return
	}
	f.Out.Body = io.NopCloser(bytes.NewReader(b))
	f.Out.ContentLength = int64(len(b))
	f.Out.Header.Set("Content-Length", strconv.Itoa(len(b)))
	f.Out.Header.Del("Content-Encoding")
	f.Out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// AddStreamFilter appends a filter on the response body. Filters run in
// the order they were added.
func (f *Flow) AddStreamFilter(s StreamFilter) { f.filters = append(f.filters, s) }

// PrependStreamFilter puts a filter first, so that it sees the upstream's
// bytes before any filter added earlier transforms them (inspection runs
// after enforce in the stage order, but must read what the model sent).
func (f *Flow) PrependStreamFilter(s StreamFilter) {
	f.filters = append([]StreamFilter{s}, f.filters...)
}

// Reply short-circuits the flow with a response built from status, header
// and body.
func (f *Flow) Reply(status int, header http.Header, body []byte) {
	f.Response = NewResponse(f.In, status, header, body)
	f.ShortCircuit = true
}

// NewResponse builds a complete response to r (Content-Length set), for
// short-circuits and CONNECT refusals.
func NewResponse(r *http.Request, status int, header http.Header, body []byte) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{
		StatusCode:    status,
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}
}

// ConnectAction is the verdict of the Connect phase.
type ConnectAction int

// Connect verdicts.
const (
	Tunnel    ConnectAction = iota // pass bytes through, never decrypted
	Intercept                      // terminate TLS with a minted leaf and inspect
	Reject                         // answer with Verdict.Response and close
)

// ConnectVerdict is what a Connect stage decides.
type ConnectVerdict struct {
	Action ConnectAction
	// Response is sent to the client on Reject (403, 407, ...).
	Response *http.Response
}

// StreamFilter sees the response body chunk by chunk. Chunk returns the
// bytes to forward now: a filter may hold bytes back, but only within a
// bounded window it owns, and must return them from End at the latest.
// Filters that only observe return p unchanged, and should say so with a
// method PreservesBody() bool returning true: the response then keeps its
// Content-Length instead of being re-chunked, and observers are handed the
// proxy's own buffer, so they must not keep p past the call. A filter with a method
// Finished() bool that returns true ends the body after the bytes it
// returned: the upstream is closed (used to stop a blocked stream).
type StreamFilter interface {
	Chunk(p []byte) []byte
	End() []byte
}

// Stages. A stage implements only the phases it needs; the Pipeline calls
// them in the order given to it (DESIGN.md section 3).
type (
	// ConnectStage decides intercept, tunnel or reject for a connection.
	// The first stage that returns ok=true decides.
	ConnectStage interface {
		Connect(f *Flow) (v ConnectVerdict, ok bool)
	}
	// RequestStage inspects and may change f.Out, or short-circuit by
	// calling f.Reply. Later request stages are skipped once a stage has
	// short-circuited.
	RequestStage interface{ Request(f *Flow) }
	// ResponseStage sees the response headers and may add stream filters.
	ResponseStage interface{ Response(f *Flow) }
	// DoneStage is called exactly once per flow, success or error.
	DoneStage interface{ Done(f *Flow) }
)

// Pipeline is the ordered list of stages. It is built once in
// cmd/aigress/stages.go.
type Pipeline struct {
	connect  []ConnectStage
	request  []RequestStage
	response []ResponseStage
	ws       []WebSocketStage
	done     []DoneStage
}

// NewPipeline sorts stages into their phases, keeping their order.
func NewPipeline(stages ...any) *Pipeline {
	p := &Pipeline{}
	for _, s := range stages {
		if c, ok := s.(ConnectStage); ok {
			p.connect = append(p.connect, c)
		}
		if r, ok := s.(RequestStage); ok {
			p.request = append(p.request, r)
		}
		if r, ok := s.(ResponseStage); ok {
			p.response = append(p.response, r)
		}
		if w, ok := s.(WebSocketStage); ok {
			p.ws = append(p.ws, w)
		}
		if d, ok := s.(DoneStage); ok {
			p.done = append(p.done, d)
		}
	}
	return p
}

func (p *Pipeline) runConnect(f *Flow) ConnectVerdict {
	for _, s := range p.connect {
		if v, ok := s.Connect(f); ok {
			return v
		}
	}
	return ConnectVerdict{Action: Tunnel}
}

func (p *Pipeline) runRequest(f *Flow) {
	for _, s := range p.request {
		if f.ShortCircuit {
			return
		}
		s.Request(f)
	}
}

func (p *Pipeline) runResponse(f *Flow) {
	for _, s := range p.response {
		s.Response(f)
	}
}

// Catalog lookups used by the default connect decision.
type Catalog interface {
	Lookup(host string) (classify.Service, bool)
}
