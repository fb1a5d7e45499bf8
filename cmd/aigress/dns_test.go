package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/classify"
	dnsdisc "github.com/aigress/aigress/discover/dns"
	"github.com/aigress/aigress/enforce"
)

func TestDNSCmdFlags(t *testing.T) {
	var got dnsOptions
	old := dnsRunner
	dnsRunner = func(_ *cobra.Command, o dnsOptions) error { got = o; return nil }
	t.Cleanup(func() { dnsRunner = old })

	cmd := newDNSCmd()
	cmd.SetArgs([]string{"--listen", "127.0.0.1:5353", "--upstream", "127.0.0.1:53,127.0.0.2:53",
		"--data-dir", "/tmp/x", "--steer-to", "10.0.0.1", "--allow", "10.0.0.0/8", "--allow", "192.168.0.0/16",
		"--refuse", "deepseek", "--strip-ech=false", "--config", "c.yaml"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	want := dnsOptions{
		Config: "c.yaml", Listen: "127.0.0.1:5353", Upstreams: []string{"127.0.0.1:53", "127.0.0.2:53"},
		DataDir: "/tmp/x", SteerTo: []string{"10.0.0.1"}, Allow: []string{"10.0.0.0/8", "192.168.0.0/16"},
		Refuse: []string{"deepseek"}, StripECH: false, CacheSize: dnsdisc.DefaultCacheSize, Timeout: dnsdisc.DefaultTimeout,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("options\n got %+v\nwant %+v", got, want)
	}
}

func TestDNSConfig(t *testing.T) {
	cat := classify.DefaultCatalog()
	base := dnsOptions{Listen: "127.0.0.1:0", Upstreams: []string{"127.0.0.1:53"}}
	cases := []struct {
		name  string
		mod   func(*dnsOptions)
		check func(*testing.T, dnsdisc.Config)
		ok    bool
	}{
		{"ok/defaults", func(*dnsOptions) {}, func(t *testing.T, c dnsdisc.Config) {
			if c.AllowClients != nil || c.SteerV4.IsValid() {
				t.Fatalf("unexpected %+v", c)
			}
			if a := c.Policy("api.openai.com", "OpenAI API", netip.Addr{}); a != dnsdisc.ActionForward {
				t.Fatalf("action %s", a)
			}
		}, true},
		{"ok/steer-both-families", func(o *dnsOptions) { o.SteerTo = []string{"10.0.0.1", "fd00::1"} }, func(t *testing.T, c dnsdisc.Config) {
			if c.SteerV4.String() != "10.0.0.1" || c.SteerV6.String() != "fd00::1" {
				t.Fatalf("steer %s %s", c.SteerV4, c.SteerV6)
			}
			if a := c.Policy("api.openai.com", "OpenAI API", netip.Addr{}); a != dnsdisc.ActionSteer {
				t.Fatalf("action %s", a)
			}
		}, true},
		{"ok/refuse-by-provider", func(o *dnsOptions) { o.Refuse = []string{"OpenAI"}; o.BlockAddress = []string{"10.1.1.1"} }, func(t *testing.T, c dnsdisc.Config) {
			svc, _, ok := c.Lookup("api.openai.com")
			if !ok {
				t.Fatal("api.openai.com not in the catalog")
			}
			if a := c.Policy("api.openai.com", svc, netip.Addr{}); a != dnsdisc.ActionRefuse {
				t.Fatalf("action %s", a)
			}
			if c.BlockV4.String() != "10.1.1.1" {
				t.Fatalf("block %s", c.BlockV4)
			}
		}, true},
		{"ok/allow-host-and-cidr", func(o *dnsOptions) { o.Allow = []string{"10.1.2.3", "192.168.1.7/24"} }, func(t *testing.T, c dnsdisc.Config) {
			want := []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("192.168.1.0/24")}
			if !reflect.DeepEqual(c.AllowClients, want) {
				t.Fatalf("allow %v", c.AllowClients)
			}
		}, true},
		{"fail/bad-steer", func(o *dnsOptions) { o.SteerTo = []string{"proxy.local"} }, nil, false},
		{"fail/two-v4-steer", func(o *dnsOptions) { o.SteerTo = []string{"10.0.0.1", "10.0.0.2"} }, nil, false},
		{"fail/bad-allow", func(o *dnsOptions) { o.Allow = []string{"10.0.0.0/33"} }, nil, false},
		{"fail/bad-block", func(o *dnsOptions) { o.BlockAddress = []string{"x"} }, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mod(&o)
			c, err := dnsConfig(o, cat, nil)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestSystemResolvers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver 127.0.0.53\nnameserver 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := systemResolvers(p, "127.0.0.1:53")
	if err != nil || !reflect.DeepEqual(got, []string{"127.0.0.53:53"}) {
		t.Fatalf("got %v %v", got, err)
	}
	if _, err := systemResolvers(filepath.Join(t.TempDir(), "none"), "127.0.0.1:53"); err == nil {
		t.Fatal("fail/missing file: no error")
	}
}

func readEvents(t *testing.T, path string) []audit.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// freeDNSAddr finds a loopback port free for both UDP and TCP.
func freeDNSAddr(t *testing.T) string {
	for i := 0; i < 20; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// TestRunDNS runs the real command against a loopback upstream: an AI name
// is steered and audited, another name is forwarded.
func TestRunDNS(t *testing.T) {
	upPC, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &mdns.Server{PacketConn: upPC, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == mdns.TypeA {
			rr, _ := mdns.NewRR(r.Question[0].Name + " 60 IN A 192.0.2.7")
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = up.ActivateAndServe() }()
	t.Cleanup(func() { _ = up.Shutdown() })

	dir := t.TempDir()
	listen := freeDNSAddr(t)
	cmd := newDNSCmd()
	cmd.SetArgs([]string{"--listen", listen, "--upstream", upPC.LocalAddr().String(), "--data-dir", dir, "--steer-to", "127.0.0.9"})
	cmd.SetErr(os.Stderr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("aigress dns did not stop")
		}
	}()

	c := &mdns.Client{Timeout: 300 * time.Millisecond}
	ask := func(name string) *mdns.Msg {
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		for i := 0; i < 30; i++ {
			if resp, _, err := c.Exchange(m, listen); err == nil {
				return resp
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no answer for %s from %s", name, listen)
		return nil
	}
	if resp := ask("api.openai.com."); len(resp.Answer) != 1 || resp.Answer[0].(*mdns.A).A.String() != "127.0.0.9" {
		t.Fatalf("steered answer %v", resp.Answer)
	}
	if resp := ask("plain.example."); len(resp.Answer) != 1 || resp.Answer[0].(*mdns.A).A.String() != "192.0.2.7" {
		t.Fatalf("forwarded answer %v", resp.Answer)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("aigress dns: %v", err)
	}
	done <- nil // for the deferred wait
	evs := readEvents(t, filepath.Join(dir, "audit.jsonl"))
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Kind != "dns" || e.Client.IP != "127.0.0.1" || e.Dest.Host != "api.openai.com" || e.Provider != "openai" ||
		e.DNS == nil || e.DNS.Action != "steer" || !reflect.DeepEqual(e.DNS.Answers, []string{"127.0.0.9"}) || len(e.ID) != 26 {
		t.Fatalf("event %+v dns %+v", e, e.DNS)
	}
	// The same event is in the store, where inventory finds it.
	stored := storedEvents(t, dir)
	if len(stored) != 1 || stored[0].ID != e.ID || stored[0].Kind != "dns" || stored[0].DNS == nil || stored[0].DNS.Name != "api.openai.com" {
		t.Fatalf("stored %+v", stored)
	}
	out, err := audcmdRun(t, "inventory", "--data-dir", dir, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var inv audit.Inventory
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatal(err)
	}
	if len(inv.Services) != 1 || inv.Services[0].Provider != "openai" || inv.Services[0].DNSQueries != 1 ||
		!reflect.DeepEqual(inv.Services[0].Sources, []string{"dns"}) || !reflect.DeepEqual(inv.Services[0].Clients, []string{"127.0.0.1"}) {
		t.Fatalf("inventory %+v", inv.Services)
	}
}

// storedEvents reads every event of DIR/events.db.
func storedEvents(t *testing.T, dir string) []audit.Event {
	t.Helper()
	s, err := audit.OpenStoreReadOnly(audit.StorePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, err := s.Query(context.Background(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestPolicyDNS(t *testing.T) {
	pol, err := enforce.Parse([]byte(`apiVersion: aigress/v1
kind: Policy
name: dns
identity:
  groups:
    - {name: lab, cidrs: [10.9.0.0/16]}
connect:
  block: ["*.deepseek.com"]
rules:
  - id: lab-no-chat
    match: {groups: [lab], categories: [chat]}
    action: block
default_action: allow
`), "dns-policy")
	if err != nil {
		t.Fatal(err)
	}
	cat := classify.DefaultCatalog()
	next := func(string, string, netip.Addr) dnsdisc.Action { return dnsdisc.ActionSteer }
	p := policyDNS(pol, cat, next)
	cases := []struct {
		name, host, client string
		want               dnsdisc.Action
	}{
		{"fail/connect-block-list", "api.deepseek.com", "192.168.1.5", dnsdisc.ActionRefuse},
		{"ok/allowed-api", "api.openai.com", "192.168.1.5", dnsdisc.ActionSteer},
		{"ok/chat-outside-lab", "chatgpt.com", "192.168.1.5", dnsdisc.ActionSteer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := p(c.host, "", netip.MustParseAddr(c.client)); got != c.want {
				t.Fatalf("%s from %s: %v, want %v", c.host, c.client, got, c.want)
			}
		})
	}
}
