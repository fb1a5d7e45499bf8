package sniff

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"io"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/aigress/aigress/audit"
	"github.com/aigress/aigress/classify"
)

// pk describes one synthetic packet.
type pk struct {
	link     layers.LinkType // Ethernet when zero
	vlans    []uint16
	src, dst string // IPv4 or IPv6 literals
	udp      bool
	sp, dp   uint16
	seq, ack uint32
	flags    string // any of "S", "A", "F", "R", "P"
	payload  []byte
	capLen   int // cut the frame to this many bytes (0: whole)
	at       time.Duration
}

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// frame serialises p; it returns the bytes and the capture info.
func frame(tb testing.TB, p pk) ([]byte, gopacket.CaptureInfo, layers.LinkType) {
	tb.Helper()
	src, dst := netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst)
	var ls []gopacket.SerializableLayer
	var netLayer gopacket.NetworkLayer
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), Protocol: layers.IPProtocolTCP}
		if p.udp {
			ip.Protocol = layers.IPProtocolUDP
		}
		ls, netLayer = append(ls, ip), ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), NextHeader: layers.IPProtocolTCP}
		if p.udp {
			ip.NextHeader = layers.IPProtocolUDP
		}
		ls, netLayer = append(ls, ip), ip
	}
	if p.udp {
		u := &layers.UDP{SrcPort: layers.UDPPort(p.sp), DstPort: layers.UDPPort(p.dp)}
		_ = u.SetNetworkLayerForChecksum(netLayer)
		ls = append(ls, u)
	} else {
		t := &layers.TCP{SrcPort: layers.TCPPort(p.sp), DstPort: layers.TCPPort(p.dp), Seq: p.seq, Ack: p.ack, Window: 65535}
		for _, c := range p.flags {
			switch c {
			case 'S':
				t.SYN = true
			case 'A':
				t.ACK = true
			case 'F':
				t.FIN = true
			case 'R':
				t.RST = true
			case 'P':
				t.PSH = true
			}
		}
		_ = t.SetNetworkLayerForChecksum(netLayer)
		ls = append(ls, t)
	}
	ls = append(ls, gopacket.Payload(p.payload))
	ethType := layers.EthernetTypeIPv4
	if !src.Is4() {
		ethType = layers.EthernetTypeIPv6
	}
	link := p.link
	if link == 0 {
		link = layers.LinkTypeEthernet
	}
	var head []byte
	switch link {
	case layers.LinkTypeEthernet:
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: ethType}
		var pre []gopacket.SerializableLayer
		if len(p.vlans) > 0 {
			eth.EthernetType = layers.EthernetTypeDot1Q
			if len(p.vlans) > 1 {
				eth.EthernetType = layers.EthernetTypeQinQ
			}
			pre = append(pre, eth)
			for i, id := range p.vlans {
				next := layers.EthernetTypeDot1Q
				if i == len(p.vlans)-1 {
					next = ethType
				}
				pre = append(pre, &layers.Dot1Q{VLANIdentifier: id, Type: next})
			}
		} else {
			pre = append(pre, eth)
		}
		ls = append(pre, ls...)
	case layers.LinkTypeLinuxSLL:
		head = make([]byte, 16)
		binary.BigEndian.PutUint16(head[2:], 1) // ARPHRD_ETHER
		binary.BigEndian.PutUint16(head[4:], 6)
		binary.BigEndian.PutUint16(head[14:], uint16(ethType))
	case linkTypeSLL2:
		head = make([]byte, 20)
		binary.BigEndian.PutUint16(head[0:], uint16(ethType))
		binary.BigEndian.PutUint16(head[8:], 1)
		head[11] = 6
	case layers.LinkTypeNull:
		head = make([]byte, 4)
		binary.LittleEndian.PutUint32(head, 2)
	case layers.LinkTypeRaw:
	default:
		tb.Fatalf("frame: link type %v", link)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	data := append(head, buf.Bytes()...)
	ci := gopacket.CaptureInfo{Timestamp: t0.Add(p.at), Length: len(data), CaptureLength: len(data)}
	if p.capLen > 0 && p.capLen < len(data) {
		data = data[:p.capLen]
		ci.CaptureLength = p.capLen
	}
	return data, ci, link
}

// clientHello returns the first TLS record Go's client sends for sni.
func clientHello(tb testing.TB, sni string, alpn ...string) []byte {
	tb.Helper()
	c1, c2 := net.Pipe()
	go func() {
		_ = tls.Client(c1, &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: alpn}).Handshake()
		c1.Close()
	}()
	defer c2.Close()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c2, hdr); err != nil {
		tb.Fatalf("read hello header: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(c2, body); err != nil {
		tb.Fatalf("read hello: %v", err)
	}
	return append(hdr, body...)
}

// dnsMsg builds a DNS query (answers nil) or response for name.
func dnsMsg(tb testing.TB, name string, answers ...string) []byte {
	tb.Helper()
	d := &layers.DNS{ID: 0x1234, RD: true, QR: len(answers) > 0, RA: len(answers) > 0}
	d.Questions = []layers.DNSQuestion{{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN}}
	for _, a := range answers {
		ip := netip.MustParseAddr(a)
		rr := layers.DNSResourceRecord{Name: []byte(name), Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 60, IP: ip.AsSlice()}
		if ip.Is6() {
			rr.Type = layers.DNSTypeAAAA
		}
		d.Answers = append(d.Answers, rr)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		tb.Fatalf("dns: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// collector gathers emitted events.
type collector struct{ events []*audit.Event }

func (c *collector) emit(e *audit.Event) { c.events = append(c.events, e) }

func newTestSensor(c *collector, mod func(*Options)) *Sensor {
	o := Options{Lookup: classify.DefaultCatalog().Lookup, Emit: c.emit}
	if mod != nil {
		mod(&o)
	}
	return New(o)
}

// row is the part of an event the tables assert.
type row struct {
	Client, Service, Source string
	Flows, Packets          int64
}

func rows(evs []*audit.Event) []row {
	var out []row
	for _, e := range evs {
		out = append(out, row{e.Client.IP, e.Service, e.Sensor.Source, e.Sensor.Flows, e.Sensor.Packets})
	}
	return out
}

// selfSigned returns a certificate for names, valid for an hour.
func selfSigned(tb testing.TB, names ...string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
