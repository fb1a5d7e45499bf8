package sniff

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/aigress/aigress/audit"
)

const (
	pcapngMagic = 0x0A0D0D0A
	// maxSnaplen bounds the per-packet buffer a pcap header may ask for.
	maxSnaplen = 1 << 20
)

// ReadPcap feeds every packet of a pcap or pcapng stream (detected by its
// magic; gzip-compressed pcap too) to the sensor. A file cut short is
// counted as truncated, not an error. It does not Flush.
func (s *Sensor) ReadPcap(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return fmt.Errorf("sniff: read pcap header: %w", err)
	}
	if binary.LittleEndian.Uint32(magic) == pcapngMagic {
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return fmt.Errorf("sniff: read pcapng: %w", err)
		}
		return s.readLoop(ctx, ng, func(ci gopacket.CaptureInfo) layers.LinkType {
			if len(ci.AncillaryData) > 0 {
				if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
					return lt
				}
			}
			return ng.LinkType()
		})
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return fmt.Errorf("sniff: read pcap: %w", err)
	}
	if sl := pr.Snaplen(); sl == 0 || sl > maxSnaplen {
		pr.SetSnaplen(maxSnaplen)
	}
	lt := pr.LinkType()
	return s.readLoop(ctx, pr, func(gopacket.CaptureInfo) layers.LinkType { return lt })
}

func (s *Sensor) readLoop(ctx context.Context, src gopacket.ZeroCopyPacketDataSource, linkType func(gopacket.CaptureInfo) layers.LinkType) error {
	for n := 0; ; n++ {
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("sniff: %w", err)
			}
		}
		data, ci, err := src.ZeroCopyReadPacketData()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				s.stats.Truncated++ // capture file cut short (tcpdump killed)
				return nil
			}
			return fmt.Errorf("sniff: read packet %d: %w", n+1, err)
		}
		s.HandlePacket(data, ci, linkType(ci))
	}
}

// Live captures from iface with pcapgo's AF_PACKET handle (pure Go, no
// libpcap) until ctx ends or duration (if > 0) passes. The rows gathered
// so far are emitted every Options.LiveFlush; call Flush at the end.
func (s *Sensor) Live(ctx context.Context, iface string, duration time.Duration) error {
	h, err := pcapgo.NewEthernetHandle(iface)
	if err != nil {
		return fmt.Errorf("sniff: open %s: %w", iface, err)
	}
	defer h.Close()
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	// The handle's reads block without a timeout; give its socket one so
	// the loop sees ctx end even on a silent interface.
	timeoutSet := setReadTimeout(h, 200*time.Millisecond)
	var stop atomic.Bool
	if !timeoutSet {
		s.log.Warn("sniff: could not set a read timeout; stopping waits for the next packet")
		go func() {
			<-ctx.Done()
			stop.Store(true)
		}()
	}
	nextFlush := time.Now().Add(s.opts.LiveFlush)
	for {
		if ctx.Err() != nil || stop.Load() {
			return nil
		}
		if now := time.Now(); now.After(nextFlush) {
			s.emitRows()
			nextFlush = now.Add(s.opts.LiveFlush)
		}
		data, ci, err := h.ZeroCopyReadPacketData()
		if err != nil {
			if isTimeout(err) {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sniff: capture on %s: %w", iface, err)
		}
		s.HandlePacket(data, ci, layers.LinkTypeEthernet)
	}
}

// setReadTimeout sets SO_RCVTIMEO on the handle's socket. pcapgo does not
// expose the descriptor, so it is read by reflection; false if that fails.
func setReadTimeout(h *pcapgo.EthernetHandle, d time.Duration) bool {
	v := reflect.ValueOf(h).Elem().FieldByName("fd")
	if !v.IsValid() || v.Kind() != reflect.Int {
		return false
	}
	tv := unix.NsecToTimeval(d.Nanoseconds())
	return unix.SetsockoptTimeval(int(v.Int()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv) == nil
}

func isTimeout(err error) bool {
	// pcapgo formats the errno into its message (no wrapping).
	msg := err.Error()
	return strings.Contains(msg, unix.EAGAIN.Error()) || strings.Contains(msg, unix.EINTR.Error())
}

// Flush ends the capture: every tracked flow not yet named gets its last
// chance through the DNS map, the flow table is emptied, and one sensor
// event per (client IP, service, source) is emitted, sorted by client,
// service and source.
func (s *Sensor) Flush() {
	s.removing = true
	for _, k := range s.flows.Keys() {
		if f, ok := s.flows.Peek(k); ok {
			s.finish(f)
		}
	}
	s.flows.Purge()
	s.removing = false
	s.emitRows()
}

// emitRows emits and clears the rows; flows that go on count again in the
// next period.
func (s *Sensor) emitRows() {
	if len(s.aggs) == 0 {
		return
	}
	rows := make([]*aggregate, 0, len(s.aggs))
	for _, a := range s.aggs {
		rows = append(rows, a)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i].key, rows[j].key
		if c := a.client.Compare(b.client); c != 0 {
			return c < 0
		}
		if a.svc.Service != b.svc.Service {
			return a.svc.Service < b.svc.Service
		}
		return a.source < b.source
	})
	for _, a := range rows {
		ev := &audit.Event{
			ID:       s.opts.NewID(a.first),
			Time:     a.first,
			Kind:     audit.KindSensor,
			Client:   audit.Client{IP: a.key.client.String()},
			Dest:     audit.Dest{Host: a.host, SNI: a.sni, Port: int(a.destPort)},
			Provider: a.key.svc.Provider,
			Service:  a.key.svc.Service,
			Category: string(a.key.svc.Category),
			Sensor: &audit.SensorInfo{
				Source:    a.key.source,
				FirstSeen: a.first,
				LastSeen:  a.last,
				Flows:     a.flows,
				Bytes:     a.bytes,
				Packets:   a.packets,
			},
		}
		if a.destIP.IsValid() {
			ev.Dest.IP = a.destIP.String()
		}
		if a.key.source == SourceDNSQuery {
			// Lookups are not connections: count them apart.
			ev.Sensor.Lookups, ev.Sensor.Flows = a.flows, 0
		}
		s.stats.Events++
		s.opts.Emit(ev)
	}
	clear(s.aggs)
	s.gen++
}
