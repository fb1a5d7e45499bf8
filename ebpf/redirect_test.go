//go:build linux

package ebpf

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The fake AI address: loopback, but nothing listens there, so a connect
// that is not redirected is refused, and one that is reaches the "proxy".
var (
	fakeAI     = netip.MustParseAddrPort("127.66.0.10:443")
	fakeAINet  = netip.MustParsePrefix("127.66.0.0/16")
	testMark   = uint32(0x4a1)
	childEnv   = "AIGRESS_EBPF_CHILD"
	allAttachs = []cebpf.AttachType{
		cebpf.AttachCGroupInet4Connect, cebpf.AttachCGroupInet6Connect, cebpf.AttachCGroupSockOps,
		cebpf.AttachCgroupInet4GetPeername, cebpf.AttachCgroupInet6GetPeername,
		cebpf.AttachCGroupUDP4Sendmsg, cebpf.AttachCGroupUDP6Sendmsg,
	}
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(childMain(mode))
	}
	os.Exit(m.Run())
}

// childResult is what a child client prints as one JSON line.
type childResult struct {
	PID   int    `json:"pid"`
	Local string `json:"local"`
	Peer  string `json:"peer"`
	Body  string `json:"body"`
	Err   string `json:"err"`
}

// childMain runs in a re-executed test binary. Modes:
//
//	dial:   join $CG (if set), dial $DST with a plain AF_INET socket
//	mapped: same with an AF_INET6 socket to ::ffff:$DST (v4-mapped)
//	attach: Attach to $CG, print "attached", wait to be killed
func childMain(mode string) int {
	cg := os.Getenv("AIGRESS_EBPF_CG")
	if mode == "attach" {
		r, err := Attach(Options{CgroupPath: cg, ListenV4: netip.MustParseAddrPort("127.0.0.1:1"), Targets: []netip.Prefix{fakeAINet}})
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer r.Close()
		fmt.Println("attached")
		time.Sleep(time.Minute)
		return 0
	}
	res := childResult{PID: os.Getpid()}
	defer func() { _ = json.NewEncoder(os.Stdout).Encode(res) }()
	if cg != "" {
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			res.Err = "join cgroup: " + err.Error()
			return 0
		}
	}
	dst := netip.MustParseAddrPort(os.Getenv("AIGRESS_EBPF_DST"))
	mark, _ := strconv.Atoi(os.Getenv("AIGRESS_EBPF_MARK"))
	var fd int
	var err error
	var sa unix.Sockaddr
	if mode == "mapped" || dst.Addr().Is6() {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		sa = &unix.SockaddrInet6{Port: int(dst.Port()), Addr: netip.AddrFrom16(dst.Addr().As16()).As16()}
	} else {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		sa = &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	}
	if err != nil {
		res.Err = err.Error()
		return 0
	}
	if mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
			res.Err = "SO_MARK: " + err.Error()
			return 0
		}
	}
	if err := unix.Connect(fd, sa); err != nil {
		res.Err = err.Error()
		return 0
	}
	res.Local = sockaddrString(unix.Getsockname(fd))
	res.Peer = sockaddrString(unix.Getpeername(fd))
	f := os.NewFile(uintptr(fd), "conn")
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 4096))
	res.Body = string(b)
	return 0
}

func sockaddrString(sa unix.Sockaddr, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return fmt.Sprintf("%T", sa)
}

// requireEBPF skips with the probe's exact reason when the kernel or the
// privileges can't run eBPF mode.
func requireEBPF(t testing.TB) {
	t.Helper()
	if err := Probe(); err != nil {
		if errors.Is(err, ErrNotSupported) {
			t.Skip(err.Error())
		}
		t.Fatal(err)
	}
}

