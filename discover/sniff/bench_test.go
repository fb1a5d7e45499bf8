package sniff

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// genFlow is one synthetic connection being written.
type genFlow struct {
	pkts []pk
	next int
}

// genCapture writes a synthetic Ethernet pcap of about targetBytes (or
// maxPackets packets): concurrent TLS connections to AI and non-AI hosts
// with bulk responses, DNS lookups and QUIC handshakes. Each connection
// lasts bulk+5 packets; window connections are interleaved.
func genCapture(tb testing.TB, path string, targetBytes int64, maxPackets, window, bulk int) (packets int, flows int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		tb.Fatal(err)
	}
	names := []string{"api.openai.com", "api.anthropic.com", "bank.example", "www.example.org", "generativelanguage.googleapis.com"}
	hellos := make([][]byte, len(names))
	for i, n := range names {
		hellos[i] = clientHello(tb, n, "h2")
	}
	var quicDgrams [][]byte
	for try := 0; try < 5; try++ {
		if quicDgrams = quicClientDatagrams(tb, "api.openai.com"); decodableByClassify(quicDgrams) {
			break
		}
	}
	bulkPayload := make([]byte, 1400)
	var written int64
	var at time.Duration
	mkFlow := func(id int) *genFlow {
		c := fmt.Sprintf("10.1.%d.%d", (id/250)%250, id%250+1)
		srv := fmt.Sprintf("192.0.2.%d", id%50+1)
		cp := uint16(20000 + id%40000)
		switch {
		case id%20 == 7: // QUIC
			var ps []pk
			for _, d := range quicDgrams {
				ps = append(ps, pk{src: c, dst: srv, udp: true, sp: cp, dp: 443, payload: d})
			}
			for i := 0; i < bulk; i++ {
				ps = append(ps, pk{src: srv, dst: c, udp: true, sp: 443, dp: cp, payload: bulkPayload})
			}
			return &genFlow{pkts: ps}
		case id%20 == 3: // DNS lookup, then a connection without SNI to the answer
			ip := fmt.Sprintf("198.51.100.%d", id%200+1)
			ps := []pk{
				{src: c, dst: "10.1.255.53", udp: true, sp: cp, dp: 53, payload: dnsMsg(tb, "api.mistral.ai")},
				{src: "10.1.255.53", dst: c, udp: true, sp: 53, dp: cp, payload: dnsMsg(tb, "api.mistral.ai", ip)},
			}
			ps = append(ps, tlsFlow(c, ip, cp+1, 443, []byte{0x17, 3, 3, 0, 2, 0, 0}, nil, nil, nil)...)
			return &genFlow{pkts: ps}
		}
		ps := tlsFlow(c, srv, cp, 443, hellos[id%len(hellos)], nil, nil, nil)
		last := ps[len(ps)-1]
		for i := 0; i < bulk; i++ {
			p := last
			p.seq += uint32(i * len(bulkPayload))
			p.payload = bulkPayload
			ps = append(ps, p)
		}
		return &genFlow{pkts: ps}
	}
	active := make([]*genFlow, window)
	nextID := 0
	for i := range active {
		active[i] = mkFlow(nextID)
		nextID++
	}
	for i := 0; (maxPackets == 0 || packets < maxPackets) && (targetBytes == 0 || written < targetBytes); i++ {
		g := active[i%window]
		p := g.pkts[g.next]
		g.next++
		if g.next == len(g.pkts) {
			active[i%window] = mkFlow(nextID)
			nextID++
		}
		at += 10 * time.Microsecond
		p.at = at
		data, ci, _ := frame(tb, p)
		if err := w.WritePacket(ci, data); err != nil {
			tb.Fatal(err)
		}
		packets++
		written += int64(len(data) + 16)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return packets, nextID
}

func readFile(tb testing.TB, s *Sensor, path string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := s.ReadPcap(context.Background(), f); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkReadPcap(b *testing.B) {
	b.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	path := filepath.Join(b.TempDir(), "bench.pcap")
	packets, flows := genCapture(b, path, 0, 200_000, 2000, 8)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d packets, %d flows, %.1f MB", packets, flows, float64(fi.Size())/1e6)
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		var c collector
		s := newTestSensor(&c, nil)
		readFile(b, s, path)
		s.Flush()
		if len(c.events) == 0 {
			b.Fatal("no events")
		}
	}
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(packets)*float64(b.N)/sec, "packets/s")
}

// TestMemoryBounded1GB generates a ~1 GB capture (in the test's temporary
// directory, removed afterwards) and reads it while sampling the heap.
// Run with AIGRESS_SNIFF_1GB=1.
func TestMemoryBounded1GB(t *testing.T) {
	if os.Getenv("AIGRESS_SNIFF_1GB") != "1" {
		t.Skip("set AIGRESS_SNIFF_1GB=1 to generate and read a 1 GB capture")
	}
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	path := filepath.Join(t.TempDir(), "big.pcap")
	gstart := time.Now()
	// 4 bulk packets per connection: ~100k+ connections, beyond MaxFlows.
	packets, flows := genCapture(t, path, 1<<30, 0, 5000, 4)
	fi, _ := os.Stat(path)
	t.Logf("generated %d packets, %d connections, %.0f MB in %v", packets, flows, float64(fi.Size())/1e6, time.Since(gstart).Round(time.Second))

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	var c collector
	s := newTestSensor(&c, nil)
	start := time.Now()
	readFile(t, s, path)
	s.Flush()
	el := time.Since(start)
	close(stop)
	wg.Wait()
	st := s.Stats()
	t.Logf("read %d packets in %v: %.0f packets/s, %.0f MB/s", st.Packets, el.Round(time.Millisecond), float64(st.Packets)/el.Seconds(), float64(fi.Size())/1e6/el.Seconds())
	t.Logf("heap in use: before %.1f MB, peak %.1f MB; flows total %d evicted %d; events %d; stats %+v",
		float64(base.HeapInuse)/1e6, float64(peak.Load())/1e6, st.FlowsTotal, st.FlowsEvicted, len(c.events), st)
	if st.FlowsEvicted == 0 {
		t.Errorf("expected the flow table to overflow")
	}
	if p := peak.Load(); p > 512<<20 {
		t.Errorf("peak heap %d MB", p>>20)
	}
}
