package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ReportOptions shapes a report. Zero values take the defaults.
type ReportOptions struct {
	Title       string         // default "AI Usage and Compliance Report"
	GeneratedAt time.Time      // default time.Now()
	Location    *time.Location // time zone of buckets and display; default UTC
	TopN        int            // rows in the top tables; default 10
	MaxNotable  int            // rows in the notable events table; default 200
	Sanctioned  SanctionFunc   // optional, as for the inventory
}

// ReportData is everything a report shows; the JSON format is this struct.
type ReportData struct {
	Title       string    `json:"title"`
	GeneratedAt time.Time `json:"generated_at"`
	TimeZone    string    `json:"time_zone"`
	// From and To are the period (To exclusive). When the caller leaves
	// them open they are the first event and just after the last one.
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	FirstEvent time.Time `json:"first_event,omitzero"`
	LastEvent  time.Time `json:"last_event,omitzero"`

	Summary    ReportSummary   `json:"summary"`
	Collection []SourceCount   `json:"collection"` // how the data was collected
	Policies   []PolicyVersion `json:"policies"`   // policy versions in force

	Bucket   string       `json:"bucket"` // hour | day | week
	Timeline []TimeBucket `json:"timeline"`

	TopServices  []ServiceRow `json:"top_services"`
	TopUsers     []UserRow    `json:"top_users"`
	Findings     []NamedCount `json:"findings"` // by type, most first
	Actions      []NamedCount `json:"actions"`  // decisions by action
	Unsanctioned []ServiceRow `json:"unsanctioned"`
	Accounts     []AccountRow `json:"accounts"`
	Notable      []NotableRow `json:"notable"`
	NotableTotal int          `json:"notable_total"` // before truncation to MaxNotable
}

// ReportSummary holds the headline figures.
type ReportSummary struct {
	Events           int64 `json:"events"`   // all events in the period
	Requests         int64 `json:"requests"` // intercepted AI requests
	Tunnels          int64 `json:"tunnels"`  // uninspected AI connections
	ConnectBlocks    int64 `json:"connect_blocks"`
	DNSQueries       int64 `json:"dns_queries"`
	SensorFlows      int64 `json:"sensor_flows"`
	Services         int   `json:"services"`
	Clients          int   `json:"clients"`
	Users            int   `json:"users"`
	TokensIn         int64 `json:"tokens_in"`
	TokensOut        int64 `json:"tokens_out"`
	BytesOut         int64 `json:"bytes_out"`
	BytesIn          int64 `json:"bytes_in"`
	Blocked          int64 `json:"blocked"` // requests and connections refused
	Redacted         int64 `json:"redacted"`
	Alerted          int64 `json:"alerted"`
	Findings         int64 `json:"findings"` // sum of finding counts
	Unsanctioned     int   `json:"unsanctioned"`
	PersonalAccounts int   `json:"personal_accounts"` // distinct personal credentials
	PersonalRequests int64 `json:"personal_requests"` // requests made with them
	Errors           int64 `json:"errors"`            // events recording an error
}

// SourceCount is the number of events of one kind.
type SourceCount struct {
	Source string `json:"source"` // proxy | dns | sensor
	Kind   string `json:"kind"`
	Label  string `json:"label"`
	Events int64  `json:"events"`
}

