package audit

import (
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Report formats.
const (
	FormatHTML = "html"
	FormatCSV  = "csv"
	FormatJSON = "json"
)

// RenderReport writes r as html (one self-contained page with inline CSS
// and SVG), csv (long format: section,item,metric,value) or json (r).
func RenderReport(w io.Writer, format string, r ReportData) error {
	switch strings.ToLower(format) {
	case FormatHTML:
		return renderHTML(w, r)
	case FormatCSV:
		return renderCSV(w, r)
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("audit: report: %w", err)
		}
		return nil
	}
	return fmt.Errorf("audit: report: unknown format %q (want html, csv or json)", format)
}

// ---- CSV ----

// renderCSV writes one row per figure: section,item,metric,value. Every
// table of the report fits this shape, and spreadsheets pivot it easily.
func renderCSV(w io.Writer, r ReportData) error {
	cw := csv.NewWriter(w)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
	rows := [][]string{{"section", "item", "metric", "value"}}
	add := func(sec, item, metric, value string) { rows = append(rows, []string{sec, item, metric, value}) }

	add("report", "", "title", r.Title)
	add("report", "", "from", ts(r.From))
	add("report", "", "to", ts(r.To))
	add("report", "", "generated_at", ts(r.GeneratedAt))
	add("report", "", "time_zone", r.TimeZone)
	add("report", "", "bucket", r.Bucket)
	s := r.Summary
	for _, kv := range []struct {
		k string
		v int64
	}{
		{"events", s.Events}, {"requests", s.Requests}, {"tunnels", s.Tunnels}, {"connect_blocks", s.ConnectBlocks},
		{"dns_queries", s.DNSQueries}, {"sensor_flows", s.SensorFlows}, {"services", int64(s.Services)},
		{"clients", int64(s.Clients)}, {"users", int64(s.Users)}, {"tokens_in", s.TokensIn}, {"tokens_out", s.TokensOut},
		{"bytes_out", s.BytesOut}, {"bytes_in", s.BytesIn}, {"blocked", s.Blocked}, {"redacted", s.Redacted},
		{"alerted", s.Alerted}, {"findings", s.Findings}, {"unsanctioned", int64(s.Unsanctioned)},
		{"personal_accounts", int64(s.PersonalAccounts)}, {"personal_requests", s.PersonalRequests}, {"errors", s.Errors},
	} {
		add("summary", "", kv.k, i64(kv.v))
	}
	for _, c := range r.Collection {
		add("collection", c.Kind, "events", i64(c.Events))
	}
	for _, p := range r.Policies {
		add("policies", p.Hash, "first_seen", ts(p.FirstSeen))
		add("policies", p.Hash, "last_seen", ts(p.LastSeen))
		add("policies", p.Hash, "events", i64(p.Events))
	}
	for _, b := range r.Timeline {
		add("timeline", ts(b.Start), "requests", i64(b.Requests))
		add("timeline", ts(b.Start), "blocked", i64(b.Blocked))
		add("timeline", ts(b.Start), "observed", i64(b.Observed))
	}
	svc := func(sec string, rows []ServiceRow) {
		for _, x := range rows {
			add(sec, x.Service, "provider", x.Provider)
			add(sec, x.Service, "category", x.Category)
			add(sec, x.Service, "sources", strings.Join(x.Sources, " "))
			add(sec, x.Service, "requests", i64(x.Requests))
			add(sec, x.Service, "activity", i64(x.Activity))
			add(sec, x.Service, "blocked", i64(x.Blocked))
			add(sec, x.Service, "clients", strconv.Itoa(x.Clients))
			add(sec, x.Service, "users", strconv.Itoa(x.Users))
			add(sec, x.Service, "tokens_in", i64(x.TokensIn))
			add(sec, x.Service, "tokens_out", i64(x.TokensOut))
			add(sec, x.Service, "status", x.Status)
			add(sec, x.Service, "first_seen", ts(x.FirstSeen))
			add(sec, x.Service, "last_seen", ts(x.LastSeen))
		}
	}
	svc("top_services", r.TopServices)
	for _, u := range r.TopUsers {
		kind := "client"
		if u.IsUser {
			kind = "user"
		}
		add("top_users", u.Who, "kind", kind)
		add("top_users", u.Who, "requests", i64(u.Requests))
		add("top_users", u.Who, "activity", i64(u.Activity))
		add("top_users", u.Who, "blocked", i64(u.Blocked))
		add("top_users", u.Who, "findings", i64(u.Findings))
		add("top_users", u.Who, "services", strconv.Itoa(u.Services))
	}
	for _, f := range r.Findings {
		add("findings", f.Name, "count", i64(f.Count))
	}
	for _, a := range r.Actions {
		add("actions", a.Name, "count", i64(a.Count))
	}
	svc("unsanctioned", r.Unsanctioned)
	for _, a := range r.Accounts {
		item := a.Provider + "/" + a.Fingerprint
		add("accounts", item, "marking", a.Marking)
		add("accounts", item, "requests", i64(a.Requests))
		add("accounts", item, "users", strconv.Itoa(a.Users))
		add("accounts", item, "clients", strconv.Itoa(a.Clients))
	}
	add("notable", "", "total", strconv.Itoa(r.NotableTotal))
	for _, n := range r.Notable {
		add("notable", n.ID, "time", ts(n.Time))
		add("notable", n.ID, "kind", n.Kind)
		add("notable", n.ID, "who", n.Who)
		add("notable", n.ID, "service", n.Service)
		add("notable", n.ID, "action", n.Action)
		add("notable", n.ID, "rule", n.Rule)
		add("notable", n.ID, "findings", n.Findings)
		add("notable", n.ID, "account", n.Account)
		add("notable", n.ID, "why", strings.Join(n.Why, "; "))
	}
	for _, rec := range rows {
		for i, f := range rec {
			rec[i] = csvSafe(f)
		}
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("audit: report: %w", err)
	}
	return nil
}

