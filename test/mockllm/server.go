package mockllm

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Deterministic usage reported by every API shape, so tests can assert
// exact token counts.
const (
	UsageInput     = 11
	UsageOutput    = 7
	UsageCached    = 3
	UsageReasoning = 2
	// EmbeddingDims is the length of every embedding vector.
	EmbeddingDims = 8
	// DefaultReply is the model output when X-Mock-Reply is absent.
	DefaultReply = "Hello from the mock model."
	// DefaultModel is used when the request names no model.
	DefaultModel = "mock-model"
)

// Per-request control headers.
const (
	HeaderReply   = "X-Mock-Reply"    // model output text
	HeaderChunks  = "X-Mock-Chunks"   // number of text deltas
	HeaderDelayMs = "X-Mock-Delay-Ms" // pause before each delta, ms
	HeaderStatus  = "X-Mock-Status"   // answer this HTTP error status in the provider's error shape
)

// maxBody bounds recorded request bodies.
const maxBody = 64 << 20

// Options configure Start.
type Options struct {
	// Hosts are extra names (or IPs) in the leaf certificate, besides
	// localhost, 127.0.0.1 and ::1.
	Hosts []string
	// ChunkDelay is the pause before each streamed text delta (default 20ms).
	ChunkDelay time.Duration
	// Chunks is the number of text deltas of a stream (default 5).
	Chunks int
}

// Recorded is one request as the mock received it.
type Recorded struct {
	Method string
	Host   string
	Path   string
	Query  string // raw query
	Header http.Header
	Body   []byte
	Proto  string // "HTTP/1.1" or "HTTP/2.0"
}

// Server is a running mock LLM upstream.
type Server struct {
	opts  Options
	ca    *testCA
	ln    net.Listener
	srv   *http.Server
	mu    sync.Mutex
	reqs  []Recorded
	conns map[net.Conn]struct{} // hijacked WebSocket connections
	wg    sync.WaitGroup
}

// Start serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) on 127.0.0.1:0 with a
// leaf from a fresh in-memory test CA.
func Start(opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mockllm: listen: %w", err)
	}
	return StartOn(ln, opts)
}

// serveTLS starts an HTTPS server for h on 127.0.0.1:0.
func serveTLS(leaf tls.Certificate, h http.Handler, out **http.Server, wg *sync.WaitGroup) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mockllm: listen: %w", err)
	}
	return serveTLSOn(ln, leaf, h, out, wg), nil
}

// Addr is the listening address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is "https://127.0.0.1:PORT".
func (s *Server) URL() string { return "https://" + s.Addr() }

// CAPEM is the test CA certificate, to trust the mock.
func (s *Server) CAPEM() []byte { return bytes.Clone(s.ca.pem) }

// WriteCA writes CAPEM to path (mode 0644).
func (s *Server) WriteCA(path string) error {
	if err := os.WriteFile(path, s.ca.pem, 0o644); err != nil {
		return fmt.Errorf("mockllm: write CA: %w", err)
	}
	return nil
}

// Client returns an HTTP client that trusts the mock and tries HTTP/2.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: poolOf(s.ca.pem)},
		ForceAttemptHTTP2: true,
		Proxy:             nil,
	}}
}

// Requests returns a copy of what the mock received, in arrival order.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Recorded, len(s.reqs))
	for i, r := range s.reqs {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// Reset forgets the recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	s.reqs = nil
	s.mu.Unlock()
}

// Close stops the server and closes open WebSocket connections.
func (s *Server) Close() error {
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.srv.Close()
	s.wg.Wait()
	return err
}

// call is one request being answered.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	body   []byte
	reply  string
	chunks int
	delay  time.Duration
	status int
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, Recorded{
		Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, Proto: r.Proto,
	})
	s.mu.Unlock()

	c := &call{w: w, r: r, body: body, reply: DefaultReply, chunks: s.opts.Chunks, delay: s.opts.ChunkDelay}
	if v, ok := r.Header[http.CanonicalHeaderKey(HeaderReply)]; ok && len(v) > 0 {
		c.reply = v[0]
	}
	if n, err := strconv.Atoi(r.Header.Get(HeaderChunks)); err == nil && n > 0 {
		c.chunks = min(n, 10000)
	}
	if n, err := strconv.Atoi(r.Header.Get(HeaderDelayMs)); err == nil && n >= 0 {
		c.delay = time.Duration(min(n, 60000)) * time.Millisecond
	}
	if n, err := strconv.Atoi(r.Header.Get(HeaderStatus)); err == nil && n >= 400 && n <= 599 {
		c.status = n
	}

	p := r.URL.Path
	switch {
	case p == "/v1/realtime" && r.Method == http.MethodGet:
		s.websocket(c)
	case p == "/v1/models" && r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]any{"object": "list", "data": []any{map[string]any{"id": DefaultModel, "object": "model", "owned_by": "mockllm"}}})
	case r.Method != http.MethodPost:
		openAIError(c, http.StatusNotFound, "no route for "+r.Method+" "+p)
	case p == "/v1/chat/completions" || p == "/chat/completions":
		openAIChat(c)
	case p == "/v1/responses" || p == "/responses":
		openAIResponses(c)
	case p == "/v1/embeddings" || p == "/embeddings":
		openAIEmbeddings(c)
	case p == "/v1/messages":
		anthropicMessages(c)
	case strings.HasPrefix(p, "/v1beta/models/") || strings.HasPrefix(p, "/v1/models/"):
		gemini(c)
	case strings.HasPrefix(p, "/model/"):
		bedrock(c)
	case p == "/api/chat" || p == "/api/generate":
		ollama(c)
	default:
		openAIError(c, http.StatusNotFound, "no route for POST "+p)
	}
}

// splitReply cuts s into n pieces of near-equal rune counts (fewer when s
// has fewer than n runes, and one empty piece for an empty s).
func splitReply(s string, n int) []string {
	runes := utf8.RuneCountInString(s)
	if runes == 0 {
		return []string{""}
	}
	n = min(n, runes)
	out := make([]string, 0, n)
	rs := []rune(s)
	for i := 0; i < n; i++ {
		a, b := i*len(rs)/n, (i+1)*len(rs)/n
		out = append(out, string(rs[a:b]))
	}
	return out
}

// jsonBody decodes the request body into a generic map (nil on error).
func (c *call) jsonBody() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(c.body, &m)
	return m
}

func (c *call) model(m map[string]any) string {
	if s, ok := m["model"].(string); ok && s != "" {
		return s
	}
	return DefaultModel
}

// pace sleeps for the chunk delay; false when the client went away.
func (c *call) pace() bool {
	if c.delay <= 0 {
		return c.r.Context().Err() == nil
	}
	t := time.NewTimer(c.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.r.Context().Done():
		return false
	}
}

func (c *call) flush() {
	if f, ok := c.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *call) startSSE() {
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	c.flush()
}

// sse writes one event (event may be empty) and flushes it.
func (c *call) sse(event string, data any) {
	var b []byte
	switch d := data.(type) {
	case string:
		b = []byte(d)
	default:
		b, _ = json.Marshal(d)
	}
	var buf bytes.Buffer
	if event != "" {
		buf.WriteString("event: " + event + "\n")
	}
	buf.WriteString("data: ")
	buf.Write(b)
	buf.WriteString("\n\n")
	_, _ = c.w.Write(buf.Bytes())
	c.flush()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
