package main

// This file is the one place where the proxy's stages and their order are
// wired (DESIGN.md section 3):
//
//	attribution → classify → enforce → (upstream) → response inspection → audit
//
// Audit is always last and always runs: mitm calls Done exactly once per
// flow, on success, block, short-circuit and error alike.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/classify"
	"github.com/aigress/aigress/enforce"
	"github.com/aigress/aigress/mitm"
)

// pipeline builds the stage list in its fixed order.
func (a *app) pipeline() *mitm.Pipeline {
	return mitm.NewPipeline(
		&attributionStage{a},
		&classifyStage{a},
		&enforceStage{a},
		&inspectStage{a},
		&auditStage{a},
	)
}

// flowState is what the stages learn about a flow. It is stored once in
// the flow under stateKey{} by the attribution stage.
type flowState struct {
	policy      *enforce.Policy
	identity    enforce.Identity
	authErr     error
	service     classify.Service
	known       bool
	req         *classify.Request
	findings    []classify.PartFinding
	account     enforce.AccountInfo
	decision    enforce.Decision
	redacted    int
	restorer    *enforce.Restorer
	usage       *usageObserver
	output      map[string]int
	outDecision enforce.Decision

	// WebSocket (Realtime) sessions: filled from the relay goroutines.
	wsMu       sync.Mutex
	wsMessages int
	wsFindings map[string]int
	wsUsage    classify.Usage
}

type stateKey struct{}

func state(f *mitm.Flow) *flowState {
	s, _ := f.Value(stateKey{}).(*flowState)
	if s == nil {
		s = &flowState{}
		f.SetValue(stateKey{}, s)
	}
	return s
}

func clientAddr(f *mitm.Flow) (ip string, port int) {
	if f.Client.Addr.IsValid() {
		return f.Client.Addr.Addr().String(), int(f.Client.Addr.Port())
	}
	return "", 0
}

// attributionStage: who is asking (identity, proxy auth) and for what
// (catalog lookup); decides intercept, tunnel or refuse at CONNECT.
type attributionStage struct{ a *app }

func (s *attributionStage) identify(f *mitm.Flow, st *flowState) {
	h := http.Header{}
	if f.Connect != nil {
		h = f.Connect.Header
	}
	st.identity, st.authErr = st.policy.Identify(f.Client.Addr.Addr(), h)
}

func (s *attributionStage) Connect(f *mitm.Flow) (mitm.ConnectVerdict, bool) {
	st := state(f)
	st.policy = s.a.engine.Current()
	s.identify(f, st)
	if errors.Is(st.authErr, enforce.ErrProxyAuthRequired) && f.Mode == mitm.ModeExplicit {
		rep := enforce.AuthRequiredResponse(f.ID)
		return mitm.ConnectVerdict{Action: mitm.Reject, Response: replyResponse(f.Connect, rep)}, true
	}
	st.service, st.known = s.a.catalog.Lookup(f.Dest.Host)
	d := st.policy.ConnectDecision(st.identity, f.Dest.Host, st.service, st.known)
	if d.Action == enforce.ActionBlock {
		st.decision = d
		rep := enforce.BlockResponse(st.service.Provider, "", http.StatusForbidden, d, f.ID)
		if st.service.Category == classify.CategoryChat || rep.Status == 0 {
			rep = enforce.BlockResponse(st.service.Provider, "web", http.StatusForbidden, d, f.ID)
		}
		return mitm.ConnectVerdict{Action: mitm.Reject, Response: replyResponse(f.Connect, rep)}, true
	}
	if st.known && st.service.Inspect {
		return mitm.ConnectVerdict{Action: mitm.Intercept}, true
	}
	return mitm.ConnectVerdict{Action: mitm.Tunnel}, true
}