// csvSafe defuses spreadsheet formula injection: a user name or model
// starting with = + - @ is prefixed with a quote. Negative numbers do not
// occur in the report.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// ---- HTML ----

//go:embed report.html.tmpl
var reportTemplate string

// Chart colours; the screenshot test looks for them.
const (
	colorRequests = "#2563eb" // timeline: requests let through
	colorBlocked  = "#dc2626"
	colorObserved = "#94a3b8"
	colorServices = "#0d9488"
	colorUsers    = "#4f46e5"
	colorFindings = "#d97706"
)

type svgRect struct {
	X, Y, W, H float64
	Fill       string
	Title      string
}

type svgText struct {
	X, Y   float64
	Text   string
	Anchor string // start | middle | end
	Class  string
}

type svgLine struct{ X1, Y1, X2, Y2 float64 }

type svgChart struct {
	W, H  float64
	Rects []svgRect
	Texts []svgText
	Lines []svgLine
	Empty bool
}

type legendItem struct{ Color, Label string }

type card struct {
	Label, Value, Note, Tone string
}

type htmlView struct {
	R          ReportData
	Period     string
	Generated  string
	Cards      []card
	Timeline   svgChart
	Legend     []legendItem
	Services   svgChart
	Users      svgChart
	Findings   svgChart
	Actions    []actionRow
	BucketName string
}

type actionRow struct {
	Name  string
	Count int64
	Pct   float64
	Tone  string
}

