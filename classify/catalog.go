package classify

// Catalog design notes (for doc.go):
//
//   - The built-in catalog is a Go table (catalog_data.go) so that changes to
//     it are reviewed like code and need no file at run time. DefaultCatalog
//     builds a fresh, immutable *Catalog from it on every call; building costs
//     ~0.2 ms (BenchmarkDefaultCatalog), so callers build once at start-up or on a
//     config reload and share the result. A *Catalog is read-only after
//     construction and safe for concurrent use.
//   - Host patterns have three forms:
//     "api.openai.com"              exact host;
//     "*.openai.azure.com"          any subdomain at any depth, never the apex;
//     "bedrock-runtime.*.amazonaws.com" or "*-aiplatform.googleapis.com"
//     a single '*' inside a label: it stands for one or more characters
//     of exactly one DNS label (no dot). We chose this middle wildcard over
//     enumerating AWS/GCP regions because regions are added every year and a
//     stale list silently stops intercepting; the pattern stays small.
//   - Precedence: an exact entry beats any wildcard; between wildcards the one
//     with more literal characters wins (so "*.services.ai.azure.com" beats a
//     hypothetical "*.azure.com"); on a tie a "*." suffix beats a label
//     wildcard, and label wildcards keep table order.
//   - Entries with a Path are "path rules": they describe an AI feature inside
//     a general-purpose host (github.com/copilot, www.bing.com/chat). Lookup
//     ignores them on purpose, so the interception decision (made before any
//     path is known) never decrypts github.com because of a path rule. Callers
//     that already see the request (explicit proxy, already-intercepted flows)
//     use LookupPath. HasPathRules tells a caller that a host has such rules,
//     for policies that want to intercept those hosts too.
//   - Path prefixes are plain, case-sensitive byte prefixes of the URL path;
//     write "/chat/" rather than "/chat" where a segment boundary matters.
//   - Lookup is allocation-free for lower-case input: the port and trailing
//     dot are removed by slicing, exact hosts and "*." suffixes are Go map
//     look-ups on substrings (one per label), and the few label wildcards are
//     scanned linearly.

import (
	"fmt"
	"sort"
	"strings"
)

// Entry is one catalog row: a host pattern, an optional path prefix, and the
// service it identifies.
type Entry struct {
	// Host is an exact host ("api.openai.com"), a subdomain wildcard
	// ("*.openai.azure.com", not matching the apex) or a label wildcard
	// ("bedrock-runtime.*.amazonaws.com", "*-aiplatform.googleapis.com",
	// where '*' is one or more characters of a single label).
	Host string `json:"host" yaml:"host"`
	// Path, when set, is a URL path prefix: the entry then only matches
	// through LookupPath, never through Lookup.
	Path    string `json:"path,omitempty" yaml:"path"`
	Service `yaml:",inline"`
}

// Catalog answers "is this host (and path) an AI service, and which?".
type Catalog struct {
	entries []Entry

	exact  map[string]int // host -> index into entries
	suffix map[string]int // "openai.azure.com" for "*.openai.azure.com"
	labels []labelPattern // label wildcards, scanned linearly

	pathExact map[string][]pathRule // host -> rules, longest prefix first
	pathWild  []wildPathRule        // path rules on wildcard hosts
}

type labelPattern struct {
	prefix, suffix string // literal text before and after '*'
	idx            int
}

type pathRule struct {
	prefix string
	idx    int
}

type wildPathRule struct {
	pat pattern
	pathRule
}

// pattern is a compiled host pattern.
type pattern struct {
	kind           patternKind
	prefix, suffix string
}

type patternKind uint8

const (
	patExact patternKind = iota
	patSubdomain
	patLabel
)

func (p pattern) match(host string) bool {
	switch p.kind {
	case patExact:
		return host == p.suffix
	case patSubdomain:
		return len(host) > len(p.suffix)+1 && host[len(host)-len(p.suffix)-1] == '.' &&
			strings.HasSuffix(host, p.suffix)
	default:
		return matchLabel(host, p.prefix, p.suffix)
	}
}

func matchLabel(host, prefix, suffix string) bool {
	if len(host) <= len(prefix)+len(suffix) ||
		!strings.HasPrefix(host, prefix) || !strings.HasSuffix(host, suffix) {
		return false
	}
	return strings.IndexByte(host[len(prefix):len(host)-len(suffix)], '.') < 0
}

var knownCategories = map[Category]bool{
	CategoryAPI: true, CategoryChat: true, CategoryCoding: true,
	CategoryMedia: true, CategoryWriting: true, CategoryGateway: true,
}

