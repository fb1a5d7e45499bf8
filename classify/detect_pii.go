package classify

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// ---- email ----

var emailLocal = newByteSet("A-Za-z0-9._%+-")
var emailDomain = newByteSet("A-Za-z0-9.-")

// ccTLDs (ISO 3166 based, two letters) and common generic TLDs.
const ccTLDs = "ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo br bs bt bw by bz " +
	"ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm do dz ec ee eg er es et eu fi fj fk fm fo fr " +
	"ga gd ge gf gg gh gi gl gm gn gp gq gr gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp " +
	"ke kg kh ki km kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mg mh mk ml mm mn mo mp mq mr ms mt " +
	"mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pm pn pr ps pt pw py qa re ro rs ru " +
	"rw sa sb sc sd se sg sh si sk sl sm sn so sr ss st su sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz " +
	"ua ug uk us uy uz va vc ve vg vi vn vu wf ws ye yt za zm zw"

const gTLDs = "com org net edu gov mil int info biz name pro mobi asia tel travel jobs museum aero coop cat io ai dev app " +
	"xyz online site tech store cloud email page blog shop live news media agency digital global solutions company " +
	"group team work life world today network systems services consulting studio design software health bank law " +
	"finance capital ventures partners international center academy school university club social legal insurance " +
	"systems energy engineering science tools support security"

var tldSet = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range strings.Fields(ccTLDs + " " + gTLDs) {
		m[t] = true
	}
	return m
}()

var placeholderDomains = []string{"example.com", "example.org", "example.net", "domain.com", "email.com", "test.com", "yourcompany.com", "company.com"}

