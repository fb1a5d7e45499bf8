package audit

import (
	"context"
	"sort"
	"time"
)

// Sanction states of a service.
const (
	StatusSanctioned   = "sanctioned"
	StatusUnsanctioned = "unsanctioned"
	StatusUnknown      = "unknown"
)

// Account markings.
const (
	MarkCorporate = "corporate"
	MarkPersonal  = "personal"
	MarkUnknown   = "unknown"
)

// SanctionFunc says whether policy sanctions a service. known is false when
// the policy says nothing about it; the inventory then falls back on the
// decisions recorded for the service (see ServiceUsage.StatusBasis).
type SanctionFunc func(provider, service string) (sanctioned, known bool)

// Inventory is the shadow-AI inventory: which AI services were used, by
// whom, how much, with which accounts.
type Inventory struct {
	From     time.Time      `json:"from,omitzero"`
	To       time.Time      `json:"to,omitzero"`
	Services []ServiceUsage `json:"services"`
	Accounts []AccountUsage `json:"accounts"`
}

// ServiceUsage is one AI service's line in the inventory.
type ServiceUsage struct {
	Provider string   `json:"provider"`
	Service  string   `json:"service"`
	Category string   `json:"category,omitempty"`
	Sources  []string `json:"sources"` // proxy | dns | sensor, sorted
	Clients  []string `json:"clients"` // distinct client IPs, sorted
	Users    []string `json:"users"`   // distinct authenticated users, sorted

	Requests    int64 `json:"requests"`     // intercepted (inspected) requests
	Blocked     int64 `json:"blocked"`      // requests and connections refused (block, quota, connect_block)
	Tunnels     int64 `json:"tunnels"`      // connections passed through uninspected
	DNSQueries  int64 `json:"dns_queries"`  // DNS look-ups seen by the resolver
	SensorFlows int64 `json:"sensor_flows"` // flows seen by the passive sensor
	TokensIn    int64 `json:"tokens_in"`
	TokensOut   int64 `json:"tokens_out"`
	BytesOut    int64 `json:"bytes_out"` // request bytes, client → AI
	BytesIn     int64 `json:"bytes_in"`  // response bytes, AI → client
	Bytes       int64 `json:"bytes"`     // BytesOut + BytesIn + bytes seen by the sensor

	Status string `json:"status"` // sanctioned | unsanctioned | unknown
	// StatusBasis is "policy" when the SanctionFunc knew the service,
	// "decisions" when derived from recorded decisions, "" when unknown.
	StatusBasis string    `json:"status_basis,omitempty"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`

	allowed    int64 // requests let through (allow, alert, redact, …)
	connBlocks int64 // connections refused at CONNECT
}

// Activity is everything seen of the service: requests, tunnels, DNS
// queries and sensor flows.
func (s *ServiceUsage) Activity() int64 {
	return s.Requests + s.Tunnels + s.DNSQueries + s.SensorFlows + s.connBlocks
}

