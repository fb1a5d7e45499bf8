package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/certs"
	"github.com/aigress/aigress/classify"
	"github.com/aigress/aigress/enforce"
	"github.com/aigress/aigress/mitm"
	"github.com/aigress/aigress/policies"
)

type runFlags struct {
	config            string
	listen            string
	dataDir           string
	transparentListen string
	policy            string
	ebpf              bool
	cgroup            string
}

func newRunCmd() *cobra.Command {
	var fl runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the intercepting proxy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(fl.config)
			if err != nil {
				return err
			}
			// Flags override the config.
			if cmd.Flags().Changed("listen") {
				cfg.Listen = fl.listen
			}
			if cmd.Flags().Changed("data-dir") {
				cfg.DataDir = fl.dataDir
			}
			if cmd.Flags().Changed("transparent-listen") {
				cfg.TransparentListen = fl.transparentListen
			}
			if cmd.Flags().Changed("policy") {
				cfg.Policy = fl.policy
			}
			if cmd.Flags().Changed("ebpf") {
				cfg.EBPF.Enabled = fl.ebpf
			}
			if cmd.Flags().Changed("cgroup") {
				cfg.EBPF.Cgroup = fl.cgroup
			}
			if err := cfg.applyDefaults(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runProxy(ctx, cfg, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.config, "config", "", "YAML config file (default: the embedded default config)")
	f.StringVar(&fl.listen, "listen", "", "explicit proxy address (default 127.0.0.1:8080)")
	f.StringVar(&fl.dataDir, "data-dir", "", "data directory for the CA, audit trail and store (default "+defaultDataDir()+")")
	f.StringVar(&fl.transparentListen, "transparent-listen", "", "also accept redirected (iptables/nftables/eBPF) connections on ADDR")
	f.StringVar(&fl.policy, "policy", "", "policy file (default: the embedded policies/default.yaml)")
	f.BoolVar(&fl.ebpf, "ebpf", false, "redirect AI connections with cgroup eBPF programs (needs --transparent-listen)")
	f.StringVar(&fl.cgroup, "cgroup", "", "cgroup v2 path for --ebpf (default: the cgroup v2 root)")
	return cmd
}

// app holds what the stages share.
type app struct {
	cfg     *Config
	log     *logrus.Logger
	catalog *classify.Catalog
	engine  *enforce.Engine
	quotas  *enforce.Quotas
	sink    audit.Sink
	ids     *audit.IDGen

	detMu    sync.Mutex
	det      atomic.Pointer[classify.Detector]
	detFor   atomic.Pointer[enforce.Policy]
	flows    atomic.Int64
	registry *prometheus.Registry

	flowLogLimiter rateLimiter
}

// detector returns the detector for the current policy's custom rules,
// rebuilding it after a reload.
func (a *app) detector() *classify.Detector {
	p := a.engine.Current()
	if d := a.det.Load(); d != nil && a.detFor.Load() == p {
		return d
	}
	a.detMu.Lock()
	defer a.detMu.Unlock()
	if d := a.det.Load(); d != nil && a.detFor.Load() == p {
		return d
	}
	d, err := classify.NewDetector(classify.DetectorOptions{Custom: p.CustomRules()})
	if err != nil {
		// The policy was validated at load; keep the previous detector.
		a.log.WithError(err).Error("custom detectors failed to compile; keeping the previous detector")
		if old := a.det.Load(); old != nil {
			return old
		}
		d, _ = classify.NewDetector(classify.DetectorOptions{})
	}
	a.det.Store(d)
	a.detFor.Store(p)
	return d
}

func newLogger(cfg LogConfig, w interface{ Write([]byte) (int, error) }) (*logrus.Logger, error) {
	l := logrus.New()
	l.SetOutput(w)
	lvl, err := logrus.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("config: log.level: %w", err)
	}
	l.SetLevel(lvl)
	switch cfg.Format {
	case "", "text":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("config: log.format %q: want text or json", cfg.Format)
	}
	return l, nil
}

// loadCA uses the configured enterprise CA, or DATA_DIR/ca.pem, creating
// it on first start.
func loadCA(cfg *Config, log logrus.FieldLogger) (*certs.CA, error) {
	if cfg.CA.Cert != "" {
		return certs.Load(cfg.CA.Cert, cfg.CA.Key)
	}
	ca, err := certs.LoadDir(cfg.DataDir)
	if err == nil {
		return ca, nil
	}
	if _, statErr := os.Stat(filepath.Join(cfg.DataDir, certs.CertFile)); statErr == nil {
		return nil, err // present but unreadable: never replace it
	}
	ca, err = certs.Init(cfg.DataDir, certs.InitOptions{})
	if err != nil {
		return nil, err
	}
	log.WithField("cert", filepath.Join(cfg.DataDir, certs.CertFile)).Warn("created a new local CA: clients must trust it (aigress ca export)")
	return ca, nil
}

func upstreamRoots(path string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if path == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: upstream_ca: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("config: upstream_ca %s: no certificate found", path)
	}
	return pool, nil
}

func loadPolicy(path string) (*enforce.Policy, error) {
	if path == "" {
		return enforce.Parse(policies.Default(), "embedded policies/default.yaml")
	}
	return enforce.LoadFile(path)
}