// compilePattern validates and normalises a host pattern.
func compilePattern(host string) (string, pattern, error) {
	h := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(host), "."))
	if h == "" {
		return "", pattern{}, fmt.Errorf("empty host")
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '*' || c == '_') {
			return "", pattern{}, fmt.Errorf("host %q: invalid character %q", host, c)
		}
	}
	if strings.Contains(h, "..") || h[0] == '.' {
		return "", pattern{}, fmt.Errorf("host %q: empty label", host)
	}
	star := strings.IndexByte(h, '*')
	if star < 0 {
		return h, pattern{kind: patExact, suffix: h}, nil
	}
	if strings.Count(h, "*") > 1 {
		return "", pattern{}, fmt.Errorf("host %q: more than one '*'", host)
	}
	before, after := h[:star], h[star+1:]
	if before != "" && !strings.HasSuffix(before, ".") {
		return "", pattern{}, fmt.Errorf("host %q: '*' must start a label", host)
	}
	// What follows the wildcard must name at least a registrable domain,
	// so "*.com" or "*" are refused.
	rest := after
	if i := strings.IndexByte(after, '.'); i >= 0 {
		rest = after[i+1:]
	} else {
		return "", pattern{}, fmt.Errorf("host %q: wildcard needs a domain after it", host)
	}
	if !strings.Contains(rest, ".") && before == "" {
		return "", pattern{}, fmt.Errorf("host %q: wildcard too broad", host)
	}
	if before == "" && strings.HasPrefix(after, ".") {
		return h, pattern{kind: patSubdomain, suffix: after[1:]}, nil
	}
	return h, pattern{kind: patLabel, prefix: before, suffix: after}, nil
}

// normalisePath checks a path prefix.
func normalisePath(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return "", nil
	}
	if p[0] != '/' {
		return "", fmt.Errorf("path %q must start with '/'", p)
	}
	return p, nil
}

func validateEntry(e *Entry) (pattern, error) {
	h, pat, err := compilePattern(e.Host)
	if err != nil {
		return pattern{}, err
	}
	p, err := normalisePath(e.Path)
	if err != nil {
		return pattern{}, err
	}
	e.Host, e.Path = h, p
	if !knownCategories[e.Category] {
		return pattern{}, fmt.Errorf("unknown category %q", e.Category)
	}
	if strings.TrimSpace(e.Provider) == "" {
		return pattern{}, fmt.Errorf("empty provider")
	}
	if strings.TrimSpace(e.Service.Service) == "" {
		return pattern{}, fmt.Errorf("empty service name")
	}
	return pat, nil
}

// DefaultCatalog returns the built-in catalog. It builds a new Catalog on
// every call; build it once and share it.
func DefaultCatalog() *Catalog {
	c, err := NewCatalog(nil)
	if err != nil {
		// The table is checked by TestDefaultCatalogValid; reaching this
		// is a programming error in catalog_data.go.
		panic(err)
	}
	return c
}

// NewCatalog returns the built-in entries plus extra. An extra entry with the
// same Host and Path as a built-in one (after normalisation) replaces it;
// others are added. Every entry is validated; the error names the first bad
// one.
func NewCatalog(extra []Entry) (*Catalog, error) {
	entries := make([]Entry, 0, len(defaultEntries)+len(extra))
	pats := make([]pattern, 0, cap(entries))
	key := make(map[string]int, cap(entries))
	add := func(e Entry, origin string, n int, override bool) (string, error) {
		pat, err := validateEntry(&e)
		if err != nil {
			return "", fmt.Errorf("classify: catalog %s entry %d (host %q path %q): %w", origin, n, e.Host, e.Path, err)
		}
		k := e.Host + "\x00" + e.Path
		if i, ok := key[k]; ok {
			if !override {
				return "", fmt.Errorf("classify: catalog %s entry %d (host %q path %q): duplicate", origin, n, e.Host, e.Path)
			}
			entries[i], pats[i] = e, pat
			return k, nil
		}
		key[k] = len(entries)
		entries = append(entries, e)
		pats = append(pats, pat)
		return k, nil
	}
	for i, e := range defaultEntries {
		if _, err := add(e, "built-in", i, false); err != nil {
			return nil, err
		}
	}
	userSeen := make(map[string]bool, len(extra))
	for i, e := range extra {
		k, err := add(e, "user", i, true)
		if err != nil {
			return nil, err
		}
		if userSeen[k] {
			return nil, fmt.Errorf("classify: catalog user entry %d (host %q path %q): duplicate", i, e.Host, e.Path)
		}
		userSeen[k] = true
	}
	return buildCatalog(entries, pats), nil
}

