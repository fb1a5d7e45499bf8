package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/classify"
	"github.com/aigress/aigress/enforce"
)

var audcmdT0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// audcmdStore writes a small known set of events into DIR/events.db:
// openai-api 3 requests (alice ×2 corporate key, bob ×1 blocked with a
// finding), claude 1 request (carol, personal key, alert), deepseek-chat
// 1 refused CONNECT (bob) and 1 sensor event (2 flows), and one tunnel to a
// non-AI host.
func audcmdStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := audit.OpenStore(audit.StorePath(dir), audit.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	var ids audit.IDGen
	at := func(m int) time.Time { return audcmdT0.Add(time.Duration(m) * time.Hour) }
	ev := []audit.Event{
		{Time: at(0), Kind: audit.KindIntercept, Client: audit.Client{IP: "10.1.0.1", User: "alice"}, Provider: "openai", Service: "openai-api", Category: "api",
			Account: &audit.Account{KeyFingerprint: "fp-corp", Corporate: &yes}, Decision: &audit.Decision{Action: "allow"}, PolicyHash: "sha256:p1",
			Request: &audit.ReqInfo{Bytes: 100}, Response: &audit.RespInfo{Status: 200, Bytes: 300, Tokens: audit.Tokens{Input: 10, Output: 20}}, Prompt: "PROMPT-TEXT-X"},
		{Time: at(1), Kind: audit.KindIntercept, Client: audit.Client{IP: "10.1.0.1", User: "alice"}, Provider: "openai", Service: "openai-api", Category: "api",
			Account: &audit.Account{KeyFingerprint: "fp-corp", Corporate: &yes}, Decision: &audit.Decision{Action: "allow"}, PolicyHash: "sha256:p1",
			Request: &audit.ReqInfo{Bytes: 100}, Response: &audit.RespInfo{Status: 200, Bytes: 300, Tokens: audit.Tokens{Input: 10, Output: 20}}},
		{Time: at(2), Kind: audit.KindIntercept, Client: audit.Client{IP: "10.1.0.2", User: "bob"}, Provider: "openai", Service: "openai-api", Category: "api",
			Decision: &audit.Decision{Action: "block", Rule: "no-secrets"}, Findings: map[string]int{"github_token": 1}, PolicyHash: "sha256:p1",
			Request: &audit.ReqInfo{Bytes: 100}, Response: &audit.RespInfo{Status: 403, Bytes: 50}},
		{Time: at(26), Kind: audit.KindIntercept, Client: audit.Client{IP: "10.1.0.3", User: "carol"}, Provider: "anthropic", Service: "claude", Category: "chat",
			Account: &audit.Account{KeyFingerprint: "fp-pers", Corporate: &no}, Decision: &audit.Decision{Action: "alert", Rule: "personal"}, PolicyHash: "sha256:p2",
			Request: &audit.ReqInfo{Bytes: 200}, Response: &audit.RespInfo{Status: 200, Bytes: 400, Tokens: audit.Tokens{Input: 5, Output: 6}}},
		{Time: at(27), Kind: audit.KindConnectBlock, Client: audit.Client{IP: "10.1.0.2", User: "bob"}, Provider: "deepseek", Service: "deepseek-chat", Category: "chat",
			Decision: &audit.Decision{Action: "block", Rule: "unsanctioned"}, PolicyHash: "sha256:p2"},
		{Time: at(28), Kind: audit.KindSensor, Client: audit.Client{IP: "10.1.0.9"}, Provider: "deepseek", Service: "deepseek-chat", Category: "chat",
			Sensor: &audit.SensorInfo{Source: "sni", Flows: 2, Bytes: 5000}},
		{Time: at(29), Kind: audit.KindTunnel, Client: audit.Client{IP: "10.1.0.1"}, Dest: audit.Dest{Host: "bank.example"}},
	}
	for i := range ev {
		ev[i].ID = ids.New(ev[i].Time)
		s.Write(&ev[i])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func audcmdRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestInventoryCmd(t *testing.T) {
	dir := audcmdStore(t)
	t.Run("ok/json", func(t *testing.T) {
		out, err := audcmdRun(t, "inventory", "--data-dir", dir, "--format", "json")
		if err != nil {
			t.Fatal(err)
		}
		var inv audit.Inventory
		if err := json.Unmarshal([]byte(out), &inv); err != nil {
			t.Fatal(err)
		}
		type row struct {
			svc, status         string
			req, blocked, flows int64
			clients, users      int
			tokIn, tokOut       int64
		}
		var got []row
		for _, s := range inv.Services {
			got = append(got, row{s.Service, s.Status, s.Requests, s.Blocked, s.SensorFlows, len(s.Clients), len(s.Users), s.TokensIn, s.TokensOut})
		}
		want := []row{
			{"openai-api", "sanctioned", 3, 1, 0, 2, 2, 20, 40},
			{"claude", "sanctioned", 1, 0, 0, 1, 1, 5, 6},
			{"deepseek-chat", "unsanctioned", 0, 1, 2, 2, 1, 0, 0},
		}
		if len(got) != len(want) {
			t.Fatalf("got %+v", got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("row %d: got %+v want %+v", i, got[i], want[i])
			}
		}
		if len(inv.Accounts) != 2 || inv.Accounts[0].Marking != "personal" || inv.Accounts[1].Marking != "corporate" {
			t.Errorf("accounts = %+v", inv.Accounts)
		}
	})
	t.Run("ok/period-and-policy-flags", func(t *testing.T) {
		out, err := audcmdRun(t, "inventory", "--data-dir", dir, "--format", "json",
			"--from", "2026-11-03T00:00:00Z", "--to", "2026-11-04", "--unsanctioned", "anthropic")
		if err != nil {
			t.Fatal(err)
		}
		var inv audit.Inventory
		if err := json.Unmarshal([]byte(out), &inv); err != nil {
			t.Fatal(err)
		}
		if len(inv.Services) != 2 || inv.Services[0].Service != "claude" || inv.Services[0].Status != "unsanctioned" ||
			inv.Services[0].StatusBasis != "policy" {
			t.Errorf("services = %+v", inv.Services)
		}
	})
	t.Run("ok/csv", func(t *testing.T) {
		out, err := audcmdRun(t, "inventory", "--data-dir", dir, "--format", "csv")
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1+3+2 || strings.Join(recs[0], ",") != strings.Join(inventoryCSVHeader, ",") {
			t.Fatalf("csv = %v", recs)
		}
		if recs[1][0] != "service" || recs[1][2] != "openai-api" || recs[1][7] != "3" || recs[4][0] != "account" {
			t.Errorf("csv rows = %v", recs)
		}
	})
	t.Run("ok/table", func(t *testing.T) {
		out, err := audcmdRun(t, "inventory", "--data-dir", dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"SERVICE", "openai-api", "deepseek-chat", "unsanctioned", "fp-pers", "personal"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "bank.example") {
			t.Error("non-AI tunnel listed")
		}
	})
	for _, c := range []struct {
		name string
		args []string
	}{
		{"fail/format", []string{"--format", "xml"}},
		{"fail/from", []string{"--from", "yesterday"}},
		{"fail/empty-period", []string{"--from", "2026-11-03", "--to", "2026-11-02T00:00:00Z"}},
		{"fail/no-store", []string{"--data-dir", filepath.Join(dir, "nothing")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"inventory", "--data-dir", dir}, c.args...)
			if _, err := audcmdRun(t, args...); err == nil {
				t.Errorf("%v succeeded", c.args)
			}
		})
	}
}

