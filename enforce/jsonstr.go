package enforce

import (
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSONString decodes one JSON string token (quotes included) the way
// encoding/json does (invalid UTF-8 and lone surrogates become U+FFFD).
// When starts is non-nil, (*starts)[i] is set to the token offset of the
// unit (character or escape) that produced decoded byte i, and a final
// entry holds the offset of the closing quote.
func decodeJSONString(tok []byte, starts *[]int) ([]byte, bool) {
	if len(tok) < 2 || tok[0] != '"' || tok[len(tok)-1] != '"' {
		return nil, false
	}
	out := make([]byte, 0, len(tok))
	mark := func(at, n int) {
		if starts != nil {
			for k := 0; k < n; k++ {
				*starts = append(*starts, at)
			}
		}
	}
	end := len(tok) - 1
	for i := 1; i < end; {
		c := tok[i]
		switch {
		case c == '\\':
			if i+1 >= end {
				return nil, false
			}
			at := i
			e := tok[i+1]
			var r rune = -1
			switch e {
			case '"', '\\', '/':
				r = rune(e)
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			case 'u':
				r1, ok := hex4(tok, i+2, end)
				if !ok {
					return nil, false
				}
				i += 6
				if utf16.IsSurrogate(r1) {
					if i+1 < end && tok[i] == '\\' && tok[i+1] == 'u' {
						if r2, ok := hex4(tok, i+2, end); ok {
							if dec := utf16.DecodeRune(r1, r2); dec != utf8.RuneError {
								i += 6
								n := len(out)
								out = utf8.AppendRune(out, dec)
								mark(at, len(out)-n)
								continue
							}
						}
					}
					r1 = utf8.RuneError
				}
				n := len(out)
				out = utf8.AppendRune(out, r1)
				mark(at, len(out)-n)
				continue
			default:
				return nil, false
			}
			out = append(out, byte(r))
			mark(at, 1)
			i += 2
		case c < 0x20 || c == '"':
			return nil, false
		case c < utf8.RuneSelf:
			out = append(out, c)
			mark(i, 1)
			i++
		default:
			r, size := utf8.DecodeRune(tok[i:end])
			if r == utf8.RuneError && size == 1 {
				out = append(out, "\uFFFD"...)
				mark(i, 3)
				i++
				continue
			}
			out = append(out, tok[i:i+size]...)
			for k := 0; k < size; k++ {
				mark(i+k, 1)
			}
			i += size
		}
	}
	if starts != nil {
		*starts = append(*starts, end)
	}
	return out, true
}

func hex4(b []byte, i, end int) (rune, bool) {
	if i+4 > end {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return 0, false
		}
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string token. It escapes only what
// JSON requires (quote, backslash, control characters); other characters,
// including non-ASCII and <>&, are kept as they are. Invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONContent(dst, s)
	return append(dst, '"')
}

// appendJSONContent appends s escaped for use inside a JSON string.
func appendJSONContent(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// stringAfterKey finds, in a JSON text, the first string value whose key is
// one of keys (at any depth). It returns the value token's offsets.
func stringAfterKey(b []byte, keys ...string) (int, int, bool) {
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		j := stringEnd(b, i)
		if j < 0 {
			return 0, 0, false
		}
		k := skipSpace(b, j)
		if k < len(b) && b[k] == ':' {
			key := b[i+1 : j-1]
			for _, want := range keys {
				if string(key) == want {
					v := skipSpace(b, k+1)
					if v < len(b) && b[v] == '"' {
						if e := stringEnd(b, v); e > 0 {
							return v, e, true
						}
						return 0, 0, false
					}
					break
				}
			}
		}
		i = j - 1
	}
	return 0, 0, false
}

// stringEnd returns the offset just after the string token starting at i.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