func runProxy(ctx context.Context, cfg *Config, logOut interface{ Write([]byte) (int, error) }) error {
	log, err := newLogger(cfg.Log, logOut)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ca, err := loadCA(cfg, log)
	if err != nil {
		return err
	}
	minter, err := certs.NewMinter(ca, certs.MinterOptions{})
	if err != nil {
		return err
	}
	roots, err := upstreamRoots(cfg.UpstreamCA)
	if err != nil {
		return err
	}
	catalog, err := classify.NewCatalog(cfg.Catalog)
	if err != nil {
		return fmt.Errorf("config: catalog: %w", err)
	}
	pol, err := loadPolicy(cfg.Policy)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	engine := enforce.NewEngine(pol, log)
	if err := engine.RegisterMetrics(reg); err != nil {
		return err
	}
	sink, closers, err := openSinks(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range closers {
			if err := c(); err != nil {
				log.WithError(err).Warn("closing audit sink")
			}
		}
	}()
	a := &app{
		cfg: cfg, log: log, catalog: catalog, engine: engine,
		quotas: enforce.NewQuotas(enforce.NewMemoryStore(100_000)),
		sink:   sink, ids: audit.NewIDGen(), registry: reg,
		flowLogLimiter: rateLimiter{burst: 50},
	}
	a.detector() // compile once before serving
	flowsTotal := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "aigress_flows_total", Help: "Flows recorded."},
		func() float64 { return float64(a.flows.Load()) })
	reg.MustRegister(flowsTotal)

	p, err := mitm.New(mitm.Options{
		Minter:                minter,
		Pipeline:              a.pipeline(),
		NewID:                 a.ids.New,
		Log:                   log,
		Resolve:               cfg.Resolve,
		UpstreamRoots:         roots,
		UpstreamMark:          cfg.UpstreamMark,
		UpstreamHTTP1:         cfg.UpstreamHTTP1,
		MaxBodyBytes:          cfg.Limits.MaxBodyBytes,
		HandshakeTimeout:      time.Duration(cfg.Limits.HandshakeTimeout),
		IdleTimeout:           time.Duration(cfg.Limits.IdleTimeout),
		DialTimeout:           time.Duration(cfg.Limits.DialTimeout),
		UpstreamHeaderTimeout: time.Duration(cfg.Limits.UpstreamHeaderTimeout),
	})
	if err != nil {
		return err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "aigress_active_flows", Help: "Flows in flight."},
		func() float64 { return float64(p.Active()) }))

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	errc := make(chan error, 4)
	go func() { errc <- p.Serve(ln) }()
	log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "ca": ca.Fingerprint()[:16], "policy": pol.Hash(),
		"data_dir": cfg.DataDir}).Info("aigress proxy listening")

	var tln net.Listener
	var cleanupEBPF func()
	if cfg.TransparentListen != "" {
		tln, err = mitm.ListenTransparent(cfg.TransparentListen, cfg.TransparentMode == "tproxy")
		if err != nil {
			return err
		}
		topts := mitm.TransparentOptions{Kind: cfg.TransparentMode}
		if cfg.EBPF.Enabled {
			lookup, cleanup, err := startEBPF(cfg, tln, log)
			if err != nil {
				_ = tln.Close()
				return err
			}
			cleanupEBPF = cleanup
			topts.OrigDst = lookup
		}
		go func() { errc <- p.ServeTransparent(tln, topts) }()
		log.WithFields(logrus.Fields{"listen": tln.Addr().String(), "mode": cfg.TransparentMode, "ebpf": cfg.EBPF.Enabled}).Info("transparent listener")
	} else if cfg.EBPF.Enabled {
		return errors.New("--ebpf needs --transparent-listen (the address redirected connections are sent to)")
	}
	if cleanupEBPF != nil {
		defer cleanupEBPF()
	}

	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if cfg.DebugPprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/heap", pprof.Index)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		ms := &http.Server{Addr: cfg.MetricsListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := ms.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.WithError(err).Error("metrics listener")
			}
		}()
		defer ms.Close()
	}

	// Policy reload: SIGHUP and file changes.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	watchCtx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	if cfg.Policy != "" {
		go engine.Watch(watchCtx, cfg.Policy, time.Second)
	}
	go func() {
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-hup:
				if cfg.Policy == "" {
					log.Info("SIGHUP: embedded policy in use, nothing to reload")
					continue
				}
				if err := engine.ReloadFile(cfg.Policy); err != nil {
					log.WithError(err).Error("policy reload failed; the previous policy keeps serving")
				}
			}
		}
	}()

	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			log.WithError(err).Error("listener failed")
			return err
		}
	}
	log.Info("shutting down: no new connections, in-flight flows finish")
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Limits.ShutdownGrace))
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("shutdown")
	}
	return nil
}

// startEBPF is set by ebpf_linux.go; nil means eBPF is not built in.
var startEBPF = func(cfg *Config, l net.Listener, log logrus.FieldLogger) (func(net.Conn) (netip.AddrPort, *mitm.Process, bool), func(), error) {
	return nil, nil, errors.New("eBPF support is not built into this binary")
}