func buildCatalog(entries []Entry, pats []pattern) *Catalog {
	c := &Catalog{
		entries:   entries,
		exact:     make(map[string]int),
		suffix:    make(map[string]int),
		pathExact: make(map[string][]pathRule),
	}
	for i, e := range entries {
		p := pats[i]
		if e.Path != "" {
			r := pathRule{prefix: e.Path, idx: i}
			if p.kind == patExact {
				c.pathExact[e.Host] = append(c.pathExact[e.Host], r)
			} else {
				c.pathWild = append(c.pathWild, wildPathRule{pat: p, pathRule: r})
			}
			continue
		}
		switch p.kind {
		case patExact:
			c.exact[p.suffix] = i
		case patSubdomain:
			c.suffix[p.suffix] = i
		default:
			c.labels = append(c.labels, labelPattern{prefix: p.prefix, suffix: p.suffix, idx: i})
		}
	}
	for h, rs := range c.pathExact {
		sort.SliceStable(rs, func(a, b int) bool { return len(rs[a].prefix) > len(rs[b].prefix) })
		c.pathExact[h] = rs
	}
	sort.SliceStable(c.pathWild, func(a, b int) bool {
		return len(c.pathWild[a].prefix) > len(c.pathWild[b].prefix)
	})
	sort.SliceStable(c.labels, func(a, b int) bool {
		return len(c.labels[a].prefix)+len(c.labels[a].suffix) > len(c.labels[b].prefix)+len(c.labels[b].suffix)
	})
	return c
}

// normaliseHost strips a ":port", IPv6 brackets and a trailing dot, and
// lower-cases. It allocates only when the host has upper-case letters.
func normaliseHost(host string) string {
	if len(host) > 0 && host[0] == '[' {
		if i := strings.IndexByte(host, ']'); i > 0 {
			host = host[1:i]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		host = host[:i]
	}
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// Lookup returns the service for host, using host-level entries only
// (entries with a Path never match here). host may carry a ":port" and a
// trailing dot and is compared case-insensitively. An exact entry beats a
// wildcard; a wildcard with more literal characters beats a shorter one.
func (c *Catalog) Lookup(host string) (Service, bool) {
	if c == nil {
		return Service{}, false
	}
	i := c.lookupHost(normaliseHost(host))
	if i < 0 {
		return Service{}, false
	}
	return c.entries[i].Service, true
}

func (c *Catalog) lookupHost(h string) int {
	if h == "" {
		return -1
	}
	if i, ok := c.exact[h]; ok {
		return i
	}
	best, bestLen := -1, -1
	// "*.suffix": try every proper suffix that starts after a dot, longest
	// first; the first hit is the most specific.
	for j := 0; j < len(h); j++ {
		if h[j] != '.' {
			continue
		}
		if i, ok := c.suffix[h[j+1:]]; ok {
			best, bestLen = i, len(h)-j // literal chars of "*.suffix" incl. the dot
			break
		}
	}
	for _, lp := range c.labels {
		l := len(lp.prefix) + len(lp.suffix)
		if l <= bestLen {
			break // sorted by literal length, longest first
		}
		if matchLabel(h, lp.prefix, lp.suffix) {
			return lp.idx
		}
	}
	return best
}

// LookupPath returns the service for a request to host and URL path: the
// path rule with the longest matching prefix first, then the host-level
// entries as Lookup does.
func (c *Catalog) LookupPath(host, path string) (Service, bool) {
	if c == nil {
		return Service{}, false
	}
	h := normaliseHost(host)
	for _, r := range c.pathExact[h] {
		if strings.HasPrefix(path, r.prefix) {
			return c.entries[r.idx].Service, true
		}
	}
	for _, r := range c.pathWild {
		if strings.HasPrefix(path, r.prefix) && r.pat.match(h) {
			return c.entries[r.idx].Service, true
		}
	}
	i := c.lookupHost(h)
	if i < 0 {
		return Service{}, false
	}
	return c.entries[i].Service, true
}

// HasPathRules reports whether some path rule applies to host.
func (c *Catalog) HasPathRules(host string) bool {
	if c == nil {
		return false
	}
	h := normaliseHost(host)
	if len(c.pathExact[h]) > 0 {
		return true
	}
	for _, r := range c.pathWild {
		if r.pat.match(h) {
			return true
		}
	}
	return false
}

// Len returns the number of entries (host-level and path rules).
func (c *Catalog) Len() int {
	if c == nil {
		return 0
	}
	return len(c.entries)
}

// Entries returns a copy of all entries, built-in ones first in table order
// (overridden ones in place), then added user entries.
func (c *Catalog) Entries() []Entry {
	if c == nil {
		return nil
	}
	out := make([]Entry, len(c.entries))
	copy(out, c.entries)
	return out
}
