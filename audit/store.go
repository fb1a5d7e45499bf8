package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go
)

// StoreFile is the file name of the event store inside the data directory.
const StoreFile = "events.db"

// StorePath returns the store's path inside dataDir.
func StorePath(dataDir string) string { return filepath.Join(dataDir, StoreFile) }

// Store defaults.
const (
	DefaultStoreBatchSize     = 512
	DefaultStoreQueueSize     = 16384
	DefaultStoreFlushInterval = 500 * time.Millisecond
	DefaultStoreSweepInterval = time.Hour
)

// StoreOptions configures the event store. Zero values take the defaults.
type StoreOptions struct {
	// Retention deletes events older than this, at open and then every
	// SweepInterval. 0 keeps events forever.
	Retention time.Duration
	// SweepInterval is how often the retention sweep runs (default 1h).
	SweepInterval time.Duration
	// BatchSize is the most events inserted in one transaction.
	BatchSize int
	// FlushInterval bounds how long an accepted event waits before its
	// batch is committed. The writer commits as soon as the queue runs dry,
	// so in practice the wait is one transaction.
	FlushInterval time.Duration
	// QueueSize bounds the events waiting for the writer. When the queue is
	// full Write drops the event and counts it (back-pressure).
	QueueSize int
	// Log receives rate-limited warnings (back-pressure, write errors).
	Log logrus.FieldLogger
	// Now is the clock of the retention sweep (tests); default time.Now.
	Now func() time.Time
}

// StoreStats counts what the store did.
type StoreStats struct {
	Queued  int    `json:"queued"`  // events waiting for the writer now
	Written uint64 `json:"written"` // events committed
	// Dropped counts events refused by Write because the queue was full
	// (back-pressure: the store fell behind) or the store was closed.
	Dropped uint64 `json:"dropped"`
	Batches uint64 `json:"batches"` // committed transactions
	Errors  uint64 `json:"errors"`  // events lost to encoding or database errors
	Swept   uint64 `json:"swept"`   // events deleted by retention
}

// Store is the embedded SQLite event store, a Sink. Write never blocks: it
// hands the event to a bounded queue read by one writer goroutine, which
// inserts batches in one transaction each. The event must not be modified
// after Write.
type Store struct {
	db       *sql.DB
	path     string
	opts     StoreOptions
	readOnly bool

	mu     sync.RWMutex // guards closed and the send on ch
	closed bool
	ch     chan *Event
	done   chan struct{}

	accepted, written, dropped, batches, errors, swept atomic.Uint64

	warn    *warnLimiter
	ids     IDGen
	roClose sync.Once
	// beforeBatch, when set (tests), runs in the writer before each batch.
	beforeBatch func()
}

var _ Sink = (*Store)(nil)

func storeDSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	if readOnly {
		q.Set("mode", "ro")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// OpenStore opens (creating and migrating as needed) the store at path, runs
// the retention sweep, and starts the writer.
func OpenStore(path string, opts StoreOptions) (*Store, error) {
	s, err := openStore(path, opts)
	if err != nil {
		return nil, err
	}
	go s.run()
	return s, nil
}

func openStore(path string, opts StoreOptions) (*Store, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultStoreBatchSize
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultStoreQueueSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultStoreFlushInterval
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultStoreSweepInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: store: %w", err)
	}
	// Create the file ourselves so that it gets mode 0600; SQLite gives the
	// -wal and -shm files the mode of the database file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: store: open %s: %w", path, err)
	}
	_ = f.Close()
	db, err := sql.Open("sqlite", storeDSN(path, false))
	if err != nil {
		return nil, fmt.Errorf("audit: store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	s := &Store{
		db: db, path: path, opts: opts,
		ch:   make(chan *Event, opts.QueueSize),
		done: make(chan struct{}),
		warn: newWarnLimiter(opts.Log, 10*time.Second),
	}
	ctx := context.Background()
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("audit: store: open %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		_ = db.Close()
		return nil, fmt.Errorf("audit: store: open %s: journal mode is %q, want wal", path, mode)
	}
	if err := migrate(ctx, db, len(migrations)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("audit: store: %s: %w", path, err)
	}
	if _, err := s.Sweep(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// OpenStoreReadOnly opens an existing store for the reading commands
// (inventory, report). It works while another process writes.
func OpenStoreReadOnly(path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("audit: store: %w (no events recorded yet, or wrong --data-dir?)", err)
	}
	db, err := sql.Open("sqlite", storeDSN(path, true))
	if err != nil {
		return nil, fmt.Errorf("audit: store: open %s: %w", path, err)
	}
	v, err := schemaVersion(context.Background(), db)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("audit: store: open %s: %w", path, err)
	}
	if v < len(migrations) {
		_ = db.Close()
		return nil, fmt.Errorf("audit: store: %s has schema version %d, want %d: open it once with a writer (aigress run) to migrate", path, v, len(migrations))
	}
	done := make(chan struct{})
	close(done)
	return &Store{db: db, path: path, readOnly: true, closed: true, done: done}, nil
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Write queues e for the writer. It never blocks; when the queue is full the
// event is dropped, counted in Stats().Dropped and a rate-limited warning is
// logged.
func (s *Store) Write(e *Event) {
	if e == nil {
		return
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		s.dropped.Add(1)
		return
	}
	select {
	case s.ch <- e:
		s.mu.RUnlock()
		s.accepted.Add(1)
	default:
		s.mu.RUnlock()
		n := s.dropped.Add(1)
		s.warn.hit("audit: event store is falling behind, dropping events", logrus.Fields{
			"path": s.path, "dropped_total": n, "queue_size": cap(s.ch),
		})
	}
}

// Stats returns the counters so far.
func (s *Store) Stats() StoreStats {
	return StoreStats{
		Queued:  len(s.ch),
		Written: s.written.Load(),
		Dropped: s.dropped.Load(),
		Batches: s.batches.Load(),
		Errors:  s.errors.Load(),
		Swept:   s.swept.Load(),
	}
}

// Flush waits until every event accepted before the call is committed (or
// counted as an error), or ctx ends.
func (s *Store) Flush(ctx context.Context) error {
	target := s.accepted.Load()
	for s.written.Load()+s.errors.Load() < target {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return nil
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// Close stops accepting events, commits what is queued and closes the
// database.
func (s *Store) Close() error {
	if s.readOnly {
		var err error
		s.roClose.Do(func() { err = s.db.Close() })
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	close(s.ch)
	s.mu.Unlock()
	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("audit: store: close %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) run() {
	defer close(s.done)
	sweep := time.NewTicker(s.opts.SweepInterval)
	defer sweep.Stop()
	batch := make([]*Event, 0, s.opts.BatchSize)
	for {
		select {
		case e, ok := <-s.ch:
			if !ok {
				return
			}
			batch = append(batch[:0], e)
			open := s.fill(&batch)
			s.writeBatch(batch)
			if !open {
				return
			}
		case <-sweep.C:
			if _, err := s.Sweep(context.Background()); err != nil {
				s.warn.hit("audit: store retention sweep failed", logrus.Fields{"path": s.path, "error": err.Error()})
			}
		}
	}
}

// fill adds queued events to batch, up to BatchSize, lingering up to
// storeLinger for more: one transaction per burst instead of one per event
// at moderate rates (a commit costs as much as dozens of inserts). It
// reports false once the queue is closed and drained.
func (s *Store) fill(batch *[]*Event) bool {
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for len(*batch) < s.opts.BatchSize {
		select {
		case e, ok := <-s.ch:
			if !ok {
				return false
			}
			*batch = append(*batch, e)
			continue
		default:
		}
		if linger == nil {
			linger = time.NewTimer(storeLinger)
		}
		select {
		case e, ok := <-s.ch:
			if !ok {
				return false
			}
			*batch = append(*batch, e)
		case <-linger.C:
			return true
		}
	}
	return true
}

// storeLinger bounds how long an event waits for company before its batch
// is written.
const storeLinger = 10 * time.Millisecond

const insertEvent = `INSERT OR IGNORE INTO events (id, time_ms, kind, client_ip, user, provider, service, category,
	endpoint, model, dest_host, action, rule, tokens_in, tokens_out, req_bytes, resp_bytes, status, key_fp, corporate,
	policy_hash, redactions, findings, flows, sensor_bytes, event)
	VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`

const insertFinding = `INSERT INTO findings (event_id, time_ms, type, count) VALUES (?,?,?,?)`

func (s *Store) writeBatch(batch []*Event) {
	if s.beforeBatch != nil {
		s.beforeBatch()
	}
	n, err := s.insert(context.Background(), batch)
	if err != nil {
		s.errors.Add(uint64(len(batch)))
		s.warn.hit("audit: store write failed", logrus.Fields{"path": s.path, "events": len(batch), "error": err.Error()})
		return
	}
	s.written.Add(uint64(n))
	s.batches.Add(1)
}

// insert writes events in one transaction and returns how many it kept.
func (s *Store) insert(ctx context.Context, batch []*Event) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	ev, err := tx.PrepareContext(ctx, insertEvent)
	if err != nil {
		return 0, err
	}
	defer ev.Close()
	fi, err := tx.PrepareContext(ctx, insertFinding)
	if err != nil {
		return 0, err
	}
	defer fi.Close()
	kept := 0
	for _, e := range batch {
		if e.ID == "" || e.Time.IsZero() {
			c := *e
			if c.Time.IsZero() {
				c.Time = time.Now()
			}
			if c.ID == "" {
				c.ID = s.ids.New(c.Time)
			}
			c.raw = nil
			e = &c
		}
		js, err := e.marshal()
		if err != nil {
			s.errors.Add(1)
			continue
		}
		r := rowOf(e)
		var corp any
		if r.Corporate != nil {
			corp = boolInt(*r.Corporate)
		}
		res, err := ev.ExecContext(ctx, r.ID, r.TimeMS, r.Kind, r.ClientIP, r.User, r.Provider, r.Service, r.Category,
			r.Endpoint, r.Model, r.DestHost, r.Action, r.Rule, r.TokensIn, r.TokensOut, r.ReqBytes, r.RespBytes, r.Status,
			r.KeyFP, corp, r.PolicyHash, r.Redactions, r.Findings, r.Flows, r.SensorBytes, string(js))
		if err != nil {
			return 0, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // duplicate ID: already stored
		}
		kept++
		for typ, c := range e.Findings {
			if _, err := fi.ExecContext(ctx, r.ID, r.TimeMS, typ, c); err != nil {
				return 0, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return kept, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Sweep deletes events older than the retention period, in chunks, and
// returns how many it deleted. It does nothing without a retention period.
func (s *Store) Sweep(ctx context.Context) (int64, error) {
	if s.readOnly || s.opts.Retention <= 0 {
		return 0, nil
	}
	cutoff := s.opts.Now().Add(-s.opts.Retention).UnixMilli()
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM events WHERE rowid IN
			(SELECT rowid FROM events WHERE time_ms < ? LIMIT 5000)`, cutoff)
		if err != nil {
			return total, fmt.Errorf("audit: store: retention sweep: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < 5000 {
			break
		}
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM findings WHERE time_ms < ?`, cutoff); err != nil {
		return total, fmt.Errorf("audit: store: retention sweep: %w", err)
	}
	s.swept.Add(uint64(total))
	return total, nil
}

// Query selects events. From is inclusive, To exclusive; zero times are
// unbounded. Kinds filters by kind when not empty.
type Query struct {
	From, To time.Time
	Kinds    []string
	Limit    int // 0: no limit
}

func (q Query) where() (string, []any) {
	var conds []string
	var args []any
	if !q.From.IsZero() {
		conds = append(conds, "time_ms >= ?")
		args = append(args, q.From.UnixMilli())
	}
	if !q.To.IsZero() {
		conds = append(conds, "time_ms < ?")
		args = append(args, q.To.UnixMilli())
	}
	if len(q.Kinds) > 0 {
		conds = append(conds, "kind IN (?"+strings.Repeat(",?", len(q.Kinds)-1)+")")
		for _, k := range q.Kinds {
			args = append(args, k)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Query returns the matching events, oldest first.
func (s *Store) Query(ctx context.Context, q Query) ([]Event, error) {
	var out []Event
	err := s.Each(ctx, q, func(e *Event) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// Each calls fn for every matching event, oldest first, without holding
// them all in memory. An error from fn stops the scan and is returned.
func (s *Store) Each(ctx context.Context, q Query, fn func(*Event) error) error {
	where, args := q.where()
	query := "SELECT event FROM events" + where + " ORDER BY time_ms, id"
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("audit: store: query: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var js []byte
		if err := rows.Scan(&js); err != nil {
			return fmt.Errorf("audit: store: query: %w", err)
		}
		var e Event
		if err := json.Unmarshal(js, &e); err != nil {
			return fmt.Errorf("audit: store: decode event: %w", err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: store: query: %w", err)
	}
	return nil
}

// eachRow scans the scalar columns only (no JSON), for aggregations.
func (s *Store) eachRow(ctx context.Context, q Query, fn func(*row)) error {
	where, args := q.where()
	rows, err := s.db.QueryContext(ctx, `SELECT id, time_ms, kind, client_ip, user, provider, service, category,
		action, tokens_in, tokens_out, req_bytes, resp_bytes, key_fp, corporate, flows, sensor_bytes
		FROM events`+where, args...)
	if err != nil {
		return fmt.Errorf("audit: store: scan: %w", err)
	}
	defer rows.Close()
	var r row
	for rows.Next() {
		var corp sql.NullInt64
		if err := rows.Scan(&r.ID, &r.TimeMS, &r.Kind, &r.ClientIP, &r.User, &r.Provider, &r.Service, &r.Category,
			&r.Action, &r.TokensIn, &r.TokensOut, &r.ReqBytes, &r.RespBytes, &r.KeyFP, &corp, &r.Flows, &r.SensorBytes); err != nil {
			return fmt.Errorf("audit: store: scan: %w", err)
		}
		r.Corporate = nil
		if corp.Valid {
			b := corp.Int64 != 0
			r.Corporate = &b
		}
		fn(&r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: store: scan: %w", err)
	}
	return nil
}

// Count returns how many events match q (Limit is ignored).
func (s *Store) Count(ctx context.Context, q Query) (int64, error) {
	where, args := q.where()
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM events"+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("audit: store: count: %w", err)
	}
	return n, nil
}

// FindingCounts returns finding type → total count over the period, from
// the findings table.
func (s *Store) FindingCounts(ctx context.Context, from, to time.Time) (map[string]int64, error) {
	q := Query{From: from, To: to}
	where, args := q.where()
	rows, err := s.db.QueryContext(ctx, "SELECT type, sum(count) FROM findings"+where+" GROUP BY type", args...)
	if err != nil {
		return nil, fmt.Errorf("audit: store: findings: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			return nil, fmt.Errorf("audit: store: findings: %w", err)
		}
		out[t] = n
	}
	return out, rows.Err()
}
