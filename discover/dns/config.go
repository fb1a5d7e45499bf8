package dns

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/aigress/aigress/audit"
)

// Action is what the resolver does with a lookup of a catalog name.
type Action string

// Actions. The strings are the ones recorded in audit.DNSInfo.Action
// (which adds "cached" for a forwarded answer served from the cache).
const (
	ActionForward Action = "forward" // resolve upstream as usual
	ActionSteer   Action = "steer"   // answer A/AAAA with the proxy's address
	ActionRefuse  Action = "refuse"  // NXDOMAIN, or the block page address
	actionCached         = "cached"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout       = 2 * time.Second
	DefaultCacheSize     = 4096
	DefaultMaxTTL        = time.Hour
	DefaultMaxNegTTL     = 5 * time.Minute
	DefaultSteerTTL      = 30 * time.Second
	DefaultMaxInflight   = 256
	DefaultMaxTCPConns   = 256
	DefaultTCPIdle       = 8 * time.Second
	DefaultMaxTCPQueries = 128
	// upstreamUDPSize is the EDNS(0) buffer size we advertise upstream and to
	// clients: 1232 avoids IP fragmentation (DNS flag day 2020).
	upstreamUDPSize = 1232
	// readUDPSize is the largest UDP query we read; larger ones are dropped.
	readUDPSize = 4096
	// canaryName is Firefox's DoH canary domain: NXDOMAIN keeps Firefox on
	// the network's resolver.
	canaryName = "use-application-dns.net."
)

// Config configures a Server. Zero values take the defaults above.
type Config struct {
	// Listen is the UDP and TCP address, e.g. "127.0.0.1:53". Port 0 picks
	// a free port (the same one for UDP and TCP).
	Listen string
	// Upstreams are resolvers as host:port, tried in order; each try is
	// bounded by Timeout and a failure falls back to the next.
	Upstreams []string
	// Timeout bounds one upstream try.
	Timeout time.Duration
	// CacheSize is the number of cached answers (LRU).
	CacheSize int
	// MaxTTL caps how long a positive answer is cached.
	MaxTTL time.Duration
	// MaxNegTTL caps how long a negative answer (NXDOMAIN, NODATA) is cached.
	MaxNegTTL time.Duration
	// SteerTTL is the TTL of synthesised steer and refuse answers.
	SteerTTL time.Duration
	// AllowClients are the client networks served; anything else gets
	// REFUSED so the resolver is never open to other networks. Nil means
	// DefaultAllowClients (loopback, RFC 1918, ULA, link-local).
	AllowClients []netip.Prefix

	// Lookup says whether name (lower case, no trailing dot) belongs to an
	// AI service of the catalog. Nil: no name is an AI name.
	Lookup func(name string) (service, provider string, ok bool)
	// Policy decides the action for a catalog name. Nil: always forward.
	Policy func(name, service string, client netip.Addr) Action

	// SteerV4 and SteerV6 are the proxy's addresses returned for steered
	// names. An unset family answers NODATA, so clients use the other one.
	SteerV4, SteerV6 netip.Addr
	// BlockV4 and BlockV6, when set, answer refused names with a block page
	// address instead of NXDOMAIN.
	BlockV4, BlockV6 netip.Addr
	// StripECH removes the ech SvcParam from HTTPS/SVCB answers for catalog
	// names that are forwarded or steered (so the proxy sees the real SNI).
	StripECH bool

	// Emit receives one audit event per lookup of a catalog name. Nil: none.
	// It is called after the answer is written and must not block for long.
	Emit func(*audit.Event)
	// NewID returns a sortable event ID. Nil: a built-in ULID-like ID.
	NewID func(time.Time) string

	// MaxInflight bounds concurrent upstream queries; a query that cannot
	// get a slot within Timeout gets SERVFAIL.
	MaxInflight int
	// MaxTCPConns bounds concurrent client TCP connections.
	MaxTCPConns int
	// TCPIdleTimeout closes idle client TCP connections.
	TCPIdleTimeout time.Duration

	// Clock is for tests; nil means time.Now.
	Clock func() time.Time
}

// DefaultAllowClients returns loopback, RFC 1918, CGNAT-free private
// ranges, IPv6 ULA and link-local networks.
func DefaultAllowClients() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fc00::/7"),
		netip.MustParsePrefix("fe80::/10"),
	}
}

// withDefaults validates c and fills in its zero values.
func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		return c, fmt.Errorf("dns: listen address is empty")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return c, fmt.Errorf("dns: listen %q: %w", c.Listen, err)
	}
	if len(c.Upstreams) == 0 {
		return c, fmt.Errorf("dns: no upstream resolver")
	}
	for _, u := range c.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return c, fmt.Errorf("dns: upstream %q: %w", u, err)
		}
	}
	if c.SteerV4.IsValid() && !c.SteerV4.Is4() {
		return c, fmt.Errorf("dns: steer v4 address %s is not IPv4", c.SteerV4)
	}
	if c.SteerV6.IsValid() && !c.SteerV6.Is6() {
		return c, fmt.Errorf("dns: steer v6 address %s is not IPv6", c.SteerV6)
	}
	if c.BlockV4.IsValid() && !c.BlockV4.Is4() {
		return c, fmt.Errorf("dns: block v4 address %s is not IPv4", c.BlockV4)
	}
	if c.BlockV6.IsValid() && !c.BlockV6.Is6() {
		return c, fmt.Errorf("dns: block v6 address %s is not IPv6", c.BlockV6)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CacheSize <= 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = DefaultMaxTTL
	}
	if c.MaxNegTTL <= 0 {
		c.MaxNegTTL = DefaultMaxNegTTL
	}
	if c.SteerTTL <= 0 {
		c.SteerTTL = DefaultSteerTTL
	}
	if c.AllowClients == nil {
		c.AllowClients = DefaultAllowClients()
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxTCPConns <= 0 {
		c.MaxTCPConns = DefaultMaxTCPConns
	}
	if c.TCPIdleTimeout <= 0 {
		c.TCPIdleTimeout = DefaultTCPIdle
	}
	if c.NewID == nil {
		c.NewID = newULID
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return c, nil
}
