package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/aigress/aigress/audit"
)

func TestOpenEventSinks(t *testing.T) {
	quiet := logrus.New()
	quiet.SetOutput(os.Stderr)
	cases := []struct {
		name               string
		file, store        string // Config.Audit values; "<dir>" is replaced
		wantJSONL, wantDB  string // files that must exist afterwards ("" none)
		ok                 bool
		wantTrail, wantDBn int
	}{
		{name: "ok/defaults", wantJSONL: "audit.jsonl", wantDB: "events.db", ok: true, wantTrail: 2, wantDBn: 2},
		{name: "ok/store-off", store: "off", wantJSONL: "audit.jsonl", ok: true, wantTrail: 2},
		{name: "ok/trail-off", file: "off", wantDB: "events.db", ok: true, wantDBn: 2},
		{name: "ok/custom-paths", file: "<dir>/t/trail.jsonl", store: "<dir>/s/store.db", wantJSONL: "t/trail.jsonl", wantDB: "s/store.db", ok: true, wantTrail: 2, wantDBn: 2},
		{name: "fail/store-is-a-directory", store: "<dir>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := &Config{DataDir: dir}
			cfg.Audit.File = strings.ReplaceAll(c.file, "<dir>", dir)
			cfg.Audit.Store = strings.ReplaceAll(c.store, "<dir>", dir)
			s, err := openEventSinks(cfg, quiet)
			if !c.ok {
				if err == nil {
					_ = s.Close()
					t.Fatal("opened")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
			id1, id2 := s.NewID(t0), s.NewID(t0)
			if !(id1 < id2) {
				t.Fatalf("IDs do not increase: %s %s", id1, id2)
			}
			s.Write(&audit.Event{ID: id1, Time: t0, Kind: audit.KindDNS, Provider: "openai", Service: "openai-api"})
			s.WriteWait(context.Background(), &audit.Event{ID: id2, Time: t0, Kind: audit.KindSensor, Provider: "openai", Service: "openai-api",
				Sensor: &audit.SensorInfo{Source: "sni", Flows: 1}})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil { // idempotent
				t.Fatal(err)
			}
			s.Write(&audit.Event{ID: "late"}) // dropped, no panic
			if c.wantJSONL != "" {
				if n := len(readEvents(t, filepath.Join(dir, c.wantJSONL))); n != c.wantTrail {
					t.Errorf("trail: %d events, want %d", n, c.wantTrail)
				}
			} else if _, err := os.Stat(filepath.Join(dir, "audit.jsonl")); err == nil {
				t.Error("trail written although off")
			}
			if c.wantDB != "" {
				st, err := audit.OpenStoreReadOnly(filepath.Join(dir, c.wantDB))
				if err != nil {
					t.Fatal(err)
				}
				n, err := st.Count(context.Background(), audit.Query{})
				st.Close()
				if err != nil || n != int64(c.wantDBn) {
					t.Errorf("store: %d events (%v), want %d", n, err, c.wantDBn)
				}
			} else if _, err := os.Stat(filepath.Join(dir, "events.db")); err == nil {
				t.Error("store written although off")
			}
			if !strings.Contains(s.Summary(), "written") {
				t.Errorf("summary %q", s.Summary())
			}
		})
	}
}

// sinksHelperEnv makes TestSinksHelperProcess a writer process:
// "DIR TAG N START" writes N events from client TAG into DIR's sinks,
// starting at START (Unix nanoseconds).
const sinksHelperEnv = "AIGRESS_SINKS_HELPER"

// TestSinksHelperProcess is not a test: TestSinksConcurrentWriters runs the
// test binary again with sinksHelperEnv set, to get a second writer process.
func TestSinksHelperProcess(t *testing.T) {
	spec := os.Getenv(sinksHelperEnv)
	if spec == "" {
		t.Skip("helper process for TestSinksConcurrentWriters")
	}
	f := strings.Fields(spec)
	n, _ := strconv.Atoi(f[2])
	start, _ := strconv.ParseInt(f[3], 10, 64)
	if err := writeSinkEvents(f[0], f[1], n, time.Unix(0, start)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// writeSinkEvents opens the sinks of dataDir as the commands do and writes
// n events from client tag from start on, in small bursts so that the
// writers of several processes interleave.
func writeSinkEvents(dataDir, tag string, n int, start time.Time) error {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	s, err := openEventSinks(&Config{DataDir: dataDir}, log)
	if err != nil {
		return err
	}
	time.Sleep(time.Until(start))
	for i := 0; i < n; i++ {
		now := time.Now()
		s.WriteWait(context.Background(), &audit.Event{ID: s.NewID(now), Time: now, Kind: audit.KindDNS,
			Client: audit.Client{IP: tag}, Provider: "openai", Service: "openai-api"})
		if i%10 == 9 {
			time.Sleep(time.Millisecond)
		}
	}
	if err := s.Close(); err != nil {
		return err
	}
	if st := s.store.Stats(); st.Written != uint64(n) || st.Dropped != 0 || st.Errors != 0 {
		return fmt.Errorf("store %s: %+v", tag, st)
	}
	return nil
}

// TestSinksConcurrentWriters: aigress run and aigress dns may write the
// same store at once. Two processes and a goroutine of this one write the
// same data directory at the same time; every event must land, once.
func TestSinksConcurrentWriters(t *testing.T) {
	if os.Getenv(sinksHelperEnv) != "" {
		t.Skip("in a helper process")
	}
	dir := t.TempDir()
	const n = 1500
	// Create the store first, so that the writers do not race on the
	// schema migration (each would cope, but that is another test's job).
	if err := writeSinkEvents(dir, "10.0.0.0", 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	// All three start together, once the processes are up.
	start := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, tag := range []string{"10.0.0.1", "10.0.0.2"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSinksHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d", sinksHelperEnv, dir, tag, n, start.UnixNano()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("writer %s: %v\n%s", tag, err, out)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := writeSinkEvents(dir, "10.0.0.3", n, start); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	per := map[string]int{}
	ids := map[string]bool{}
	first, last := map[string]time.Time{}, map[string]time.Time{}
	for _, e := range storedEvents(t, dir) {
		per[e.Client.IP]++
		if f, ok := first[e.Client.IP]; !ok || e.Time.Before(f) {
			first[e.Client.IP] = e.Time
		}
		if e.Time.After(last[e.Client.IP]) {
			last[e.Client.IP] = e.Time
		}
		if ids[e.ID] {
			t.Fatalf("duplicate ID %s", e.ID)
		}
		ids[e.ID] = true
	}
	for _, tag := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		if per[tag] != n {
			t.Errorf("writer %s: %d events stored, want %d", tag, per[tag], n)
		}
	}
	// The writers did overlap in time (else this test proves nothing).
	a, b, c := "10.0.0.1", "10.0.0.2", "10.0.0.3"
	if !first[a].Before(last[b]) || !first[b].Before(last[a]) || !first[c].Before(last[a]) || !first[a].Before(last[c]) {
		t.Errorf("writers did not overlap: %v-%v, %v-%v, %v-%v", first[a], last[a], first[b], last[b], first[c], last[c])
	}
	if got := len(readEvents(t, filepath.Join(dir, "audit.jsonl"))); got != 3*n+1 {
		t.Errorf("trail: %d lines, want %d", got, 3*n+1)
	}
}
