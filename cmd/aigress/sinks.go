package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/aigress/aigress/audit"
)

// eventSinks is where every command that records events (run, dns, sniff)
// writes them: the JSONL trail (DATA_DIR/audit.jsonl unless audit.file says
// otherwise or "off") and the SQLite event store (DATA_DIR/events.db unless
// audit.store says otherwise or "off"). IDs come from one audit.IDGen, so
// that they increase strictly within the process.
//
// Several processes may hold the same store open for writing at once
// (aigress run and aigress dns on one data directory): the store runs in
// WAL mode with a busy timeout, so their transactions take turns.
type eventSinks struct {
	multi audit.Multi
	jsonl *audit.JSONL // nil when the trail is off
	store *audit.Store // nil when the store is off
	ids   *audit.IDGen

	jsonlSent atomic.Uint64 // events handed to jsonl by WriteWait
	closeOnce sync.Once
	closeErr  error
}

var _ audit.Sink = (*eventSinks)(nil)

// openEventSinks opens the sinks cfg names. cfg.DataDir must be set
// (applyDefaults).
func openEventSinks(cfg *Config, log logrus.FieldLogger) (*eventSinks, error) {
	s := &eventSinks{ids: audit.NewIDGen()}
	if cfg.Audit.File != "off" {
		path := cfg.Audit.File
		if path == "" {
			path = filepath.Join(cfg.DataDir, "audit.jsonl")
		}
		j, err := audit.NewJSONL(path, audit.JSONLOptions{MaxBytes: cfg.Audit.MaxBytes, MaxFiles: cfg.Audit.MaxFiles, Log: log})
		if err != nil {
			return nil, err
		}
		s.jsonl = j
		s.multi = append(s.multi, j)
	}
	if cfg.Audit.Store != "off" {
		path := cfg.Audit.Store
		if path == "" {
			path = audit.StorePath(cfg.DataDir)
		}
		st, err := audit.OpenStore(path, audit.StoreOptions{Retention: time.Duration(cfg.Audit.Retention), Log: log})
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		s.store = st
		s.multi = append(s.multi, st)
	}
	return s, nil
}

// openSinks is the form aigress run uses: one Sink and its closers.
func openSinks(cfg *Config, log logrus.FieldLogger) (audit.Sink, []func() error, error) {
	s, err := openEventSinks(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return s.multi, []func() error{s.Close}, nil
}

// NewID returns the next event ID.
func (s *eventSinks) NewID(t time.Time) string { return s.ids.New(t) }

// Write hands e to every sink without blocking (the proxy and resolver
// paths): a sink that falls behind drops and counts.
func (s *eventSinks) Write(e *audit.Event) {
	if s.jsonl != nil {
		s.jsonlSent.Add(1)
	}
	s.multi.Write(e)
}

// WriteWait is Write for batch producers (sniff), where waiting is better
// than losing an event: it first waits, up to ctx, while a sink's queue is
// more than half full.
func (s *eventSinks) WriteWait(ctx context.Context, e *audit.Event) {
	for s.backlogged() {
		select {
		case <-ctx.Done():
			s.Write(e)
			return
		case <-time.After(time.Millisecond):
		}
	}
	s.Write(e)
}

func (s *eventSinks) backlogged() bool {
	if s.store != nil && s.store.Stats().Queued >= audit.DefaultStoreQueueSize/2 {
		return true
	}
	if s.jsonl != nil {
		st := s.jsonl.Stats()
		done := st.Written + st.Dropped + st.Errors
		if sent := s.jsonlSent.Load(); sent > done && sent-done >= audit.DefaultJSONLQueueSize/2 {
			return true
		}
	}
	return false
}

// Close closes the trail and the store; the store commits everything
// queued before it closes. Close is idempotent; Write after Close drops.
func (s *eventSinks) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, c := range s.multi {
			if err := c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Summary says what the sinks did, for a command's closing line.
func (s *eventSinks) Summary() string {
	out := ""
	if s.jsonl != nil {
		st := s.jsonl.Stats()
		out += fmt.Sprintf("audit trail: written %d, dropped %d, errors %d", st.Written, st.Dropped, st.Errors)
	}
	if s.store != nil {
		st := s.store.Stats()
		if out != "" {
			out += "; "
		}
		out += fmt.Sprintf("event store %s: written %d, dropped %d, errors %d", s.store.Path(), st.Written, st.Dropped, st.Errors)
	}
	if out == "" {
		out = "audit trail and event store are off"
	}
	return out
}

// sinkConfig is the configuration of the sniff command, which has no
// config of its own beyond --config and --data-dir.
func sinkConfig(configPath, dataDir string) (*Config, error) {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	return cfg, nil
}
