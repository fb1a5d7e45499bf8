package classify

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// DefaultMaxDecoded bounds a decoded request body when RequestInput.MaxDecoded is 0.
const DefaultMaxDecoded = 8 << 20

// Body decoding errors. DecodeBody wraps them with context; test with errors.Is.
var (
	ErrTooLarge        = errors.New("classify: decoded body too large")
	ErrBomb            = errors.New("classify: decompression bomb")
	ErrUnknownEncoding = errors.New("classify: unknown content encoding")
)

// bombRatio is the decoded/encoded size ratio above which a body that also
// exceeds bombMinSize is called a decompression bomb rather than merely too
// large. Real JSON compresses 5-20x; 100x means crafted repetition
// (deflate cannot exceed about 1032x, so the bar must be below that).
const (
	bombRatio   = 100
	bombMinSize = 1 << 20
)

// DecodeBody removes Content-Encoding from body. Stacked encodings
// ("gzip, br") are undone in reverse order. The decoded size is capped at
// max (DefaultMaxDecoded when max <= 0): ErrTooLarge when over it, ErrBomb
// when it is over it with an exploding compression ratio.
func DecodeBody(contentEncoding string, body []byte, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxDecoded
	}
	var codings []string
	for _, c := range strings.Split(contentEncoding, ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		if c != "" && c != "identity" {
			codings = append(codings, c)
		}
	}
	out := body
	for i := len(codings) - 1; i >= 0; i-- {
		dec, err := decodeOne(codings[i], out, max, len(body))
		if err != nil {
			return nil, err
		}
		out = dec
	}
	if len(out) > max {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, len(out), max)
	}
	return out, nil
}

func decodeOne(coding string, in []byte, max, wireSize int) ([]byte, error) {
	var r io.Reader
	switch coding {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(in))
		if err != nil {
			return nil, fmt.Errorf("classify: gzip: %w", err)
		}
		r = zr
	case "deflate":
		// RFC 9110 says zlib, but many servers and clients send raw deflate.
		if len(in) >= 2 && (uint16(in[0])<<8|uint16(in[1]))%31 == 0 && in[0]&0x0f == 8 {
			zr, err := zlib.NewReader(bytes.NewReader(in))
			if err != nil {
				return nil, fmt.Errorf("classify: deflate: %w", err)
			}
			r = zr
		} else {
			r = flate.NewReader(bytes.NewReader(in))
		}
	case "br":
		r = brotli.NewReader(bytes.NewReader(in))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(in),
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(max)+1),
			zstd.WithDecoderMaxWindow(uint64(max)+1))
		if err != nil {
			return nil, fmt.Errorf("classify: zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownEncoding, coding)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, int64(max)+1))
	if c, ok := r.(io.Closer); ok {
		_ = c.Close()
	}
	over := n > int64(max) || (err != nil && (errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded)))
	if over {
		if int64(max)+1 > bombMinSize && (int64(max)+1)/int64(wireSize+1) >= bombRatio {
			return nil, fmt.Errorf("%w: %s expands %d bytes past %d", ErrBomb, coding, wireSize, max)
		}
		return nil, fmt.Errorf("%w: %s over %d bytes", ErrTooLarge, coding, max)
	}
	if err != nil {
		return nil, fmt.Errorf("classify: %s: %w", coding, err)
	}
	return buf.Bytes(), nil
}
