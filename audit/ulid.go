package audit

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// crockford is the Crockford base32 alphabet used by ULIDs.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// maxULIDTime is the largest millisecond timestamp a ULID holds (48 bits).
const maxULIDTime = 1<<48 - 1

// NewID returns a fresh ULID for t: 26 Crockford base32 characters, a 48-bit
// millisecond timestamp followed by 80 bits from crypto/rand. IDs made by
// NewID sort by time to the millisecond; within one millisecond their order
// is random. Use an IDGen where order within a millisecond matters.
func NewID(t time.Time) string {
	var r [10]byte
	mustRandom(r[:])
	return encodeULID(ulidMillis(t), r)
}

// IDGen makes ULIDs that increase strictly within one process: within the same
// millisecond (or when the clock steps back) the random part of the previous
// ID is incremented, as the ULID specification's monotonic mode says. The
// zero value is ready to use and safe for concurrent use.
type IDGen struct {
	mu   sync.Mutex
	ms   uint64
	rand [10]byte
}

// NewIDGen returns a new generator (the zero IDGen is equally usable).
func NewIDGen() *IDGen { return &IDGen{} }

// New returns the next ULID for t.
func (g *IDGen) New(t time.Time) string {
	ms := ulidMillis(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	if ms > g.ms {
		g.ms = ms
		mustRandom(g.rand[:])
		return encodeULID(g.ms, g.rand)
	}
	// Same millisecond, or the clock went back: stay on the last timestamp
	// and increment the 80-bit random part. On the (practically impossible)
	// overflow, move to the next millisecond so that IDs still increase.
	if incr80(&g.rand) {
		if g.ms < maxULIDTime {
			g.ms++
		}
		mustRandom(g.rand[:])
	}
	return encodeULID(g.ms, g.rand)
}

// incr80 adds one to the big-endian 80-bit number and reports overflow.
func incr80(b *[10]byte) bool {
	for i := len(b) - 1; i >= 0; i-- {
		b[i]++
		if b[i] != 0 {
			return false
		}
	}
	return true
}

func ulidMillis(t time.Time) uint64 {
	ms := t.UnixMilli()
	switch {
	case ms < 0:
		return 0
	case ms > maxULIDTime:
		return maxULIDTime
	}
	return uint64(ms)
}

// mustRandom fills b from crypto/rand. Since Go 1.24 crypto/rand.Read never
// returns an error (it crashes the program instead), so there is nothing to
// handle here.
func mustRandom(b []byte) {
	_, _ = rand.Read(b)
}

// encodeULID writes the 128-bit value (48-bit ms, 80-bit random) as 26
// base32 characters, most significant first.
func encodeULID(ms uint64, r [10]byte) string {
	// hi holds the top 64 bits, lo the bottom 64.
	hi := ms<<16 | uint64(r[0])<<8 | uint64(r[1])
	lo := binary.BigEndian.Uint64(r[2:])
	var out [26]byte
	// The first character carries the top 3 bits (128 = 3 + 25*5).
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// IDTime returns the timestamp of a ULID, to the millisecond.
func IDTime(id string) (time.Time, error) {
	if len(id) != 26 {
		return time.Time{}, errors.New("audit: ulid: want 26 characters")
	}
	var ms uint64
	for i := 0; i < 10; i++ {
		v := decodeCrockford(id[i])
		if v < 0 {
			return time.Time{}, errors.New("audit: ulid: invalid character")
		}
		ms = ms<<5 | uint64(v)
	}
	if ms > maxULIDTime {
		return time.Time{}, errors.New("audit: ulid: timestamp overflow")
	}
	for i := 10; i < 26; i++ {
		if decodeCrockford(id[i]) < 0 {
			return time.Time{}, errors.New("audit: ulid: invalid character")
		}
	}
	return time.UnixMilli(int64(ms)).UTC(), nil
}

func decodeCrockford(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		c -= 'a' - 'A'
	}
	switch c {
	case 'O':
		return 0
	case 'I', 'L':
		return 1
	case 'U':
		return -1
	}
	for i := 10; i < len(crockford); i++ {
		if crockford[i] == c {
			return i
		}
	}
	return -1
}
