//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/aigress/aigress/ebpf"
	"github.com/aigress/aigress/mitm"
)

// Wire eBPF redirection into the transparent listener: cgroup connect
// programs send AI connections to it, and the listener learns each
// connection's original destination and process from the eBPF maps.
func init() { startEBPF = startEBPFLinux }

func startEBPFLinux(cfg *Config, l net.Listener, log logrus.FieldLogger) (func(net.Conn) (netip.AddrPort, *mitm.Process, bool), func(), error) {
	if err := ebpf.Probe(); err != nil {
		return nil, nil, fmt.Errorf("%w\n  fallback: run aigress with --transparent-listen and deploy/iptables or deploy/nftables rules instead", err)
	}
	listen, err := netip.ParseAddrPort(l.Addr().String())
	if err != nil {
		return nil, nil, fmt.Errorf("ebpf: listener address: %w", err)
	}
	lv4 := listen
	if listen.Addr().IsUnspecified() {
		lv4 = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), listen.Port())
	}
	var targets []netip.Prefix
	for _, s := range cfg.EBPF.Targets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, nil, fmt.Errorf("config: ebpf.targets: %q is not a CIDR or address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		targets = append(targets, p)
	}
	if len(targets) == 0 && !cfg.EBPF.AllTCP443 {
		return nil, nil, errors.New("config: ebpf needs targets (AI addresses) or all_tcp_443: true")
	}
	r, err := ebpf.Attach(ebpf.Options{
		CgroupPath:  cfg.EBPF.Cgroup,
		ListenV4:    lv4,
		AllTCP443:   cfg.EBPF.AllTCP443,
		Targets:     targets,
		BlockQUIC:   cfg.EBPF.BlockQUIC,
		ExcludePID:  uint32(os.Getpid()),
		ExcludeMark: uint32(cfg.UpstreamMark),
		Log:         log,
	})
	if err != nil {
		return nil, nil, err
	}
	log.WithFields(logrus.Fields{"cgroup": cfg.EBPF.Cgroup, "listen": lv4.String(), "targets": len(targets), "all_tcp_443": cfg.EBPF.AllTCP443}).Info("eBPF redirection attached")
	lookup := func(c net.Conn) (netip.AddrPort, *mitm.Process, bool) {
		ra, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil {
			return netip.AddrPort{}, nil, false
		}
		conn, ok := r.Lookup(netip.AddrPortFrom(ra.Addr().Unmap(), ra.Port()))
		if !ok {
			return netip.AddrPort{}, nil, false
		}
		return conn.OrigDst, &mitm.Process{PID: conn.TGID, UID: conn.UID, Comm: conn.Comm, Cgroup: conn.CgroupPath, Unit: conn.Unit, Container: conn.Container}, true
	}
	cleanup := func() {
		if err := r.Close(); err != nil {
			log.WithError(err).Warn("ebpf: detach")
		}
	}
	return lookup, cleanup, nil
}
