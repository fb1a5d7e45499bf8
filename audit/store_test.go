package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

func writeFixture(t testing.TB, path string, opts StoreOptions) []Event {
	t.Helper()
	s, err := OpenStore(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	events := fixtureEvents()
	for i := range events {
		s.Write(&events[i])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Written != uint64(len(events)) || st.Dropped != 0 || st.Errors != 0 {
		t.Fatalf("stats after close = %+v", st)
	}
	return events
}

func eventsJSON(t *testing.T, ev []Event) string {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStoreRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", StoreFile)
	events := writeFixture(t, path, StoreOptions{BatchSize: 7})

	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, st.Mode().Perm())
		}
	}

	s, err := OpenStoreReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	all, err := s.Query(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	sorted := append([]Event(nil), events...)
	sortEvents(sorted)
	if got, want := eventsJSON(t, all), eventsJSON(t, sorted); got != want {
		t.Fatalf("round trip differs:\n got %.400s\nwant %.400s", got, want)
	}

	cases := []struct {
		name string
		q    Query
		want int64
	}{
		{"ok/all", Query{}, 49},
		{"ok/intercepts", Query{Kinds: []string{KindIntercept}}, 36},
		{"ok/passive", Query{Kinds: []string{KindDNS, KindSensor}}, 6},
		{"ok/limit", Query{Limit: 5}, 5},
		{"ok/window", Query{From: fixtureStart, To: fixtureStart.Add(4 * time.Hour)}, 6}, // slots 0..5 at 40 min
		{"ok/empty-window", Query{From: fixturePeriodTo}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Query(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != c.want {
				t.Errorf("Query = %d events, want %d", len(got), c.want)
			}
			if c.q.Limit == 0 {
				n, err := s.Count(ctx, c.q)
				if err != nil || n != c.want {
					t.Errorf("Count = %d, %v; want %d", n, err, c.want)
				}
			}
			for i := 1; i < len(got); i++ {
				if got[i].Time.Before(got[i-1].Time) {
					t.Fatalf("not sorted by time at %d", i)
				}
			}
		})
	}

	t.Run("ok/inventory-matches-slice", func(t *testing.T) {
		inv, err := s.Inventory(ctx, time.Time{}, time.Time{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkInventory(t, inv, fixtureInventoryWant)
		want := BuildInventory(events, nil)
		if !reflect.DeepEqual(inv, want) {
			t.Errorf("store inventory differs from BuildInventory:\n got %+v\nwant %+v", inv, want)
		}
	})
	t.Run("ok/findings", func(t *testing.T) {
		got, err := s.FindingCounts(ctx, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"email": 3, "aws_access_key": 1, "credit_card": 1}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("findings = %v, want %v", got, want)
		}
	})
	t.Run("ok/report-matches-slice", func(t *testing.T) {
		opts := ReportOptions{GeneratedAt: fixturePeriodTo}
		got, err := s.Report(ctx, fixturePeriodFrom, fixturePeriodTo, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := BuildReport(events, fixturePeriodFrom, fixturePeriodTo, opts)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("store report differs from BuildReport")
		}
	})
	t.Run("ok/readonly-refuses-writes", func(t *testing.T) {
		s.Write(&events[0])
		if s.Stats().Dropped != 1 {
			t.Errorf("write to a read-only store not counted as dropped: %+v", s.Stats())
		}
	})
}

func sortEvents(ev []Event) {
	// Same order as the store: time, then ID.
	for i := 1; i < len(ev); i++ {
		for j := i; j > 0 && (ev[j].Time.Before(ev[j-1].Time) || ev[j].Time.Equal(ev[j-1].Time) && ev[j].ID < ev[j-1].ID); j-- {
			ev[j], ev[j-1] = ev[j-1], ev[j]
		}
	}
}

func TestStoreOpen(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, path string)
		ok    bool
	}{
		{"ok/new-file", func(*testing.T, string) {}, true},
		{"ok/reopen", func(t *testing.T, path string) { writeFixture(t, path, StoreOptions{}) }, true},
		{"fail/newer-schema", func(t *testing.T, path string) {
			s, err := OpenStore(path, StoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.db.Exec(`INSERT INTO schema_version (version, name, applied_ms) VALUES (99, 'future', 0)`); err != nil {
				t.Fatal(err)
			}
			s.Close()
		}, false},
		{"fail/not-a-database", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("this is not sqlite, just some text that is long enough to be a header......"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), StoreFile)
			c.setup(t, path)
			s, err := OpenStore(path, StoreOptions{})
			if (err == nil) != c.ok {
				t.Fatalf("OpenStore err = %v, want ok=%v", err, c.ok)
			}
			if err == nil {
				var mode string
				if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
					t.Errorf("journal_mode = %q, %v", mode, err)
				}
				s.Close()
			}
		})
	}
	t.Run("fail/readonly-missing", func(t *testing.T) {
		if _, err := OpenStoreReadOnly(filepath.Join(t.TempDir(), "none.db")); err == nil {
			t.Fatal("OpenStoreReadOnly of a missing file succeeded")
		}
	})
}

