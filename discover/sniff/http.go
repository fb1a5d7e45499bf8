package sniff

import (
	"bytes"
	"strings"
)

const (
	httpNone = iota
	httpNeedMore
	httpFound
)

// parseHTTPHost finds the Host header of an HTTP/1.x request at the start
// of b. It returns httpNeedMore while the request line or a header line is
// incomplete and httpNone when b is not an HTTP request or has no Host.
func parseHTTPHost(b []byte) (string, int) {
	// Request line: METHOD SP target SP HTTP/1.x
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		if len(b) > 16 {
			return "", httpNone
		}
		return "", httpNeedMore
	}
	if sp == 0 || sp > 16 {
		return "", httpNone
	}
	for _, c := range b[:sp] {
		if (c < 'A' || c > 'Z') && c != '-' {
			return "", httpNone
		}
	}
	eol := bytes.IndexByte(b, '\n')
	if eol < 0 {
		return "", httpNeedMore
	}
	line := bytes.TrimRight(b[:eol], "\r")
	if !bytes.Contains(line, []byte(" HTTP/1.")) {
		return "", httpNone // HTTP/0.9 or HTTP/2 prior knowledge ("PRI * HTTP/2.0")
	}
	rest := b[eol+1:]
	for {
		eol = bytes.IndexByte(rest, '\n')
		if eol < 0 {
			return "", httpNeedMore
		}
		line = bytes.TrimRight(rest[:eol], "\r")
		rest = rest[eol+1:]
		if len(line) == 0 {
			return "", httpNone // end of headers, no Host
		}
		if len(line) > 5 && line[4] == ':' && asciiEqualFold(line[:4], "host") {
			h := strings.TrimSpace(string(line[5:]))
			return stripPort(h), httpFound
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// stripPort removes ":port" from a Host value ("[::1]:80" gives "::1").
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}