func (d *Detector) scanEmails(text []byte, st **scanState) {
	i := 0
	for i < len(text) {
		j := bytes.IndexByte(text[i:], '@')
		if j < 0 {
			return
		}
		at := i + j
		i = at + 1
		s := at
		for s > 0 && at-s <= 64 && emailLocal[text[s-1]] {
			s--
		}
		if at-s > 64 {
			continue
		}
		for s < at && (text[s] == '.' || text[s] == '-' || text[s] == '+') {
			s++
		}
		if s == at || text[at-1] == '.' {
			continue
		}
		if s > 0 {
			if p := text[s-1]; p == ':' || p == '/' || p == '@' || p == '\\' || p >= 0x80 {
				continue
			}
		}
		e := at + 1
		for e < len(text) && e-at <= 253 && emailDomain[text[e]] {
			e++
		}
		for e > at+1 && (text[e-1] == '.' || text[e-1] == '-') {
			e--
		}
		if e < len(text) && (text[e] == '@' || text[e] == '_' || text[e] >= 0x80) {
			continue
		}
		dom := text[at+1 : e]
		ld := bytes.LastIndexByte(dom, '.')
		if ld <= 0 {
			continue
		}
		tld := strings.ToLower(string(dom[ld+1:]))
		if !tldSet[tld] {
			continue
		}
		if bytes.Contains(dom, []byte("..")) || bytes.Contains(text[s:at], []byte("..")) {
			continue
		}
		ok := true
		for _, lbl := range bytes.Split(dom, []byte(".")) {
			if len(lbl) == 0 || lbl[0] == '-' || lbl[len(lbl)-1] == '-' || len(lbl) > 63 {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		ldom := strings.ToLower(string(dom))
		skip := false
		for _, p := range placeholderDomains {
			if ldom == p || strings.HasSuffix(ldom, "."+p) {
				skip = true
			}
		}
		if skip || strings.EqualFold(string(text[s:at]), "git") {
			continue
		}
		d.emitTo(st, Finding{Type: "email", Category: FindingPII, Start: s, End: e, Confidence: 0.85, Validated: true})
		i = e
	}
}

// ---- numbers: cards, phones, SSN, IBAN, NINO, IPv4 ----

// leftNumBoundary reports whether a number starting at s is not glued to
// an identifier, path, hash or version.
func leftNumBoundary(text []byte, s int) bool {
	if s == 0 {
		return true
	}
	p := text[s-1]
	switch {
	case ascAlnum(p), p == '_', p == '#', p == '/', p == '\\', p == '$', p == '@', p == '%', p == '&', p == '*', p >= 0x80:
		return false
	case p == '-' || p == '.' || p == ',':
		return s < 2 || !ascAlnum(text[s-2])
	}
	return true
}

// rightNumBoundary is the counterpart after a number ending at e.
func rightNumBoundary(text []byte, e int) bool {
	if e >= len(text) {
		return true
	}
	c := text[e]
	switch {
	case ascAlnum(c), c == '_', c == '@', c == '/', c == '\\', c >= 0x80:
		return false
	case c == '-' || c == '.' || c == ':' || c == ',':
		return e+1 >= len(text) || !ascAlnum(text[e+1])
	}
	return true
}

func (d *Detector) scanNumbers(text []byte, st **scanState) {
	n := len(text)
	i := 0
	for i < n {
		if !ascDigit(text[i]) {
			i++
			continue
		}
		s := i
		r := s
		for r < n && ascDigit(text[r]) {
			r++
		}
		next := r
		if f, ok := d.numberAt(text, s, r); ok {
			d.emitTo(st, f)
			if f.End > next {
				next = f.End
			}
		}
		i = next
	}
}

// numberAt tries every numeric detector at the digit run text[s:r].
func (d *Detector) numberAt(text []byte, s, r int) (Finding, bool) {
	// Letter-led formats first (IBAN, NINO): they own their left edge.
	if s >= 2 && ascUpper(text[s-1]) && ascUpper(text[s-2]) {
		if f, ok := ibanAt(text, s-2); ok {
			return f, true
		}
		if f, ok := ninoAt(text, s-2); ok {
			return f, true
		}
		return Finding{}, false
	}
	if s >= 3 && text[s-1] == ' ' && ascUpper(text[s-2]) && ascUpper(text[s-3]) {
		if f, ok := ninoAt(text, s-3); ok {
			return f, true
		}
	}
	ls := s
	if s > 0 && (text[s-1] == '+' || text[s-1] == '(') {
		ls = s - 1
		if ls > 0 && text[ls-1] == '+' {
			ls--
		}
	}
	if !leftNumBoundary(text, ls) {
		return Finding{}, false
	}
	if r-s <= 3 && r < len(text) && text[r] == '.' && ls == s {
		if f, ok := ipv4At(text, s); ok {
			return f, true
		}
	}
	if ls == s {
		if f, ok := cardAt(text, s); ok {
			return f, true
		}
		if f, ok := ssnAt(text, s, r); ok {
			return f, true
		}
	}
	return phoneAt(text, ls)
}

// ---- payment cards ----

func luhn(digits []byte) bool {
	sum, dbl := 0, false
	for i := len(digits) - 1; i >= 0; i-- {
		v := int(digits[i] - '0')
		if dbl {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return sum%10 == 0
}

func prefixNum(d []byte, k int) int {
	v := 0
	for i := 0; i < k && i < len(d); i++ {
		v = v*10 + int(d[i]-'0')
	}
	return v
}

// cardBrand returns the brand for the IIN and length, or "".
func cardBrand(d []byte) string {
	n := len(d)
	p1, p2, p3, p4, p6 := prefixNum(d, 1), prefixNum(d, 2), prefixNum(d, 3), prefixNum(d, 4), prefixNum(d, 6)
	switch {
	case p1 == 4 && (n == 13 || n == 16 || n == 19):
		return "visa"
	case (p2 >= 51 && p2 <= 55 || p4 >= 2221 && p4 <= 2720) && n == 16:
		return "mastercard"
	case (p2 == 34 || p2 == 37) && n == 15:
		return "amex"
	case (p4 == 6011 || p3 >= 644 && p3 <= 649 || p2 == 65 || p6 >= 622126 && p6 <= 622925) && n >= 16 && n <= 19:
		return "discover"
	case p4 >= 3528 && p4 <= 3589 && n >= 16 && n <= 19:
		return "jcb"
	case (p3 >= 300 && p3 <= 305 || p2 == 36 || p2 == 38 || p2 == 39) && n >= 14 && n <= 19:
		return "diners"
	case p2 == 62 && n >= 16 && n <= 19:
		return "unionpay"
	}
	return ""
}

var cardGroupings = [][]int{{4, 4, 4, 4}, {4, 4, 4, 4, 3}, {4, 6, 5}, {4, 6, 4}, {4, 4, 4, 2}, {4, 4, 4, 1}, {4, 4, 4, 4, 1}, {4, 4, 4, 4, 2}}

func cardAt(text []byte, s int) (Finding, bool) {
	c := text[s]
	if c < '2' || c > '6' {
		return Finding{}, false
	}
	var digits [19]byte
	var groups [8]int
	nd, ng := 0, 0
	var sep byte
	i := s
	for {
		g := 0
		for i < len(text) && ascDigit(text[i]) {
			if nd == 19 {
				return Finding{}, false
			}
			digits[nd] = text[i]
			nd++
			g++
			i++
		}
		if ng == len(groups) {
			return Finding{}, false
		}
		groups[ng] = g
		ng++
		if i+1 < len(text) && (text[i] == ' ' || text[i] == '-') && ascDigit(text[i+1]) && (sep == 0 || sep == text[i]) {
			sep = text[i]
			i++
			continue
		}
		break
	}
	if nd < 13 || !rightNumBoundary(text, i) {
		return Finding{}, false
	}
	if ng > 1 {
		match := false
		for _, gp := range cardGroupings {
			if len(gp) == ng {
				eq := true
				for k := range gp {
					if gp[k] != groups[k] {
						eq = false
						break
					}
				}
				match = match || eq
			}
		}
		if !match {
			return Finding{}, false
		}
	}
	dg := digits[:nd]
	if cardBrand(dg) == "" || !luhn(dg) {
		return Finding{}, false
	}
	// Reject trivially repeated digits (4444 4444 4444 4448 is still a
	// card-shaped test number; 0000... is not reachable here).
	conf := 0.95
	if ng == 1 {
		conf = 0.8
	}
	return Finding{Type: "payment_card", Category: FindingPII, Start: s, End: i, Confidence: conf, Validated: true}, true
}

// ---- US SSN ----

func ssnAt(text []byte, s, r int) (Finding, bool) {
	var d [9]byte
	var e int
	conf := 0.85
	switch {
	case r-s == 3 && r+8 <= len(text) && (text[r] == '-' || text[r] == ' '):
		sep := text[r]
		if !ascDigit(text[r+1]) || !ascDigit(text[r+2]) || text[r+3] != sep {
			return Finding{}, false
		}
		for k := 0; k < 4; k++ {
			if !ascDigit(text[r+4+k]) {
				return Finding{}, false
			}
		}
		copy(d[:3], text[s:r])
		copy(d[3:5], text[r+1:r+3])
		copy(d[5:], text[r+4:r+8])
		e = r + 8
		if sep == ' ' {
			conf = 0.7
		}
	case r-s == 9:
		from := max(0, s-40)
		ctx := bytes.ToLower(text[from:s])
		if !bytes.Contains(ctx, []byte("ssn")) && !bytes.Contains(ctx, []byte("social security")) {
			return Finding{}, false
		}
		copy(d[:], text[s:r])
		e = r
		conf = 0.75
	default:
		return Finding{}, false
	}
	if !rightNumBoundary(text, e) {
		return Finding{}, false
	}
	area := prefixNum(d[:], 3)
	if area == 0 || area == 666 || area >= 900 || (d[3] == '0' && d[4] == '0') || string(d[5:]) == "0000" {
		return Finding{}, false
	}
	return Finding{Type: "us_ssn", Category: FindingPII, Start: s, End: e, Confidence: conf, Validated: true}, true
}

// ---- UK National Insurance number ----

func ninoAt(text []byte, s int) (Finding, bool) {
	if s > 0 && ascWord(text[s-1]) {
		return Finding{}, false
	}
	a, b := text[s], text[s+1]
	if strings.IndexByte("DFIQUV", a) >= 0 || strings.IndexByte("DFIQUVO", b) >= 0 {
		return Finding{}, false
	}
	switch string(text[s : s+2]) {
	case "BG", "GB", "NK", "KN", "TN", "NT", "ZZ":
		return Finding{}, false
	}
	i := s + 2
	spaced := i < len(text) && text[i] == ' '
	nd := 0
	for nd < 6 {
		if spaced && nd%2 == 0 {
			if i >= len(text) || text[i] != ' ' {
				return Finding{}, false
			}
			i++
		}
		if i >= len(text) || !ascDigit(text[i]) {
			return Finding{}, false
		}
		i++
		nd++
	}
	if spaced && i < len(text) && text[i] == ' ' {
		i++
	}
	if i >= len(text) || text[i] < 'A' || text[i] > 'D' {
		return Finding{}, false
	}
	i++
	if i < len(text) && ascWord(text[i]) {
		return Finding{}, false
	}
	return Finding{Type: "uk_nino", Category: FindingPII, Start: s, End: i, Confidence: 0.85, Validated: true}, true
}

// ---- IBAN ----

var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
	"CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
	"FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
	"IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
	"LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
	"PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
	"SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

func ibanAt(text []byte, s int) (Finding, bool) {
	if s > 0 && ascWord(text[s-1]) {
		return Finding{}, false
	}
	want, ok := ibanLengths[string(text[s:s+2])]
	if !ok {
		return Finding{}, false
	}
	var buf [34]byte
	n := 0
	i := s
	for i < len(text) && n < want {
		c := text[i]
		if c == ' ' && n > 0 && n%4 == 0 && i+1 < len(text) && (ascUpper(text[i+1]) || ascDigit(text[i+1])) {
			i++
			continue
		}
		if !ascUpper(c) && !ascDigit(c) {
			break
		}
		buf[n] = c
		n++
		i++
	}
	if n != want || (i < len(text) && ascAlnum(text[i])) {
		return Finding{}, false
	}
	if !ascDigit(buf[2]) || !ascDigit(buf[3]) {
		return Finding{}, false
	}
	// mod 97 over rearranged digits.
	rem := 0
	for k := 0; k < n; k++ {
		c := buf[(k+4)%n]
		if ascDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	if rem != 1 {
		return Finding{}, false
	}
	return Finding{Type: "iban", Category: FindingPII, Start: s, End: i, Confidence: 0.95, Validated: true}, true
}

// ---- IPv4 ----

var versionWords = []string{"version", "ver", "v", "release", "build", "firmware", "chrome", "firefox", "safari",
	"edge", "python", "node", "go", "java", "rev", "revision", "update", "patch", "sdk", "api", "os", "ios", "android", "kernel"}

func ipv4At(text []byte, s int) (Finding, bool) {
	var oct [4]int
	i := s
	for k := 0; k < 4; k++ {
		st := i
		v := 0
		for i < len(text) && ascDigit(text[i]) && i-st < 4 {
			v = v*10 + int(text[i]-'0')
			i++
		}
		l := i - st
		if l == 0 || l > 3 || v > 255 || (l > 1 && text[st] == '0') {
			return Finding{}, false
		}
		oct[k] = v
		if k < 3 {
			if i >= len(text) || text[i] != '.' {
				return Finding{}, false
			}
			i++
		}
	}
	if !rightNumBoundary(text, i) || (i+1 < len(text) && text[i] == '.' && ascDigit(text[i+1])) {
		return Finding{}, false
	}
	if i < len(text) && text[i] == '-' {
		return Finding{}, false
	}
	// Version contexts: "==1.2.3.4", "v1.2.3.4", "version 1.2.3.4".
	if s > 0 {
		p := text[s-1]
		if p == '=' || p == '^' || p == '~' || p == '>' || p == '<' {
			if p != '=' || (s >= 2 && strings.IndexByte("=<>~!", text[s-2]) >= 0) {
				return Finding{}, false
			}
		}
	}
	j := s
	for j > 0 && s-j < 3 && (text[j-1] == ' ' || text[j-1] == ':' || text[j-1] == '=' || text[j-1] == '"' || text[j-1] == '\'') {
		j--
	}
	w := j
	for w > 0 && j-w < 12 && ascAlpha(text[w-1]) {
		w--
	}
	if w < j {
		word := strings.ToLower(string(text[w:j]))
		for _, vw := range versionWords {
			if word == vw {
				return Finding{}, false
			}
		}
	}
	a, b := oct[0], oct[1]
	if a == 0 || a == 255 || a >= 224 {
		return Finding{}, false
	}
	typ, conf := "ip_public", 0.7
	if a == 10 || a == 127 || (a == 172 && b >= 16 && b <= 31) || (a == 192 && b == 168) || (a == 169 && b == 254) || (a == 100 && b >= 64 && b <= 127) {
		typ, conf = "ip_internal", 0.6
	}
	return Finding{Type: typ, Category: FindingPII, Start: s, End: i, Confidence: conf, Validated: true}, true
}

// ---- IPv6 ----

var ip6Chars = newByteSet("0-9a-fA-F:.")

func (d *Detector) scanIPv6(text []byte, st **scanState) {
	i := 0
	for i < len(text) {
		j := bytes.IndexByte(text[i:], ':')
		if j < 0 {
			return
		}
		c := i + j
		// Expand.
		s := c
		for s > 0 && c-s < 45 && ip6Chars[text[s-1]] {
			s--
		}
		e := c
		for e < len(text) && e-s < 45 && ip6Chars[text[e]] {
			e++
		}
		for e > c && text[e-1] == '.' {
			e--
		}
		i = max(e, c+1)
		if s > 0 && (ascWord(text[s-1]) || text[s-1] == '.' || text[s-1] == '-') {
			continue
		}
		if e < len(text) && (ascWord(text[e]) || text[e] == '-') {
			continue
		}
		cand := text[s:e]
		colons := bytes.Count(cand, []byte(":"))
		dbl := bytes.Contains(cand, []byte("::"))
		if colons < 2 || (!dbl && colons != 7) {
			continue
		}
		hexd, maxg, digit := 0, 0, false
		for _, g := range bytes.Split(cand, []byte(":")) {
			if len(g) > maxg {
				maxg = len(g)
			}
			for _, ch := range g {
				if ascHex(ch) {
					hexd++
				}
				if ascDigit(ch) {
					digit = true
				}
			}
		}
		if !digit || maxg < 3 || hexd < 5 {
			continue
		}
		addr, err := netip.ParseAddr(string(cand))
		if err != nil || !addr.Is6() || addr.IsUnspecified() || addr.IsMulticast() {
			continue
		}
		typ, conf := "ip_public", 0.7
		if addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() {
			typ, conf = "ip_internal", 0.6
		}
		d.emitTo(st, Finding{Type: typ, Category: FindingPII, Start: s, End: e, Confidence: conf, Validated: true})
	}
}

// ---- phone numbers ----

// trunkRegions are tried for national numbers written with a leading 0.
var trunkRegions = []string{"GB", "DE", "FR"}

// phoneAt parses a phone candidate at s ('+', '(' or a digit). National
// numbers (no '+') need separators and a plausible shape: US 3-3-4
// (optionally 1-3-3-4) or a leading trunk 0 for GB/DE/FR.
func phoneAt(text []byte, s int) (Finding, bool) {
	plus := text[s] == '+'
	i := s
	if plus {
		i++
	}
	var groups [8]int
	ng, cur, nd, run := 0, 0, 0, 0
	var first byte
	end := i
	open, openAt := false, -1
	push := func() bool {
		if cur > 0 {
			if ng == len(groups) {
				return false
			}
			groups[ng] = cur
			ng++
			cur = 0
		}
		return true
	}
loop:
	for i < len(text) && i-s < 26 {
		c := text[i]
		switch {
		case ascDigit(c):
			if nd == 15 {
				return Finding{}, false
			}
			if nd == 0 {
				first = c
			}
			nd++
			cur++
			run = 0
			end = i + 1
		case c == '(' || c == ')' || c == ' ' || c == '-' || c == '.':
			if !push() {
				return Finding{}, false
			}
			run++
			if run > 2 {
				break loop
			}
			if c == '(' {
				if open {
					break loop
				}
				open, openAt = true, i
			} else if c == ')' {
				if !open {
					break loop
				}
				open = false
				if i == end {
					end = i + 1
				}
			}
		default:
			break loop
		}
		i++
	}
	if !push() {
		return Finding{}, false
	}
	if open && openAt < end {
		return Finding{}, false
	}
	if nd < 7 || (plus && nd < 8) || (!plus && ng < 2) {
		return Finding{}, false
	}
	if !rightNumBoundary(text, end) {
		return Finding{}, false
	}
	cand := text[s:end]
	if isDateLike(cand) || bytes.Count(cand, []byte(".")) >= 3 && !bytes.ContainsAny(cand, " -()") {
		return Finding{}, false
	}
	str := string(cand)
	if plus {
		num, err := phonenumbers.Parse(str, "")
		if err != nil || !phonenumbers.IsValidNumber(num) {
			return Finding{}, false
		}
		return Finding{Type: "phone", Category: FindingPII, Start: s, End: end, Confidence: 0.85, Validated: true}, true
	}
	g := groups[:ng]
	us := (ng == 3 && g[0] == 3 && g[1] == 3 && g[2] == 4) || (ng == 4 && first == '1' && g[0] == 1 && g[1] == 3 && g[2] == 3 && g[3] == 4)
	var regions []string
	switch {
	case us:
		regions = []string{"US"}
	case first == '0':
		regions = trunkRegions
	default:
		return Finding{}, false
	}
	for _, reg := range regions {
		num, err := phonenumbers.Parse(str, reg)
		if err == nil && phonenumbers.IsValidNumberForRegion(num, reg) {
			return Finding{Type: "phone", Category: FindingPII, Start: s, End: end, Confidence: 0.75, Validated: true}, true
		}
	}
	return Finding{}, false
}

// isDateLike matches dddd-dd-dd, dd/dd/dddd-ish shapes with one separator.
func isDateLike(b []byte) bool {
	var g [4]int
	ng := 0
	var sep byte
	cur := 0
	for _, c := range b {
		if ascDigit(c) {
			cur++
			continue
		}
		if sep == 0 {
			sep = c
		}
		if c != sep || ng == 3 {
			return false
		}
		g[ng] = cur
		ng++
		cur = 0
	}
	g[ng] = cur
	ng++
	if ng != 3 {
		return false
	}
	return (g[0] == 4 && g[1] <= 2 && g[2] <= 2) || (g[0] <= 2 && g[1] <= 2 && (g[2] == 4 || g[2] == 2))
}
