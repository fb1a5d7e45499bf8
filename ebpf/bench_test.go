//go:build linux

package ebpf

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkConnect measures connect()+close on loopback from a process in
// the test cgroup: without programs, with them attached for a connect that
// passes (attributed only), and for one that is redirected.
func BenchmarkConnect(b *testing.B) {
	requireEBPF(b)
	cg, _ := testCgroup(b, "bench")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	lnAddr := ln.Addr().(*net.TCPAddr).AddrPort()

	dial := func(b *testing.B, dst netip.AddrPort) {
		d := net.Dialer{Timeout: 2 * time.Second}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c, err := d.Dial("tcp4", dst.String())
			if err != nil {
				b.Fatal(err)
			}
			_ = c.(*net.TCPConn).SetLinger(0) // RST: no TIME_WAIT pile-up
			c.Close()
		}
	}

	moveSelf(b, cg)
	defer moveSelfBack(b)
	b.Run("detached", func(b *testing.B) { dial(b, lnAddr) })

	r, err := Attach(Options{CgroupPath: cg, ListenV4: lnAddr, Targets: []netip.Prefix{fakeAINet}, ExcludePID: ExcludeNone})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for range r.Events(ctx) {
		}
	}()
	// Kernel run-time stats (system-wide, only while the benchmark runs)
	// give the programs' own cost per connect, free of scheduling noise.
	if st, err := cebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
		defer st.Close()
	}
	progCost := func(b *testing.B, f func(b *testing.B)) {
		progs := []*cebpf.Program{r.objs.AigressConnect4, r.objs.AigressSockops}
		sum := func() time.Duration {
			var d time.Duration
			for _, p := range progs {
				if s, err := p.Stats(); err == nil {
					d += s.Runtime
				}
			}
			return d
		}
		before := sum()
		f(b)
		b.ReportMetric(float64(sum()-before)/float64(b.N), "bpf-ns/op")
	}
	b.Run("attached/pass", func(b *testing.B) { progCost(b, func(b *testing.B) { dial(b, lnAddr) }) })
	b.Run("attached/redirect", func(b *testing.B) { progCost(b, func(b *testing.B) { dial(b, fakeAI) }) })
}
