package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s line %d: %v", path, n+1, err)
		}
		n++
	}
	return n
}

func TestJSONL(t *testing.T) {
	events := fixtureEvents()
	cases := []struct {
		name      string
		opts      JSONLOptions
		wantFiles []string // rotated suffixes that must exist
		gone      string   // a suffix that must not exist
		allKept   bool
	}{
		{"ok/no-rotation", JSONLOptions{}, nil, ".1", true},
		{"ok/rotation-keeps-all", JSONLOptions{MaxBytes: 4 << 10, MaxFiles: 50}, []string{".1", ".2"}, "", true},
		{"ok/rotation-drops-oldest", JSONLOptions{MaxBytes: 4 << 10, MaxFiles: 2}, []string{".1", ".2"}, ".3", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "logs", "audit.jsonl")
			j, err := NewJSONL(path, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range events {
				j.Write(&events[i])
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if st := j.Stats(); st != (SinkStats{Written: 49}) {
				t.Errorf("stats = %+v", st)
			}
			for _, s := range c.wantFiles {
				if _, err := os.Stat(path + s); err != nil {
					t.Errorf("missing %s: %v", s, err)
				}
			}
			if c.gone != "" {
				if _, err := os.Stat(path + c.gone); err == nil {
					t.Errorf("%s exists", c.gone)
				}
			}
			files, _ := filepath.Glob(path + "*")
			total := 0
			for _, f := range files {
				st, _ := os.Stat(f)
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s mode %v", f, st.Mode().Perm())
				}
				if c.opts.MaxBytes > 0 && st.Size() > c.opts.MaxBytes {
					t.Errorf("%s is %d bytes > %d", f, st.Size(), c.opts.MaxBytes)
				}
				total += countLines(t, f)
			}
			if c.allKept && total != len(events) {
				t.Errorf("%d lines in %d files, want %d", total, len(files), len(events))
			}
			if !c.allKept && (total >= len(events) || total == 0) {
				t.Errorf("%d lines kept, want some dropped by rotation", total)
			}
		})
	}
	t.Run("ok/append-existing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		for round := 0; round < 2; round++ {
			j, err := NewJSONL(path, JSONLOptions{})
			if err != nil {
				t.Fatal(err)
			}
			j.Write(&events[round])
			j.Close()
		}
		if n := countLines(t, path); n != 2 {
			t.Errorf("%d lines, want 2", n)
		}
	})
	t.Run("ok/no-prompt-unless-set", func(t *testing.T) {
		var buf bytes.Buffer
		j := NewJSONLWriter(&buf, JSONLOptions{})
		e := events[0]
		e.Prompt = ""
		j.Write(&e)
		j.Close()
		if strings.Contains(buf.String(), "prompt") {
			t.Errorf("empty prompt serialised: %s", buf.String())
		}
	})
	t.Run("fail/unwritable-dir", func(t *testing.T) {
		dir := t.TempDir()
		blocker := filepath.Join(dir, "file")
		os.WriteFile(blocker, nil, 0o600)
		if _, err := NewJSONL(filepath.Join(blocker, "audit.jsonl"), JSONLOptions{}); err == nil {
			t.Error("NewJSONL under a regular file succeeded")
		}
	})
}

// blockingWriter blocks its first Write until released.
type blockingWriter struct {
	once             sync.Once
	entered, release chan struct{}
	buf              bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.entered)
		<-w.release
	})
	return w.buf.Write(p)
}

func TestJSONLBackpressure(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	j := NewJSONLWriter(w, JSONLOptions{QueueSize: 3})
	events := fixtureEvents()
	j.Write(&events[0]) // written and flushed: the writer blocks
	<-w.entered
	for i := 1; i <= 3; i++ {
		j.Write(&events[i])
	}
	for i := 4; i < 9; i++ {
		j.Write(&events[i])
	}
	if st := j.Stats(); st.Dropped != 5 {
		t.Errorf("while blocked: %+v, want 5 dropped", st)
	}
	close(w.release)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j.Write(&events[10])
	if st := j.Stats(); st != (SinkStats{Written: 4, Dropped: 6}) {
		t.Errorf("final %+v", st)
	}
	if n := strings.Count(w.buf.String(), "\n"); n != 4 {
		t.Errorf("%d lines, want 4", n)
	}
}

type countSink struct {
	n      int
	closed bool
}

func (c *countSink) Write(*Event) { c.n++ }
func (c *countSink) Close() error { c.closed = true; return nil }

func TestMulti(t *testing.T) {
	a, b := &countSink{}, &countSink{}
	m := Multi{a, b}
	e := fixtureEvents()[0]
	m.Write(&e)
	m.Write(&e)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if a.n != 2 || b.n != 2 || !a.closed || !b.closed {
		t.Errorf("a=%+v b=%+v", a, b)
	}
}
