package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/ebpf"
	"github.com/aigress/aigress/test/mockllm"
)

// goClientMain is the Go client run inside the test cgroup: no proxy
// settings at all, just a plain net/http request to the AI name, which
// resolves (via a custom dialer, like an /etc/hosts entry) to the fake AI
// address. It is the test binary itself, re-executed.
func goClientMain() {
	ca, err := os.ReadFile(os.Getenv("AIGRESS_GOCLIENT_CA"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tr := &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, os.Getenv("AIGRESS_GOCLIENT_ADDR"))
		},
	}
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	resp, err := c.Post("https://api.openai.com/v1/chat/completions", "application/json", strings.NewReader(chatBody))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s\n", resp.StatusCode, b)
}

func init() {
	if os.Getenv("AIGRESS_GOCLIENT") == "1" {
		goClientMain()
		os.Exit(0)
	}
}

const fakeAI = "127.66.0.10"

// TestEBPFRedirect: programs in a child cgroup send a real curl and a Go
// client with no proxy settings to aigress; the audit names the process;
// a process outside the cgroup is not redirected; nothing stays attached
// after aigress exits.
func TestEBPFRedirect(t *testing.T) {
	needRoot(t)
	if err := ebpf.Probe(); err != nil {
		t.Skipf("kernel lacks eBPF support: %v", err)
	}
	root, err := ebpf.DefaultCgroupPath()
	if err != nil {
		t.Skipf("no cgroup v2: %v", err)
	}
	cg := filepath.Join(root, fmt.Sprintf("aigress-e2e-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })

	m := startMock(t, mockllm.Options{})
	cfg := baseConfig(t, m, fmt.Sprintf("transparent_listen: 127.0.0.1:18543\nebpf:\n  enabled: true\n  cgroup: %s\n  targets: [%s/32]\n", cg, fakeAI))
	in := startAigress(t, cfg, nil)

	inCgroup := func(args ...string) *exec.Cmd {
		script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && exec "$@"`, cg)
		return exec.Command("sh", append([]string{"-c", script, "sh"}, args...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	curl := inCgroup("curl", "-sS", "--max-time", "10", "--resolve", "api.openai.com:443:"+fakeAI, "--cacert", in.caFile,
		"-H", "Content-Type: application/json", "-d", chatBody, "https://api.openai.com/v1/chat/completions")
	curl.Env = cleanEnv()
	if out, err := curl.CombinedOutput(); err != nil || !strings.Contains(string(out), `"choices"`) {
		t.Fatalf("curl in cgroup: %v\n%s", err, out)
	}
	self, _ := os.Executable()
	goc := inCgroup(self, "-test.run", "^$")
	goc.Env = append(cleanEnv(), "AIGRESS_GOCLIENT=1", "AIGRESS_GOCLIENT_CA="+in.caFile, "AIGRESS_GOCLIENT_ADDR="+fakeAI+":443")
	if out, err := goc.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "200 ") {
		t.Fatalf("Go client in cgroup: %v\n%s", err, out)
	}
	// Outside the cgroup the same connect is not redirected: refused.
	out, _, err := runCmd(t, ctx, nil, "curl", "-sS", "--max-time", "5", "--resolve", "api.openai.com:443:"+fakeAI,
		"--cacert", in.caFile, "https://api.openai.com/v1/models")
	if err == nil {
		t.Fatalf("curl outside the cgroup was redirected: %s", out)
	}
	evs := in.events(t, 2)
	comms := map[string]bool{}
	for _, e := range evs {
		if e.Kind == "intercept" && e.Client.Process != nil && e.Dest.IP == fakeAI {
			comms[e.Client.Process.Comm] = true
			if e.Client.Process.PID == 0 || !strings.Contains(e.Client.Process.Cgroup, "aigress-e2e") {
				t.Errorf("process: %+v", e.Client.Process)
			}
		}
	}
	goComm := filepath.Base(self)
	if len(goComm) > 15 {
		goComm = goComm[:15]
	}
	if !comms["curl"] || !comms[goComm] {
		t.Fatalf("audit names processes %v; want curl and %s", comms, goComm)
	}
	in.stop()
	if b, err := exec.LookPath("bpftool"); err == nil {
		out, _ := exec.Command(b, "cgroup", "show", cg).CombinedOutput()
		if strings.TrimSpace(string(out)) != "" && strings.Contains(string(out), "connect") {
			t.Fatalf("programs still attached after aigress exited:\n%s", out)
		}
	}
}
