package audit

import (
	"reflect"
	"testing"
	"time"
)

type wantSvc struct {
	service                                 string
	requests, blocked, tunnels, dns, flows  int64
	clients, users                          int
	tokIn, tokOut, bytesOut, bytesIn, bytes int64
	sources                                 []string
	status, basis                           string
}

// fixtureInventoryWant is the inventory of fixtureEvents, computed by hand.
var fixtureInventoryWant = []wantSvc{
	{"openai-api", 16, 1, 0, 1, 0, 3, 2, 1500, 750, 16000, 30200, 46200, []string{"dns", "proxy"}, StatusSanctioned, "decisions"},
	{"anthropic-api", 10, 0, 0, 0, 0, 2, 2, 2000, 800, 15000, 30000, 45000, []string{"proxy"}, StatusSanctioned, "decisions"},
	{"gemini-api", 6, 0, 0, 0, 3, 2, 1, 300, 120, 3000, 4800, 16800, []string{"proxy", "sensor"}, StatusSanctioned, "decisions"},
	{"chatgpt", 4, 2, 0, 0, 0, 1, 1, 60, 80, 2800, 2800, 5600, []string{"proxy"}, StatusSanctioned, "decisions"},
	{"deepseek-chat", 0, 2, 0, 2, 5, 5, 2, 0, 0, 0, 0, 40000, []string{"dns", "proxy", "sensor"}, StatusUnsanctioned, "decisions"},
	{"copilot", 0, 0, 3, 0, 0, 1, 0, 0, 0, 15000, 60000, 75000, []string{"proxy"}, StatusUnknown, ""},
}

func checkInventory(t *testing.T, inv Inventory, want []wantSvc) {
	t.Helper()
	if len(inv.Services) != len(want) {
		t.Fatalf("services: got %d, want %d: %+v", len(inv.Services), len(want), inv.Services)
	}
	for i, w := range want {
		g := inv.Services[i]
		got := wantSvc{g.Service, g.Requests, g.Blocked, g.Tunnels, g.DNSQueries, g.SensorFlows, len(g.Clients), len(g.Users),
			g.TokensIn, g.TokensOut, g.BytesOut, g.BytesIn, g.Bytes, g.Sources, g.Status, g.StatusBasis}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("service %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
}

func fixtureSpan(events []Event, service string) (first, last time.Time) {
	for _, e := range events {
		if e.Service != service {
			continue
		}
		if first.IsZero() || e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
	}
	return first, last
}

func TestBuildInventory(t *testing.T) {
	events := fixtureEvents()
	if len(events) != 49 {
		t.Fatalf("fixture has %d events, want 49", len(events))
	}
	t.Run("ok/decisions", func(t *testing.T) {
		inv := BuildInventory(events, nil)
		checkInventory(t, inv, fixtureInventoryWant)
		for _, s := range inv.Services {
			f, l := fixtureSpan(events, s.Service)
			if !s.FirstSeen.Equal(f) || !s.LastSeen.Equal(l) {
				t.Errorf("%s: seen %v..%v, want %v..%v", s.Service, s.FirstSeen, s.LastSeen, f, l)
			}
		}
		if got := inv.Services[0].Users; !reflect.DeepEqual(got, []string{"alice", "bob"}) {
			t.Errorf("openai-api users = %v", got)
		}
		if got := inv.Services[4].Clients; !reflect.DeepEqual(got, []string{"10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.20", "10.0.0.30"}) {
			t.Errorf("deepseek clients = %v", got)
		}
		type acct struct {
			provider, fp, marking string
			requests              int64
			users, clients        int
			services              []string
		}
		var got []acct
		for _, a := range inv.Accounts {
			got = append(got, acct{a.Provider, a.Fingerprint, a.Marking, a.Requests, len(a.Users), len(a.Clients), a.Services})
		}
		want := []acct{
			{"anthropic", fpCorpAnthropic, MarkCorporate, 10, 2, 2, []string{"anthropic-api"}},
			{"openai", fpCorpOpenAI, MarkCorporate, 14, 2, 2, []string{"openai-api"}},
			{"openai", fpPersOpenAI, MarkPersonal, 4, 1, 1, []string{"chatgpt"}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("accounts:\n got %+v\nwant %+v", got, want)
		}
	})
	t.Run("ok/policy-overrides-decisions", func(t *testing.T) {
		inv := BuildInventory(events, func(provider, service string) (bool, bool) {
			switch service {
			case "chatgpt":
				return false, true
			case "copilot":
				return true, true
			}
			return false, false
		})
		status := map[string][2]string{}
		for _, s := range inv.Services {
			status[s.Service] = [2]string{s.Status, s.StatusBasis}
		}
		want := map[string][2]string{
			"openai-api": {StatusSanctioned, "decisions"}, "anthropic-api": {StatusSanctioned, "decisions"},
			"gemini-api": {StatusSanctioned, "decisions"}, "chatgpt": {StatusUnsanctioned, "policy"},
			"deepseek-chat": {StatusUnsanctioned, "decisions"}, "copilot": {StatusSanctioned, "policy"},
		}
		if !reflect.DeepEqual(status, want) {
			t.Errorf("status = %v, want %v", status, want)
		}
	})
	t.Run("ok/empty", func(t *testing.T) {
		inv := BuildInventory(nil, nil)
		if len(inv.Services) != 0 || len(inv.Accounts) != 0 || inv.Services == nil {
			t.Errorf("empty inventory = %+v", inv)
		}
	})
	t.Run("ok/marking-latest-wins", func(t *testing.T) {
		t0 := fixtureStart
		ev := []Event{
			{ID: NewID(t0), Time: t0, Kind: KindIntercept, Provider: "openai", Service: "openai-api",
				Account: &Account{KeyFingerprint: "fp1"}},
			{ID: NewID(t0.Add(2 * time.Second)), Time: t0.Add(2 * time.Second), Kind: KindIntercept, Provider: "openai", Service: "openai-api",
				Account: &Account{KeyFingerprint: "fp1", Corporate: boolp(true)}},
			{ID: NewID(t0.Add(time.Second)), Time: t0.Add(time.Second), Kind: KindIntercept, Provider: "openai", Service: "openai-api",
				Account: &Account{KeyFingerprint: "fp1", Corporate: boolp(false)}},
			{ID: NewID(t0), Time: t0, Kind: KindIntercept, Provider: "openai", Service: "openai-api",
				Account: &Account{KeyFingerprint: "fp2"}},
		}
		inv := BuildInventory(ev, nil)
		if len(inv.Accounts) != 2 || inv.Accounts[0].Marking != MarkCorporate || inv.Accounts[1].Marking != MarkUnknown {
			t.Errorf("accounts = %+v", inv.Accounts)
		}
	})
}
