package main

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	mdns "github.com/miekg/dns"

	"github.com/aigress/aigress/audit"
)

// pcapBuilder writes Ethernet/IPv4 frames into a pcap file and keeps, per
// flow, the IP bytes and packets the sensor should count.
type pcapBuilder struct {
	t     *testing.T
	w     *pcapgo.Writer
	at    time.Time
	bytes map[string]int64 // flow name -> IP bytes
	pkts  map[string]int64
	first map[string]time.Time
	last  map[string]time.Time
}

func newPcapBuilder(t *testing.T, path string, start time.Time) *pcapBuilder {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	return &pcapBuilder{t: t, w: w, at: start, bytes: map[string]int64{}, pkts: map[string]int64{},
		first: map[string]time.Time{}, last: map[string]time.Time{}}
}

// packet writes one frame 10 ms after the previous one. flags: S, A, F, P.
func (b *pcapBuilder) packet(flow, src, dst string, sp, dp uint16, udp bool, seq, ack uint32, flags string, payload []byte) {
	b.t.Helper()
	b.at = b.at.Add(10 * time.Millisecond)
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice(), Protocol: layers.IPProtocolTCP}
	var l4 gopacket.SerializableLayer
	if udp {
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}
		_ = u.SetNetworkLayerForChecksum(ip)
		l4 = u
	} else {
		tc := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), Seq: seq, Ack: ack, Window: 65535,
			SYN: strings.Contains(flags, "S"), ACK: strings.Contains(flags, "A"), FIN: strings.Contains(flags, "F"), PSH: strings.Contains(flags, "P")}
		_ = tc.SetNetworkLayerForChecksum(ip)
		l4 = tc
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		b.t.Fatal(err)
	}
	data := buf.Bytes()
	if err := b.w.WritePacket(gopacket.CaptureInfo{Timestamp: b.at, CaptureLength: len(data), Length: len(data)}, data); err != nil {
		b.t.Fatal(err)
	}
	if _, ok := b.first[flow]; !ok {
		b.first[flow] = b.at
	}
	b.last[flow] = b.at
	// IP bytes: the sensor counts IP lengths, not the Ethernet padding
	// that SerializeLayers adds to short frames.
	l4len := 20
	if udp {
		l4len = 8
	}
	b.bytes[flow] += int64(20 + l4len + len(payload))
	b.pkts[flow]++
}

// tcpFlow writes a whole connection: handshake, the client's first bytes,
// a 200-byte answer, and the close.
func (b *pcapBuilder) tcpFlow(flow, cli string, cport uint16, srv string, first []byte) {
	const cseq, sseq = 1000, 5000
	b.packet(flow, cli, srv, cport, 443, false, cseq, 0, "S", nil)
	b.packet(flow, srv, cli, 443, cport, false, sseq, cseq+1, "SA", nil)
	b.packet(flow, cli, srv, cport, 443, false, cseq+1, sseq+1, "A", nil)
	b.packet(flow, cli, srv, cport, 443, false, cseq+1, sseq+1, "PA", first)
	b.packet(flow, srv, cli, 443, cport, false, sseq+1, cseq+1+uint32(len(first)), "PA", make([]byte, 200))
	b.packet(flow, cli, srv, cport, 443, false, cseq+1+uint32(len(first)), sseq+201, "FA", nil)
	b.packet(flow, srv, cli, 443, cport, false, sseq+201, cseq+2+uint32(len(first)), "FA", nil)
}

// testClientHello is the first TLS record Go's client sends for sni.
func testClientHello(t *testing.T, sni string) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	go func() {
		_ = tls.Client(c1, &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}).Handshake()
		c1.Close()
	}()
	defer c2.Close()
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := readFull(c2, hdr); err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 5+(int(hdr[3])<<8|int(hdr[4])))
	copy(rec, hdr)
	if _, err := readFull(c2, rec[5:]); err != nil {
		t.Fatal(err)
	}
	return rec
}

func readFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := c.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// dnsQuery is a packed DNS query for name.
func dnsQuery(name string) []byte {
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	b, _ := q.Pack()
	return b
}