func (s *attributionStage) Request(f *mitm.Flow) {
	st := state(f)
	st.policy = s.a.engine.Current()
	s.identify(f, st)
	if st.authErr != nil && errors.Is(st.authErr, enforce.ErrProxyAuthRequired) {
		rep := enforce.AuthRequiredResponse(f.ID)
		f.Reply(rep.Status, rep.Header, rep.Body)
		st.decision = enforce.Decision{Action: enforce.ActionBlock, RuleID: "proxy-auth", Reason: "proxy authentication required"}
		return
	}
	host := f.Dest.Host
	if f.In != nil && f.In.Host != "" {
		host = hostOnly(f.In.Host)
	}
	path := ""
	if f.In != nil {
		path = f.In.URL.Path
	}
	st.service, st.known = s.a.catalog.LookupPath(host, path)
}

func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i > 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	return strings.ToLower(strings.Trim(h, "[]"))
}

func replyResponse(r *http.Request, rep enforce.Reply) *http.Response {
	return mitm.NewResponse(r, rep.Status, rep.Header.Clone(), rep.Body)
}

// classifyStage understands the request and finds secrets and PII in it.
type classifyStage struct{ a *app }

func (s *classifyStage) Request(f *mitm.Flow) {
	st := state(f)
	in := classify.RequestInput{
		Method:     f.In.Method,
		Host:       hostOnly(f.In.Host),
		Path:       f.In.URL.Path,
		Query:      f.In.URL.RawQuery,
		Header:     f.In.Header,
		Body:       f.InBody,
		MaxDecoded: int(st.policy.MaxDecodedBytes()),
	}
	if in.Host == "" {
		in.Host = f.Dest.Host
	}
	tooLarge, prefix := f.BodyTooLarge, f.InBodyPrefix
	if max := st.policy.MaxBodyBytes(); max > 0 && int64(len(f.InBody)) > max {
		// The policy's limit is below the proxy's buffer: same treatment.
		tooLarge, prefix = true, f.InBody[:min(len(f.InBody), 64<<10)]
		in.Body = nil
	}
	req := classify.ParseRequest(in)
	if tooLarge {
		req.Uninspectable = "too_large"
		// The model usually comes first: take it from the prefix so that
		// model rules still apply to a padded body.
		if req.Model == "" {
			if m := modelInPrefix.FindSubmatch(prefix); m != nil {
				req.Model = string(m[1])
			}
		}
	}
	st.req = req
	if req.Provider == "" {
		req.Provider = st.service.Provider
	}
	if req.Uninspectable == "" || len(req.Parts) > 0 {
		st.findings = s.a.detector().ScanRequest(req)
	}
	st.account = st.policy.ClassifyAccount(req.Account)
}

// Message inspects WebSocket messages of a Realtime session as they are
// relayed: client events are parsed and scanned (findings are recorded, not
// redacted: rewriting masked frames in flight is not done), server events
// give token usage.
func (s *classifyStage) Message(f *mitm.Flow, fromClient, text bool, payload []byte) {
	if !text {
		return
	}
	st := state(f)
	if fromClient {
		req := classify.ParseRealtimeMessage(payload)
		fs := s.a.detector().ScanRequest(req)
		st.wsMu.Lock()
		st.wsMessages++
		for _, fd := range fs {
			if st.wsFindings == nil {
				st.wsFindings = map[string]int{}
			}
			st.wsFindings[fd.Type]++
		}
		st.wsMu.Unlock()
		return
	}
	if u, _, ok := classify.ParseRealtimeServerEvent(payload); ok {
		st.wsMu.Lock()
		st.wsUsage.Input += u.Input
		st.wsUsage.Output += u.Output
		st.wsUsage.Cached += u.Cached
		st.wsMu.Unlock()
	}
}

var modelInPrefix = regexp.MustCompile(`"model"\s*:\s*"([^"\\]{1,200})"`)

// enforceStage applies the policy: quotas, block, redact.
type enforceStage struct{ a *app }

