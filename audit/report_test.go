package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func fixtureReport(t testing.TB) ReportData {
	t.Helper()
	return BuildReport(fixtureEvents(), fixturePeriodFrom, fixturePeriodTo, ReportOptions{
		GeneratedAt: time.Date(2026, 11, 4, 9, 30, 0, 0, time.UTC),
	})
}

func TestBuildReport(t *testing.T) {
	r := fixtureReport(t)
	want := ReportSummary{
		Events: 49, Requests: 36, Tunnels: 3, ConnectBlocks: 2, DNSQueries: 3, SensorFlows: 8,
		Services: 6, Clients: 6, Users: 3, TokensIn: 3860, TokensOut: 1750,
		BytesOut: 16000 + 15000 + 3000 + 2800 + 15000, BytesIn: 30200 + 30000 + 4800 + 2800 + 60000,
		Blocked: 5, Redacted: 1, Alerted: 3, Findings: 5, Unsanctioned: 1,
		PersonalAccounts: 1, PersonalRequests: 4,
	}
	if r.Summary != want {
		t.Errorf("summary:\n got %+v\nwant %+v", r.Summary, want)
	}
	var coll []int64
	for _, c := range r.Collection {
		coll = append(coll, c.Events)
	}
	if !reflect.DeepEqual(coll, []int64{36, 5, 2, 4, 2}) {
		t.Errorf("collection = %v", coll)
	}
	if r.Bucket != "hour" || len(r.Timeline) != 48 {
		t.Errorf("timeline: %s × %d, want hour × 48", r.Bucket, len(r.Timeline))
	}
	var req, blk, obs int64
	for _, b := range r.Timeline {
		req, blk, obs = req+b.Requests, blk+b.Blocked, obs+b.Observed
	}
	if req != 33 || blk != 5 || obs != 14 {
		t.Errorf("timeline sums %d/%d/%d, want 33/5/14", req, blk, obs)
	}
	if !r.Timeline[0].Start.Equal(fixturePeriodFrom) {
		t.Errorf("first bucket %v", r.Timeline[0].Start)
	}
	if got := r.Findings; !reflect.DeepEqual(got, []NamedCount{{"email", 3}, {"aws_access_key", 1}, {"credit_card", 1}}) {
		t.Errorf("findings = %v", got)
	}
	if got := r.Actions; !reflect.DeepEqual(got, []NamedCount{{"allow", 29}, {"block", 5}, {"alert", 3}, {"redact", 1}}) {
		t.Errorf("actions = %v", got)
	}
	var svcs []string
	for _, s := range r.TopServices {
		svcs = append(svcs, s.Service)
	}
	if !reflect.DeepEqual(svcs, []string{"openai-api", "anthropic-api", "gemini-api", "chatgpt", "deepseek-chat", "copilot"}) {
		t.Errorf("top services = %v", svcs)
	}
	if len(r.Unsanctioned) != 1 || r.Unsanctioned[0].Service != "deepseek-chat" || r.Unsanctioned[0].Activity != 9 {
		t.Errorf("unsanctioned = %+v", r.Unsanctioned)
	}
	type u struct {
		who                         string
		user                        bool
		req, act, blocked, findings int64
		services                    int
	}
	var users []u
	for _, x := range r.TopUsers {
		users = append(users, u{x.Who, x.IsUser, x.Requests, x.Activity, x.Blocked, x.Findings, x.Services})
	}
	wantUsers := []u{
		{"alice", true, 12, 13, 2, 1, 3},
		{"bob", true, 12, 13, 1, 2, 3},
		{"carol", true, 10, 10, 2, 2, 2},
		{"10.0.0.20", false, 2, 6, 0, 0, 3},
		{"10.0.0.30", false, 0, 5, 0, 0, 1},
		{"10.0.0.31", false, 0, 3, 0, 0, 1},
		{"10.0.0.11", false, 0, 1, 0, 0, 1},
		{"10.0.0.13", false, 0, 1, 0, 0, 1},
	}
	if !reflect.DeepEqual(users, wantUsers) {
		t.Errorf("top users:\n got %+v\nwant %+v", users, wantUsers)
	}
	if len(r.Policies) != 2 || r.Policies[0].Hash != policyA || r.Policies[1].Hash != policyB ||
		r.Policies[0].Events+r.Policies[1].Events != 38 {
		t.Errorf("policies = %+v", r.Policies)
	}
	if r.NotableTotal != 9 || len(r.Notable) != 9 {
		t.Errorf("notable %d/%d, want 9", len(r.Notable), r.NotableTotal)
	}
	why := map[string]int{}
	for _, n := range r.Notable {
		for _, w := range n.Why {
			why[w]++
		}
	}
	if want := map[string]int{"blocked": 5, "redacted": 1, "alerted": 3, "findings": 4, "personal account": 4}; !reflect.DeepEqual(why, want) {
		t.Errorf("notable reasons = %v, want %v", why, want)
	}
	if len(r.Accounts) != 3 {
		t.Errorf("accounts = %+v", r.Accounts)
	}

	t.Run("ok/notable-truncated", func(t *testing.T) {
		r := BuildReport(fixtureEvents(), time.Time{}, time.Time{}, ReportOptions{MaxNotable: 2, TopN: 3})
		if len(r.Notable) != 2 || r.NotableTotal != 9 || len(r.TopServices) != 3 || len(r.TopUsers) != 3 {
			t.Errorf("notable %d/%d, top %d/%d", len(r.Notable), r.NotableTotal, len(r.TopServices), len(r.TopUsers))
		}
		// Open bounds come from the events; 32 h → hourly.
		if r.Bucket != "hour" || !r.From.Equal(fixtureStart) {
			t.Errorf("open period: from %v bucket %s", r.From, r.Bucket)
		}
	})
	t.Run("ok/daily-and-weekly-buckets", func(t *testing.T) {
		r := BuildReport(fixtureEvents(), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), ReportOptions{})
		if r.Bucket != "day" || len(r.Timeline) != 30 || r.Timeline[1].Total()+r.Timeline[2].Total() != 52 {
			t.Errorf("daily: %s × %d", r.Bucket, len(r.Timeline))
		}
		r = BuildReport(fixtureEvents(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), ReportOptions{})
		var sum int64
		for _, b := range r.Timeline {
			sum += b.Total()
			if b.Start.Weekday() != time.Monday {
				t.Fatalf("week bucket starts on %v", b.Start.Weekday())
			}
		}
		if r.Bucket != "week" || sum != 52 {
			t.Errorf("weekly: %s sum %d", r.Bucket, sum)
		}
	})
	t.Run("ok/empty", func(t *testing.T) {
		r := BuildReport(nil, fixturePeriodFrom, fixturePeriodTo, ReportOptions{})
		for _, f := range []string{FormatHTML, FormatCSV, FormatJSON} {
			var buf bytes.Buffer
			if err := RenderReport(&buf, f, r); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	})
}

