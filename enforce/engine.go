package enforce

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// Engine holds the policy in force and swaps it atomically on reload. A
// policy that fails to load is rejected and the old one keeps serving.
type Engine struct {
	cur     atomic.Pointer[Policy]
	log     logrus.FieldLogger
	ok      atomic.Uint64
	failed  atomic.Uint64
	metric  *prometheus.CounterVec
	mu      sync.Mutex // serialises reloads and guards onSwap and last
	onSwap  []func(*Policy)
	lastSum [32]byte
}

// NewEngine starts with p (which must not be nil).
func NewEngine(p *Policy, log logrus.FieldLogger) *Engine {
	if log == nil {
		l := logrus.New()
		l.SetOutput(nopWriter{})
		log = l
	}
	e := &Engine{log: log}
	e.cur.Store(p)
	e.metric = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "aigress_policy_reloads_total",
		Help: "Policy reloads by result (ok, failed).",
	}, []string{"result"})
	e.metric.WithLabelValues("ok")
	e.metric.WithLabelValues("failed")
	return e
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// RegisterMetrics registers aigress_policy_reloads_total{result} on reg.
func (e *Engine) RegisterMetrics(reg prometheus.Registerer) error {
	if err := reg.Register(e.metric); err != nil {
		return fmt.Errorf("enforce: register metrics: %w", err)
	}
	return nil
}

// Current is the policy in force.
func (e *Engine) Current() *Policy { return e.cur.Load() }

// OnSwap registers f to be called with each newly installed policy (for
// example to rebuild the detector from CustomRules). f runs on the
// reloading goroutine, after the swap.
func (e *Engine) OnSwap(f func(*Policy)) {
	e.mu.Lock()
	e.onSwap = append(e.onSwap, f)
	e.mu.Unlock()
}

// Swap installs p.
func (e *Engine) Swap(p *Policy) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.swapLocked(p)
}

func (e *Engine) swapLocked(p *Policy) {
	e.cur.Store(p)
	for _, f := range e.onSwap {
		f(p)
	}
}

// Reloads counts reloads that succeeded and failed.
func (e *Engine) Reloads() (ok, failed uint64) { return e.ok.Load(), e.failed.Load() }

// ReloadFile loads path and, when it compiles, installs it. On error the
// old policy stays in force and the error is returned (and logged).
func (e *Engine) ReloadFile(path string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	data, err := os.ReadFile(path)
	if err == nil {
		e.lastSum = sha256.Sum256(data)
	}
	p, err := LoadFile(path)
	if err != nil {
		e.failed.Add(1)
		e.metric.WithLabelValues("failed").Inc()
		e.log.WithError(err).WithField("policy_hash", e.cur.Load().Hash()).Error("policy reload failed; keeping the current policy")
		return err
	}
	e.swapLocked(p)
	e.ok.Add(1)
	e.metric.WithLabelValues("ok").Inc()
	f := e.log.WithFields(logrus.Fields{"policy": p.Name(), "policy_hash": p.Hash()})
	for _, w := range p.Warnings() {
		f.WithField("warning", w).Warn("policy warning")
	}
	f.Info("policy loaded")
	return nil
}

// Watch polls path every interval (size, mtime, then content hash) and
// reloads it when it changed, until ctx ends. A failed reload is not
// retried until the file changes again. Call ReloadFile on SIGHUP.
func (e *Engine) Watch(ctx context.Context, path string, interval time.Duration) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	var size int64
	var mtime time.Time
	if st, err := os.Stat(path); err == nil {
		size, mtime = st.Size(), st.ModTime()
	}
	e.mu.Lock()
	if data, err := os.ReadFile(path); err == nil && e.lastSum == ([32]byte{}) {
		e.lastSum = sha256.Sum256(data)
	}
	e.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := os.Stat(path)
		if err != nil {
			continue
		}
		if st.Size() == size && st.ModTime().Equal(mtime) {
			continue
		}
		size, mtime = st.Size(), st.ModTime()
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(data)
		e.mu.Lock()
		same := bytes.Equal(sum[:], e.lastSum[:])
		e.mu.Unlock()
		if same {
			continue
		}
		_ = e.ReloadFile(path)
	}
}