// testCgroup creates a child cgroup of the default cgroup v2 root and
// removes it on cleanup (moving leftover processes to the root first).
// It returns the absolute path and the path relative to the cgroup2 root.
func testCgroup(t testing.TB, name string) (abs, rel string) {
	t.Helper()
	base, err := DefaultCgroupPath()
	if err != nil {
		t.Fatal(err)
	}
	root, err := cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	abs = filepath.Join(base, fmt.Sprintf("aigress-test-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(abs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(abs, "cgroup.procs")); err == nil {
			for p := range strings.FieldsSeq(string(b)) {
				_ = os.WriteFile(filepath.Join(base, "cgroup.procs"), []byte(p), 0)
			}
		}
		for i := 0; i < 50; i++ {
			if err := os.Remove(abs); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("remove cgroup %s: still busy", abs)
	})
	return abs, strings.TrimPrefix(abs, root)
}

// proxy is the stand-in for the aigress transparent listener: it looks up
// every accepted connection and answers with a tiny HTTP response.
type proxy struct {
	ln net.Listener
	mu sync.Mutex
	// by the client's address (the accepted RemoteAddr)
	seen map[string]lookupResult
}

type lookupResult struct {
	conn Conn
	ok   bool
}

func newProxy(t testing.TB, lookup func(netip.AddrPort) (Conn, bool)) *proxy {
	return newProxyOn(t, "127.0.0.1:0", lookup)
}

func newProxyOn(t testing.TB, addr string, lookup func(netip.AddrPort) (Conn, bool)) *proxy {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, seen: map[string]lookupResult{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			var lr lookupResult
			if lookup != nil {
				lr.conn, lr.ok = lookup(remote)
			}
			p.mu.Lock()
			p.seen[remote.String()] = lr
			p.mu.Unlock()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nproxy\n")
			c.Close()
		}
	}()
	return p
}

func (p *proxy) addr() netip.AddrPort { return p.ln.Addr().(*net.TCPAddr).AddrPort() }

func (p *proxy) accepted(remote string) (lookupResult, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lr, ok := p.seen[remote]
	return lr, ok
}

func (p *proxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seen)
}

func runChild(t *testing.T, mode, cg string, dst netip.AddrPort, mark uint32) childResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "AIGRESS_EBPF_CG="+cg,
		"AIGRESS_EBPF_DST="+dst.String(), fmt.Sprintf("AIGRESS_EBPF_MARK=%d", mark))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v: %s", mode, err, out)
	}
	var res childResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("child %s output %q: %v", mode, out, err)
	}
	return res
}

func testComm() string {
	c := filepath.Base(os.Args[0])
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

// attachedCount returns how many programs are attached to the cgroup directly.
func attachedCount(t testing.TB, cg string) int {
	t.Helper()
	f, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for _, at := range allAttachs {
		q, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: at})
		if err != nil {
			t.Fatalf("query %v: %v", at, err)
		}
		n += len(q.Programs)
	}
	return n
}