func TestParseTimeArg(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	cases := []struct {
		name string
		in   string
		end  bool
		want time.Time
	}{
		{"ok/empty", "", false, time.Time{}},
		{"ok/now", "now", false, now},
		{"ok/rfc3339", "2026-11-01T08:30:00Z", false, time.Date(2026, 11, 1, 8, 30, 0, 0, time.UTC)},
		{"ok/rfc3339-offset", "2026-11-01T08:30:00+02:00", false, time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC)},
		{"ok/local-minutes", "2026-11-01 08:30", false, time.Date(2026, 11, 1, 8, 30, 0, 0, paris)},
		{"ok/date-start", "2026-11-01", false, time.Date(2026, 11, 1, 0, 0, 0, 0, paris)},
		{"ok/date-end-includes-day", "2026-11-01", true, time.Date(2026, 11, 2, 0, 0, 0, 0, paris)},
		{"ok/hours", "24h", false, now.Add(-24 * time.Hour)},
		{"ok/days", "7d", false, now.Add(-7 * 24 * time.Hour)},
		{"ok/weeks", "2w", false, now.Add(-14 * 24 * time.Hour)},
		{"ok/compound", "1h30m", false, now.Add(-90 * time.Minute)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseTimeArg(c.in, now, paris, c.end)
			if err != nil || !got.Equal(c.want) {
				t.Errorf("parseTimeArg(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
		})
	}
	for _, bad := range []string{"yesterday", "7x", "-3d", "2026-13-01", "d", "-1h", "99999999d"} {
		t.Run("fail/"+bad, func(t *testing.T) {
			if got, err := parseTimeArg(bad, now, paris, false); err == nil {
				t.Errorf("parseTimeArg(%q) = %v, want an error", bad, got)
			}
		})
	}
}

func FuzzParseTimeArg(f *testing.F) {
	for _, s := range []string{"", "now", "2026-11-01", "2026-11-01T08:00:00Z", "24h", "7d", "2w", "1h30m", "2026-11-01 08:00"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTimeArg(s, now, time.UTC, false)
		if err != nil {
			return
		}
		// Ages never point into the future.
		if _, ok := parseAge(strings.TrimSpace(s)); ok && got.After(now) {
			t.Errorf("age %q gives %v, after now", s, got)
		}
	})
}