func (s *enforceStage) Request(f *mitm.Flow) {
	st := state(f)
	if st.req == nil {
		return
	}
	now := time.Now()
	if d := s.a.quotas.Check(st.policy, st.identity, st.req.Provider, st.req.Model, now); d.Action == enforce.ActionQuota {
		st.decision = d
		rep := enforce.BlockResponse(st.req.Provider, st.req.Shape, http.StatusTooManyRequests, d, f.ID)
		f.Reply(rep.Status, rep.Header, rep.Body)
		return
	}
	d := st.policy.Decide(enforce.Input{
		Identity: st.identity,
		Service:  st.service,
		Request:  st.req,
		Findings: st.findings,
		Account:  st.account,
	})
	st.decision = d
	switch d.Action {
	case enforce.ActionBlock:
		shape := st.req.Shape
		if st.service.Category == classify.CategoryChat {
			shape = "web"
		}
		rep := enforce.BlockResponse(st.req.Provider, shape, http.StatusForbidden, d, f.ID)
		f.Reply(rep.Status, rep.Header, rep.Body)
	case enforce.ActionRedact:
		body, n, r := st.policy.Redact(st.req, st.findings, d)
		if n > 0 {
			st.redacted = n
			st.restorer = r
			f.SetOutBody(body)
		}
	}
}

func (s *enforceStage) Response(f *mitm.Flow) {
	st := state(f)
	if st.restorer == nil || f.Response == nil {
		return
	}
	if isStreaming(f.Response) {
		f.AddStreamFilter(&restoreFilter{rs: st.restorer.NewStream()})
		return
	}
	f.AddStreamFilter(&bufferedFilter{limit: 8 << 20, apply: st.restorer.RestoreBody})
}

func isStreaming(r *http.Response) bool {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	return strings.HasPrefix(ct, "text/event-stream") || strings.Contains(ct, "ndjson") ||
		strings.Contains(ct, "eventstream")
}

type restoreFilter struct{ rs *enforce.RestoreStream }

func (r *restoreFilter) Chunk(p []byte) []byte { return r.rs.Write(p) }
func (r *restoreFilter) End() []byte           { return r.rs.Flush() }

// bufferedFilter holds a whole (bounded) body, then transforms it. Past the
// limit it gives up and passes bytes through untransformed.
type bufferedFilter struct {
	limit  int
	buf    []byte
	passed bool
	apply  func([]byte) []byte
}