func TestRedirect(t *testing.T) {
	requireEBPF(t)
	cg, cgRel := testCgroup(t, "redirect")

	var r *Redirector
	var rp atomic.Pointer[Redirector] // the accept goroutine's view of r
	px := newProxy(t, func(a netip.AddrPort) (Conn, bool) { return rp.Load().Lookup(a) })
	plain := newProxy(t, nil) // a non-target listener: connects reach it untouched

	var err error
	r, err = Attach(Options{
		CgroupPath:  cg,
		ListenV4:    px.addr(),
		Targets:     []netip.Prefix{fakeAINet},
		ExcludeMark: testMark,
		BlockQUIC:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	rp.Store(r)
	closed := false
	t.Cleanup(func() {
		if !closed {
			r.Close()
		}
	})
	if n := attachedCount(t, cg); n != 7 {
		t.Fatalf("attached programs = %d, want 7", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var evMu sync.Mutex
	var events []ConnEvent
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		for ev := range r.Events(ctx) {
			evMu.Lock()
			events = append(events, ev)
			evMu.Unlock()
		}
	}()
	waitEvent := func(t *testing.T, match func(ConnEvent) bool) ConnEvent {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			evMu.Lock()
			for _, ev := range events {
				if match(ev) {
					evMu.Unlock()
					return ev
				}
			}
			evMu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("no matching ring buffer event among %d", len(events))
		return ConnEvent{}
	}
	checkConn := func(t *testing.T, local string, wantComm string, wantTGID int) {
		t.Helper()
		lr, ok := px.accepted(local)
		if !ok {
			t.Fatalf("proxy did not accept a connection from %s", local)
		}
		if !lr.ok {
			t.Fatalf("Lookup(%s) found nothing", local)
		}
		c := lr.conn
		if c.OrigDst.Addr().Unmap() != fakeAI.Addr() || c.OrigDst.Port() != fakeAI.Port() {
			t.Errorf("OrigDst = %s, want %s", c.OrigDst, fakeAI)
		}
		if c.Comm != wantComm {
			t.Errorf("Comm = %q, want %q", c.Comm, wantComm)
		}
		if int(c.TGID) != wantTGID || c.PID == 0 {
			t.Errorf("TGID = %d PID = %d, want TGID %d", c.TGID, c.PID, wantTGID)
		}
		if c.CgroupPath != cgRel {
			t.Errorf("CgroupPath = %q, want %q", c.CgroupPath, cgRel)
		}
		if c.UID != uint32(os.Getuid()) {
			t.Errorf("UID = %d, want %d", c.UID, os.Getuid())
		}
		if d := time.Since(c.Time); d < 0 || d > time.Minute {
			t.Errorf("Time = %v, %v ago", c.Time, d)
		}
	}

	t.Run("ok/go-client-redirected", func(t *testing.T) {
		res := runChild(t, "dial", cg, fakeAI, 0)
		if res.Err != "" {
			t.Fatalf("child: %s", res.Err)
		}
		if res.Peer != fakeAI.String() {
			t.Errorf("getpeername = %s, want %s", res.Peer, fakeAI)
		}
		if !strings.Contains(res.Body, "proxy") {
			t.Errorf("body %q did not come from the proxy", res.Body)
		}
		checkConn(t, res.Local, testComm(), res.PID)
		ev := waitEvent(t, func(ev ConnEvent) bool { return int(ev.TGID) == res.PID && ev.Action == ActionRedirect })
		if ev.Dst != fakeAI || ev.Protocol != "tcp" || ev.CgroupPath != cgRel || ev.Comm != testComm() {
			t.Errorf("event = %+v", ev)
		}
	})

	t.Run("ok/v4-mapped-redirected", func(t *testing.T) {
		mapped := netip.AddrPortFrom(netip.AddrFrom16(fakeAI.Addr().As16()), fakeAI.Port())
		res := runChild(t, "mapped", cg, fakeAI, 0)
		if res.Err != "" {
			t.Fatalf("child: %s", res.Err)
		}
		if res.Peer != mapped.String() {
			t.Errorf("getpeername = %s, want %s", res.Peer, mapped)
		}
		local := netip.MustParseAddrPort(res.Local)
		checkConn(t, netip.AddrPortFrom(local.Addr().Unmap(), local.Port()).String(), testComm(), res.PID)
	})

	t.Run("ok/curl-redirected", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c",
			`echo $$ > "$1/cgroup.procs" && exec curl -sS --noproxy '*' --max-time 5 -w '\n%{local_ip}:%{local_port}' "http://$2/"`,
			"sh", cg, fakeAI.String())
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if lines[0] != "proxy" {
			t.Fatalf("curl body %q, want the proxy's", lines[0])
		}
		checkConn(t, lines[len(lines)-1], "curl", cmd.Process.Pid)
		waitEvent(t, func(ev ConnEvent) bool { return ev.Comm == "curl" && ev.Action == ActionRedirect })
	})

	t.Run("ok/non-target-passes-and-is-attributed", func(t *testing.T) {
		res := runChild(t, "dial", cg, plain.addr(), 0)
		if res.Err != "" {
			t.Fatalf("child: %s", res.Err)
		}
		if res.Peer != plain.addr().String() {
			t.Errorf("getpeername = %s, want %s", res.Peer, plain.addr())
		}
		if _, ok := plain.accepted(res.Local); !ok {
			t.Errorf("plain listener did not get %s", res.Local)
		}
		if _, ok := r.Lookup(netip.MustParseAddrPort(res.Local)); ok {
			t.Errorf("Lookup found a connection that was not redirected")
		}
		waitEvent(t, func(ev ConnEvent) bool {
			return int(ev.TGID) == res.PID && ev.Action == ActionPass && ev.Dst == plain.addr()
		})
	})

	t.Run("fail/outside-cgroup-not-redirected", func(t *testing.T) {
		before := px.count()
		res := runChild(t, "dial", "", fakeAI, 0)
		if !strings.Contains(res.Err, "connection refused") {
			t.Errorf("outside client: err %q, want connection refused", res.Err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := exec.CommandContext(ctx, "curl", "-sS", "--noproxy", "*", "--max-time", "5", "http://"+fakeAI.String()+"/").Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Errorf("outside curl: %v, want exit 7 (couldn't connect)", err)
		}
		if px.count() != before {
			t.Errorf("proxy accepted a connection from outside the cgroup")
		}
	})

	t.Run("fail/marked-socket-excluded", func(t *testing.T) {
		res := runChild(t, "dial", cg, fakeAI, testMark)
		if !strings.Contains(res.Err, "connection refused") {
			t.Errorf("marked client: err %q, want connection refused", res.Err)
		}
		waitEvent(t, func(ev ConnEvent) bool { return int(ev.TGID) == res.PID && ev.Action == ActionExcluded })
	})

	t.Run("fail/own-process-excluded", func(t *testing.T) {
		// Move this test process into the cgroup: its connects are seen,
		// but ExcludePID (default: os.Getpid()) keeps them direct.
		moveSelf(t, cg)
		_, err := net.DialTimeout("tcp4", fakeAI.String(), 2*time.Second)
		moveSelfBack(t)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("own dial: %v, want connection refused", err)
		}
		waitEvent(t, func(ev ConnEvent) bool { return int(ev.TGID) == os.Getpid() && ev.Action == ActionExcluded })
	})

	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Redirected < 3 {
		t.Errorf("stats: %+v, want >= 3 redirected", st)
	}

	// Close detaches everything, and the Events channel ends.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	select {
	case <-evDone:
	case <-time.After(3 * time.Second):
		t.Error("Events channel not closed after Close")
	}
	if n := attachedCount(t, cg); n != 0 {
		t.Errorf("after Close: %d programs still attached", n)
	}
	if bt, err := exec.LookPath("bpftool"); err == nil {
		out, err := exec.Command(bt, "cgroup", "show", cg).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("bpftool cgroup show %s after Close: %v %q", cg, err, out)
		}
	}
	res := runChild(t, "dial", cg, fakeAI, 0)
	if !strings.Contains(res.Err, "connection refused") {
		t.Errorf("after Close: err %q, want connection refused", res.Err)
	}
}

