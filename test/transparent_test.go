package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/test/mockllm"
)

// transparentEnv is a topology with the mock AI endpoint and a "bank" in
// the upstream namespace, and aigress on the gateway.
type transparentEnv struct {
	tp     *topo
	mock   *mockllm.Server
	bankCA string
	mockCA string
}

func newTransparentEnv(t *testing.T) *transparentEnv {
	tp := newTopo(t)
	m, err := mockllm.StartOn(listenIn(t, tp.up, aiIP+":443"), mockllm.Options{Hosts: aiHosts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	bank, err := mockllm.StartPlainTLSOn(listenIn(t, tp.up, bankIP+":443"), "bank.example")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bank.Close() })
	// Plain HTTP on port 80 to the AI address, served by the same mock.
	dir := t.TempDir()
	env := &transparentEnv{tp: tp, mock: m, bankCA: filepath.Join(dir, "bank.pem"), mockCA: filepath.Join(dir, "mock.pem")}
	os.WriteFile(env.bankCA, bank.CAPEM(), 0o600)
	os.WriteFile(env.mockCA, m.CAPEM(), 0o600)
	return env
}

// startGateway runs aigress in the gateway namespace with a transparent
// listener.
func (e *transparentEnv) startGateway(t *testing.T, mode, extra string) *instance {
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ntransparent_listen: 0.0.0.0:%s\ntransparent_mode: %s\nupstream_ca: %s\n%s",
		redirPort, mode, e.mockCA, extra)
	return startAigress(t, cfg, inNS(e.tp.gw))
}

// clientChecks runs a real curl with no proxy settings in the client
// namespace: the AI name gets the aigress certificate and reaches the
// mock; the bank gets its own certificate.
func (e *transparentEnv) clientChecks(t *testing.T, in *instance, wantIntercepts int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := len(e.mock.Requests())
	out, errOut, err := runCmd(t, ctx, nil, "ip", "netns", "exec", e.tp.cli, "curl", "-sS", "-v", "--max-time", "10",
		"--resolve", "api.openai.com:443:"+aiIP, "--cacert", in.caFile,
		"-H", "Content-Type: application/json", "-d", chatBody, "https://api.openai.com/v1/chat/completions")
	if err != nil || !strings.Contains(out, `"choices"`) {
		t.Fatalf("AI request through the gateway: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "CN=aigress local CA") {
		t.Fatalf("AI host not served with the aigress certificate:\n%s", errOut)
	}
	if got := len(e.mock.Requests()); got != before+1 {
		t.Fatalf("mock upstream received %d new requests, want 1", got-before)
	}
	out, errOut, err = runCmd(t, ctx, nil, "ip", "netns", "exec", e.tp.cli, "curl", "-sS", "-v", "--max-time", "10",
		"--resolve", "bank.example:443:"+bankIP, "--cacert", e.bankCA, "https://bank.example/")
	if err != nil {
		t.Fatalf("bank through the gateway: %v\n%s\n%s", err, out, errOut)
	}
	evs := in.events(t, wantIntercepts+1)
	var icp, tun int
	for _, ev := range evs {
		switch {
		case ev.Kind == "intercept" && ev.Dest.IP == aiIP && ev.Client.IP == cliIP:
			icp++
		case ev.Kind == "tunnel" && ev.Dest.SNI == "bank.example":
			tun++
		}
	}
	if icp < wantIntercepts || tun < 1 {
		for _, ev := range evs {
			t.Logf("event: %s %s client=%s dest=%+v", ev.Kind, ev.Provider, ev.Client.IP, ev.Dest)
		}
		t.Fatalf("want %d intercept(s) from %s to %s and a bank tunnel; got %d and %d", wantIntercepts, cliIP, aiIP, icp, tun)
	}
}

func TestTransparentIptablesRedirect(t *testing.T) {
	needTool(t, "iptables")
	e := newTransparentEnv(t)
	// The shipped deploy script, gateway mode, inside the gateway namespace.
	deployScript(t, e.tp.gw, "iptables.sh", "up", "gateway", e.tp.vgw)
	t.Cleanup(func() { deployScript(t, e.tp.gw, "iptables.sh", "down", "gateway") })
	in := e.startGateway(t, "redirect", "")
	e.clientChecks(t, in, 1)

	// Plain HTTP on port 80 to an AI host is inspected too.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, errOut, err := runCmd(t, ctx, nil, "ip", "netns", "exec", e.tp.cli, "curl", "-sS", "--max-time", "10",
		"--resolve", "api.openai.com:80:"+aiIP, "-H", "Content-Type: application/json", "-d", chatBody,
		"http://api.openai.com/v1/chat/completions")
	// The mock serves TLS only; what matters is that aigress inspected the
	// request and recorded it, whatever the upstream answered.
	_ = out
	_ = errOut
	_ = err
	evs := in.events(t, 3)
	found := false
	for _, ev := range evs {
		if ev.Kind == "intercept" && ev.Dest.Port == 80 && ev.Model == "gpt-4o-mini" {
			found = true
		}
	}
	if !found {
		t.Fatalf("port-80 request was not inspected: %+v", evs)
	}
}