// sanctionPolicy allows OpenAI to the eng group for approved models only,
// Gemini to carol, Mistral and Cursor to all, blocks Anthropic outright and
// api.mistral.ai at CONNECT, fails closed on services it cannot inspect,
// and blocks the rest by default.
const sanctionPolicy = `apiVersion: aigress/v1
kind: Policy
name: sanction-test
identity:
  groups:
    - name: eng
      cidrs: [10.1.0.0/24]
rules:
  - id: eng-openai-models
    match: {groups: [eng], providers: [openai], models: ["gpt-4o*"]}
    action: allow
  - id: carol-gemini
    match: {users: [carol], providers: [google]}
    action: alert
  - id: mistral-ok
    match: {providers: [mistral, cursor]}
    action: allow
  - id: no-anthropic
    match: {providers: [anthropic]}
    action: block
default_action: block
connect:
  block: ["api.mistral.ai"]
uninspectable:
  default: fail_closed
`

func TestPolicySanction(t *testing.T) {
	pol, err := enforce.Parse([]byte(sanctionPolicy), "sanction-test")
	if err != nil {
		t.Fatal(err)
	}
	f := policySanction(pol, classify.DefaultCatalog())
	for _, c := range []struct {
		name, provider, service string
		want                    bool
	}{
		{"ok/group-with-model-allow-list", "openai", "OpenAI API", true},
		{"ok/named-user", "google", "Gemini API", true},
		{"ok/allowed-provider", "mistral", "Le Chat", true},
		{"ok/unknown-service-by-provider", "mistral", "Le Chat Pro (custom)", true},
		{"fail/blocked-by-rule", "anthropic", "Anthropic API", false},
		{"fail/connect-block-on-catalog-host", "mistral", "Mistral API", false},
		{"fail/default-block-deepseek", "deepseek", "DeepSeek API", false},
		{"fail/pinned-service-fails-closed", "cursor", "Cursor", false},
		{"fail/default-block", "xai", "Grok", false},
		{"fail/unknown-service-default-block", "acme", "Acme AI", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, known := f(c.provider, c.service)
			if got != c.want || !known {
				t.Errorf("%s/%s: sanctioned=%v known=%v, want %v", c.provider, c.service, got, known, c.want)
			}
		})
	}
}

func TestInventoryPolicyFlag(t *testing.T) {
	dir := audcmdStore(t)
	polFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(polFile, []byte(sanctionPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	status := func(t *testing.T, args ...string) map[string]string {
		t.Helper()
		out, err := audcmdRun(t, append([]string{"inventory", "--data-dir", dir, "--format", "json", "--policy", polFile}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var inv audit.Inventory
		if err := json.Unmarshal([]byte(out), &inv); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, s := range inv.Services {
			m[s.Service] = s.Status + "/" + s.StatusBasis
		}
		return m
	}
	t.Run("ok/policy-decides", func(t *testing.T) {
		// claude had an allowed (alert) request, but this policy blocks
		// Anthropic: the policy wins over the recorded decisions.
		want := map[string]string{"openai-api": "sanctioned/policy", "claude": "unsanctioned/policy", "deepseek-chat": "unsanctioned/policy"}
		if got := status(t); !reflect.DeepEqual(got, want) {
			t.Errorf("got %v want %v", got, want)
		}
	})
	t.Run("ok/flags-win-over-policy", func(t *testing.T) {
		want := map[string]string{"openai-api": "unsanctioned/policy", "claude": "sanctioned/policy", "deepseek-chat": "unsanctioned/policy"}
		if got := status(t, "--sanctioned", "claude", "--unsanctioned", "openai"); !reflect.DeepEqual(got, want) {
			t.Errorf("got %v want %v", got, want)
		}
	})
	t.Run("ok/report-lists-unsanctioned", func(t *testing.T) {
		out, err := audcmdRun(t, "report", "--data-dir", dir, "--from", "2026-11-02", "--to", "2026-11-04", "--tz", "UTC",
			"--format", "json", "--policy", polFile)
		if err != nil {
			t.Fatal(err)
		}
		var r audit.ReportData
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Summary.Unsanctioned != 2 {
			t.Errorf("unsanctioned %d, want 2 (claude, deepseek-chat)", r.Summary.Unsanctioned)
		}
	})
	for _, c := range []struct{ name, file string }{
		{"fail/missing-policy", filepath.Join(dir, "none.yaml")},
		{"fail/invalid-policy", "inventory_test.go"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, cmd := range []string{"inventory", "report"} {
				if _, err := audcmdRun(t, cmd, "--data-dir", dir, "--policy", c.file); err == nil {
					t.Errorf("%s --policy %s succeeded", cmd, c.file)
				}
			}
		})
	}
}