func TestRenderReport(t *testing.T) {
	r := fixtureReport(t)
	render := func(t *testing.T, format string) string {
		var buf bytes.Buffer
		if err := RenderReport(&buf, format, r); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if strings.Contains(out, fixturePrompt) {
			t.Fatalf("%s report contains prompt text", format)
		}
		return out
	}
	t.Run("ok/json", func(t *testing.T) {
		var back ReportData
		if err := json.Unmarshal([]byte(render(t, FormatJSON)), &back); err != nil {
			t.Fatal(err)
		}
		if back.Summary != r.Summary || len(back.Timeline) != 48 || len(back.Notable) != 9 {
			t.Errorf("json round trip lost data: %+v", back.Summary)
		}
	})
	t.Run("ok/csv", func(t *testing.T) {
		recs, err := csv.NewReader(strings.NewReader(render(t, FormatCSV))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(recs[0], []string{"section", "item", "metric", "value"}) {
			t.Fatalf("header %v", recs[0])
		}
		get := map[string]string{}
		sections := map[string]int{}
		for _, rec := range recs[1:] {
			if len(rec) != 4 {
				t.Fatalf("record %v", rec)
			}
			get[rec[0]+"|"+rec[1]+"|"+rec[2]] = rec[3]
			sections[rec[0]]++
		}
		for k, v := range map[string]string{
			"summary||requests":                            "36",
			"summary||blocked":                             "5",
			"summary||findings":                            "5",
			"collection|sensor|events":                     "2",
			"findings|email|count":                         "3",
			"actions|allow|count":                          "29",
			"top_services|openai-api|requests":             "16",
			"unsanctioned|deepseek-chat|status":            "unsanctioned",
			"top_users|alice|requests":                     "12",
			"notable||total":                               "9",
			"timeline|2026-11-02T00:00:00Z|requests":       "0",
			"accounts|openai/" + fpPersOpenAI + "|marking": "personal",
			"report||from":                                 "2026-11-02T00:00:00Z",
		} {
			if get[k] != v {
				t.Errorf("%s = %q, want %q", k, get[k], v)
			}
		}
		if sections["timeline"] != 48*3 || sections["notable"] != 1+9*9 {
			t.Errorf("sections = %v", sections)
		}
	})
	t.Run("ok/html", func(t *testing.T) {
		out := render(t, FormatHTML)
		for _, want := range []string{
			"<svg", colorRequests, colorServices, colorFindings, "deepseek-chat", "Reporting period: 2 Nov 2026 – 3 Nov 2026 (UTC)",
			"Policy versions in force", "sha256:aaaaaaaaa", "Notable events", "9 in total", "personal",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("html lacks %q", want)
			}
		}
		if strings.Contains(out, "http://") || strings.Contains(out, "https://") || strings.Contains(out, "<script") || strings.Contains(out, "<link") {
			t.Error("html is not self-contained (external reference or script)")
		}
	})
	t.Run("ok/html-escapes", func(t *testing.T) {
		ev := []Event{{ID: NewID(fixtureStart), Time: fixtureStart, Kind: KindIntercept, Provider: "openai",
			Service: "<b>svc</b>", Client: Client{User: `<script>alert("x")</script>`},
			Decision: &Decision{Action: "block", Rule: `r"><img src=x>`}}}
		var buf bytes.Buffer
		if err := RenderReport(&buf, FormatHTML, BuildReport(ev, time.Time{}, time.Time{}, ReportOptions{})); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, bad := range []string{"<script>alert", "<b>svc</b>", "<img src=x>"} {
			if strings.Contains(out, bad) {
				t.Errorf("unescaped %q in html", bad)
			}
		}
	})
	t.Run("ok/csv-formula-injection", func(t *testing.T) {
		ev := []Event{{ID: NewID(fixtureStart), Time: fixtureStart, Kind: KindIntercept, Provider: "openai",
			Service: "openai-api", Client: Client{User: "=HYPERLINK(\"x\")"}}}
		var buf bytes.Buffer
		if err := RenderReport(&buf, FormatCSV, BuildReport(ev, time.Time{}, time.Time{}, ReportOptions{})); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), ",=HYPERLINK") || !strings.Contains(buf.String(), "'=HYPERLINK") {
			t.Errorf("formula not defused:\n%s", buf.String())
		}
	})
	t.Run("fail/unknown-format", func(t *testing.T) {
		if err := RenderReport(&bytes.Buffer{}, "pdf", r); err == nil {
			t.Error("pdf accepted")
		}
	})
}