func renderHTML(w io.Writer, r ReportData) error {
	loc := time.UTC
	if l, err := time.LoadLocation(r.TimeZone); err == nil && r.TimeZone != "" {
		loc = l
	}
	fmtTime := func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.In(loc).Format("2 Jan 2006 15:04")
	}
	funcs := template.FuncMap{
		"num":   func(n any) string { return humanInt(toInt64(n)) },
		"bytes": func(n int64) string { return humanBytes(n) },
		"when":  fmtTime,
		"day":   func(t time.Time) string { return t.In(loc).Format("2 Jan 2006") },
		"join":  strings.Join,
		"short": func(s string) string { return clip(s, 18) },
		"tone":  actionTone,
	}
	t, err := template.New("report").Funcs(funcs).Parse(reportTemplate)
	if err != nil {
		return fmt.Errorf("audit: report template: %w", err)
	}
	v := htmlView{R: r, Generated: r.GeneratedAt.In(loc).Format("2 Jan 2006 15:04 MST")}
	v.Period = periodText(r.From, r.To, loc)
	s := r.Summary
	v.Cards = []card{
		{"AI requests inspected", humanInt(s.Requests), fmt.Sprintf("%s tokens in · %s out", humanInt(s.TokensIn), humanInt(s.TokensOut)), "blue"},
		{"AI services", humanInt(int64(s.Services)), fmt.Sprintf("%d unsanctioned", s.Unsanctioned), toneIf(s.Unsanctioned > 0, "red", "blue")},
		{"Users · clients", fmt.Sprintf("%d · %d", s.Users, s.Clients), "authenticated users · client addresses", "blue"},
		{"Blocked", humanInt(s.Blocked), "requests and connections refused", toneIf(s.Blocked > 0, "red", "green")},
		{"Redacted", humanInt(s.Redacted), "requests sent with data removed", toneIf(s.Redacted > 0, "amber", "green")},
		{"Alerted", humanInt(s.Alerted), "requests allowed with an alert", toneIf(s.Alerted > 0, "amber", "green")},
		{"Sensitive-data findings", humanInt(s.Findings), fmt.Sprintf("%d finding types", len(r.Findings)), toneIf(s.Findings > 0, "amber", "green")},
		{"Personal accounts", humanInt(int64(s.PersonalAccounts)), fmt.Sprintf("%s requests with personal keys", humanInt(s.PersonalRequests)), toneIf(s.PersonalAccounts > 0, "red", "green")},
	}
	v.BucketName = map[string]string{"hour": "hourly", "day": "daily", "week": "weekly"}[r.Bucket]
	v.Timeline = timelineChart(r.Timeline, r.Bucket, loc)
	v.Legend = []legendItem{
		{colorRequests, "Inspected requests"}, {colorBlocked, "Blocked"}, {colorObserved, "Observed only (tunnel, DNS, sensor)"},
	}
	svcItems := make([]barItem, 0, len(r.TopServices))
	for _, x := range r.TopServices {
		svcItems = append(svcItems, barItem{x.Service, x.Activity})
	}
	v.Services = hbarChart(svcItems, colorServices)
	userItems := make([]barItem, 0, len(r.TopUsers))
	for _, x := range r.TopUsers {
		userItems = append(userItems, barItem{x.Who, x.Activity})
	}
	v.Users = hbarChart(userItems, colorUsers)
	findItems := make([]barItem, 0, len(r.Findings))
	for _, x := range r.Findings {
		findItems = append(findItems, barItem{x.Name, x.Count})
	}
	v.Findings = hbarChart(findItems, colorFindings)
	var total int64
	for _, a := range r.Actions {
		total += a.Count
	}
	for _, a := range r.Actions {
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(a.Count) / float64(total)
		}
		v.Actions = append(v.Actions, actionRow{a.Name, a.Count, pct, actionTone(a.Name)})
	}
	if err := t.Execute(w, v); err != nil {
		return fmt.Errorf("audit: report: %w", err)
	}
	return nil
}

func toneIf(c bool, yes, no string) string {
	if c {
		return yes
	}
	return no
}

func actionTone(a string) string {
	switch a {
	case "block", "quota":
		return "red"
	case "redact", "alert":
		return "amber"
	case "allow":
		return "green"
	}
	return "grey"
}

func periodText(from, to time.Time, loc *time.Location) string {
	if from.IsZero() || to.IsZero() {
		return "no events recorded"
	}
	end := to.Add(-time.Millisecond).In(loc)
	f := from.In(loc)
	if f.Hour() == 0 && f.Minute() == 0 && to.In(loc).Hour() == 0 && to.In(loc).Minute() == 0 {
		return f.Format("2 Jan 2006") + " – " + end.Format("2 Jan 2006") + " (" + loc.String() + ")"
	}
	return f.Format("2 Jan 2006 15:04") + " – " + end.Format("2 Jan 2006 15:04") + " (" + loc.String() + ")"
}

