package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/classify"
	"github.com/aigress/aigress/discover/sniff"
)

func newSniffCmd() *cobra.Command {
	var pcapPath, iface, dataDir, configPath string
	var duration time.Duration
	cmd := &cobra.Command{
		Use:   "sniff (--pcap FILE | --iface IF [--duration D])",
		Short: "Find AI usage in a packet capture or on a live interface (passive sensor)",
		Long: "sniff reads a pcap/pcapng file or captures on an interface (pure-Go AF_PACKET, root needed),\n" +
			"names flows by TLS SNI, QUIC Initial SNI, HTTP Host and DNS answers, and writes one sensor\n" +
			"event per (client IP, AI service, source) to the audit trail and the event store of the data\n" +
			"directory, where `aigress inventory` and `aigress report` find them.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (pcapPath == "") == (iface == "") {
				return errors.New("sniff: give exactly one of --pcap or --iface")
			}
			if pcapPath != "" && duration != 0 {
				return errors.New("sniff: --duration applies to --iface only")
			}
			cfg, err := sinkConfig(configPath, dataDir)
			if err != nil {
				return err
			}
			return runSniff(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cfg, pcapPath, iface, duration)
		},
	}
	f := cmd.Flags()
	f.StringVar(&pcapPath, "pcap", "", "read this pcap or pcapng file (\"-\" for stdin)")
	f.StringVar(&iface, "iface", "", "capture live on this interface")
	f.DurationVar(&duration, "duration", 0, "stop a live capture after this long (0: until interrupted)")
	f.StringVar(&configPath, "config", "", "YAML config file (catalog, data_dir, audit, log; default: the embedded default config)")
	f.StringVar(&dataDir, "data-dir", "", "data directory for the audit trail and event store (default "+defaultDataDir()+")")
	return cmd
}

func runSniff(ctx context.Context, out, errOut io.Writer, cfg *Config, pcapPath, iface string, duration time.Duration) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log, err := newLogger(cfg.Log, errOut)
	if err != nil {
		return err
	}
	catalog, err := classify.NewCatalog(cfg.Catalog)
	if err != nil {
		return fmt.Errorf("sniff: catalog: %w", err)
	}
	var r io.Reader = os.Stdin
	if pcapPath != "" && pcapPath != "-" {
		f, err := os.Open(pcapPath)
		if err != nil {
			return fmt.Errorf("sniff: %w", err)
		}
		defer f.Close()
		r = f
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("sniff: data dir: %w", err)
	}
	sinks, err := openEventSinks(cfg, log)
	if err != nil {
		return fmt.Errorf("sniff: %w", err)
	}
	waitCtx := context.WithoutCancel(ctx)
	var events []*audit.Event
	s := sniff.New(sniff.Options{
		Lookup: catalog.Lookup,
		Emit: func(e *audit.Event) {
			events = append(events, e)
			// The sensor has no deadline to meet: wait for a sink that
			// falls behind rather than drop, also while the rows of an
			// interrupted capture are flushed (the writers always drain).
			sinks.WriteWait(waitCtx, e)
		},
		NewID: sinks.NewID,
		Log:   log,
	})
	start := time.Now()
	var runErr error
	if pcapPath != "" {
		runErr = s.ReadPcap(ctx, r)
	} else {
		runErr = s.Live(ctx, iface, duration)
	}
	// Whatever was read is still reported, also after an error.
	s.Flush()
	elapsed := time.Since(start)
	if err := sinks.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("sniff: %w", err)
	}
	printSniffSummary(out, events, s.Stats(), elapsed)
	fmt.Fprintln(out, sinks.Summary())
	return runErr
}

func printSniffSummary(out io.Writer, events []*audit.Event, st sniff.Stats, elapsed time.Duration) {
	type svcSum struct {
		provider, service string
		clients           map[string]bool
		sources           map[string]bool
		flows, bytes      int64
	}
	sums := map[string]*svcSum{}
	for _, e := range events {
		s := sums[e.Service]
		if s == nil {
			s = &svcSum{provider: e.Provider, service: e.Service, clients: map[string]bool{}, sources: map[string]bool{}}
			sums[e.Service] = s
		}
		s.clients[e.Client.IP] = true
		s.sources[e.Sensor.Source] = true
		s.flows += e.Sensor.Flows
		s.bytes += e.Sensor.Bytes
	}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := sums[names[i]], sums[names[j]]
		if a.bytes != b.bytes {
			return a.bytes > b.bytes
		}
		return a.service < b.service
	})
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPROVIDER\tCLIENTS\tFLOWS\tBYTES\tSOURCES")
	for _, n := range names {
		s := sums[n]
		srcs := make([]string, 0, len(s.sources))
		for k := range s.sources {
			srcs = append(srcs, k)
		}
		sort.Strings(srcs)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%v\n", s.service, s.provider, len(s.clients), s.flows, s.bytes, srcs)
	}
	_ = tw.Flush()
	pps := 0.0
	if sec := elapsed.Seconds(); sec > 0 {
		pps = float64(st.Packets) / sec
	}
	fmt.Fprintf(out, "\n%d events; packets %d (%.0f pps, %s), bytes %d, decoded %d, truncated %d, malformed %d, non-IP %d, vlan %d, ipv6 %d\n",
		len(events), st.Packets, pps, elapsed.Round(time.Millisecond), st.Bytes, st.Decoded, st.Truncated, st.Malformed, st.NonIP, st.VLAN, st.IPv6)
	fmt.Fprintf(out, "flows %d (evicted %d), sni %d, quic %d, http host %d, dns answers %d, dns-attributed flows %d\n",
		st.FlowsTotal, st.FlowsEvicted, st.SNIFound, st.QUICFound, st.HTTPHosts, st.DNSAnswers, st.DNSAttributed)
}
