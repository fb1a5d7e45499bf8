package audit

import (
	"sort"
	"strings"
	"testing"
	"time"
)

func TestULID(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 8, 0, 0, 123_000_000, time.UTC)
	t.Run("ok/shape-and-time", func(t *testing.T) {
		for _, id := range []string{NewID(t0), new(IDGen).New(t0)} {
			if len(id) != 26 || strings.Trim(id, crockford) != "" {
				t.Fatalf("bad ULID %q", id)
			}
			got, err := IDTime(id)
			if err != nil || !got.Equal(t0) {
				t.Errorf("IDTime(%s) = %v, %v; want %v", id, got, err, t0)
			}
		}
	})
	t.Run("ok/known-encoding", func(t *testing.T) {
		// 48-bit time 0x0180_0000_0000 and random 0x00…01 (hand-encoded).
		got := encodeULID(0x018000000000, [10]byte{9: 1})
		if want := "01G00000000000000000000001"; got != want {
			t.Errorf("encode = %s, want %s", got, want)
		}
		max := encodeULID(maxULIDTime, [10]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		if max != "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" {
			t.Errorf("max = %s", max)
		}
	})
	t.Run("ok/monotonic-same-ms", func(t *testing.T) {
		var g IDGen
		ids := make([]string, 5000)
		for i := range ids {
			ids[i] = g.New(t0) // all in one millisecond
		}
		if !sort.StringsAreSorted(ids) {
			t.Fatal("IDs within one millisecond are not increasing")
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] == ids[i-1] {
				t.Fatal("duplicate ID")
			}
		}
	})
	t.Run("ok/clock-backwards-stays-monotonic", func(t *testing.T) {
		var g IDGen
		a := g.New(t0)
		b := g.New(t0.Add(-time.Second))
		if b <= a {
			t.Errorf("%s <= %s after the clock stepped back", b, a)
		}
	})
	t.Run("ok/overflow-moves-to-next-ms", func(t *testing.T) {
		g := IDGen{ms: ulidMillis(t0), rand: [10]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
		id := g.New(t0)
		got, _ := IDTime(id)
		if !got.Equal(t0.Add(time.Millisecond)) {
			t.Errorf("after overflow time = %v", got)
		}
	})
	t.Run("ok/sorts-by-time", func(t *testing.T) {
		a, b := NewID(t0), NewID(t0.Add(time.Millisecond))
		if a >= b {
			t.Errorf("%s >= %s", a, b)
		}
	})
	for _, bad := range []string{"", "01G0000000000000000000000", "01G0000000000000000000000U", "80000000000000000000000000", "01G00000000000000000000!01"} {
		t.Run("fail/"+bad, func(t *testing.T) {
			if _, err := IDTime(bad); err == nil {
				t.Errorf("IDTime(%q) succeeded", bad)
			}
		})
	}
}

func FuzzIDTime(f *testing.F) {
	f.Add("01G00000000000000000000001")
	f.Add("7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
	f.Add("01g0000000000000000000000o")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := IDTime(s)
		if err != nil {
			return
		}
		// A valid ID's time re-encodes to the same first 10 characters,
		// modulo Crockford's aliases.
		id := encodeULID(ulidMillis(ts), [10]byte{})
		norm := strings.NewReplacer("O", "0", "I", "1", "L", "1").Replace(strings.ToUpper(s[:10]))
		if id[:10] != norm {
			t.Errorf("IDTime(%q) = %v re-encodes to %s", s, ts, id[:10])
		}
	})
}

func BenchmarkIDGen(b *testing.B) {
	var g IDGen
	t0 := time.Now()
	for i := 0; i < b.N; i++ {
		_ = g.New(t0)
	}
}