func toInt64(n any) int64 {
	switch x := n.(type) {
	case int:
		return int64(x)
	case int64:
		return x
	case uint64:
		return int64(x)
	}
	return 0
}

// humanInt groups thousands: 1234567 → "1,234,567".
func humanInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func timelineChart(bs []TimeBucket, unit string, loc *time.Location) svgChart {
	c := svgChart{W: 960, H: 280}
	const left, right, top, bottom = 56.0, 12.0, 14.0, 44.0
	pw, ph := c.W-left-right, c.H-top-bottom
	var max int64
	for _, b := range bs {
		if t := b.Total(); t > max {
			max = t
		}
	}
	if len(bs) == 0 || max == 0 {
		c.Empty = true
		return c
	}
	// Four or five gridlines at a round step: 1, 2 or 5 × 10^k.
	step := niceCeil(float64(max) / 4)
	if step < 1 {
		step = 1
	}
	ticks := int(math.Ceil(float64(max) / step))
	ymax := step * float64(ticks)
	for i := 0; i <= ticks; i++ {
		val := step * float64(i)
		y := top + ph - ph*val/ymax
		c.Lines = append(c.Lines, svgLine{left, y, left + pw, y})
		c.Texts = append(c.Texts, svgText{left - 8, y + 4, humanInt(int64(math.Round(val))), "end", "axis"})
	}
	slot := pw / float64(len(bs))
	bw := math.Max(1, slot*0.72)
	labelEvery := int(math.Ceil(float64(len(bs)) / 12))
	for i, b := range bs {
		x := left + slot*float64(i) + (slot-bw)/2
		y := top + ph
		label := b.Start.In(loc).Format("2 Jan 15:04")
		if unit != "hour" {
			label = b.Start.In(loc).Format("2 Jan 2006")
		}
		for _, seg := range []struct {
			n     int64
			color string
			what  string
		}{{b.Requests, colorRequests, "inspected"}, {b.Blocked, colorBlocked, "blocked"}, {b.Observed, colorObserved, "observed"}} {
			if seg.n == 0 {
				continue
			}
			h := ph * float64(seg.n) / ymax
			y -= h
			c.Rects = append(c.Rects, svgRect{x, y, bw, h, seg.color, fmt.Sprintf("%s: %d %s", label, seg.n, seg.what)})
		}
		if i%labelEvery == 0 {
			txt := b.Start.In(loc).Format("2 Jan")
			if unit == "hour" {
				txt = b.Start.In(loc).Format("15:04")
				if b.Start.In(loc).Hour() == 0 || i == 0 {
					txt = b.Start.In(loc).Format("2 Jan")
				}
			}
			c.Texts = append(c.Texts, svgText{left + slot*float64(i) + slot/2, top + ph + 18, txt, "middle", "axis"})
		}
	}
	c.Lines = append(c.Lines, svgLine{left, top + ph, left + pw, top + ph})
	return c
}

type barItem struct {
	Label string
	Value int64
}

func hbarChart(items []barItem, color string) svgChart {
	const rowH, labelW, valueW, width = 28.0, 170.0, 64.0, 520.0
	c := svgChart{W: width, H: math.Max(rowH, rowH*float64(len(items))+8)}
	var max int64
	for _, it := range items {
		if it.Value > max {
			max = it.Value
		}
	}
	if len(items) == 0 || max == 0 {
		c.Empty = true
		return c
	}
	bar := width - labelW - valueW
	for i, it := range items {
		y := 4 + rowH*float64(i)
		w := math.Max(2, bar*float64(it.Value)/float64(max))
		c.Texts = append(c.Texts, svgText{labelW - 10, y + rowH/2 + 4, clip(it.Label, 24), "end", "label"})
		c.Rects = append(c.Rects, svgRect{labelW, y + 5, w, rowH - 10, color, fmt.Sprintf("%s: %d", it.Label, it.Value)})
		c.Texts = append(c.Texts, svgText{labelW + w + 6, y + rowH/2 + 4, humanInt(it.Value), "start", "value"})
	}
	return c
}
