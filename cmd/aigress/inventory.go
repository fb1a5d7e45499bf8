package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/classify"
	"github.com/aigress/aigress/enforce"
)

// periodFlags are the --data-dir, --from, --to and sanction flags shared by
// inventory and report.
type periodFlags struct {
	dataDir      string
	from, to     string
	sanctioned   []string
	unsanctioned []string
	policy       string
}

func (p *periodFlags) register(cmd *cobra.Command, defaultFrom, fromHelp string) {
	f := cmd.Flags()
	f.StringVar(&p.dataDir, "data-dir", "", "data directory holding the event store (default "+defaultDataDir()+")")
	f.StringVar(&p.from, "from", defaultFrom, "start of the period, inclusive: RFC 3339 time, date (2026-11-01), or age (24h, 7d, 2w)"+fromHelp)
	f.StringVar(&p.to, "to", "", "end of the period, exclusive: same forms; a bare date includes that whole day (default now)")
	f.StringSliceVar(&p.sanctioned, "sanctioned", nil, "services or providers sanctioned by policy (overrides what decisions suggest)")
	f.StringSliceVar(&p.unsanctioned, "unsanctioned", nil, "services or providers not sanctioned by policy")
	f.StringVar(&p.policy, "policy", "", "policy file: a service is sanctioned when this policy lets some connection to it through (see --help)")
}

// resolve parses the period (dates and local times in loc) and opens the
// store read-only.
func (p *periodFlags) resolve(now time.Time, loc *time.Location) (from, to time.Time, s *audit.Store, err error) {
	if from, err = parseTimeArg(p.from, now, loc, false); err != nil {
		return from, to, nil, fmt.Errorf("--from: %w", err)
	}
	if to, err = parseTimeArg(p.to, now, loc, true); err != nil {
		return from, to, nil, fmt.Errorf("--to: %w", err)
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return from, to, nil, fmt.Errorf("empty period: --to %s is not after --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	dir := p.dataDir
	if dir == "" {
		dir = defaultDataDir()
	}
	s, err = audit.OpenStoreReadOnly(audit.StorePath(dir))
	return from, to, s, err
}

// sanctionFunc builds the sanction callback from --sanctioned and
// --unsanctioned (service or provider names, case-insensitive; a service
// name wins over its provider), then --policy. Services named by none fall
// back, in audit, on the recorded decisions: sanctioned when some request
// was let through (allow, alert, redact), unsanctioned when every one was
// refused.
func (p *periodFlags) sanctionFunc() (audit.SanctionFunc, error) {
	var byPolicy audit.SanctionFunc
	if p.policy != "" {
		pol, err := enforce.LoadFile(p.policy)
		if err != nil {
			return nil, err
		}
		byPolicy = policySanction(pol, classify.DefaultCatalog())
	}
	if len(p.sanctioned) == 0 && len(p.unsanctioned) == 0 {
		return byPolicy, nil
	}
	set := func(names []string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
				m[n] = true
			}
		}
		return m
	}
	yes, no := set(p.sanctioned), set(p.unsanctioned)
	return func(provider, service string) (bool, bool) {
		for _, k := range []string{strings.ToLower(service), strings.ToLower(provider)} {
			if k == "" {
				continue
			}
			if no[k] {
				return false, true
			}
			if yes[k] {
				return true, true
			}
		}
		if byPolicy != nil {
			return byPolicy(provider, service)
		}
		return false, false
	}, nil
}

