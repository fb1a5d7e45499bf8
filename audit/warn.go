package audit

import (
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// warnLimiter logs a warning at most once per interval, with the number of
// occurrences folded into it since the last line. Safe for concurrent use.
type warnLimiter struct {
	log      logrus.FieldLogger
	interval time.Duration
	last     atomic.Int64 // unix nanoseconds of the last line
	pending  atomic.Int64 // occurrences not yet reported
}

func newWarnLimiter(log logrus.FieldLogger, interval time.Duration) *warnLimiter {
	if log == nil {
		l := logrus.New()
		l.Out = discard{}
		log = l
	}
	return &warnLimiter{log: log, interval: interval}
}

// hit records one occurrence and logs msg if the interval has passed.
func (w *warnLimiter) hit(msg string, fields logrus.Fields) {
	w.pending.Add(1)
	now := time.Now().UnixNano()
	last := w.last.Load()
	if now-last < int64(w.interval) || !w.last.CompareAndSwap(last, now) {
		return
	}
	n := w.pending.Swap(0)
	f := logrus.Fields{"occurrences": n}
	for k, v := range fields {
		f[k] = v
	}
	w.log.WithFields(f).Warn(msg)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
