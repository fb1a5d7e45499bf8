// Command bench measures aigress against direct TLS and a bare goproxy MITM
// that inspects nothing, in one run, on loopback only, and prints a table.
// Run it with `make bench` (it needs bin/aigress).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/aigress/aigress/certs"
	"github.com/aigress/aigress/test/mockllm"
)

var (
	bin      = flag.String("bin", "bin/aigress", "aigress binary")
	clients  = flag.Int("clients", 20, "keep-alive clients for the throughput test")
	duration = flag.Duration("duration", 3*time.Second, "time per throughput measurement")
	rounds   = flag.Int("rounds", 3, "interleaved rounds (medians are reported)")
	extraCfg = flag.String("config-extra", "", "YAML appended to aigress's bench config (for experiments)")
	idle     = flag.Int("idle-conns", 500, "idle intercepted connections for the memory measurement (0: skip)")
	secrets  = flag.Bool("with-secrets", false, "put an AWS key and an e-mail in the 4 KB request (the default policy redacts the key)")
	mitm     = flag.Bool("mitmproxy", true, "also measure Debian's mitmdump (stream_large_bodies=1) when it is installed")
	profile  = flag.String("cpuprofile", "", "write a CPU profile of aigress during its first throughput run to this file")
)

var (
	serveBare = flag.Bool("serve-bare", false, "internal: run the bare goproxy MITM in this process and print its address")
	bareCA    = flag.String("bare-ca-dir", "", "internal: CA directory for -serve-bare")
	bareMock  = flag.String("bare-mock", "", "internal: mock address for -serve-bare")
	bareRoots = flag.String("bare-roots", "", "internal: mock CA file for -serve-bare")
)