func TestTransparentNftablesRedirect(t *testing.T) {
	needTool(t, "nft")
	e := newTransparentEnv(t)
	deployScript(t, e.tp.gw, "nftables.sh", "up", "gateway", e.tp.vgw)
	t.Cleanup(func() { deployScript(t, e.tp.gw, "nftables.sh", "down", "gateway") })
	if out := sh(t, inNS(e.tp.gw, "nft", "list", "table", "inet", "aigress")...); !strings.Contains(out, "redirect to :"+redirPort) {
		t.Fatalf("nft rules:\n%s", out)
	}
	in := e.startGateway(t, "redirect", "")
	e.clientChecks(t, in, 1)
}

func TestTransparentTProxy(t *testing.T) {
	needTool(t, "iptables")
	e := newTransparentEnv(t)
	sh(t, inNS(e.tp.gw, "iptables", "-t", "mangle", "-A", "PREROUTING", "-i", e.tp.vgw, "-p", "tcp", "--dport", "443",
		"-j", "TPROXY", "--on-port", redirPort, "--on-ip", "0.0.0.0", "--tproxy-mark", "0x1/0x1")...)
	sh(t, inNS(e.tp.gw, "ip", "rule", "add", "fwmark", "0x1/0x1", "lookup", "100")...)
	sh(t, inNS(e.tp.gw, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")...)
	in := e.startGateway(t, "tproxy", "")
	e.clientChecks(t, in, 1)
}

// TestDNSSteering: the client's resolver is `aigress dns` on the gateway;
// it answers the AI name with the gateway's address, where the
// transparent listener intercepts. The audit holds the dns and the
// intercept events.
func TestDNSSteering(t *testing.T) {
	e := newTransparentEnv(t)
	// The client namespace's resolv.conf points at aigress dns.
	nsEtc := filepath.Join("/etc/netns", e.tp.cli)
	if err := os.MkdirAll(nsEtc, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(nsEtc, "resolv.conf"), []byte("nameserver "+gwLANIP+"\n"), 0o644)
	os.WriteFile(filepath.Join(nsEtc, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644)

	// The proxy listens on the gateway's LAN address, port 443: steered
	// clients connect to it directly; it dials the real name (resolve map).
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ntransparent_listen: %s:443\nupstream_ca: %s\nresolve:\n  \"api.openai.com:443\": \"%s:443\"\n",
		gwLANIP, e.mockCA, aiIP)
	in := startAigress(t, cfg, inNS(e.tp.gw))

	dnsCmd := exec.Command("ip", "netns", "exec", e.tp.gw, aigressBin, "dns", "--listen", gwLANIP+":53",
		"--upstream", "127.0.0.1:1", "--data-dir", in.dataDir, "--steer-to", gwLANIP)
	dnsLog := &syncBuffer{}
	dnsCmd.Stdout, dnsCmd.Stderr = dnsLog, dnsLog
	if err := dnsCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dnsCmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = dnsCmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = dnsCmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("aigress dns log:\n%s", dnsLog.String())
		}
	})
	time.Sleep(500 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, errOut, err := runCmd(t, ctx, nil, "ip", "netns", "exec", e.tp.cli, "curl", "-sS", "-v", "--max-time", "10",
		"--cacert", in.caFile, "-H", "Content-Type: application/json", "-d", chatBody,
		"https://api.openai.com/v1/chat/completions")
	if err != nil || !strings.Contains(out, `"choices"`) {
		t.Fatalf("steered request: %v\n%s\n%s", err, out, errOut)
	}
	if !strings.Contains(errOut, gwLANIP) || !strings.Contains(errOut, "aigress") {
		t.Fatalf("client did not reach the proxy by name:\n%s", errOut)
	}
	evs := in.events(t, 2)
	var dns, icp bool
	for _, ev := range evs {
		if ev.Kind == "dns" && ev.DNS != nil && ev.DNS.Name == "api.openai.com" && ev.Client.IP == cliIP {
			dns = true
		}
		if ev.Kind == "intercept" && ev.Provider == "openai" && ev.Client.IP == cliIP {
			icp = true
		}
	}
	if !dns || !icp {
		t.Fatalf("audit: dns=%v intercept=%v: %+v", dns, icp, evs)
	}
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s missing: run `make setup` (test/setup.sh installs it)", name)
	}
}

// deployScript runs one of the shipped deploy/ scripts inside namespace ns.
func deployScript(t *testing.T, ns, script string, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "bash", filepath.Join("..", "deploy", script)}, args...)...)
	cmd.Env = append(os.Environ(), "PORT="+redirPort)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
}
