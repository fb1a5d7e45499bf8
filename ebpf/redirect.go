//go:build linux

package ebpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -cc clang -strip llvm-strip -cflags "-O2 -g -Wall -Werror" -type conn_rec -type conn_event -type addr_key -type config -type lpm_v4 -type lpm_v6 redirect bpf/redirect.c -- -I.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"time"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// ExcludeNone, as Options.ExcludePID, turns the process exclusion off
// (benchmarks and tests that run the client in the attaching process).
const ExcludeNone = ^uint32(0)

// Values of config.flags and conn_event.action; they mirror bpf/redirect.c.
const (
	cfgAllTCP443 = 1 << 0
	cfgBlockQUIC = 1 << 1
	cfgHaveV4    = 1 << 2
	cfgHaveV6    = 1 << 3
)

// Stat indexes of the stats array map.
const (
	statEventsLost = 0
	statRedirected = 1
	statBlocked    = 2
)

// Options configures Attach.
type Options struct {
	// CgroupPath is the cgroup v2 directory the programs attach to; they act
	// on every process in it and below. Default: DefaultCgroupPath().
	CgroupPath string
	// ListenV4 is the aigress transparent listener for IPv4 (and v4-mapped)
	// connects. Required unless ListenV6 is set.
	ListenV4 netip.AddrPort
	// ListenV6 is the listener for IPv6 connects. Without it, IPv6
	// destinations are never redirected (only attributed).
	ListenV6 netip.AddrPort
	// AllTCP443 redirects every TCP connect to port 443, not only targets.
	AllTCP443 bool
	// Targets are the initial AI address prefixes (config CIDRs).
	Targets []netip.Prefix
	// BlockQUIC refuses UDP 443 to targets (connect and sendmsg return EPERM),
	// so that clients fall back to TCP, which can be intercepted.
	BlockQUIC bool
	// ExcludePID is the process (tgid) whose connects are never redirected:
	// aigress itself, so its upstream connections don't loop back.
	// 0 means os.Getpid(); ExcludeNone disables it.
	ExcludePID uint32
	// ExcludeMark: sockets with this SO_MARK set before connect() are never
	// redirected (the mark used for loop prevention). 0 = off.
	ExcludeMark uint32
	// Log receives warnings (lost events, unresolvable cgroups). Default: discard.
	Log logrus.FieldLogger
}

// Conn is what is known about a redirected connection.
type Conn struct {
	// OrigDst is the destination the application asked for.
	OrigDst netip.AddrPort
	// PID is the kernel task (thread) id that called connect(); TGID is the
	// process id as ps shows it. Audit should name the process by TGID.
	PID, TGID uint32
	UID, GID  uint32
	// Comm is the task name (at most 15 bytes).
	Comm     string
	CgroupID uint64
	// CgroupPath is relative to the cgroup v2 root ("/system.slice/cron.service"),
	// best effort: empty when the cgroup is gone.
	CgroupPath string
	// Unit is the systemd unit derived from CgroupPath ("cron.service").
	Unit string
	// Container is a docker/containerd/cri-o/podman container id, when the
	// path shows one.
	Container string
	// Time is when connect() was called.
	Time time.Time
}

// Action says what the connect program did with a connection.
type Action uint8

// Actions.
const (
	ActionPass     Action = 0 // not selected: went to its real destination
	ActionRedirect Action = 1 // rewritten to the aigress listener
	ActionBlock    Action = 2 // refused (QUIC to a target, with BlockQUIC)
	ActionExcluded Action = 3 // aigress's own socket (ExcludePID/ExcludeMark)
)