// AccountUsage is one credential (by fingerprint) at one provider.
type AccountUsage struct {
	Provider    string    `json:"provider"`
	Fingerprint string    `json:"fingerprint"`
	Marking     string    `json:"marking"` // corporate | personal | unknown
	Requests    int64     `json:"requests"`
	Services    []string  `json:"services"`
	Clients     []string  `json:"clients"`
	Users       []string  `json:"users"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
}

type svcKey struct{ provider, service string }
type acctKey struct{ provider, fp string }

type svcAgg struct {
	u       ServiceUsage
	sources map[string]struct{}
	clients map[string]struct{}
	users   map[string]struct{}
}

type acctAgg struct {
	u        AccountUsage
	corp     *bool
	corpMS   int64
	services map[string]struct{}
	clients  map[string]struct{}
	users    map[string]struct{}
}

// invAgg aggregates rows into an inventory. Memory grows with the number
// of distinct services, clients, users and accounts, not with events.
type invAgg struct {
	svcs  map[svcKey]*svcAgg
	accts map[acctKey]*acctAgg
}

func newInvAgg() *invAgg {
	return &invAgg{svcs: map[svcKey]*svcAgg{}, accts: map[acctKey]*acctAgg{}}
}

func sourceOf(kind string) string {
	switch kind {
	case KindDNS:
		return "dns"
	case KindSensor:
		return "sensor"
	default:
		return "proxy"
	}
}

// isRefusal reports whether the row is a refused request or connection.
func isRefusal(r *row) bool {
	return r.Kind == KindConnectBlock || r.Action == "block" || r.Action == "quota"
}

func (a *invAgg) add(r *row) {
	if r.Service == "" && r.Provider == "" {
		return // not AI traffic (e.g. a tunnel to an ordinary host)
	}
	k := svcKey{r.Provider, r.Service}
	s := a.svcs[k]
	if s == nil {
		s = &svcAgg{
			u:       ServiceUsage{Provider: r.Provider, Service: r.Service, Category: r.Category},
			sources: map[string]struct{}{}, clients: map[string]struct{}{}, users: map[string]struct{}{},
		}
		a.svcs[k] = s
	}
	u := &s.u
	if u.Category == "" {
		u.Category = r.Category
	}
	t := r.time()
	if u.FirstSeen.IsZero() || t.Before(u.FirstSeen) {
		u.FirstSeen = t
	}
	if t.After(u.LastSeen) {
		u.LastSeen = t
	}
	s.sources[sourceOf(r.Kind)] = struct{}{}
	if r.ClientIP != "" {
		s.clients[r.ClientIP] = struct{}{}
	}
	if r.User != "" {
		s.users[r.User] = struct{}{}
	}
	switch r.Kind {
	case KindIntercept:
		u.Requests++
	case KindTunnel:
		u.Tunnels++
	case KindDNS:
		u.DNSQueries++
	case KindSensor:
		u.SensorFlows += r.Flows
	case KindConnectBlock:
		u.connBlocks++
	}
	if isRefusal(r) {
		u.Blocked++
	} else if r.Action != "" {
		u.allowed++
	}
	u.TokensIn += r.TokensIn
	u.TokensOut += r.TokensOut
	u.BytesOut += r.ReqBytes
	u.BytesIn += r.RespBytes
	u.Bytes += r.ReqBytes + r.RespBytes + r.SensorBytes

	if r.KeyFP == "" {
		return
	}
	ak := acctKey{r.Provider, r.KeyFP}
	ac := a.accts[ak]
	if ac == nil {
		ac = &acctAgg{
			u:        AccountUsage{Provider: r.Provider, Fingerprint: r.KeyFP},
			services: map[string]struct{}{}, clients: map[string]struct{}{}, users: map[string]struct{}{},
		}
		a.accts[ak] = ac
	}
	au := &ac.u
	if au.FirstSeen.IsZero() || t.Before(au.FirstSeen) {
		au.FirstSeen = t
	}
	if t.After(au.LastSeen) {
		au.LastSeen = t
	}
	if r.Kind == KindIntercept {
		au.Requests++
	}
	if r.Service != "" {
		ac.services[r.Service] = struct{}{}
	}
	if r.ClientIP != "" {
		ac.clients[r.ClientIP] = struct{}{}
	}
	if r.User != "" {
		ac.users[r.User] = struct{}{}
	}
	// The latest marking wins: attribution can improve over time.
	if r.Corporate != nil && (ac.corp == nil || r.TimeMS >= ac.corpMS) {
		c := *r.Corporate
		ac.corp, ac.corpMS = &c, r.TimeMS
	}
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (a *invAgg) result(sanctioned SanctionFunc) Inventory {
	inv := Inventory{Services: make([]ServiceUsage, 0, len(a.svcs)), Accounts: make([]AccountUsage, 0, len(a.accts))}
	for _, s := range a.svcs {
		u := s.u
		u.Sources = sortedKeys(s.sources)
		u.Clients = sortedKeys(s.clients)
		u.Users = sortedKeys(s.users)
		u.Status, u.StatusBasis = StatusUnknown, ""
		if sanctioned != nil {
			if ok, known := sanctioned(u.Provider, u.Service); known {
				u.Status, u.StatusBasis = StatusUnsanctioned, "policy"
				if ok {
					u.Status = StatusSanctioned
				}
			}
		}
		if u.StatusBasis == "" {
			switch {
			case u.allowed > 0:
				u.Status, u.StatusBasis = StatusSanctioned, "decisions"
			case u.Blocked > 0:
				u.Status, u.StatusBasis = StatusUnsanctioned, "decisions"
			}
		}
		inv.Services = append(inv.Services, u)
	}
	sort.Slice(inv.Services, func(i, j int) bool {
		a, b := &inv.Services[i], &inv.Services[j]
		if a.Requests != b.Requests {
			return a.Requests > b.Requests
		}
		if x, y := a.Activity(), b.Activity(); x != y {
			return x > y
		}
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		return a.Service < b.Service
	})
	for _, ac := range a.accts {
		u := ac.u
		u.Services = sortedKeys(ac.services)
		u.Clients = sortedKeys(ac.clients)
		u.Users = sortedKeys(ac.users)
		u.Marking = MarkUnknown
		if ac.corp != nil {
			u.Marking = MarkPersonal
			if *ac.corp {
				u.Marking = MarkCorporate
			}
		}
		inv.Accounts = append(inv.Accounts, u)
	}
	sort.Slice(inv.Accounts, func(i, j int) bool {
		a, b := &inv.Accounts[i], &inv.Accounts[j]
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		if a.Requests != b.Requests {
			return a.Requests > b.Requests
		}
		return a.Fingerprint < b.Fingerprint
	})
	return inv
}

// BuildInventory aggregates events into the inventory. sanctioned may be
// nil: a service's status is then derived from its recorded decisions.
func BuildInventory(events []Event, sanctioned SanctionFunc) Inventory {
	a := newInvAgg()
	for i := range events {
		r := rowOf(&events[i])
		a.add(&r)
	}
	return a.result(sanctioned)
}

// Inventory aggregates the stored events of [from, to) (zero: unbounded)
// by scanning the scalar columns only, so it scales to large stores with
// memory bounded by the number of distinct services, clients and accounts.
func (s *Store) Inventory(ctx context.Context, from, to time.Time, sanctioned SanctionFunc) (Inventory, error) {
	a := newInvAgg()
	if err := s.eachRow(ctx, Query{From: from, To: to}, a.add); err != nil {
		return Inventory{}, err
	}
	inv := a.result(sanctioned)
	inv.From, inv.To = from, to
	return inv, nil
}
