package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/test/mockllm"
)

// aigressBin is the real binary, built once for the whole run.
var aigressBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aigress-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	aigressBin = filepath.Join(dir, "aigress")
	args := []string{"build", "-o", aigressBin}
	if ov := os.Getenv("AIGRESS_GO_OVERLAY"); ov != "" { // development only
		args = append(args, "-overlay", ov)
	}
	build := exec.Command("go", append(args, "../cmd/aigress")...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build aigress: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is one running aigress.
type instance struct {
	t       *testing.T
	addr    string // explicit proxy host:port
	taddr   string // transparent listener, if any
	dataDir string
	caFile  string
	cmd     *exec.Cmd
	log     *syncBuffer
	done    chan error
}

var listenRe = regexp.MustCompile(`msg="aigress proxy listening".*?listen="?([0-9a-f.:\[\]]+)"?`)
var tlistenRe = regexp.MustCompile(`msg="transparent listener".*?listen="?([0-9a-f.:\[\]]+)"?`)

// startAigress runs the real binary with cfg (YAML) in a fresh data dir.
// prefix, if any, wraps the command (e.g. ip netns exec NS).
func startAigress(t *testing.T, cfg string, prefix []string, args ...string) *instance {
	t.Helper()
	dataDir := t.TempDir()
	cfgFile := filepath.Join(dataDir, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append(append([]string{}, prefix...), aigressBin, "run", "--config", cfgFile, "--data-dir", dataDir)
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	logb := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logb, logb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, dataDir: dataDir, caFile: filepath.Join(dataDir, "ca.pem"), cmd: cmd, log: logb, done: make(chan error, 1)}
	go func() { in.done <- cmd.Wait() }()
	t.Cleanup(func() { in.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listenRe.FindStringSubmatch(logb.String()); m != nil {
			in.addr = m[1]
			if strings.Contains(strings.Join(args, " "), "transparent-listen") || strings.Contains(cfg, "transparent_listen") {
				if tm := tlistenRe.FindStringSubmatch(logb.String()); tm != nil {
					in.taddr = tm[1]
					return in
				}
			} else {
				return in
			}
		}
		select {
		case err := <-in.done:
			t.Fatalf("aigress exited: %v\n%s", err, logb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("aigress did not start:\n%s", logb.String())
	return nil
}

func (in *instance) stop() {
	if in.cmd.ProcessState != nil {
		return
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.done
	}
	if in.t.Failed() {
		in.t.Logf("aigress log:\n%s", in.log.String())
	}
}

func (in *instance) proxyURL() *url.URL { return &url.URL{Scheme: "http", Host: in.addr} }

func (in *instance) caPool(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(in.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

// client is a Go net/http client through the proxy trusting the aigress CA.
func (in *instance) client(t *testing.T) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy:             http.ProxyURL(in.proxyURL()),
		TLSClientConfig:   &tls.Config{RootCAs: in.caPool(t)},
		ForceAttemptHTTP2: true,
	}}
}

// events waits until the audit trail holds at least n events, and returns them.
func (in *instance) events(t *testing.T, n int) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	var evs []audit.Event
	for {
		evs = readEvents(t, filepath.Join(in.dataDir, "audit.jsonl"))
		if len(evs) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(evs) < n {
		t.Fatalf("audit trail holds %d events, want >= %d", len(evs), n)
	}
	return evs
}

func readEvents(t *testing.T, path string) []audit.Event {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var evs []audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line is not JSON: %v: %s", err, sc.Text())
		}
		evs = append(evs, e)
	}
	return evs
}

// rawTrail is the audit trail's bytes, to check that no secret leaked.
func (in *instance) rawTrail(t *testing.T) string {
	b, _ := os.ReadFile(filepath.Join(in.dataDir, "audit.jsonl"))
	return string(b)
}

// mock starts the mock LLM upstream for the AI hosts tests use.
func startMock(t *testing.T, opts mockllm.Options) *mockllm.Server {
	t.Helper()
	if len(opts.Hosts) == 0 {
		opts.Hosts = aiHosts
	}
	m, err := mockllm.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

var aiHosts = []string{"api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com", "bedrock-runtime.us-east-1.amazonaws.com", "chatgpt.com"}

// baseConfig points every AI host at the mock and trusts its CA.
func baseConfig(t *testing.T, m *mockllm.Server, extra string) string {
	t.Helper()
	caFile := filepath.Join(t.TempDir(), "mock-ca.pem")
	if err := os.WriteFile(caFile, m.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\nupstream_ca: %s\nlog: {level: info}\nresolve:\n", caFile)
	for _, h := range aiHosts {
		fmt.Fprintf(&b, "  %q: %q\n", h+":443", m.Addr())
	}
	b.WriteString(extra)
	return b.String()
}

func runCmd(t *testing.T, ctx context.Context, env []string, name string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(cleanEnv(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	return so.String(), se.String(), err
}

// cleanEnv drops proxy settings inherited from the machine.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k := strings.ToUpper(strings.SplitN(kv, "=", 2)[0])
		if strings.HasSuffix(k, "_PROXY") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// doJSON sends req as JSON and returns the status and the whole body.
func doJSON(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAll(t, resp.Body)
}

func readAll(t *testing.T, r io.Reader) string {
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