func (a Action) String() string {
	switch a {
	case ActionPass:
		return "pass"
	case ActionRedirect:
		return "redirect"
	case ActionBlock:
		return "block"
	case ActionExcluded:
		return "excluded"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ConnEvent is one connect() seen by the programs: every TCP connect in
// the cgroup, and blocked UDP 443 connects.
type ConnEvent struct {
	Time       time.Time
	Cookie     uint64
	Action     Action
	Protocol   string // "tcp" or "udp"
	Dst        netip.AddrPort
	PID, TGID  uint32
	UID, GID   uint32
	Comm       string
	CgroupID   uint64
	CgroupPath string
	Unit       string
	Container  string
}

// Stats are counters kept by the programs.
type Stats struct {
	Redirected uint64
	Blocked    uint64
	EventsLost uint64 // ring buffer full: events not delivered
}

// Redirector holds the loaded programs, their links and maps. Its methods
// are safe for concurrent use.
type Redirector struct {
	objs    redirectObjects
	links   []link.Link
	log     logrus.FieldLogger
	cgroups *cgroupResolver
	// monoToWall converts bpf_ktime_get_ns (CLOCK_MONOTONIC) to wall time.
	monoToWall time.Duration

	mu        sync.Mutex
	reader    *ringbuf.Reader
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// Attach loads the programs and attaches them to opts.CgroupPath. The links
// are bpf_links held by file descriptors only (never pinned): Close detaches
// them, and so does the kernel when the process dies, even by SIGKILL.
func Attach(opts Options) (*Redirector, error) {
	if opts.Log == nil {
		l := logrus.New()
		l.Out = io.Discard
		opts.Log = l
	}
	if opts.CgroupPath == "" {
		p, err := DefaultCgroupPath()
		if err != nil {
			return nil, err
		}
		opts.CgroupPath = p
	}
	if err := probe(opts.CgroupPath); err != nil {
		return nil, err
	}
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("ebpf: remove memlock rlimit: %w", err)
	}
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	r := &Redirector{log: opts.Log, cgroups: newCgroupResolver(root), monoToWall: monoOffset()}
	if err := loadRedirectObjects(&r.objs, nil); err != nil {
		var ve *cebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("ebpf: load programs: %+v", ve)
		}
		return nil, fmt.Errorf("ebpf: load programs: %w", err)
	}
	if err := r.objs.ConfigMap.Put(uint32(0), cfg); err != nil {
		r.objs.Close()
		return nil, fmt.Errorf("ebpf: write config: %w", err)
	}
	for _, p := range opts.Targets {
		if err := r.AddTarget(p); err != nil {
			r.objs.Close()
			return nil, err
		}
	}
	if err := r.attach(opts); err != nil {
		r.Close()
		return nil, err
	}
	opts.Log.WithFields(logrus.Fields{
		"cgroup": opts.CgroupPath, "listen_v4": opts.ListenV4.String(), "listen_v6": opts.ListenV6.String(),
		"all_tcp443": opts.AllTCP443, "targets": len(opts.Targets), "block_quic": opts.BlockQUIC,
	}).Info("ebpf: connect redirection attached")
	return r, nil
}

func buildConfig(opts Options) (redirectConfig, error) {
	var cfg redirectConfig
	if !opts.ListenV4.IsValid() && !opts.ListenV6.IsValid() {
		return cfg, errors.New("ebpf: options: ListenV4 or ListenV6 is required")
	}
	if opts.ListenV4.IsValid() {
		a := opts.ListenV4.Addr().Unmap()
		if !a.Is4() || opts.ListenV4.Port() == 0 {
			return cfg, fmt.Errorf("ebpf: options: ListenV4 %s is not an IPv4 address and port", opts.ListenV4)
		}
		b := a.As4()
		cfg.ListenIp4 = binary.NativeEndian.Uint32(b[:])
		cfg.ListenPort4 = opts.ListenV4.Port()
		cfg.Flags |= cfgHaveV4
	}
	if opts.ListenV6.IsValid() {
		a := opts.ListenV6.Addr()
		if !a.Is6() || a.Is4In6() || opts.ListenV6.Port() == 0 {
			return cfg, fmt.Errorf("ebpf: options: ListenV6 %s is not an IPv6 address and port", opts.ListenV6)
		}
		cfg.ListenIp6 = ip6Words(a)
		cfg.ListenPort6 = opts.ListenV6.Port()
		cfg.Flags |= cfgHaveV6
	} else {
		for _, p := range opts.Targets {
			if p.Addr().Is6() && !p.Addr().Is4In6() {
				opts.Log.WithField("prefix", p.String()).Warn("ebpf: IPv6 target without ListenV6: it is attributed, not redirected")
				break
			}
		}
	}
	if opts.AllTCP443 {
		cfg.Flags |= cfgAllTCP443
	}
	if opts.BlockQUIC {
		cfg.Flags |= cfgBlockQUIC
	}
	switch opts.ExcludePID {
	case 0:
		cfg.ExcludeTgid = uint32(os.Getpid())
	case ExcludeNone:
	default:
		cfg.ExcludeTgid = opts.ExcludePID
	}
	cfg.ExcludeMark = opts.ExcludeMark
	return cfg, nil
}

func (r *Redirector) attach(opts Options) error {
	cg, err := os.Open(opts.CgroupPath)
	if err != nil {
		return fmt.Errorf("ebpf: open cgroup %s: %w", opts.CgroupPath, err)
	}
	defer cg.Close()
	type att struct {
		name string
		prog *cebpf.Program
		typ  cebpf.AttachType
	}
	// The helpers first, so that a redirected socket always finds them.
	list := []att{
		{"sockops", r.objs.AigressSockops, cebpf.AttachCGroupSockOps},
		{"getpeername4", r.objs.AigressGetpeername4, cebpf.AttachCgroupInet4GetPeername},
		{"getpeername6", r.objs.AigressGetpeername6, cebpf.AttachCgroupInet6GetPeername},
	}
	if opts.BlockQUIC {
		list = append(list,
			att{"sendmsg4", r.objs.AigressSendmsg4, cebpf.AttachCGroupUDP4Sendmsg},
			att{"sendmsg6", r.objs.AigressSendmsg6, cebpf.AttachCGroupUDP6Sendmsg})
	}
	list = append(list,
		att{"connect4", r.objs.AigressConnect4, cebpf.AttachCGroupInet4Connect},
		att{"connect6", r.objs.AigressConnect6, cebpf.AttachCGroupInet6Connect})
	for _, a := range list {
		// A real bpf_link (not link.AttachCgroup, which silently falls back to
		// BPF_PROG_ATTACH on old kernels: such an attachment outlives the
		// process, and would keep redirecting to a dead listener).
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: int(cg.Fd()), Program: a.prog, Attach: a.typ})
		if err != nil {
			return fmt.Errorf("ebpf: attach %s to %s: %w", a.name, opts.CgroupPath, err)
		}
		r.links = append(r.links, l)
	}
	return nil
}