var selfOrig string

func moveSelf(t testing.TB, cg string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	selfOrig = procCgroupV2(b)
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		t.Fatal(err)
	}
}

func moveSelfBack(t testing.TB) {
	t.Helper()
	base, _ := DefaultCgroupPath()
	root, _ := cgroup2Root()
	dir := filepath.Join(root, selfOrig)
	if !strings.HasPrefix(dir, root) || selfOrig == "" {
		dir = base
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		t.Fatal(err)
	}
}

func TestRedirectIPv6(t *testing.T) {
	requireEBPF(t)
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	cg, cgRel := testCgroup(t, "v6")
	var r *Redirector
	var rp atomic.Pointer[Redirector]
	px := newProxyOn(t, "[::1]:0", func(a netip.AddrPort) (Conn, bool) { return rp.Load().Lookup(a) })
	target := netip.MustParseAddrPort("[::1]:443")
	var err error
	r, err = Attach(Options{CgroupPath: cg, ListenV6: px.addr(), AllTCP443: true})
	if err != nil {
		t.Fatal(err)
	}
	rp.Store(r)
	defer r.Close()
	res := runChild(t, "dial", cg, target, 0)
	if res.Err != "" {
		t.Fatalf("child: %s", res.Err)
	}
	if res.Peer != target.String() {
		t.Errorf("getpeername = %s, want %s", res.Peer, target)
	}
	lr, ok := px.accepted(res.Local)
	if !ok || !lr.ok {
		t.Fatalf("proxy accepted %v, lookup %v", ok, lr.ok)
	}
	if lr.conn.OrigDst != target || int(lr.conn.TGID) != res.PID || lr.conn.CgroupPath != cgRel {
		t.Errorf("Lookup = %+v", lr.conn)
	}
}