// TestStoreMigrateFromV1 builds a version-1 database by hand, with findings
// only in the event JSON, and checks that opening it migrates to the latest
// version and backfills the findings table.
func TestStoreMigrateFromV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), StoreFile)
	db, err := sql.Open("sqlite", storeDSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := migrate(ctx, db, 1); err != nil {
		t.Fatal(err)
	}
	if v, _ := schemaVersion(ctx, db); v != 1 {
		t.Fatalf("version = %d, want 1", v)
	}
	events := fixtureEvents()
	for i := range events {
		e := &events[i]
		js, _ := json.Marshal(e)
		r := rowOf(e)
		if _, err := db.Exec(`INSERT INTO events (id, time_ms, kind, client_ip, user, provider, service, category, action, event)
			VALUES (?,?,?,?,?,?,?,?,?,?)`, r.ID, r.TimeMS, r.Kind, r.ClientIP, r.User, r.Provider, r.Service, r.Category, r.Action, string(js)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := OpenStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.db.Query(`SELECT version, name FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	rows.Close()
	if !reflect.DeepEqual(versions, []int{1, 2}) {
		t.Fatalf("applied versions = %v, want [1 2]", versions)
	}
	got, err := s.FindingCounts(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"email": 3, "aws_access_key": 1, "credit_card": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("backfilled findings = %v, want %v", got, want)
	}
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM findings`).Scan(&n); err != nil || n != 4 {
		t.Errorf("findings rows = %d, %v; want 4 (four events carry findings)", n, err)
	}
}

func TestStoreRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), StoreFile)
	events := writeFixture(t, path, StoreOptions{})
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	cutoff := now.Add(-24 * time.Hour)
	var keep int64
	keptFindings := map[string]int64{}
	for _, e := range events {
		if !e.Time.Before(cutoff) {
			keep++
			for k, v := range e.Findings {
				keptFindings[k] += int64(v)
			}
		}
	}
	if keep == 0 || keep == int64(len(events)) {
		t.Fatalf("bad fixture: keep %d", keep)
	}
	s, err := OpenStore(path, StoreOptions{Retention: 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	n, err := s.Count(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if n != keep {
		t.Errorf("after the sweep at open: %d events, want %d", n, keep)
	}
	if st := s.Stats(); st.Swept != uint64(int64(len(events))-keep) {
		t.Errorf("Swept = %d, want %d", st.Swept, int64(len(events))-keep)
	}
	got, err := s.FindingCounts(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, keptFindings) {
		t.Errorf("findings after sweep = %v, want %v", got, keptFindings)
	}
	// A second sweep finds nothing more.
	if d, err := s.Sweep(ctx); err != nil || d != 0 {
		t.Errorf("second sweep = %d, %v", d, err)
	}
}

// TestStoreBackpressure blocks the writer deterministically (no timing) and
// checks that every refused event is counted.
func TestStoreBackpressure(t *testing.T) {
	path := filepath.Join(t.TempDir(), StoreFile)
	s, err := openStore(path, StoreOptions{QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.beforeBatch = func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	go s.run()
	events := fixtureEvents()
	s.Write(&events[0]) // taken by the writer, which then blocks
	<-entered
	for i := 1; i <= 4; i++ { // fills the queue
		s.Write(&events[i])
	}
	for i := 5; i < 8; i++ { // refused
		s.Write(&events[i])
	}
	if st := s.Stats(); st.Queued != 4 || st.Dropped != 3 || st.Written != 0 {
		t.Errorf("while blocked: %+v, want queued 4, dropped 3, written 0", st)
	}
	close(release)
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Write(&events[9]) // after Close: refused and counted
	want := StoreStats{Queued: 0, Written: 5, Dropped: 4, Batches: 2}
	if st := s.Stats(); st != want {
		t.Errorf("final stats %+v, want %+v", st, want)
	}
}

func TestStoreDuplicateAndDefaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), StoreFile)
	s, err := OpenStore(path, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := fixtureEvents()[0]
	s.Write(&e)
	s.Write(&e)                       // same ID: ignored, not an error
	s.Write(&Event{Kind: KindTunnel}) // no ID, no time: both assigned
	s.Write(nil)                      // ignored
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Written != 2 || st.Errors != 0 {
		t.Errorf("stats = %+v, want written 2", st)
	}
	r, err := OpenStoreReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	all, err := r.Query(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("%d events", len(all))
	}
	for _, ev := range all {
		if len(ev.ID) != 26 || ev.Time.IsZero() {
			t.Errorf("event without ID or time: %+v", ev)
		}
	}
}

// BenchmarkStoreWrite measures the sustained write rate: events are offered
// as fast as the store takes them (the benchmark waits for room instead of
// dropping), and the figure includes committing them all.
func BenchmarkStoreWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), StoreFile)
	s, err := OpenStore(path, StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	events := fixtureEvents()
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var ids IDGen
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := events[i%len(events)]
		e.Time = base.Add(time.Duration(i) * time.Millisecond)
		e.ID = ids.New(e.Time)
		for len(s.ch) == cap(s.ch) {
			time.Sleep(50 * time.Microsecond)
		}
		s.Write(&e)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	st := s.Stats()
	if st.Written != uint64(b.N) || st.Dropped != 0 {
		b.Fatalf("stats %+v for N=%d", st, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(st.Written)/float64(st.Batches), "events/batch")
}