// policySanction says whether pol sanctions a service: yes when the policy
// lets some connection to it through, that is when ConnectDecision allows
// it for at least one of the identities the policy names (nobody in
// particular, each group, each user named by a rule) and one of the
// service's catalog hosts. ConnectDecision and not Decide: it applies
// connect.block, block_unlisted_ai, the fail-closed mode of pinned services
// and the identity/service rules, and leaves rules that need the request
// (model allow-lists, accounts) to the request, where Decide without a
// request would refuse a service that is allowed for approved models.
// Findings and personal accounts make a request refused, not a service
// unsanctioned. Every service is known to the policy, so the recorded
// decisions no longer matter.
func policySanction(pol *enforce.Policy, catalog *classify.Catalog) audit.SanctionFunc {
	doc := pol.Document()
	ids := []enforce.Identity{{}}
	for _, g := range doc.Identity.Groups {
		ids = append(ids, enforce.Identity{Groups: []string{g.Name}})
	}
	for _, r := range doc.Rules {
		for _, u := range r.Match.Users {
			if !strings.ContainsAny(u, "*?[") {
				ids = append(ids, enforce.Identity{User: u})
			}
		}
	}
	type target struct {
		host string
		svc  classify.Service
	}
	hosts := map[[2]string][]target{}
	for _, e := range catalog.Entries() {
		k := [2]string{strings.ToLower(e.Provider), strings.ToLower(e.Service.Service)}
		// A wildcard label stands for any name: try one.
		hosts[k] = append(hosts[k], target{strings.ReplaceAll(e.Host, "*", "x"), e.Service})
	}
	return func(provider, service string) (bool, bool) {
		ts := hosts[[2]string{strings.ToLower(provider), strings.ToLower(service)}]
		if len(ts) == 0 {
			// Not in the catalog (a config's own entry): judge it by
			// its names alone.
			ts = []target{{"", classify.Service{Provider: provider, Service: service, Inspect: true}}}
		}
		for _, id := range ids {
			for _, tg := range ts {
				if !pol.ConnectDecision(id, tg.host, tg.svc, true).Action.Refuses() {
					return true, true
				}
			}
		}
		return false, true
	}
}