func TestQUICBlocked(t *testing.T) {
	requireEBPF(t)
	cg, _ := testCgroup(t, "quic")
	r, err := Attach(Options{CgroupPath: cg, ListenV4: netip.MustParseAddrPort("127.0.0.1:1"),
		Targets: []netip.Prefix{fakeAINet}, BlockQUIC: true, ExcludePID: ExcludeNone})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	moveSelf(t, cg)
	defer moveSelfBack(t)
	cases := []struct {
		name    string
		dst     string
		blocked bool
	}{
		{"fail/connect-target-443", "127.66.0.10:443", true},
		{"ok/connect-target-other-port", "127.66.0.10:8443", false},
		{"ok/connect-non-target-443", "127.0.0.1:443", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("udp4", tc.dst)
			if err == nil {
				c.Close()
			}
			if got := errors.Is(err, syscall.EPERM); got != tc.blocked {
				t.Errorf("dial udp %s: %v, blocked want %v", tc.dst, err, tc.blocked)
			}
		})
	}
	t.Run("fail/sendto-target-443", func(t *testing.T) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.WriteToUDPAddrPort([]byte("x"), fakeAI)
		if !errors.Is(err, syscall.EPERM) {
			t.Errorf("sendto: %v, want EPERM", err)
		}
	})
	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocked != 2 {
		t.Errorf("stats %+v, want 2 blocked", st)
	}
}

// TestDetachOnSIGKILL: links are not pinned, so the kernel detaches them
// when the attaching process dies, even by SIGKILL.
func TestDetachOnSIGKILL(t *testing.T) {
	requireEBPF(t)
	cg, _ := testCgroup(t, "sigkill")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=attach", "AIGRESS_EBPF_CG="+cg)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "attached" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q", line)
	}
	if n := attachedCount(t, cg); n != 5 {
		t.Errorf("while attached: %d programs, want 5", n)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for attachedCount(t, cg) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("programs still attached 5 s after SIGKILL")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProbe(t *testing.T) {
	requireEBPF(t)
	cases := []struct {
		name string
		path string
		want string
	}{
		{"ok/default-cgroup", "", ""},
		{"fail/not-cgroup2", t.TempDir(), "cgroup v2 is not mounted at "},
		{"fail/missing-dir", "/nonexistent/aigress", "cgroup v2 is not mounted at /nonexistent/aigress"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.path == "" {
				err = Probe()
			} else {
				err = ProbeCgroup(tc.path)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "--transparent-listen") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestAttachOptions(t *testing.T) {
	requireEBPF(t)
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"fail/no-listener", Options{}, "ListenV4 or ListenV6 is required"},
		{"fail/v6-as-v4", Options{ListenV4: netip.MustParseAddrPort("[::1]:80")}, "not an IPv4"},
		{"fail/v4-as-v6", Options{ListenV6: netip.MustParseAddrPort("127.0.0.1:80")}, "not an IPv6"},
		{"fail/not-cgroup2", Options{CgroupPath: "/proc", ListenV4: netip.MustParseAddrPort("127.0.0.1:80")}, "cgroup v2 is not mounted at /proc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Attach(tc.opts)
			if err == nil {
				r.Close()
				t.Fatal("Attach succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