// AddTarget adds an AI address prefix: TCP connects into it are redirected.
// v4-mapped prefixes are stored as IPv4.
func (r *Redirector) AddTarget(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("ebpf: add target: invalid prefix %s", p)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return fmt.Errorf("ebpf: add target %s: v4-mapped prefix shorter than /96", p)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	p = p.Masked()
	one := uint8(1)
	var err error
	if p.Addr().Is4() {
		err = r.objs.TargetsV4.Put(lpm4(p), one)
	} else {
		err = r.objs.TargetsV6.Put(lpm6(p), one)
	}
	if err != nil {
		return fmt.Errorf("ebpf: add target %s: %w", p, err)
	}
	return nil
}

// AddTargetAddr adds one address (a DNS answer for an AI name) as /32 or /128.
func (r *Redirector) AddTargetAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	return r.AddTarget(netip.PrefixFrom(ip, ip.BitLen()))
}

// RemoveTarget removes a prefix added before (for example when a DNS answer
// expires). Removing an absent prefix is not an error.
func (r *Redirector) RemoveTarget(p netip.Prefix) error {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	p = p.Masked()
	var err error
	if p.Addr().Is4() {
		err = r.objs.TargetsV4.Delete(lpm4(p))
	} else {
		err = r.objs.TargetsV6.Delete(lpm6(p))
	}
	if err != nil && !errors.Is(err, cebpf.ErrKeyNotExist) {
		return fmt.Errorf("ebpf: remove target %s: %w", p, err)
	}
	return nil
}

func lpm4(p netip.Prefix) redirectLpmV4 {
	b := p.Addr().As4()
	return redirectLpmV4{Prefixlen: uint32(p.Bits()), Addr: binary.NativeEndian.Uint32(b[:])}
}

func lpm6(p netip.Prefix) redirectLpmV6 {
	return redirectLpmV6{Prefixlen: uint32(p.Bits()), Addr: ip6Words(p.Addr())}
}

// ip6Words lays an address out as the kernel's __u32[4] in network order.
func ip6Words(a netip.Addr) [4]uint32 {
	b := a.As16()
	var w [4]uint32
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[i*4:])
	}
	return w
}

func addrFrom(family uint8, w [4]uint32) netip.Addr {
	if family == unix.AF_INET {
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], w[0])
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(b[i*4:], w[i])
	}
	return netip.AddrFrom16(b)
}

func addrKey(client netip.AddrPort) redirectAddrKey {
	a := client.Addr().Unmap()
	k := redirectAddrKey{Port: client.Port()}
	if a.Is4() {
		b := a.As4()
		k.Family = unix.AF_INET
		k.Ip[0] = binary.NativeEndian.Uint32(b[:])
	} else {
		k.Family = unix.AF_INET6
		k.Ip = ip6Words(a)
	}
	return k
}

func commString(c [16]int8) string {
	b := make([]byte, 0, len(c))
	for _, x := range c {
		if x == 0 {
			break
		}
		b = append(b, byte(x))
	}
	return string(b)
}

// Lookup finds the redirected connection whose client end is client: the
// RemoteAddr of a connection accepted on the transparent listener. The
// entry stays in the map (an LRU of 65536) until its port is reused.
func (r *Redirector) Lookup(client netip.AddrPort) (Conn, bool) {
	var rec redirectConnRec
	k := addrKey(client)
	if err := r.objs.ConnsByAddr.Lookup(&k, &rec); err != nil {
		return Conn{}, false
	}
	c := Conn{
		OrigDst:  netip.AddrPortFrom(addrFrom(rec.Family, rec.OrigIp), rec.OrigPort),
		PID:      rec.Pid,
		TGID:     rec.Tgid,
		UID:      rec.Uid,
		GID:      rec.Gid,
		Comm:     commString(rec.Comm),
		CgroupID: rec.CgroupId,
		Time:     r.wall(rec.TsNs),
	}
	c.CgroupPath = r.cgroups.path(rec.CgroupId, rec.Tgid)
	c.Unit, c.Container = unitOf(c.CgroupPath), containerOf(c.CgroupPath)
	return c, true
}

