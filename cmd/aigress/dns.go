package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/classify"
	dnsdisc "github.com/aigress/aigress/discover/dns"
	"github.com/aigress/aigress/enforce"
)

// dnsOptions are the flags of `aigress dns`.
type dnsOptions struct {
	Config       string
	Listen       string
	Upstreams    []string
	DataDir      string
	SteerTo      []string // proxy addresses (one IPv4 and/or one IPv6)
	Allow        []string // client CIDRs; empty = loopback + private ranges
	Refuse       []string // providers or services answered NXDOMAIN / block address
	BlockAddress []string // block page addresses for refused names
	StripECH     bool
	CacheSize    int
	Timeout      time.Duration
	Policy       string // policy file: services it refuses at CONNECT are refused in DNS too
}

// dnsRunner runs `aigress dns`; tests replace it to check flag parsing.
var dnsRunner = runDNS

func newDNSCmd() *cobra.Command {
	var o dnsOptions
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Run the caching DNS resolver that records AI lookups and can steer or refuse AI names",
		Long: `aigress dns is a caching forwarding resolver (UDP and TCP). Every lookup of an
AI name from the catalog becomes a "dns" audit event. With --steer-to, AI names
resolve to the proxy's address (DNS steering); with --refuse, chosen providers
or services get NXDOMAIN (or --block-address). Only clients in --allow (default
loopback and private ranges) are served: it is never an open resolver.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dnsRunner(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Config, "config", "", "YAML config file (catalog, data_dir, audit, log; default: the embedded default config)")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:53", "UDP and TCP address to serve")
	f.StringSliceVar(&o.Upstreams, "upstream", nil, "upstream resolvers host:port, tried in order (default: nameservers of /etc/resolv.conf)")
	f.StringVar(&o.DataDir, "data-dir", "", "data directory for the audit trail and event store (default "+defaultDataDir()+")")
	f.StringSliceVar(&o.SteerTo, "steer-to", nil, "answer AI names with this proxy address (IPv4 and/or IPv6)")
	f.StringSliceVar(&o.Allow, "allow", nil, "client CIDRs served (default loopback, RFC 1918, link-local, ULA)")
	f.StringVar(&o.Policy, "policy", "", "policy file: AI services it refuses at CONNECT for a client are answered NXDOMAIN (or --block-address) for that client")
	f.StringSliceVar(&o.Refuse, "refuse", nil, "providers or services (as in the catalog) answered NXDOMAIN or --block-address")
	f.StringSliceVar(&o.BlockAddress, "block-address", nil, "block page address (IPv4 and/or IPv6) for refused names instead of NXDOMAIN")
	f.BoolVar(&o.StripECH, "strip-ech", true, "remove ECH from HTTPS/SVCB answers for AI names, so the proxy sees the SNI")
	f.IntVar(&o.CacheSize, "cache-size", dnsdisc.DefaultCacheSize, "cached answers")
	f.DurationVar(&o.Timeout, "timeout", dnsdisc.DefaultTimeout, "per-upstream query timeout")
	return cmd
}

// runDNS starts the resolver and serves until SIGINT/SIGTERM.
func runDNS(cmd *cobra.Command, o dnsOptions) error {
	cfg, err := loadConfig(o.Config)
	if err != nil {
		return err
	}
	if o.DataDir != "" {
		cfg.DataDir = o.DataDir
	}
	if err := cfg.applyDefaults(); err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	catalog, err := classify.NewCatalog(cfg.Catalog)
	if err != nil {
		return fmt.Errorf("dns: catalog: %w", err)
	}
	if len(o.Upstreams) == 0 {
		o.Upstreams, err = systemResolvers("/etc/resolv.conf", o.Listen)
		if err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("dns: data dir: %w", err)
	}
	// The same sinks as aigress run (trail and store), so that inventory
	// and report see DNS events; run and dns may share one data directory.
	sinks, err := openEventSinks(cfg, log)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	defer func() {
		if err := sinks.Close(); err != nil {
			log.WithError(err).Warn("dns: close audit sinks")
		}
		log.Info("dns: " + sinks.Summary())
	}()
	dcfg, err := dnsConfig(o, catalog, sinks.Write)
	if err != nil {
		return err
	}
	if o.Policy != "" {
		pol, err := enforce.LoadFile(o.Policy)
		if err != nil {
			return err
		}
		dcfg.Policy = policyDNS(pol, catalog, dcfg.Policy)
	}
	dcfg.NewID = sinks.NewID
	srv, err := dnsdisc.NewServer(dcfg, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	st := srv.Stats()
	log.WithFields(map[string]any{
		"queries": st.Queries, "cache_hits": st.CacheHits, "events": st.Events,
		"steered": st.Steered, "blocked": st.Blocked, "refused_clients": st.Refused,
	}).Info("dns: resolver stopped")
	return err
}

// dnsConfig turns the flags into the resolver's config: catalog lookup,
// steering of every catalog name when --steer-to is set, refusal of the
// providers/services named by --refuse. (The lead may later wire Policy to
// the policy engine instead.)
func dnsConfig(o dnsOptions, catalog *classify.Catalog, emit func(*audit.Event)) (dnsdisc.Config, error) {
	c := dnsdisc.Config{
		Listen:    o.Listen,
		Upstreams: o.Upstreams,
		Timeout:   o.Timeout,
		CacheSize: o.CacheSize,
		StripECH:  o.StripECH,
		Emit:      emit,
		// NewID: set by runDNS to the sinks' audit.IDGen.
	}
	var err error
	if c.SteerV4, c.SteerV6, err = splitFamilies("--steer-to", o.SteerTo); err != nil {
		return c, err
	}
	if c.BlockV4, c.BlockV6, err = splitFamilies("--block-address", o.BlockAddress); err != nil {
		return c, err
	}
	for _, s := range o.Allow {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, err2 := netip.ParseAddr(strings.TrimSpace(s))
			if err2 != nil {
				return c, fmt.Errorf("dns: --allow %q: %w", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.AllowClients = append(c.AllowClients, p.Masked())
	}
	c.Lookup = func(name string) (string, string, bool) {
		svc, ok := catalog.Lookup(name)
		return svc.Service, svc.Provider, ok
	}
	refuse := map[string]bool{}
	for _, r := range o.Refuse {
		if r = strings.ToLower(strings.TrimSpace(r)); r != "" {
			refuse[r] = true
		}
	}
	steer := c.SteerV4.IsValid() || c.SteerV6.IsValid()
	c.Policy = func(name, service string, _ netip.Addr) dnsdisc.Action {
		if len(refuse) > 0 {
			svc, _ := catalog.Lookup(name)
			if refuse[strings.ToLower(service)] || refuse[strings.ToLower(svc.Provider)] {
				return dnsdisc.ActionRefuse
			}
		}
		if steer {
			return dnsdisc.ActionSteer
		}
		return dnsdisc.ActionForward
	}
	return c, nil
}

// policyDNS refuses the names of services the policy refuses at CONNECT
// for that client, and defers to next otherwise.
func policyDNS(pol *enforce.Policy, catalog *classify.Catalog, next func(string, string, netip.Addr) dnsdisc.Action) func(string, string, netip.Addr) dnsdisc.Action {
	return func(name, service string, client netip.Addr) dnsdisc.Action {
		svc, known := catalog.Lookup(name)
		id, _ := pol.Identify(client, nil)
		if d := pol.ConnectDecision(id, name, svc, known); d.Action == enforce.ActionBlock {
			return dnsdisc.ActionRefuse
		}
		return next(name, service, client)
	}
}

// splitFamilies parses at most one IPv4 and one IPv6 address.
func splitFamilies(flag string, list []string) (v4, v6 netip.Addr, err error) {
	for _, s := range list {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return v4, v6, fmt.Errorf("dns: %s %q: %w", flag, s, err)
		}
		a = a.Unmap()
		switch {
		case a.Is4() && !v4.IsValid():
			v4 = a
		case a.Is6() && !v6.IsValid():
			v6 = a
		default:
			return v4, v6, fmt.Errorf("dns: %s: more than one %s address", flag, map[bool]string{true: "IPv4", false: "IPv6"}[a.Is4()])
		}
	}
	return v4, v6, nil
}

// systemResolvers reads the nameservers of a resolv.conf, leaving out our
// own listen address (no forwarding loop).
func systemResolvers(path, listen string) ([]string, error) {
	rc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("dns: no --upstream and %s unreadable: %w", path, err)
	}
	var out []string
	for _, s := range rc.Servers {
		hp := net.JoinHostPort(s, rc.Port)
		if hp == listen {
			continue
		}
		out = append(out, hp)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dns: no --upstream and no usable nameserver in %s", path)
	}
	return out, nil
}