func newInventoryCmd() *cobra.Command {
	var pf periodFlags
	var format string
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "List the AI services in use: who, how much, with which accounts",
		Long: `inventory reads the event store (proxy, DNS and sensor events) and lists every
AI service seen in the period: its clients and users, requests, tokens and
bytes, whether it is sanctioned, when it was first and last seen, and the
distinct credentials per provider, marked corporate or personal.

A service is sanctioned or unsanctioned as --sanctioned/--unsanctioned say;
otherwise, with --policy FILE, as that policy says: sanctioned when it lets
some connection to the service through, for nobody in particular or for one
of the groups or users it names (rules on models or accounts are left to
each request); otherwise as the recorded policy decisions show: sanctioned when some of its
requests were let through (allow, alert, redact), unsanctioned when all were
refused (block, quota, refused CONNECT), unknown when no decision was made
(DNS, sensor or tunnel only).

--format csv writes one table with a "record" column: "service" rows, then
"account" rows (for accounts, service lists the services, clients and users
are counts).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "table", "json", "csv":
			default:
				return fmt.Errorf("--format %q: want table, json or csv", format)
			}
			from, to, s, err := pf.resolve(time.Now(), time.Local)
			if err != nil {
				return err
			}
			defer s.Close()
			sanction, err := pf.sanctionFunc()
			if err != nil {
				return err
			}
			inv, err := s.Inventory(context.Background(), from, to, sanction)
			if err != nil {
				return err
			}
			return writeInventory(cmd.OutOrStdout(), format, inv)
		},
	}
	pf.register(cmd, "", " (default: everything stored)")
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, json or csv")
	return cmd
}

func writeInventory(w io.Writer, format string, inv audit.Inventory) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(inv)
	case "csv":
		return writeInventoryCSV(w, inv)
	}
	return writeInventoryTable(w, inv)
}

func invTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04")
}

func writeInventoryTable(w io.Writer, inv audit.Inventory) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	if len(inv.Services) == 0 {
		fmt.Fprintln(tw, "No AI service seen in the period.")
	} else {
		fmt.Fprintln(tw, "SERVICE\tPROVIDER\tCATEGORY\tSEEN BY\tCLIENTS\tUSERS\tREQUESTS\tBLOCKED\tTUNNELS\tDNS\tFLOWS\tTOKENS IN/OUT\tBYTES\tSTATUS\tFIRST SEEN\tLAST SEEN")
		for _, s := range inv.Services {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%d\t%s\t%s\t%s\n",
				s.Service, s.Provider, s.Category, strings.Join(s.Sources, ","), len(s.Clients), len(s.Users),
				s.Requests, s.Blocked, s.Tunnels, s.DNSQueries, s.SensorFlows, s.TokensIn, s.TokensOut, s.Bytes,
				s.Status, invTime(s.FirstSeen), invTime(s.LastSeen))
		}
	}
	if len(inv.Accounts) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "PROVIDER\tCREDENTIAL FINGERPRINT\tACCOUNT\tREQUESTS\tUSERS\tCLIENTS\tSERVICES\tLAST SEEN")
		for _, a := range inv.Accounts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", a.Provider, a.Fingerprint, a.Marking, a.Requests,
				len(a.Users), len(a.Clients), strings.Join(a.Services, ","), invTime(a.LastSeen))
		}
	}
	return tw.Flush()
}

var inventoryCSVHeader = []string{"record", "provider", "service", "category", "sources", "clients", "users",
	"requests", "blocked", "tunnels", "dns_queries", "sensor_flows", "tokens_in", "tokens_out", "bytes_out", "bytes_in",
	"bytes", "status", "status_basis", "first_seen", "last_seen", "fingerprint", "marking"}

func writeInventoryCSV(w io.Writer, inv audit.Inventory) error {
	cw := csv.NewWriter(w)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	_ = cw.Write(inventoryCSVHeader)
	for _, s := range inv.Services {
		_ = cw.Write(csvCells("service", s.Provider, s.Service, s.Category, strings.Join(s.Sources, " "),
			strconv.Itoa(len(s.Clients)), strconv.Itoa(len(s.Users)), i(s.Requests), i(s.Blocked), i(s.Tunnels),
			i(s.DNSQueries), i(s.SensorFlows), i(s.TokensIn), i(s.TokensOut), i(s.BytesOut), i(s.BytesIn), i(s.Bytes),
			s.Status, s.StatusBasis, ts(s.FirstSeen), ts(s.LastSeen), "", ""))
	}
	for _, a := range inv.Accounts {
		_ = cw.Write(csvCells("account", a.Provider, strings.Join(a.Services, " "), "", "",
			strconv.Itoa(len(a.Clients)), strconv.Itoa(len(a.Users)), i(a.Requests), "", "", "", "", "", "", "", "", "",
			"", "", ts(a.FirstSeen), ts(a.LastSeen), a.Fingerprint, a.Marking))
	}
	cw.Flush()
	return cw.Error()
}

// csvCells defuses spreadsheet formulas in free-text cells.
func csvCells(cells ...string) []string {
	for k, c := range cells {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			cells[k] = "'" + c
		}
	}
	return cells
}

// parseTimeArg reads a --from/--to value: "" (unbounded), "now", an RFC 3339
// time, "2006-01-02T15:04" or "2006-01-02 15:04" (in loc), a date (in loc;
// for an end bound, the end of that day), or an age like 90m, 24h, 7d, 2w
// (that long before now).
func parseTimeArg(s string, now time.Time, loc *time.Location, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return time.Time{}, nil
	case "now":
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	if d, ok := parseAge(s); ok {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("cannot read %q as a time: use RFC 3339 (2026-11-01T08:00:00Z), a date (2026-11-01) or an age (24h, 7d, 2w)", s)
}

// parseAge reads 90m, 24h, 1h30m, 7d or 2w.
func parseAge(s string) (time.Duration, bool) {
	unit := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		unit = 7 * 24 * time.Hour
	}
	if unit != 0 {
		n, err := strconv.Atoi(s[:len(s)-1])
		if err != nil || n < 0 || n > 100*366 {
			return 0, false
		}
		return time.Duration(n) * unit, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, false
	}
	return d, true
}