// eventPoll bounds how late a lone event is delivered: the programs wake
// the reader only once 32 KiB of events are pending.
const eventPoll = 100 * time.Millisecond

// Events streams connection events from the ring buffer until ctx is done
// or the Redirector is closed; then the channel is closed. Only one reader
// may exist: a second call gets a closed channel. A slow consumer makes the
// kernel drop events (counted in Stats().EventsLost), never blocks connects.
func (r *Redirector) Events(ctx context.Context) <-chan ConnEvent {
	ch := make(chan ConnEvent, 256)
	r.mu.Lock()
	if r.closed || r.reader != nil {
		r.mu.Unlock()
		close(ch)
		return ch
	}
	rd, err := ringbuf.NewReader(r.objs.Events)
	if err != nil {
		r.mu.Unlock()
		r.log.WithError(err).Warn("ebpf: open ring buffer")
		close(ch)
		return ch
	}
	r.reader = rd
	r.mu.Unlock()

	stop := context.AfterFunc(ctx, func() { rd.Close() })
	go func() {
		defer close(ch)
		defer stop()
		var rec ringbuf.Record
		rd.SetDeadline(time.Now().Add(eventPoll))
		for {
			if err := rd.ReadInto(&rec); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// The programs submit without wakeup until a batch is
					// pending (see emit in bpf/redirect.c): poll.
					rd.SetDeadline(time.Now().Add(eventPoll))
					continue
				}
				if !errors.Is(err, os.ErrClosed) {
					r.log.WithError(err).Warn("ebpf: read ring buffer")
				}
				return
			}
			ev, ok := r.decodeEvent(rec.RawSample)
			if !ok {
				continue
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func (r *Redirector) decodeEvent(b []byte) (ConnEvent, bool) {
	var e redirectConnEvent
	if _, err := binary.Decode(b, binary.NativeEndian, &e); err != nil {
		r.log.WithError(err).Warn("ebpf: short ring buffer record")
		return ConnEvent{}, false
	}
	ev := ConnEvent{
		Time:     r.wall(e.TsNs),
		Cookie:   e.Cookie,
		Action:   Action(e.Action),
		Protocol: "tcp",
		Dst:      netip.AddrPortFrom(addrFrom(e.Family, e.DstIp), e.DstPort),
		PID:      e.Pid,
		TGID:     e.Tgid,
		UID:      e.Uid,
		GID:      e.Gid,
		Comm:     commString(e.Comm),
		CgroupID: e.CgroupId,
	}
	if e.Protocol == unix.IPPROTO_UDP {
		ev.Protocol = "udp"
	}
	ev.CgroupPath = r.cgroups.path(e.CgroupId, e.Tgid)
	ev.Unit, ev.Container = unitOf(ev.CgroupPath), containerOf(ev.CgroupPath)
	return ev, true
}

// Stats reads the programs' counters.
func (r *Redirector) Stats() (Stats, error) {
	var s Stats
	for idx, dst := range map[uint32]*uint64{statEventsLost: &s.EventsLost, statRedirected: &s.Redirected, statBlocked: &s.Blocked} {
		if err := r.objs.Stats.Lookup(idx, dst); err != nil {
			return s, fmt.Errorf("ebpf: read stats: %w", err)
		}
	}
	return s, nil
}

// Close detaches every program, closes the ring buffer reader (ending the
// Events channel) and frees the maps. It is idempotent.
func (r *Redirector) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		// Links first: from here on no connect is redirected.
		for i := len(r.links) - 1; i >= 0; i-- {
			if err := r.links[i].Close(); err != nil {
				errs = append(errs, err)
			}
		}
		r.links = nil
		r.mu.Lock()
		r.closed = true
		if r.reader != nil {
			if err := r.reader.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs = append(errs, err)
			}
		}
		r.mu.Unlock()
		if err := r.objs.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			r.closeErr = fmt.Errorf("ebpf: close: %w", err)
		}
	})
	return r.closeErr
}

func (r *Redirector) wall(mono uint64) time.Time {
	return time.Unix(0, int64(mono)).Add(r.monoToWall)
}

// monoOffset is wall clock minus CLOCK_MONOTONIC, sampled once.
func monoOffset() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(time.Now().UnixNano() - ts.Nano())
}
