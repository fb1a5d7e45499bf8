package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// topo is the client → gateway → upstream topology of PLATFORM-NOTES.md,
// with names unique to this test run. Everything is deleted in Cleanup.
type topo struct {
	cli, gw, up string // namespace names
	vgw         string // gateway's LAN interface (inside gw)
}

const (
	cliIP     = "10.200.0.2"
	gwLANIP   = "10.200.0.1"
	aiIP      = "10.201.0.10" // the fake AI endpoint, inside up
	bankIP    = "10.201.0.11" // the fake non-AI site, inside up
	upLinkGW  = "10.202.0.1"
	upLinkUp  = "10.202.0.2"
	redirPort = "18443"
)

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (runs in CI as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("iproute2 missing: run `make setup`")
	}
}

func newTopo(t *testing.T) *topo {
	t.Helper()
	needRoot(t)
	id := fmt.Sprintf("%d%d", os.Getpid()%10000, len(t.Name())%100)
	tp := &topo{cli: "agc" + id, gw: "agg" + id, up: "agu" + id, vgw: "agv" + id}
	vcli, vup0, vup1 := "agl"+id, "agx"+id, "agy"+id
	t.Cleanup(func() {
		for _, ns := range []string{tp.cli, tp.gw, tp.up} {
			_ = exec.Command("ip", "netns", "del", ns).Run()
			_ = os.RemoveAll(filepath.Join("/etc/netns", ns))
		}
	})
	for _, ns := range []string{tp.cli, tp.gw, tp.up} {
		sh(t, "ip", "netns", "add", ns)
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	sh(t, "ip", "link", "add", vcli, "type", "veth", "peer", "name", tp.vgw)
	sh(t, "ip", "link", "set", vcli, "netns", tp.cli)
	sh(t, "ip", "link", "set", tp.vgw, "netns", tp.gw)
	sh(t, "ip", "-n", tp.cli, "addr", "add", cliIP+"/24", "dev", vcli)
	sh(t, "ip", "-n", tp.cli, "link", "set", vcli, "up")
	sh(t, "ip", "-n", tp.gw, "addr", "add", gwLANIP+"/24", "dev", tp.vgw)
	sh(t, "ip", "-n", tp.gw, "link", "set", tp.vgw, "up")
	sh(t, "ip", "-n", tp.cli, "route", "add", "default", "via", gwLANIP)
	sh(t, "ip", "link", "add", vup0, "type", "veth", "peer", "name", vup1)
	sh(t, "ip", "link", "set", vup0, "netns", tp.gw)
	sh(t, "ip", "link", "set", vup1, "netns", tp.up)
	sh(t, "ip", "-n", tp.gw, "addr", "add", upLinkGW+"/24", "dev", vup0)
	sh(t, "ip", "-n", tp.gw, "link", "set", vup0, "up")
	sh(t, "ip", "-n", tp.up, "addr", "add", upLinkUp+"/24", "dev", vup1)
	sh(t, "ip", "-n", tp.up, "link", "set", vup1, "up")
	sh(t, "ip", "-n", tp.up, "addr", "add", aiIP+"/32", "dev", "lo")
	sh(t, "ip", "-n", tp.up, "addr", "add", bankIP+"/32", "dev", "lo")
	sh(t, "ip", "-n", tp.up, "route", "add", "default", "via", upLinkGW)
	sh(t, "ip", "-n", tp.gw, "route", "add", "10.201.0.0/24", "via", upLinkUp)
	sh(t, "ip", "netns", "exec", tp.gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return tp
}

// listenIn opens a TCP listener inside namespace ns. The socket stays in
// that namespace; the goroutines serving it may run anywhere.
func listenIn(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		l, lerr := net.Listen("tcp", addr)
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			ch <- result{l: l, err: fmt.Errorf("restore netns: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{l: l, err: lerr}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in %s on %s: %v", ns, addr, r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	return r.l
}

func inNS(ns string, args ...string) []string {
	return append([]string{"ip", "netns", "exec", ns}, args...)
}