func main() {
	flag.Parse()
	if *serveBare {
		ca, err := certs.LoadDir(*bareCA)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		addr, err := startBareGoproxy(ca, *bareMock, *bareRoots)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(addr)
		select {}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func chatRequest() string {
	// A 4 KB chat request: realistic prose, no secrets.
	var b strings.Builder
	for b.Len() < 3900 {
		b.WriteString("Summarise the quarterly operations review for the platform team, focusing on latency and cost. ")
	}
	text := b.String()[:3900]
	if *secrets {
		text = "Deploy with AKIAIOSFODNN7EXAMPLQ and mail ops.lead@acme-widgets.com. " + text[:3830]
	}
	return fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are concise."},{"role":"user","content":%q}]}`, text)
}

func run() error {
	dir, err := os.MkdirTemp("", "aigress-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if os.Getenv("BENCH_KEEP") == "" {
			os.RemoveAll(dir)
		} else {
			fmt.Fprintln(os.Stderr, "bench: kept", dir)
		}
	}()
	mock, err := mockllm.Start(mockllm.Options{Hosts: []string{"api.openai.com"}, ChunkDelay: 20 * time.Millisecond})
	if err != nil {
		return err
	}
	defer mock.Close()
	mockCA := filepath.Join(dir, "mock-ca.pem")
	if err := os.WriteFile(mockCA, mock.CAPEM(), 0o600); err != nil {
		return err
	}
	// aigress, real binary, no prompt logging, default policy.
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nupstream_ca: %s\nlog: {level: info}\nresolve: {\"api.openai.com:443\": %q}\n", mockCA, mock.Addr())
	cfg += *extraCfg
	if *profile != "" {
		cfg += "metrics_listen: 127.0.0.1:18999\ndebug_pprof: true\n"
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfgFile, []byte(cfg), 0o600)
	cmd := exec.Command(*bin, "run", "--config", cfgFile, "--data-dir", dir, "--listen", "127.0.0.1:0")
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	addrc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`listen="?([0-9.:]+)"?`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "proxy listening") {
				addrc <- m[1]
			}
		}
	}()
	var aigressAddr string
	select {
	case aigressAddr = <-addrc:
	case <-time.After(20 * time.Second):
		return fmt.Errorf("aigress did not start (log level must print the listening line)")
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	pool.AppendCertsFromPEM(mock.CAPEM())

	// Memory first, on a fresh process: later load would leave freed heap
	// that idle connections could reuse unseen.
	idleLine := ""
	if *idle > 0 {
		if per, err := idleMemory(cmd.Process.Pid, aigressAddr, pool, *idle); err != nil {
			fmt.Fprintln(os.Stderr, "bench: idle memory:", err)
		} else {
			idleLine = fmt.Sprintf("memory per idle intercepted connection (%d conns, RSS delta on a fresh process): %.1f KB\n", *idle, per/1024)
		}
	}

	// Bare goproxy MITM with the same CA, inspecting nothing.
	ca, err := certs.LoadDir(dir)
	if err != nil {
		return err
	}
	// The bare goproxy runs in its own process, like aigress, so both pay
	// the same cross-process hops on this 2-core machine.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bareCmd := exec.Command(self, "-serve-bare", "-bare-ca-dir", dir, "-bare-mock", mock.Addr(), "-bare-roots", mockCA)
	bareCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	bareOut, err := bareCmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := bareCmd.Start(); err != nil {
		return err
	}
	defer func() { _ = bareCmd.Process.Kill(); _ = bareCmd.Wait() }()
	line, err := bufio.NewReader(bareOut).ReadString('\n')
	if err != nil {
		return fmt.Errorf("bare goproxy: %w", err)
	}
	bare := strings.TrimSpace(line)

	body := chatRequest()
	targets := []struct {
		name  string
		proxy string
	}{{"direct", ""}, {"bare goproxy MITM", bare}, {"aigress", aigressAddr}}
	if _, err := exec.LookPath("mitmdump"); err == nil && *mitm {
		addr, stop, err := startMitmproxy(dir, mock.Addr(), mockCA, pool)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: mitmproxy skipped:", err)
		} else {
			defer stop()
			targets = append(targets, struct {
				name  string
				proxy string
			}{"mitmproxy 8 (stream_large_bodies=1)", addr})
		}
	}
	rps := map[string][]float64{}
	lat := map[string][][]time.Duration{}
	for r := 0; r < *rounds; r++ {
		for _, tg := range targets {
			if tg.name == "aigress" && r == 0 && *profile != "" {
				go saveProfile(*profile)
			}
			rps[tg.name] = append(rps[tg.name], throughput(tg.proxy, pool, mock.Addr(), body))
			if tg.name == "aigress" && r == 0 && *profile != "" {
				go saveTrace(*profile + ".trace")
			}
			lat[tg.name] = append(lat[tg.name], latencies(tg.proxy, pool, mock.Addr(), body, 300))
		}
	}
	fmt.Printf("\n4 KB chat request, %d keep-alive clients, %d rounds of %v (medians)\n\n", *clients, *rounds, *duration)
	fmt.Printf("| target | req/s | vs direct | p50 latency | p99 latency |\n|---|---|---|---|---|\n")
	direct := median(rps["direct"])
	for _, tg := range targets {
		m := median(rps[tg.name])
		p50, p99 := pcts(lat[tg.name])
		fmt.Printf("| %s | %.0f | %.2f | %v | %v |\n", tg.name, m, m/direct, p50, p99)
	}
	d50, d99 := pcts(lat["direct"])
	a50, a99 := pcts(lat["aigress"])
	fmt.Printf("\naigress / bare goproxy throughput: %.2fx\n", median(rps["aigress"])/median(rps["bare goproxy MITM"]))
	if v := rps["mitmproxy 8 (stream_large_bodies=1)"]; len(v) > 0 {
		fmt.Printf("aigress / mitmproxy throughput: %.1fx\n", median(rps["aigress"])/median(v))
	}
	fmt.Printf("added latency (aigress - direct), warm keep-alive: p50 %v, p99 %v\n", a50-d50, a99-d99)

	// First SSE event: direct vs through aigress, median of 15 each.
	var fd, fa []time.Duration
	for i := 0; i < 15; i++ {
		fd = append(fd, firstEvent("", pool, mock.Addr()))
		fa = append(fa, firstEvent(aigressAddr, pool, mock.Addr()))
	}
	slices.Sort(fd)
	slices.Sort(fa)
	fmt.Printf("first SSE event (new connection each): direct %v, aigress %v, added %v\n", fd[7], fa[7], fa[7]-fd[7])

	fmt.Print(idleLine)

	// Leaf minting.
	m, _ := certs.NewMinter(ca, certs.MinterOptions{})
	var mint []time.Duration
	for i := 0; i < 500; i++ {
		t0 := time.Now()
		if _, err := m.Mint(fmt.Sprintf("h%d.example", i)); err != nil {
			return err
		}
		mint = append(mint, time.Since(t0))
	}
	slices.Sort(mint)
	m.Get("hit.example")
	t0 := time.Now()
	for i := 0; i < 100000; i++ {
		m.Get("hit.example")
	}
	fmt.Printf("leaf mint: p50 %v p99 %v; cache hit %v\n", mint[len(mint)/2], mint[len(mint)*99/100], time.Since(t0)/100000)
	return nil
}