// dnsAnswer is a packed DNS response naming ip for name.
func dnsAnswer(t *testing.T, name, ip string) []byte {
	t.Helper()
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	m := new(mdns.Msg)
	m.SetReply(q)
	rr, err := mdns.NewRR(mdns.Fqdn(name) + " 300 IN A " + ip)
	if err != nil {
		t.Fatal(err)
	}
	m.Answer = append(m.Answer, rr)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSniffCmd runs `aigress sniff --pcap` in-process on a capture made
// here: two clients open TLS connections to api.openai.com (client .1
// twice), client .2 resolves api.anthropic.com and talks to its address
// without a readable hello (named through the DNS answer), and client .1
// visits a bank (no event). The summary and the store must say exactly
// that.
func TestSniffCmd(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "capture.pcap")
	start := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	b := newPcapBuilder(t, pcap, start)
	const cliA, cliB, openaiIP, anthropicIP, bankIP, resolver = "10.0.0.1", "10.0.0.2", "10.9.0.10", "10.9.0.20", "10.9.0.30", "10.0.0.53"
	hello := testClientHello(t, "api.openai.com")
	b.tcpFlow("openai-a", cliA, 40001, openaiIP, hello)
	b.tcpFlow("openai-b", cliB, 40002, openaiIP, hello)
	b.tcpFlow("openai-a", cliA, 40003, openaiIP, hello)
	b.packet("dns", cliB, resolver, 5353, 53, true, 0, 0, "", dnsQuery("api.anthropic.com"))
	b.packet("dns", resolver, cliB, 53, 5353, true, 0, 0, "", dnsAnswer(t, "api.anthropic.com", anthropicIP))
	b.tcpFlow("anthropic-b", cliB, 40004, anthropicIP, []byte("not a TLS hello, just bytes"))
	b.tcpFlow("bank-a", cliA, 40005, bankIP, testClientHello(t, "bank.example"))

	out, err := audcmdRun(t, "sniff", "--pcap", pcap, "--data-dir", dir)
	if err != nil {
		t.Fatalf("sniff: %v\n%s", err, out)
	}
	for _, want := range []string{
		"SERVICE", "OpenAI API", "Anthropic API",
		"4 events; packets 37 ",
		"flows 6 (evicted 0), sni 4, quic 0, http host 0, dns answers 1, dns-attributed flows 1",
		"audit trail: written 4, dropped 0, errors 0; event store " + audit.StorePath(dir) + ": written 4, dropped 0, errors 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	type sensorRow struct {
		Client, Provider, Service, Category, Host, SNI, DestIP string
		Port                                                   int
		Source                                                 string
		Flows, Bytes, Packets                                  int64
		First, Last                                            time.Time
	}
	row := func(client, provider, service, host, sni, destIP, source, flow string, flows int64) sensorRow {
		return sensorRow{client, provider, service, "api", host, sni, destIP, 443, source, flows, b.bytes[flow], b.pkts[flow],
			b.first[flow].Truncate(time.Millisecond), b.last[flow].Truncate(time.Millisecond)}
	}
	want := []sensorRow{
		row(cliA, "openai", "OpenAI API", "api.openai.com", "api.openai.com", openaiIP, "sni", "openai-a", 2),
		// The TLS flow without SNI is named through the DNS answer
		// (source dns); the lookup itself is a row of its own (dns_query),
		// so that it does not count as a second connection.
		row(cliB, "anthropic", "Anthropic API", "api.anthropic.com", "", anthropicIP, "dns", "anthropic-b", 1),
		{cliB, "anthropic", "Anthropic API", "api", "api.anthropic.com", "", resolver, 53, "dns_query", 0,
			b.bytes["dns"], b.pkts["dns"], b.first["dns"].Truncate(time.Millisecond), b.last["dns"].Truncate(time.Millisecond)},
		row(cliB, "openai", "OpenAI API", "api.openai.com", "api.openai.com", openaiIP, "sni", "openai-b", 1),
	}
	check := func(name string, evs []audit.Event) {
		t.Helper()
		var got []sensorRow
		ids := map[string]bool{}
		for _, e := range evs {
			if e.Kind != audit.KindSensor || e.Sensor == nil || len(e.ID) != 26 || ids[e.ID] {
				t.Fatalf("%s: event %+v", name, e)
			}
			ids[e.ID] = true
			got = append(got, sensorRow{e.Client.IP, e.Provider, e.Service, e.Category, e.Dest.Host, e.Dest.SNI, e.Dest.IP, e.Dest.Port,
				e.Sensor.Source, e.Sensor.Flows, e.Sensor.Bytes, e.Sensor.Packets,
				e.Sensor.FirstSeen.Truncate(time.Millisecond).UTC(), e.Sensor.LastSeen.Truncate(time.Millisecond).UTC()})
		}
		sort.Slice(got, func(i, j int) bool {
			if got[i].Client != got[j].Client {
				return got[i].Client < got[j].Client
			}
			if got[i].Service != got[j].Service {
				return got[i].Service < got[j].Service
			}
			return got[i].Source < got[j].Source
		})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s events\n got %+v\nwant %+v", name, got, want)
		}
	}
	check("store", storedEvents(t, dir))
	check("trail", readEvents(t, filepath.Join(dir, "audit.jsonl")))

	// inventory reads them back from the store.
	invOut, err := audcmdRun(t, "inventory", "--data-dir", dir, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var inv audit.Inventory
	if err := json.Unmarshal([]byte(invOut), &inv); err != nil {
		t.Fatal(err)
	}
	type invRow struct {
		service string
		clients []string
		flows   int64
		sources []string
	}
	var gotInv []invRow
	for _, s := range inv.Services {
		gotInv = append(gotInv, invRow{s.Service, s.Clients, s.SensorFlows, s.Sources})
	}
	wantInv := []invRow{
		{"OpenAI API", []string{cliA, cliB}, 3, []string{"sensor"}},
		{"Anthropic API", []string{cliB}, 1, []string{"sensor"}}, // the lookup is not a flow
	}
	if !reflect.DeepEqual(gotInv, wantInv) {
		t.Errorf("inventory\n got %+v\nwant %+v", gotInv, wantInv)
	}
}

func TestSniffCmdErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
	}{
		{"fail/no-source", nil},
		{"fail/both-sources", []string{"--pcap", "x", "--iface", "lo"}},
		{"fail/duration-with-pcap", []string{"--pcap", "x", "--duration", "1s"}},
		{"fail/missing-file", []string{"--pcap", filepath.Join(dir, "none.pcap")}},
		{"fail/not-a-pcap", []string{"--pcap", "sniff_test.go"}},
		{"fail/bad-config", []string{"--pcap", "sniff_test.go", "--config", filepath.Join(dir, "none.yaml")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := audcmdRun(t, append([]string{"sniff", "--data-dir", dir}, c.args...)...); err == nil {
				t.Errorf("%v succeeded", c.args)
			}
		})
	}
}