// PolicyVersion is one policy hash seen in the period.
type PolicyVersion struct {
	Hash      string    `json:"hash"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Events    int64     `json:"events"`
}

// TimeBucket is AI activity in one hour, day or week.
type TimeBucket struct {
	Start    time.Time `json:"start"`
	Requests int64     `json:"requests"` // intercepted requests let through
	Blocked  int64     `json:"blocked"`  // requests and connections refused
	Observed int64     `json:"observed"` // tunnels, DNS queries and sensor flows
}

// Total is all activity in the bucket.
func (b TimeBucket) Total() int64 { return b.Requests + b.Blocked + b.Observed }

// ServiceRow is a service in the top and unsanctioned tables.
type ServiceRow struct {
	Provider  string    `json:"provider"`
	Service   string    `json:"service"`
	Category  string    `json:"category,omitempty"`
	Sources   []string  `json:"sources"`
	Requests  int64     `json:"requests"`
	Activity  int64     `json:"activity"` // requests, tunnels, DNS queries, sensor flows
	Blocked   int64     `json:"blocked"`
	Clients   int       `json:"clients"`
	Users     int       `json:"users"`
	TokensIn  int64     `json:"tokens_in"`
	TokensOut int64     `json:"tokens_out"`
	Status    string    `json:"status"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// UserRow is a user (or, without authentication, a client address).
type UserRow struct {
	Who      string `json:"who"`
	IsUser   bool   `json:"is_user"` // false: Who is a client IP
	Requests int64  `json:"requests"`
	Activity int64  `json:"activity"`
	Blocked  int64  `json:"blocked"`
	Findings int64  `json:"findings"`
	Services int    `json:"services"`
}

// NamedCount is a label and a count.
type NamedCount struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

// AccountRow is a credential fingerprint at a provider.
type AccountRow struct {
	Provider    string `json:"provider"`
	Fingerprint string `json:"fingerprint"`
	Marking     string `json:"marking"`
	Requests    int64  `json:"requests"`
	Users       int    `json:"users"`
	Clients     int    `json:"clients"`
}

// NotableRow is an event an auditor should see: a block, a redaction, an
// alert, findings, or a personal account. It never carries prompt text.
type NotableRow struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Who      string    `json:"who"`
	ClientIP string    `json:"client_ip,omitempty"`
	Service  string    `json:"service,omitempty"`
	Model    string    `json:"model,omitempty"`
	Action   string    `json:"action,omitempty"`
	Rule     string    `json:"rule,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Findings string    `json:"findings,omitempty"` // "type×count, …"
	Account  string    `json:"account,omitempty"`  // "personal ab12…" etc.
	Why      []string  `json:"why"`                // blocked | redacted | alerted | findings | personal account
}

// ReportBuilder accumulates events into a report, one at a time, so that a
// store can stream a long period.
type ReportBuilder struct {
	from, to time.Time
	opts     ReportOptions
	inv      *invAgg
	sum      ReportSummary
	kinds    map[string]int64
	policies map[string]*PolicyVersion
	findings map[string]int64
	actions  map[string]int64
	clients  map[string]struct{}
	users    map[string]*userAgg
	personal map[acctKey]struct{}
	first    time.Time
	last     time.Time
	hours    map[int64]*[3]int64 // hour start (ms) → requests, refused, observed
	notable  []NotableRow
	nNotable int
}

type userAgg struct {
	UserRow
	services map[string]struct{}
}

// NewReportBuilder starts a report over [from, to); zero bounds are taken
// from the events.
func NewReportBuilder(from, to time.Time, opts ReportOptions) *ReportBuilder {
	if opts.Title == "" {
		opts.Title = "AI Usage and Compliance Report"
	}
	if opts.GeneratedAt.IsZero() {
		opts.GeneratedAt = time.Now()
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.TopN <= 0 {
		opts.TopN = 10
	}
	if opts.MaxNotable <= 0 {
		opts.MaxNotable = 200
	}
	return &ReportBuilder{
		from: from, to: to, opts: opts, inv: newInvAgg(),
		kinds: map[string]int64{}, policies: map[string]*PolicyVersion{},
		findings: map[string]int64{}, actions: map[string]int64{},
		clients: map[string]struct{}{}, users: map[string]*userAgg{}, personal: map[acctKey]struct{}{},
		hours: map[int64]*[3]int64{},
	}
}

// Add accounts for one event.
func (b *ReportBuilder) Add(e *Event) {
	r := rowOf(e)
	t := e.Time
	b.sum.Events++
	b.kinds[e.Kind]++
	if b.first.IsZero() || t.Before(b.first) {
		b.first = t
	}
	if t.After(b.last) {
		b.last = t
	}
	if e.PolicyHash != "" {
		p := b.policies[e.PolicyHash]
		if p == nil {
			p = &PolicyVersion{Hash: e.PolicyHash, FirstSeen: t, LastSeen: t}
			b.policies[e.PolicyHash] = p
		}
		p.Events++
		if t.Before(p.FirstSeen) {
			p.FirstSeen = t
		}
		if t.After(p.LastSeen) {
			p.LastSeen = t
		}
	}
	if e.Error != "" {
		b.sum.Errors++
	}
	ai := e.Service != "" || e.Provider != ""
	if !ai {
		return // ordinary tunnelled traffic: counted in Events only
	}
	b.inv.add(&r)

	refused := isRefusal(&r)
	switch e.Kind {
	case KindIntercept:
		b.sum.Requests++
	case KindTunnel:
		b.sum.Tunnels++
	case KindConnectBlock:
		b.sum.ConnectBlocks++
	case KindDNS:
		b.sum.DNSQueries++
	case KindSensor:
		b.sum.SensorFlows += r.Flows
	}
	// The timeline is kept per hour (bounded memory) and rolled up into
	// days or weeks at Finish.
	n, slot := int64(1), 2
	switch {
	case refused:
		slot = 1
	case e.Kind == KindIntercept:
		slot = 0
	case e.Kind == KindSensor:
		n = r.Flows
	}
	hk := bucketStart(t.In(b.opts.Location), "hour").UnixMilli()
	h := b.hours[hk]
	if h == nil {
		h = new([3]int64)
		b.hours[hk] = h
	}
	h[slot] += n

	b.sum.TokensIn += r.TokensIn
	b.sum.TokensOut += r.TokensOut
	b.sum.BytesOut += r.ReqBytes
	b.sum.BytesIn += r.RespBytes
	if r.Action != "" {
		b.actions[r.Action]++
	} else if e.Kind == KindConnectBlock {
		b.actions["block"]++
	}
	switch {
	case refused:
		b.sum.Blocked++
	case r.Action == "redact":
		b.sum.Redacted++
	case r.Action == "alert":
		b.sum.Alerted++
	}
	for typ, n := range e.Findings {
		b.findings[typ] += int64(n)
		b.sum.Findings += int64(n)
	}
	if e.Client.IP != "" {
		b.clients[e.Client.IP] = struct{}{}
	}
	personal := e.Account != nil && e.Account.Corporate != nil && !*e.Account.Corporate
	if personal {
		if e.Kind == KindIntercept {
			b.sum.PersonalRequests++
		}
		if e.Account.KeyFingerprint != "" {
			b.personal[acctKey{e.Provider, e.Account.KeyFingerprint}] = struct{}{}
		}
	}

	who, isUser := e.Client.User, true
	if who == "" {
		who, isUser = e.Client.IP, false
	}
	if who != "" {
		u := b.users[who]
		if u == nil {
			u = &userAgg{UserRow: UserRow{Who: who, IsUser: isUser}, services: map[string]struct{}{}}
			b.users[who] = u
		}
		if e.Kind == KindIntercept {
			u.Requests++
		}
		u.Activity += n
		if refused {
			u.Blocked++
		}
		u.Findings += int64(r.Findings)
		if e.Service != "" {
			u.services[e.Service] = struct{}{}
		}
	}

	var why []string
	switch {
	case refused:
		why = append(why, "blocked")
	case r.Action == "redact" || e.Redactions > 0:
		why = append(why, "redacted")
	case r.Action == "alert":
		why = append(why, "alerted")
	}
	if len(e.Findings) > 0 {
		why = append(why, "findings")
	}
	if personal {
		why = append(why, "personal account")
	}
	if len(why) > 0 {
		b.nNotable++
		if len(b.notable) < b.opts.MaxNotable {
			b.notable = append(b.notable, notableOf(e, who, why))
		}
	}
}

func notableOf(e *Event, who string, why []string) NotableRow {
	n := NotableRow{
		ID: e.ID, Time: e.Time, Kind: e.Kind, Who: who, ClientIP: e.Client.IP,
		Service: e.Service, Model: e.Model, Why: why,
	}
	if e.Decision != nil {
		n.Action, n.Rule = e.Decision.Action, e.Decision.Rule
		n.Reason = clip(e.Decision.Reason, 160)
	} else if e.Kind == KindConnectBlock {
		n.Action = "block"
	}
	if len(e.Findings) > 0 {
		types := make([]string, 0, len(e.Findings))
		for t := range e.Findings {
			types = append(types, t)
		}
		sort.Strings(types)
		parts := make([]string, len(types))
		for i, t := range types {
			parts[i] = fmt.Sprintf("%s×%d", t, e.Findings[t])
		}
		n.Findings = strings.Join(parts, ", ")
	}
	if a := e.Account; a != nil && a.KeyFingerprint != "" {
		mark := MarkUnknown
		if a.Corporate != nil {
			mark = MarkPersonal
			if *a.Corporate {
				mark = MarkCorporate
			}
		}
		n.Account = mark + " " + shortFP(a.KeyFingerprint)
	}
	return n
}

// shortFP shortens a fingerprint for display; it is a one-way hash anyway.
func shortFP(fp string) string {
	if len(fp) <= 20 {
		return fp
	}
	return fp[:16] + "…"
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Finish computes the report.
func (b *ReportBuilder) Finish() ReportData {
	o := b.opts
	d := ReportData{
		Title: o.Title, GeneratedAt: o.GeneratedAt.In(o.Location), TimeZone: o.Location.String(),
		From: b.from, To: b.to, FirstEvent: b.first, LastEvent: b.last,
		Summary: b.sum, NotableTotal: b.nNotable, Notable: b.notable,
	}
	if d.From.IsZero() {
		d.From = b.first
	}
	if d.To.IsZero() && !b.last.IsZero() {
		d.To = b.last.Add(time.Millisecond)
	}
	if d.Notable == nil {
		d.Notable = []NotableRow{}
	}

	// Collection: every kind, in a fixed order, also when zero.
	for _, k := range []struct{ src, kind, label string }{
		{"proxy", KindIntercept, "Proxy: intercepted and inspected requests"},
		{"proxy", KindTunnel, "Proxy: tunnelled connections (not decrypted)"},
		{"proxy", KindConnectBlock, "Proxy: connections refused at CONNECT"},
		{"dns", KindDNS, "DNS resolver: AI look-ups"},
		{"sensor", KindSensor, "Passive sensor: capture or SPAN port"},
	} {
		d.Collection = append(d.Collection, SourceCount{Source: k.src, Kind: k.kind, Label: k.label, Events: b.kinds[k.kind]})
	}

	d.Policies = []PolicyVersion{}
	for _, p := range b.policies {
		d.Policies = append(d.Policies, *p)
	}
	sort.Slice(d.Policies, func(i, j int) bool {
		a, c := d.Policies[i], d.Policies[j]
		if !a.FirstSeen.Equal(c.FirstSeen) {
			return a.FirstSeen.Before(c.FirstSeen)
		}
		return a.Hash < c.Hash
	})

	inv := b.inv.result(o.Sanctioned)
	d.Summary.Services = len(inv.Services)
	d.Summary.Clients = len(b.clients)
	for _, u := range b.users {
		if u.IsUser {
			d.Summary.Users++
		}
	}
	d.Summary.PersonalAccounts = len(b.personal)
	d.TopServices, d.Unsanctioned = []ServiceRow{}, []ServiceRow{}
	for i := range inv.Services {
		s := &inv.Services[i]
		sr := ServiceRow{
			Provider: s.Provider, Service: s.Service, Category: s.Category, Sources: s.Sources,
			Requests: s.Requests, Activity: s.Activity(), Blocked: s.Blocked,
			Clients: len(s.Clients), Users: len(s.Users), TokensIn: s.TokensIn, TokensOut: s.TokensOut,
			Status: s.Status, FirstSeen: s.FirstSeen, LastSeen: s.LastSeen,
		}
		if len(d.TopServices) < o.TopN {
			d.TopServices = append(d.TopServices, sr)
		}
		if s.Status == StatusUnsanctioned {
			d.Unsanctioned = append(d.Unsanctioned, sr)
		}
	}
	d.Summary.Unsanctioned = len(d.Unsanctioned)
	d.Accounts = []AccountRow{}
	for _, a := range inv.Accounts {
		d.Accounts = append(d.Accounts, AccountRow{
			Provider: a.Provider, Fingerprint: a.Fingerprint, Marking: a.Marking,
			Requests: a.Requests, Users: len(a.Users), Clients: len(a.Clients),
		})
	}

	users := make([]UserRow, 0, len(b.users))
	for _, u := range b.users {
		r := u.UserRow
		r.Services = len(u.services)
		users = append(users, r)
	}
	sort.Slice(users, func(i, j int) bool {
		a, c := users[i], users[j]
		if a.Requests != c.Requests {
			return a.Requests > c.Requests
		}
		if a.Activity != c.Activity {
			return a.Activity > c.Activity
		}
		return a.Who < c.Who
	})
	if len(users) > o.TopN {
		users = users[:o.TopN]
	}
	d.TopUsers = users

	d.Findings = sortedCounts(b.findings)
	d.Actions = sortedCounts(b.actions)
	d.Bucket, d.Timeline = b.timeline(d.From, d.To)
	return d
}

func sortedCounts(m map[string]int64) []NamedCount {
	out := make([]NamedCount, 0, len(m))
	for k, v := range m {
		out = append(out, NamedCount{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// maxBuckets bounds the timeline.
const maxBuckets = 800

// timeline buckets the period by hour (up to 3 days), day (up to 180 days)
// or week, in the report's time zone, zero-filled.
func (b *ReportBuilder) timeline(from, to time.Time) (string, []TimeBucket) {
	if from.IsZero() || !to.After(from) {
		return "day", []TimeBucket{}
	}
	loc := b.opts.Location
	span := to.Sub(from)
	unit := "week"
	switch {
	case span <= 72*time.Hour:
		unit = "hour"
	case span <= 180*24*time.Hour:
		unit = "day"
	}
	start := bucketStart(from.In(loc), unit)
	var out []TimeBucket
	index := map[int64]int{}
	for t := start; t.Before(to) && len(out) < maxBuckets; t = nextBucket(t, unit) {
		index[t.UnixMilli()] = len(out)
		out = append(out, TimeBucket{Start: t})
	}
	for hk, h := range b.hours {
		i, ok := index[bucketStart(time.UnixMilli(hk).In(loc), unit).UnixMilli()]
		if !ok {
			continue // outside the period (or beyond maxBuckets)
		}
		out[i].Requests += h[0]
		out[i].Blocked += h[1]
		out[i].Observed += h[2]
	}
	return unit, out
}

func bucketStart(t time.Time, unit string) time.Time {
	y, m, d := t.Date()
	switch unit {
	case "hour":
		return time.Date(y, m, d, t.Hour(), 0, 0, 0, t.Location())
	case "day":
		return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
	default: // week, starting on Monday
		wd := (int(t.Weekday()) + 6) % 7
		return time.Date(y, m, d-wd, 0, 0, 0, 0, t.Location())
	}
}

func nextBucket(t time.Time, unit string) time.Time {
	switch unit {
	case "hour":
		return t.Add(time.Hour)
	case "day":
		return t.AddDate(0, 0, 1)
	default:
		return t.AddDate(0, 0, 7)
	}
}

// BuildReport builds a report from events over [from, to).
func BuildReport(events []Event, from, to time.Time, opts ReportOptions) ReportData {
	// Visit events in the store's order (time, then ID), so that the
	// notable table is the same whichever way the report is built.
	idx := make([]int, 0, len(events))
	for i := range events {
		if !from.IsZero() && events[i].Time.Before(from) || !to.IsZero() && !events[i].Time.Before(to) {
			continue
		}
		idx = append(idx, i)
	}
	sort.SliceStable(idx, func(a, c int) bool {
		x, y := &events[idx[a]], &events[idx[c]]
		if !x.Time.Equal(y.Time) {
			return x.Time.Before(y.Time)
		}
		return x.ID < y.ID
	})
	b := NewReportBuilder(from, to, opts)
	for _, i := range idx {
		b.Add(&events[i])
	}
	return b.Finish()
}

// Report builds a report from the stored events of [from, to), streaming
// them.
func (s *Store) Report(ctx context.Context, from, to time.Time, opts ReportOptions) (ReportData, error) {
	b := NewReportBuilder(from, to, opts)
	if err := s.Each(ctx, Query{From: from, To: to}, func(e *Event) error {
		b.Add(e)
		return nil
	}); err != nil {
		return ReportData{}, err
	}
	return b.Finish(), nil
}
