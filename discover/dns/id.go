package dns

import (
	"crypto/rand"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// newULID returns a 26-character ULID-like ID: 48 bits of Unix milliseconds
// then 80 random bits, in Crockford base32, so IDs sort by time. It is the
// fallback when Config.NewID is nil.
func newULID(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	// 128 bits -> 26 base32 digits (the first digit carries 3 bits).
	var out [26]byte
	var acc uint64
	var hi uint64 // bits of b[0:8]
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
	}
	for i := 8; i < 16; i++ {
		acc = acc<<8 | uint64(b[i])
	}
	for i := 25; i >= 0; i-- {
		out[i] = crockford[acc&31]
		acc = acc>>5 | (hi&31)<<59
		hi >>= 5
	}
	return string(out[:])
}
