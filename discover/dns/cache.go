package dns

import (
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	mdns "github.com/miekg/dns"
)

// cacheKey identifies a cached answer. The DO bit is part of the key because
// a DNSSEC-aware answer carries RRSIGs that a plain one does not.
type cacheKey struct {
	name   string // lower case, fully qualified
	qtype  uint16
	qclass uint16
	do     bool
}

// cacheEntry is an upstream answer as received (OPT removed), never modified
// after it is stored: readers copy the RRs before changing TTLs.
type cacheEntry struct {
	rcode  int
	ad     bool
	answer []mdns.RR
	ns     []mdns.RR
	extra  []mdns.RR
	stored time.Time
	expire time.Time
}

type cache struct {
	lru       *lru.Cache[cacheKey, *cacheEntry]
	maxTTL    time.Duration
	maxNegTTL time.Duration
}

func newCache(size int, maxTTL, maxNegTTL time.Duration) (*cache, error) {
	l, err := lru.New[cacheKey, *cacheEntry](size)
	if err != nil {
		return nil, err
	}
	return &cache{lru: l, maxTTL: maxTTL, maxNegTTL: maxNegTTL}, nil
}

func keyOf(q mdns.Question, do bool) cacheKey {
	return cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, qclass: q.Qclass, do: do}
}

// get returns a live entry, or nil.
func (c *cache) get(k cacheKey, now time.Time) *cacheEntry {
	e, ok := c.lru.Get(k)
	if !ok {
		return nil
	}
	if !now.Before(e.expire) {
		c.lru.Remove(k)
		return nil
	}
	return e
}

// put stores m if it is cacheable: NOERROR or NXDOMAIN, not truncated. A
// positive answer lives for the smallest RR TTL (capped at maxTTL); a negative
// one (NXDOMAIN or NODATA) for min(SOA TTL, SOA MINIMUM) (capped at
// maxNegTTL, RFC 2308), and is not cached without a SOA.
func (c *cache) put(k cacheKey, m *mdns.Msg, now time.Time) {
	if m.Truncated || (m.Rcode != mdns.RcodeSuccess && m.Rcode != mdns.RcodeNameError) {
		return
	}
	ttl, ok := cacheTTL(m, c.maxTTL, c.maxNegTTL)
	if !ok || ttl <= 0 {
		return
	}
	e := &cacheEntry{
		rcode:  m.Rcode,
		ad:     m.AuthenticatedData,
		answer: copyRRs(m.Answer),
		ns:     copyRRs(m.Ns),
		extra:  copyRRs(m.Extra),
		stored: now,
		expire: now.Add(ttl),
	}
	c.lru.Add(k, e)
}

func cacheTTL(m *mdns.Msg, maxTTL, maxNegTTL time.Duration) (time.Duration, bool) {
	negative := m.Rcode == mdns.RcodeNameError || len(m.Answer) == 0
	if negative {
		for _, rr := range m.Ns {
			if soa, ok := rr.(*mdns.SOA); ok {
				ttl := min(soa.Hdr.Ttl, soa.Minttl)
				return min(time.Duration(ttl)*time.Second, maxNegTTL), true
			}
		}
		return 0, false
	}
	minTTL := ^uint32(0)
	for _, sec := range [][]mdns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype == mdns.TypeOPT {
				continue
			}
			minTTL = min(minTTL, rr.Header().Ttl)
		}
	}
	return min(time.Duration(minTTL)*time.Second, maxTTL), true
}

// copyRRs deep-copies rrs, dropping OPT pseudo-records.
func copyRRs(rrs []mdns.RR) []mdns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]mdns.RR, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == mdns.TypeOPT {
			continue
		}
		out = append(out, mdns.Copy(rr))
	}
	return out
}

// agedRRs copies rrs with their TTLs decreased by age (whole seconds).
func agedRRs(rrs []mdns.RR, age uint32) []mdns.RR {
	out := copyRRs(rrs)
	for _, rr := range out {
		h := rr.Header()
		if h.Ttl > age {
			h.Ttl -= age
		} else {
			h.Ttl = 0
		}
	}
	return out
}
