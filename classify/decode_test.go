package classify

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func zlibBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func flateBytes(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func brBytes(b []byte) []byte {
	var buf bytes.Buffer
	w := brotli.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

func zstdBytes(b []byte) []byte {
	w, _ := zstd.NewWriter(nil)
	defer w.Close()
	return w.EncodeAll(b, nil)
}

func TestDecodeBody(t *testing.T) {
	plain := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hello hello hello"}]}`)
	zeros := make([]byte, 4<<20)
	cases := []struct {
		name, ce string
		body     []byte
		max      int
		want     []byte
		err      error
	}{
		{name: "ok/identity", ce: "", body: plain, want: plain},
		{name: "ok/identity_token", ce: "identity", body: plain, want: plain},
		{name: "ok/gzip", ce: "gzip", body: gzipBytes(plain), want: plain},
		{name: "ok/x-gzip", ce: "X-GZIP", body: gzipBytes(plain), want: plain},
		{name: "ok/deflate_zlib", ce: "deflate", body: zlibBytes(plain), want: plain},
		{name: "ok/deflate_raw", ce: "deflate", body: flateBytes(plain), want: plain},
		{name: "ok/br", ce: "br", body: brBytes(plain), want: plain},
		{name: "ok/zstd", ce: "zstd", body: zstdBytes(plain), want: plain},
		{name: "ok/stacked_gzip_br", ce: "gzip, br", body: brBytes(gzipBytes(plain)), want: plain},
		{name: "ok/stacked_zstd_gzip", ce: "zstd,gzip", body: gzipBytes(zstdBytes(plain)), want: plain},
		{name: "fail/unknown", ce: "compress", body: plain, err: ErrUnknownEncoding},
		{name: "fail/identity_too_large", ce: "", body: plain, max: 10, err: ErrTooLarge},
		{name: "fail/gzip_too_large", ce: "gzip", body: gzipBytes(plain), max: 20, err: ErrTooLarge},
		{name: "fail/gzip_bomb", ce: "gzip", body: gzipBytes(zeros), max: 2 << 20, err: ErrBomb},
		{name: "fail/zstd_bomb", ce: "zstd", body: zstdBytes(zeros), max: 2 << 20, err: ErrBomb},
		{name: "fail/br_bomb", ce: "br", body: brBytes(zeros), max: 2 << 20, err: ErrBomb},
		{name: "fail/gzip_corrupt", ce: "gzip", body: []byte("not gzip at all")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBody(tc.ce, tc.body, tc.max)
			if tc.want != nil {
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
}

func FuzzDecodeBody(f *testing.F) {
	plain := []byte(`{"a":"b"}`)
	f.Add("gzip", gzipBytes(plain))
	f.Add("deflate", zlibBytes(plain))
	f.Add("deflate", flateBytes(plain))
	f.Add("br", brBytes(plain))
	f.Add("zstd", zstdBytes(plain))
	f.Add("gzip, br", brBytes(gzipBytes(plain)))
	f.Add("", plain)
	f.Fuzz(func(t *testing.T, ce string, body []byte) {
		out, err := DecodeBody(ce, body, 1<<20)
		if err == nil && len(out) > 1<<20 {
			t.Fatalf("decoded %d bytes over the cap", len(out))
		}
	})
}