func newClient(proxy string, pool *x509.CertPool, mockAddr string) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	if proxy != "" {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxy})
	} else {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, mockAddr)
		}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func do(c *http.Client, body string) error {
	resp, err := c.Post("https://api.openai.com/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

var reportOnce sync.Once

func throughput(proxy string, pool *x509.CertPool, mockAddr, body string) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(*duration)
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(proxy, pool, mockAddr)
			_ = do(c, body) // warm
			for time.Now().Before(deadline) {
				err := do(c, body)
				if err == nil {
					n.Add(1)
					continue
				}
				reportOnce.Do(func() { fmt.Fprintf(os.Stderr, "bench: request through %q failed: %v\n", proxy, err) })
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

func latencies(proxy string, pool *x509.CertPool, mockAddr, body string, n int) []time.Duration {
	c := newClient(proxy, pool, mockAddr)
	_ = do(c, body)
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if do(c, body) == nil {
			out = append(out, time.Since(t0))
		}
	}
	return out
}

func firstEvent(proxy string, pool *x509.CertPool, mockAddr string) time.Duration {
	c := newClient(proxy, pool, mockAddr)
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	// Warm the connection so the handshake is not measured.
	_ = do(c, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	t0 := time.Now()
	resp, err := c.Post("https://api.openai.com/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if strings.HasPrefix(line, "data: ") || err != nil {
			return time.Since(t0)
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func pcts(rounds [][]time.Duration) (time.Duration, time.Duration) {
	var p50s, p99s []float64
	for _, r := range rounds {
		if len(r) == 0 {
			continue
		}
		s := slices.Clone(r)
		slices.Sort(s)
		p50s = append(p50s, float64(s[len(s)/2]))
		p99s = append(p99s, float64(s[len(s)*99/100]))
	}
	if len(p50s) == 0 {
		return 0, 0
	}
	return time.Duration(median(p50s)).Round(time.Microsecond), time.Duration(median(p99s)).Round(time.Microsecond)
}

func startBareGoproxy(ca *certs.CA, mockAddr, mockCA string) (string, error) {
	minter, err := certs.NewMinter(ca, certs.MinterOptions{})
	if err != nil {
		return "", err
	}
	pem, _ := os.ReadFile(mockCA)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	gp := goproxy.NewProxyHttpServer()
	gp.Tr = &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, mockAddr)
		},
		MaxIdleConnsPerHost: 256,
	}
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: func(h string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
			return minter.TLSConfig(strings.Split(h, ":")[0], []string{"http/1.1"}), nil
		}}, host
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() { _ = http.Serve(l, gp) }()
	return l.Addr().String(), nil
}

func saveProfile(path string) {
	secs := max(int(duration.Seconds()), 1)
	saveURL(fmt.Sprintf("http://127.0.0.1:18999/debug/pprof/profile?seconds=%d", secs), path)
}

func saveTrace(path string) {
	saveURL("http://127.0.0.1:18999/debug/pprof/trace?seconds=1", path)
}

// saveURL writes what a GET of url returns to path (profiles; errors
// only cost the profile).
func saveURL(url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// startMitmproxy runs Debian's mitmdump as a MITM proxy whose addon sends
// every request to the mock; the client pool learns mitmproxy's CA.
func startMitmproxy(dir, mockAddr, mockCA string, pool *x509.CertPool) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	host, port, _ := net.SplitHostPort(mockAddr)
	_, lport, _ := net.SplitHostPort(addr)
	addon := filepath.Join(dir, "mock_addon.py")
	// requestheaders: with stream_large_bodies the server connection is
	// opened before the request hook runs.
	script := fmt.Sprintf("def requestheaders(flow):\n    flow.request.host = %q\n    flow.request.port = %s\n", host, port)
	if err := os.WriteFile(addon, []byte(script), 0o600); err != nil {
		return "", nil, err
	}
	conf := filepath.Join(dir, "mitmproxy")
	cmd := exec.Command("mitmdump", "-q", "--listen-host", "127.0.0.1", "--listen-port", lport,
		"--set", "confdir="+conf, "--set", "stream_large_bodies=1", "--set", "ssl_insecure=true", // its upstream verification of the mock failed; this only favours mitmproxy
		// Never dial the real name: connect only when the addon has pointed
		// the request at the mock, and mint without the upstream certificate.
		"--set", "connection_strategy=lazy", "--set", "upstream_cert=false",
		"-s", addon)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, _ := os.Create(filepath.Join(dir, "mitmdump.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if pem, err := os.ReadFile(filepath.Join(conf, "mitmproxy-ca-cert.pem")); err == nil {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				pool.AppendCertsFromPEM(pem)
				return addr, stop, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("mitmdump did not start")
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d", &kb)
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// idleMemory opens n keep-alive connections through the proxy, each with
// one intercepted request done, and reports the RSS growth per connection.
func idleMemory(pid int, proxy string, pool *x509.CertPool, n int) (float64, error) {
	runtimeGC := func() { time.Sleep(500 * time.Millisecond) }
	runtimeGC()
	before, err := rss(pid)
	if err != nil {
		return 0, err
	}
	var clients []*http.Client
	for i := 0; i < n; i++ {
		c := newClient(proxy, pool, "")
		if err := do(c, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`); err != nil {
			return 0, err
		}
		clients = append(clients, c)
	}
	runtimeGC()
	after, err := rss(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	return float64(after-before) / float64(n), nil
}