func (b *bufferedFilter) Chunk(p []byte) []byte {
	if b.passed {
		return p
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.limit {
		b.passed = true
		out := b.buf
		b.buf = nil
		return out
	}
	return nil
}

func (b *bufferedFilter) End() []byte {
	if b.passed {
		return nil
	}
	out := b.apply(b.buf)
	b.buf = nil
	return out
}

// inspectStage reads token usage from the response (plain or streamed) and
// runs the detectors over the model's output, without delaying chunks.
type inspectStage struct{ a *app }

func (s *inspectStage) Response(f *mitm.Flow) {
	st := state(f)
	if st.req == nil || f.Response == nil {
		return
	}
	ct := f.Response.Header.Get("Content-Type")
	u := &usageObserver{shape: st.req.Shape, ct: ct, det: s.a.detector(), out: map[string]int{}}
	if isStreaming(f.Response) {
		u.dec = classify.NewStreamDecoder(st.req.Shape, ct)
		u.dec.OnText = u.onText
	}
	st.usage = u
	st.output = u.out
	// Inspection reads what the model sent: its filters go before enforce's
	// restoration, which rewrites the client's view. Final order: usage
	// observer, output guard, restore.
	if op := st.policy.OutputRules(); op.MayBlock && isStreaming(f.Response) {
		f.PrependStreamFilter(newOutputGuard(f, st, s.a.detector(), op.WindowBytes, ct))
	}
	f.PrependStreamFilter(u)
}

// outputGuard enforces output block rules on a stream. It holds back at
// most window bytes, so that a secret the model is emitting can be caught
// before its last bytes reach the client; when a block rule fires, the
// stream ends with a provider-shaped error event and the rest is dropped.
type outputGuard struct {
	f       *mitm.Flow
	st      *flowState
	det     *classify.Detector
	dec     *classify.StreamDecoder
	window  int
	held    []byte
	text    []byte
	blocked bool
}

func newOutputGuard(f *mitm.Flow, st *flowState, det *classify.Detector, window int, ct string) *outputGuard {
	if window <= 0 {
		window = 256
	}
	g := &outputGuard{f: f, st: st, det: det, window: window}
	g.dec = classify.NewStreamDecoder(st.req.Shape, ct)
	g.dec.OnText = func(t string) { g.text = append(g.text, t...) }
	return g
}

func (g *outputGuard) Chunk(p []byte) []byte {
	if g.blocked {
		return nil
	}
	g.held = append(g.held, p...)
	_, _ = g.dec.Write(p)
	if g.check() {
		return g.blockEvent()
	}
	// Keep the text tail for secrets that straddle chunks; release every
	// held byte beyond the window.
	if len(g.text) > 4*g.window {
		g.text = append(g.text[:0], g.text[len(g.text)-g.window:]...)
	}
	if n := len(g.held) - g.window; n > 0 {
		out := append([]byte(nil), g.held[:n]...)
		g.held = append(g.held[:0], g.held[n:]...)
		return out
	}
	return nil
}

// Finished ends the stream once blocked: the upstream is closed rather
// than read to its end.
func (g *outputGuard) Finished() bool { return g.blocked }

func (g *outputGuard) End() []byte {
	if g.blocked {
		return nil
	}
	g.dec.Close()
	if g.check() {
		return g.blockEvent()
	}
	out := g.held
	g.held = nil
	return out
}

// check scans the recent output text and asks the policy.
func (g *outputGuard) check() bool {
	if len(g.text) == 0 {
		return false
	}
	fs := g.det.Scan(g.text)
	if len(fs) == 0 {
		return false
	}
	d := g.st.policy.DecideOutput(g.st.identity, g.st.service, fs)
	if d.Action != enforce.ActionBlock {
		return false
	}
	g.blocked = true
	g.st.outDecision = d
	g.st.decision = d
	g.f.Err = errors.New("aigress: response blocked by output rule " + d.RuleID)
	return true
}

func (g *outputGuard) blockEvent() []byte {
	g.held = nil
	return enforce.StreamErrorEvent(g.st.req.Provider, g.st.req.Shape, g.st.outDecision, g.f.ID)
}

// usageObserver is a pass-through filter: it never holds bytes back.
type usageObserver struct {
	shape, ct string
	dec       *classify.StreamDecoder
	body      []byte
	overflow  bool
	usage     classify.Usage
	det       *classify.Detector
	out       map[string]int
	text      strings.Builder
}

const maxObservedBody = 4 << 20

// PreservesBody: the observer never changes a byte.
func (u *usageObserver) PreservesBody() bool { return true }

func (u *usageObserver) Chunk(p []byte) []byte {
	if u.dec != nil {
		_, _ = u.dec.Write(p)
		return p
	}
	if !u.overflow {
		if len(u.body)+len(p) > maxObservedBody {
			u.overflow = true
			u.body = nil
		} else {
			u.body = append(u.body, p...)
		}
	}
	return p
}

func (u *usageObserver) onText(t string) {
	// Detectors run over the output as it streams, in bounded pieces.
	if u.text.Len()+len(t) > 64<<10 {
		u.flushText()
	}
	u.text.WriteString(t)
}

func (u *usageObserver) flushText() {
	if u.text.Len() == 0 {
		return
	}
	for _, fd := range u.det.ScanString(u.text.String()) {
		u.out[fd.Type]++
	}
	u.text.Reset()
}

func (u *usageObserver) End() []byte {
	if u.dec != nil {
		u.usage = u.dec.Usage()
	} else if len(u.body) > 0 {
		var texts []string
		u.usage, texts = classify.ParseResponse(u.shape, u.ct, u.body)
		for _, t := range texts {
			u.onText(t)
		}
	}
	u.flushText()
	return nil
}

// auditStage records one event per flow and charges quotas.
type auditStage struct{ a *app }

func (s *auditStage) Done(f *mitm.Flow) {
	st, _ := f.Value(stateKey{}).(*flowState)
	if st == nil {
		st = &flowState{}
	}
	ev := s.a.event(f, st)
	if st.usage != nil && st.policy != nil && st.req != nil {
		s.a.quotas.Charge(st.policy, st.identity, st.req.Provider, st.req.Model, st.usage.usage, f.End)
	}
	st.wsMu.Lock()
	wsUsage := st.wsUsage
	st.wsMu.Unlock()
	if wsUsage != (classify.Usage{}) && st.policy != nil && st.req != nil {
		s.a.quotas.Charge(st.policy, st.identity, st.req.Provider, st.req.Model, wsUsage, f.End)
	}
	if err := ev.Encode(); err != nil {
		s.a.log.WithError(err).WithField("event_id", ev.ID).Error("audit: encode event")
	}
	s.a.sink.Write(ev)
	s.a.flows.Add(1)
	if !s.a.flowLogLimiter.allow() {
		return
	}
	fields := logrus.Fields{
		"event_id": ev.ID, "kind": ev.Kind, "client": ev.Client.IP, "host": ev.Dest.Host,
		"status": f.Status,
	}
	if ev.Provider != "" {
		fields["provider"] = ev.Provider
		fields["model"] = ev.Model
	}
	if ev.Decision != nil {
		fields["action"] = ev.Decision.Action
		fields["rule"] = ev.Decision.Rule
	}
	if ev.Error != "" {
		fields["error"] = ev.Error
	}
	s.a.log.WithFields(fields).Info("flow")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// event builds the audit record. It never copies a raw key, secret or
// (unless the policy's retention says so) prompt text.
func (a *app) event(f *mitm.Flow, st *flowState) *audit.Event {
	ip, port := clientAddr(f)
	ev := &audit.Event{
		ID: f.ID, Time: f.Start.UTC(), Kind: f.Kind,
		Client: audit.Client{IP: ip, Port: port, User: st.identity.User, Groups: st.identity.Groups},
		Dest:   audit.Dest{Host: f.Dest.Host, SNI: f.Dest.SNI, Port: f.Dest.Port},
	}
	if f.Dest.OrigAddr.IsValid() {
		ev.Dest.IP = f.Dest.OrigAddr.Addr().String()
	}
	if p := f.Client.Process; p != nil {
		ev.Client.Process = &audit.Process{PID: p.PID, Comm: p.Comm, UID: p.UID, Cgroup: p.Cgroup, Unit: p.Unit, Container: p.Container}
	}
	if st.known || st.service.Provider != "" {
		ev.Provider, ev.Service, ev.Category = st.service.Provider, st.service.Service, string(st.service.Category)
	}
	if st.policy != nil {
		ev.PolicyHash = st.policy.Hash()
	}
	if f.Err != nil {
		ev.Error = f.Err.Error()
	}
	lat := &audit.Latency{Total: ms(f.End.Sub(f.Start))}
	if !f.UpstreamStart.IsZero() && !f.UpstreamDone.IsZero() {
		lat.Upstream = ms(f.UpstreamDone.Sub(f.UpstreamStart))
	}
	if !f.FirstByte.IsZero() {
		lat.FirstByte = ms(f.FirstByte.Sub(f.Start))
	}
	ev.Latency = lat
	if st.decision.Action != "" {
		ev.Decision = &audit.Decision{Action: string(st.decision.Action), Rule: st.decision.RuleID, Reason: st.decision.Reason}
	}
	ev.Response = &audit.RespInfo{Status: f.Status, Bytes: f.RespBytes}
	if f.Kind != mitm.KindIntercept {
		ev.Request = &audit.ReqInfo{Bytes: f.ReqBytes}
		return ev
	}
	if r := st.req; r != nil {
		if r.Provider != "" {
			ev.Provider = r.Provider
		}
		ev.Endpoint, ev.Model, ev.Stream = r.Endpoint, r.Model, r.Stream
		ev.Request = &audit.ReqInfo{Bytes: f.ReqBytes, Parts: len(r.Parts), Attachments: len(r.Attachments), Uninspectable: r.Uninspectable}
		acct := st.account
		if acct.KeyFingerprint != "" || acct.Org != "" || acct.Project != "" || acct.EmailHash != "" {
			ev.Account = &audit.Account{KeyFingerprint: acct.KeyFingerprint, Org: acct.Org, Project: acct.Project,
				EmailHash: acct.EmailHash, Email: acct.Email, Corporate: acct.Corporate}
		}
		if len(st.findings) > 0 {
			ev.Findings = map[string]int{}
			for _, fd := range st.findings {
				ev.Findings[fd.Type]++
			}
		}
		ev.Redactions = st.redacted
		if st.policy != nil {
			ev.Prompt = promptFor(st.policy.Retention(), r, st)
		}
	}
	st.wsMu.Lock()
	if st.wsMessages > 0 || st.wsUsage != (classify.Usage{}) {
		ev.Response.Tokens = audit.Tokens{Input: st.wsUsage.Input, Output: st.wsUsage.Output, Cached: st.wsUsage.Cached}
		if ev.Request != nil {
			ev.Request.Parts += st.wsMessages
		}
		for k, v := range st.wsFindings {
			if ev.Findings == nil {
				ev.Findings = map[string]int{}
			}
			ev.Findings[k] += v
		}
	}
	st.wsMu.Unlock()
	if u := st.usage; u != nil {
		ev.Response.Tokens = audit.Tokens{Input: u.usage.Input, Output: u.usage.Output, Cached: u.usage.Cached, Reasoning: u.usage.Reasoning}
		if u.usage.Model != "" && ev.Model == "" {
			ev.Model = u.usage.Model
		}
		for k, v := range u.out {
			if ev.Findings == nil {
				ev.Findings = map[string]int{}
			}
			ev.Findings["output."+k] += v
		}
	}
	return ev
}

// promptFor applies the retention mode to the user's prompt text. In
// "redacted" mode every finding is replaced by its type in brackets,
// whether or not the policy redacted it upstream.
func promptFor(mode string, r *classify.Request, st *flowState) string {
	if mode == "" || mode == "none" {
		return ""
	}
	var b strings.Builder
	for i, p := range r.Parts {
		if p.Role != classify.RoleUser && p.Role != classify.RoleUnknown {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		if mode != "redacted" {
			b.WriteString(p.Text)
			continue
		}
		at := 0
		for _, fd := range st.findings { // sorted by part, then offset
			if fd.Part != i || fd.Start < at || fd.End > len(p.Text) {
				continue
			}
			b.WriteString(p.Text[at:fd.Start])
			b.WriteString("[" + strings.ToUpper(fd.Type) + "]")
			at = fd.End
		}
		b.WriteString(p.Text[at:])
	}
	text := b.String()
	switch mode {
	case "hash":
		sum := sha256.Sum256([]byte(text))
		return "sha256:" + hex.EncodeToString(sum[:])
	case "redacted":
		return truncate(text, 16<<10)
	case "full":
		return truncate(text, 64<<10)
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// rateLimiter allows a burst of per-flow log lines per second.
type rateLimiter struct {
	sec   atomic.Int64
	count atomic.Int64
	burst int64
}

func (r *rateLimiter) allow() bool {
	now := time.Now().Unix()
	if r.sec.Load() != now {
		r.sec.Store(now)
		r.count.Store(0)
	}
	return r.count.Add(1) <= r.burst
}
