package enforce

import (
	"fmt"
	"sync"
	"time"

	"github.com/aigress/aigress/classify"
)

// QuotaStore counts in fixed time windows. The in-process MemoryStore is
// the default; a shared store (for a fleet of gateways) can replace it.
type QuotaStore interface {
	// Add adds n to key's counter for the window containing now and
	// returns the new total.
	Add(key string, window time.Duration, n int64, now time.Time) (total int64)
	// Get returns key's counter for the window containing now.
	Get(key string, window time.Duration, now time.Time) int64
}

// MemoryStore is an in-process QuotaStore with fixed windows aligned to
// the Unix epoch (UTC days). It holds at most maxKeys counters: expired
// windows are swept when it fills, and if it is still full arbitrary
// counters are dropped (erring towards allowing).
type MemoryStore struct {
	mu      sync.Mutex
	maxKeys int
	m       map[string]*counter
	adds    int
}

type counter struct {
	start time.Time
	win   time.Duration
	n     int64
}

var _ QuotaStore = (*MemoryStore)(nil)

// NewMemoryStore returns a store bounded to maxKeys counters (0 means
// 100000).
func NewMemoryStore(maxKeys int) *MemoryStore {
	if maxKeys <= 0 {
		maxKeys = 100000
	}
	return &MemoryStore{maxKeys: maxKeys, m: map[string]*counter{}}
}

func storeKey(key string, window time.Duration) string {
	return key + "/" + window.String()
}

// Add implements QuotaStore.
func (s *MemoryStore) Add(key string, window time.Duration, n int64, now time.Time) int64 {
	start := now.Truncate(window)
	k := storeKey(key, window)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[k]
	if c == nil {
		if len(s.m) >= s.maxKeys {
			s.sweep(now)
		}
		c = &counter{start: start, win: window}
		s.m[k] = c
	} else if !c.start.Equal(start) {
		c.start, c.n = start, 0
	}
	c.n += n
	s.adds++
	if s.adds%4096 == 0 {
		s.sweep(now)
	}
	return c.n
}

// Get implements QuotaStore.
func (s *MemoryStore) Get(key string, window time.Duration, now time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[storeKey(key, window)]
	if c == nil || !c.start.Equal(now.Truncate(window)) {
		return 0
	}
	return c.n
}

// Len is the number of counters held.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *MemoryStore) sweep(now time.Time) {
	for k, c := range s.m {
		if !now.Before(c.start.Add(c.win)) {
			delete(s.m, k)
		}
	}
	for k := range s.m {
		if len(s.m) < s.maxKeys {
			break
		}
		delete(s.m, k)
	}
}

// Quotas applies a policy's quotas. It outlives policy reloads: counters
// are keyed by quota ID, so an unchanged quota keeps its counts.
//
// Requests are counted by Check when it lets a request through; tokens
// are counted by Charge from the response's usage. A token limit refuses
// the requests that come after the one that crossed it. Check and Add are
// not atomic together, so concurrent requests may overshoot a request
// limit by the number in flight.
type Quotas struct {
	store QuotaStore
}

// NewQuotas uses store (a MemoryStore when nil).
func NewQuotas(store QuotaStore) *Quotas {
	if store == nil {
		store = NewMemoryStore(0)
	}
	return &Quotas{store: store}
}

type quotaLimit struct {
	name   string
	window time.Duration
	limit  int64
	tokens bool
}

func (q *quota) limits() []quotaLimit {
	var out []quotaLimit
	add := func(name string, w time.Duration, n int64, tokens bool) {
		if n > 0 {
			out = append(out, quotaLimit{name, w, n, tokens})
		}
	}
	add("requests per minute", time.Minute, q.spec.RequestsPerMinute, false)
	add("requests per day", 24*time.Hour, q.spec.RequestsPerDay, false)
	add("tokens per minute", time.Minute, q.spec.TokensPerMinute, true)
	add("tokens per day", 24*time.Hour, q.spec.TokensPerDay, true)
	return out
}

// subject returns the counter subject for an identity ("" when the quota
// does not apply to it).
func (q *quota) subject(id Identity) string {
	ip := ""
	if id.IP.IsValid() {
		ip = id.IP.String()
	}
	switch q.spec.Per {
	case "group":
		for _, g := range id.Groups {
			if len(q.m.groups) == 0 || anyGroup(q.m.groups, []string{g}) {
				return "group:" + g
			}
		}
		return "ip:" + ip
	case "client_ip":
		return "ip:" + ip
	}
	if id.User != "" {
		return "user:" + id.User
	}
	return "ip:" + ip
}

func (q *quota) applies(id Identity, provider, model string) bool {
	svc := classify.Service{Provider: provider}
	if !q.m.matchWho(id, svc) {
		return false
	}
	return len(q.m.models) == 0 || globAny(q.m.models, model)
}

func (q *quota) key(subject string, tokens bool) string {
	kind := "req"
	if tokens {
		kind = "tok"
	}
	return "quota/" + q.spec.ID + "/" + kind + "/" + subject
}

// Check refuses a request with ActionQuota when any quota that applies is
// exhausted, naming the quota and its window; otherwise it counts the
// request against every request limit and allows it.
func (q *Quotas) Check(p *Policy, id Identity, provider, model string, now time.Time) Decision {
	type hit struct {
		key    string
		window time.Duration
	}
	var count []hit
	for _, qt := range p.quotas {
		if !qt.applies(id, provider, model) {
			continue
		}
		subj := qt.subject(id)
		for _, l := range qt.limits() {
			k := qt.key(subj, l.tokens)
			used := q.store.Get(k, l.window, now)
			if (!l.tokens && used+1 > l.limit) || (l.tokens && used >= l.limit) {
				reason := fmt.Sprintf("quota %s exceeded: %d of %d %s used by %s", qt.spec.ID, used, l.limit, l.name, subj)
				return Decision{Action: ActionQuota, RuleID: qt.spec.ID, Reason: reason, Message: qt.spec.Message}
			}
			if !l.tokens {
				count = append(count, hit{k, l.window})
			}
		}
	}
	for _, h := range count {
		q.store.Add(h.key, h.window, 1, now)
	}
	return Decision{Action: ActionAllow, Reason: "within quota"}
}

// Charge counts a response's tokens (input + output; cached and reasoning
// tokens are already part of those) against every token limit that
// applies. The model is usage.Model when the provider reported it.
func (q *Quotas) Charge(p *Policy, id Identity, provider, model string, usage classify.Usage, now time.Time) {
	n := usage.Input + usage.Output
	if n <= 0 {
		return
	}
	if usage.Model != "" && model == "" {
		model = usage.Model
	}
	for _, qt := range p.quotas {
		if !qt.applies(id, provider, model) {
			continue
		}
		subj := qt.subject(id)
		for _, l := range qt.limits() {
			if l.tokens {
				q.store.Add(qt.key(subj, true), l.window, n, now)
			}
		}
	}
}
