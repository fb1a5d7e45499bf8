package audit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// JSONL defaults.
const (
	DefaultJSONLMaxBytes  = 100 << 20 // rotate at 100 MiB
	DefaultJSONLMaxFiles  = 5         // keep audit.jsonl.1 … audit.jsonl.5
	DefaultJSONLQueueSize = 8192
)

// JSONLOptions configures a JSONL trail. Zero values take the defaults.
type JSONLOptions struct {
	// MaxBytes rotates the file once it would grow past this size.
	// 0 means DefaultJSONLMaxBytes; a negative value never rotates.
	MaxBytes int64
	// MaxFiles is how many rotated files (path.1 … path.N) are kept.
	// 0 means DefaultJSONLMaxFiles.
	MaxFiles int
	// QueueSize bounds the events waiting for the writer goroutine; when it
	// is full, Write drops the event and counts it. 0 means the default.
	QueueSize int
	// FlushInterval is the longest a written line stays in the buffer.
	// 0 means one second.
	FlushInterval time.Duration
	// Log receives rate-limited warnings about drops and write errors.
	Log logrus.FieldLogger
}

// SinkStats counts what a sink did with the events it was given.
type SinkStats struct {
	Written uint64 `json:"written"` // events written out
	Dropped uint64 `json:"dropped"` // events refused because the queue was full or the sink closed
	Errors  uint64 `json:"errors"`  // events lost to encoding or I/O errors
}

// JSONL is a Sink writing one JSON object per line, to a file rotated by size
// or to stdout. Write hands the event to a bounded queue and returns at once;
// one goroutine encodes, buffers and writes. The event must not be modified
// after Write.
type JSONL struct {
	opts JSONLOptions
	path string // "" when writing to a plain io.Writer
	out  io.Writer
	file *os.File
	bw   *bufio.Writer
	size int64

	mu     sync.RWMutex // guards closed and the send on ch
	closed bool
	ch     chan *Event
	done   chan struct{}

	written, dropped, errors atomic.Uint64
	warn                     *warnLimiter
}

var _ Sink = (*JSONL)(nil)

// NewJSONL opens (appending) the trail at path, with mode 0600, or writes to
// stdout when path is "-" or "stdout".
func NewJSONL(path string, opts JSONLOptions) (*JSONL, error) {
	if path == "-" || path == "stdout" {
		return NewJSONLWriter(os.Stdout, opts), nil
	}
	j := newJSONL(opts)
	j.path = path
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: jsonl: %w", err)
	}
	if err := j.openFile(); err != nil {
		return nil, err
	}
	go j.run()
	return j, nil
}

// NewJSONLWriter writes the trail to w, without rotation. w is not closed.
func NewJSONLWriter(w io.Writer, opts JSONLOptions) *JSONL {
	j := newJSONL(opts)
	j.out = w
	j.bw = bufio.NewWriterSize(w, 64<<10)
	go j.run()
	return j
}

func newJSONL(opts JSONLOptions) *JSONL {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultJSONLMaxBytes
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultJSONLMaxFiles
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultJSONLQueueSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	return &JSONL{
		opts: opts,
		ch:   make(chan *Event, opts.QueueSize),
		done: make(chan struct{}),
		warn: newWarnLimiter(opts.Log, 10*time.Second),
	}
}

func (j *JSONL) openFile() error {
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: jsonl: open %s: %w", j.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("audit: jsonl: stat %s: %w", j.path, err)
	}
	j.file, j.out, j.size = f, f, st.Size()
	if j.bw == nil {
		j.bw = bufio.NewWriterSize(f, 64<<10)
	} else {
		j.bw.Reset(f)
	}
	return nil
}

// Write queues e. It never blocks: when the queue is full or the sink is
// closed, the event is dropped and counted.
func (j *JSONL) Write(e *Event) {
	j.mu.RLock()
	if j.closed {
		j.mu.RUnlock()
		j.dropped.Add(1)
		return
	}
	select {
	case j.ch <- e:
		j.mu.RUnlock()
	default:
		j.mu.RUnlock()
		j.dropped.Add(1)
		j.warn.hit("audit: jsonl trail queue full, dropping events", logrus.Fields{"path": j.path, "dropped_total": j.dropped.Load()})
	}
}

// Stats returns the counters so far.
func (j *JSONL) Stats() SinkStats {
	return SinkStats{Written: j.written.Load(), Dropped: j.dropped.Load(), Errors: j.errors.Load()}
}

// Close stops accepting events, writes what is queued, flushes and closes the
// file (never stdout or a caller's writer).
func (j *JSONL) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		<-j.done
		return nil
	}
	j.closed = true
	close(j.ch)
	j.mu.Unlock()
	<-j.done
	var err error
	if j.file != nil {
		if cerr := j.file.Close(); cerr != nil {
			err = fmt.Errorf("audit: jsonl: close %s: %w", j.path, cerr)
		}
	}
	return err
}

func (j *JSONL) run() {
	defer close(j.done)
	tick := time.NewTicker(j.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-j.ch:
			if !ok {
				j.flush()
				return
			}
			j.writeEvent(e)
			// Flush when the queue runs dry, so that a tail -f sees lines
			// promptly; under load the buffer fills and batches writes.
			if len(j.ch) == 0 {
				j.flush()
			}
		case <-tick.C:
			j.flush()
		}
	}
}

func (j *JSONL) writeEvent(e *Event) {
	line, err := e.marshal()
	if err != nil {
		j.errors.Add(1)
		j.warn.hit("audit: jsonl: encode event", logrus.Fields{"error": err.Error()})
		return
	}
	line = append(line, '\n')
	if j.file != nil && j.opts.MaxBytes > 0 && j.size > 0 && j.size+int64(len(line)) > j.opts.MaxBytes {
		if err := j.rotate(); err != nil {
			j.warn.hit("audit: jsonl: rotate", logrus.Fields{"path": j.path, "error": err.Error()})
		}
	}
	if _, err := j.bw.Write(line); err != nil {
		j.errors.Add(1)
		j.warn.hit("audit: jsonl: write", logrus.Fields{"path": j.path, "error": err.Error()})
		return
	}
	j.size += int64(len(line))
	j.written.Add(1)
}

func (j *JSONL) flush() {
	if j.bw.Buffered() == 0 {
		return
	}
	if err := j.bw.Flush(); err != nil {
		j.errors.Add(1)
		j.warn.hit("audit: jsonl: flush", logrus.Fields{"path": j.path, "error": err.Error()})
		// Drop what could not be written rather than retrying forever.
		j.bw.Reset(j.out)
	}
}

// rotate renames path.N-1 → path.N … path → path.1 and reopens path. The
// oldest file beyond MaxFiles is removed.
func (j *JSONL) rotate() error {
	j.flush()
	if err := j.file.Close(); err != nil {
		return fmt.Errorf("audit: jsonl: close for rotation: %w", err)
	}
	n := j.opts.MaxFiles
	_ = os.Remove(fmt.Sprintf("%s.%d", j.path, n))
	for i := n - 1; i >= 1; i-- {
		from := fmt.Sprintf("%s.%d", j.path, i)
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, fmt.Sprintf("%s.%d", j.path, i+1)); err != nil {
				return fmt.Errorf("audit: jsonl: rotate: %w", err)
			}
		}
	}
	if err := os.Rename(j.path, j.path+".1"); err != nil {
		// Keep writing to the same file rather than losing events.
		if oerr := j.openFile(); oerr != nil {
			return oerr
		}
		return fmt.Errorf("audit: jsonl: rotate: %w", err)
	}
	return j.openFile()
}
