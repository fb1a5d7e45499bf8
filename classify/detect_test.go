package classify

import (
	"bufio"
	"bytes"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

func mustDetector(t testing.TB, opts DetectorOptions) *Detector {
	t.Helper()
	d, err := NewDetector(opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fakeGitHubToken builds a ghX_ token with a valid CRC32/base62 checksum
// from an obviously fake entropy part.
func fakeGitHubToken(prefix string, seed int) string {
	const al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	ent := make([]byte, 30)
	for i := range ent {
		ent[i] = al[(i*7+seed)%len(al)]
	}
	return prefix + string(ent) + base62Pad(crc32.ChecksumIEEE(ent), 6)
}

var ghTemplate = regexp.MustCompile(`\{\{GH:(gh[pousr]_)\}\}`)

func expandTemplates(s string) string {
	n := 0
	return ghTemplate.ReplaceAllStringFunc(s, func(m string) string {
		n++
		return fakeGitHubToken(ghTemplate.FindStringSubmatch(m)[1], n*3+len(s))
	})
}

func types(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Type)
	}
	return out
}

func TestDetectTable(t *testing.T) {
	d := mustDetector(t, DetectorOptions{})
	ghp := fakeGitHubToken("ghp_", 1)
	badGhp := ghp[:len(ghp)-1] + "x"
	if badGhp == ghp {
		badGhp = ghp[:len(ghp)-1] + "y"
	}
	cases := []struct {
		name, text string
		want       []string // types in order; nil = no findings
		validated  bool     // first finding validated
	}{
		{"ok/aws_key", "key=AKIAIOSFODNN7EXAMPLE;", []string{"aws_access_key"}, false},
		{"ok/ghp_checksum", "token " + ghp, []string{"github_pat"}, true},
		{"ok/ghp_bad_checksum", "token " + badGhp, []string{"github_pat"}, false},
		{"ok/jwt_in_bearer", "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", []string{"jwt"}, true},
		{"ok/email", "write to jane@acme-corp.com.", []string{"email"}, true},
		{"ok/card_dashes", "4111-1111-1111-1111", []string{"payment_card"}, true},
		{"ok/amex", "amex 3782 822463 10005 ok", []string{"payment_card"}, true},
		{"ok/mc_2series", "card 2223003122003222", []string{"payment_card"}, true},
		{"ok/iban", "GB82 WEST 1234 5698 7654 32", []string{"iban"}, true},
		{"ok/ssn", "ssn 123-45-6789", []string{"us_ssn"}, true},
		{"ok/nino", "AB 12 34 56 C", []string{"uk_nino"}, true},
		{"ok/phone_e164", "+44 20 7946 0958", []string{"phone"}, true},
		{"ok/ip_private", "gw 192.168.0.1", []string{"ip_internal"}, true},
		{"ok/ip_public", "dns 1.1.1.1", []string{"ip_public"}, true},
		{"ok/ipv6_ula", "addr fd12:3456:789a:1::1", []string{"ip_internal"}, true},
		{"ok/db_url_wins_over_email", "postgres://u:Pa55w0rdX@db.acme.com/x", []string{"database_url"}, false},
		{"ok/private_key_json", `"private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKjMzEfYyjiWA4R4\n-----END PRIVATE KEY-----\n"`, []string{"private_key"}, true},
		{"ok/two_findings_sorted", "a@acme-corp.com then AKIAIOSFODNN7EXAMPLE", []string{"email", "aws_access_key"}, true},
		{"fail/email_retina_asset", "icon@2x.png", nil, false},
		{"fail/email_example_domain", "user@example.com", nil, false},
		{"fail/card_bad_luhn", "4111 1111 1111 1112", nil, false},
		{"fail/card_bad_grouping", "41111 11111 111111", nil, false},
		{"fail/iban_bad_checksum", "GB83WEST12345698765432", nil, false},
		{"fail/ssn_area_666", "666-45-6789", nil, false},
		{"fail/ssn_group_00", "123-00-6789", nil, false},
		{"fail/nino_bad_prefix", "QQ123456C", nil, false},
		{"fail/version_ip", "v1.2.3.4 and version 4.3.2.1", nil, false},
		{"fail/phone_no_separators", "id 4155552671", nil, false},
		{"fail/phone_date", "2024-01-15", nil, false},
		{"fail/uuid", "123e4567-e89b-12d3-a456-426614174000", nil, false},
		{"fail/placeholder_key", `api_key = "<your-api-key>"`, nil, false},
		{"fail/env_ref", `password: ${DB_PASSWORD}`, nil, false},
		{"fail/xxx", `token=xxxxxxxxxxxxxxxxxxxx`, nil, false},
		{"fail/code_ref", `password = config.password`, nil, false},
		{"fail/comparison", `if password == "hunter2x9!": pass`, nil, false},
		{"fail/prefix_in_word", "task-abcdefghijklmnopqrstuvwxyz", nil, false},
		{"fail/pem_header_only", "-----BEGIN RSA PRIVATE KEY-----", nil, false},
		{"fail/cpp_scope", "std::vector<Dec::Add> x;", nil, false},
		{"fail/mac", "00:1A:2B:3C:4D:5E", nil, false},
		{"fail/mailgun_without_context", "cache key-9e107d9d372bb6826bd81d3542a419d6", nil, false},
		{"ok/mailgun_with_context", "MAILGUN_KEY=key-9e107d9d372bb6826bd81d3542a419d6", []string{"mailgun_api_key"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := d.ScanString(c.text)
			got := types(fs)
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("types = %v, want %v (%+v)", got, c.want, fs)
			}
			if len(fs) > 0 && fs[0].Validated != c.validated {
				t.Errorf("validated = %v, want %v", fs[0].Validated, c.validated)
			}
		})
	}
}

func TestGitHubChecksum(t *testing.T) {
	for _, p := range []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"} {
		tok := fakeGitHubToken(p, 5)
		if !githubChecksumOK([]byte(tok)) {
			t.Errorf("checksum of %s rejected", tok)
		}
		bad := []byte(tok)
		bad[10] ^= 1
		if githubChecksumOK(bad) {
			t.Errorf("corrupted %s accepted", bad)
		}
	}
}

func TestKWMatcherAgainstNaive(t *testing.T) {
	kws := []string{"he", "she", "his", "hers", "akia", "sk-", "sk-ant-", "a"}
	m := newKWMatcher(kws)
	text := []byte("Ushers SHE said: AKIA sk-ant- task-x Hers")
	type hit struct{ kw, end int }
	var got []hit
	pos, st := 0, int32(0)
	for {
		p, s := m.next(text, pos, st)
		if p < 0 {
			break
		}
		for _, k := range m.outputs(s) {
			got = append(got, hit{int(k), p})
		}
		pos, st = p, s
	}
	var want []hit
	low := bytes.ToLower(text)
	for end := 1; end <= len(low); end++ {
		for k, kw := range kws {
			if end >= len(kw) && string(low[end-len(kw):end]) == kw {
				want = append(want, hit{k, end})
			}
		}
	}
	key := func(h []hit) []string {
		var s []string
		for _, x := range h {
			s = append(s, kws[x.kw]+"@"+string(rune('0'+x.end%10))+string(rune('A'+x.end/10)))
		}
		sort.Strings(s)
		return s
	}
	if strings.Join(key(got), " ") != strings.Join(key(want), " ") {
		t.Fatalf("got %v\nwant %v", key(got), key(want))
	}
}

func TestNegativeCorpus(t *testing.T) {
	d := mustDetector(t, DetectorOptions{})
	files, err := filepath.Glob("testdata/corpus/negative/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no negative corpus: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range d.Scan(b) {
			t.Errorf("%s: unexpected %s %q", filepath.Base(f), fd.Type, b[fd.Start:fd.End])
		}
	}
}

type labelled struct {
	Text   string `json:"text"`
	Expect []struct {
		Type string `json:"type"`
	} `json:"expect"`
}

func loadLabelled(t testing.TB) []labelled {
	fh, err := os.Open("testdata/corpus/labelled.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []labelled
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l labelled
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		l.Text = expandTemplates(l.Text)
		out = append(out, l)
	}
	return out
}

// validatedPII are the PII types whose detectors check a checksum or a
// numbering plan.
var validatedPII = map[string]bool{"payment_card": true, "iban": true, "phone": true, "us_ssn": true, "uk_nino": true}

func TestLabelledCorpus(t *testing.T) {
	d := mustDetector(t, DetectorOptions{})
	samples := loadLabelled(t)
	type stat struct{ tp, fn, fp int }
	cat := map[string]*stat{"secret": {}, "pii": {}, "validated_pii": {}}
	var nSecret, nPII, nBenign, benignHit int
	for i, s := range samples {
		fs := d.ScanString(s.Text)
		want := map[string]int{}
		for _, e := range s.Expect {
			want[e.Type]++
		}
		got := CountByType(fs)
		hasSecret, hasPII := false, false
		for typ, n := range want {
			c := "secret"
			if d.categoryOf(typ) == FindingPII {
				c = "pii"
				hasPII = true
			} else {
				hasSecret = true
			}
			hit := min(n, got[typ])
			cat[c].tp += hit
			cat[c].fn += n - hit
			if validatedPII[typ] {
				cat["validated_pii"].tp += hit
				cat["validated_pii"].fn += n - hit
			}
			if hit < n {
				t.Logf("miss #%d %s in %q (got %v)", i, typ, s.Text, types(fs))
			}
		}
		for _, f := range fs {
			if got[f.Type] > want[f.Type] {
				c := "secret"
				if f.Category == FindingPII {
					c = "pii"
				}
				cat[c].fp++
				got[f.Type]--
				t.Logf("extra #%d %s %q in %q", i, f.Type, s.Text[f.Start:f.End], s.Text)
			}
		}
		switch {
		case len(s.Expect) == 0:
			nBenign++
			if len(fs) > 0 {
				benignHit++
			}
		case hasSecret:
			nSecret++
		case hasPII:
			nPII++
		}
	}
	if nSecret < 100 || nPII < 50 || nBenign < 100 {
		t.Errorf("corpus too small: %d secret, %d pii, %d benign samples", nSecret, nPII, nBenign)
	}
	rec := map[string]float64{}
	for _, c := range []string{"secret", "pii", "validated_pii"} {
		s := cat[c]
		r := float64(s.tp) / float64(max(1, s.tp+s.fn))
		p := float64(s.tp) / float64(max(1, s.tp+s.fp))
		rec[c] = r
		t.Logf("%-14s recall %.3f precision %.3f (tp %d fn %d fp %d)", c, r, p, s.tp, s.fn, s.fp)
	}
	fpRate := float64(benignHit) / float64(max(1, nBenign))
	t.Logf("benign samples with findings: %d/%d (%.2f%%); samples: %d secret, %d pii", benignHit, nBenign, 100*fpRate, nSecret, nPII)
	if rec["secret"] < 0.95 {
		t.Errorf("secret recall %.3f < 0.95", rec["secret"])
	}
	if rec["validated_pii"] < 0.95 {
		t.Errorf("validated PII recall %.3f < 0.95", rec["validated_pii"])
	}
	if fpRate > 0.01 {
		t.Errorf("benign false positive rate %.3f > 1%%", fpRate)
	}
}

// categoryOf returns the category of a built-in type.
func (d *Detector) categoryOf(typ string) string {
	for _, p := range piiTypes {
		if p == typ {
			return FindingPII
		}
	}
	return FindingSecret
}

func TestSecretTypeCount(t *testing.T) {
	d := mustDetector(t, DetectorOptions{})
	n := 0
	for _, typ := range d.Types() {
		if d.categoryOf(typ) == FindingSecret {
			n++
		}
	}
	if n < 60 {
		t.Errorf("only %d secret types", n)
	}
	t.Logf("%d types, %d secret types", len(d.Types()), n)
}

func TestCustomRules(t *testing.T) {
	d := mustDetector(t, DetectorOptions{Custom: []CustomRule{
		{ID: "project_codename", Words: []string{"Bluebird", "Project Nightjar"}},
		{ID: "customer", Words: []string{"ACME"}, CaseSensitive: true, Confidence: 0.7},
		{ID: "ticket", Regex: `TCK-[0-9]{5}`, CaseSensitive: true},
	}})
	cases := []struct {
		name, text string
		want       []string
	}{
		{"ok/word_ci", "status of bluebird launch", []string{"project_codename"}},
		{"ok/phrase", "PROJECT NIGHTJAR is late", []string{"project_codename"}},
		{"ok/case_sensitive", "deal with ACME closed", []string{"customer"}},
		{"ok/regex", "see TCK-12345 for details", []string{"ticket"}},
		{"fail/case_sensitive", "acme is a word", nil},
		{"fail/inside_word", "bluebirds fly; xbluebird", nil},
		{"fail/regex_case", "tck-12345", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := types(d.ScanString(c.text))
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("got %v want %v", got, c.want)
			}
		})
	}
	fs := d.ScanString("ACME")
	if len(fs) != 1 || fs[0].Confidence != 0.7 || fs[0].Category != FindingCustom {
		t.Errorf("custom finding = %+v", fs)
	}
}

func TestNewDetectorErrors(t *testing.T) {
	cases := []struct {
		name string
		opts DetectorOptions
		want string
	}{
		{"fail/bad_regex", DetectorOptions{Custom: []CustomRule{{ID: "r1", Regex: "("}}}, `"r1"`},
		{"fail/empty_rule", DetectorOptions{Custom: []CustomRule{{ID: "r2"}}}, `"r2"`},
		{"fail/no_id", DetectorOptions{Custom: []CustomRule{{Words: []string{"x"}}}}, "empty id"},
		{"fail/clash", DetectorOptions{Custom: []CustomRule{{ID: "email", Words: []string{"x"}}}}, `"email"`},
		{"fail/bad_conf", DetectorOptions{Custom: []CustomRule{{ID: "r3", Words: []string{"x"}, Confidence: 2}}}, `"r3"`},
		{"fail/unknown_disable", DetectorOptions{DisableTypes: []string{"nope"}}, `"nope"`},
		{"ok/disable", DetectorOptions{DisableTypes: []string{"email", "jwt"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewDetector(c.opts)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "classify: ") {
				t.Fatalf("err = %v, want mention of %s", err, c.want)
			}
		})
	}
}

func TestDisableTypes(t *testing.T) {
	d := mustDetector(t, DetectorOptions{DisableTypes: []string{"email", "aws_access_key", "ip_public"}})
	fs := d.ScanString("a@acme-corp.com AKIAIOSFODNN7EXAMPLE 8.8.8.8 10.0.0.1")
	if got := strings.Join(types(fs), ","); got != "ip_internal" {
		t.Fatalf("got %s", got)
	}
}

func TestScanRequest(t *testing.T) {
	d := mustDetector(t, DetectorOptions{})
	r := &Request{Parts: []Part{
		{Role: RoleSystem, Text: "You are helpful."},
		{Role: RoleUser, Text: "my key is AKIAIOSFODNN7EXAMPLE and mail bob@acme-corp.com"},
	}}
	pf := d.ScanRequest(r)
	if len(pf) != 2 || pf[0].Part != 1 || pf[0].Type != "aws_access_key" || pf[1].Type != "email" {
		t.Fatalf("got %+v", pf)
	}
	txt := r.Parts[1].Text
	if txt[pf[0].Start:pf[0].End] != "AKIAIOSFODNN7EXAMPLE" {
		t.Errorf("offsets not relative to the part")
	}
	if d.ScanRequest(nil) != nil {
		t.Error("nil request")
	}
}

func TestCountByType(t *testing.T) {
	m := CountByType([]Finding{{Type: "a"}, {Type: "b"}, {Type: "a"}})
	if m["a"] != 2 || m["b"] != 1 {
		t.Fatal(m)
	}
}

func TestConcurrentScan(t *testing.T) {
	d := mustDetector(t, DetectorOptions{Custom: []CustomRule{{ID: "cn", Words: []string{"bluebird"}}}})
	samples := loadLabelled(t)
	want := make([][]Finding, len(samples))
	for i, s := range samples {
		want[i] = d.ScanString(s.Text)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, s := range samples {
				got := d.ScanString(s.Text)
				if len(got) != len(want[i]) {
					t.Errorf("sample %d: nondeterministic", i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestZeroAllocsWithoutCandidates(t *testing.T) {
	d := mustDetector(t, DetectorOptions{})
	text := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog while we review the quarterly plan. ", 50))
	if fs := d.Scan(text); len(fs) != 0 {
		t.Fatalf("unexpected findings %v", fs)
	}
	if n := testing.AllocsPerRun(20, func() { d.Scan(text) }); n != 0 {
		t.Errorf("allocs per scan = %v, want 0", n)
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{"", "AKIAIOSFODNN7EXAMPLE", "a@b.co", "+1 415-555-2671", "4111 1111 1111 1111",
		"-----BEGIN RSA PRIVATE KEY-----\nabc", "eyJhbGciOiJub25lIn0.eyJ9.", "postgres://a:b@c", "password: x",
		"fe80::1:2:3", "1.2.3.4", "GB82WEST12345698765432", "AB 12 34 56 C", "sk-ant-api03-", "\xff\x00@\xfe.com"} {
		f.Add([]byte(s))
	}
	d, err := NewDetector(DetectorOptions{Custom: []CustomRule{{ID: "w", Words: []string{"zz"}}, {ID: "r", Regex: "q+"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := d.Scan(b)
		prev := -1
		for _, x := range fs {
			if x.Start < 0 || x.End > len(b) || x.Start >= x.End {
				t.Fatalf("bad span %+v len %d", x, len(b))
			}
			if x.Start < prev {
				t.Fatalf("not sorted/overlapping %+v", fs)
			}
			prev = x.End
			if x.Confidence <= 0 || x.Confidence > 1 {
				t.Fatalf("confidence %v", x.Confidence)
			}
		}
	})
}

// ---- benchmarks ----

var proseWords = strings.Fields(`the of and to in a is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so what out up who them some could time
into two more other then than its only over new also after use how our work first well way even because any these give day
most us model prompt system review quarterly customer revenue growth budget design team meeting plan market product
summary report analysis policy security network request response latency token context window deploy cluster service`)

// genProse returns about n bytes of English-like prose with a few
// numbers, dates and punctuation, and no secrets or personal data.
func genProse(n int) []byte {
	var b bytes.Buffer
	x := uint32(2463534242)
	rnd := func(k int) int { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return int(x % uint32(k)) }
	for b.Len() < n {
		words := 8 + rnd(14)
		for w := 0; w < words; w++ {
			word := proseWords[rnd(len(proseWords))]
			if w == 0 {
				word = strings.ToUpper(word[:1]) + word[1:]
			}
			b.WriteString(word)
			switch rnd(40) {
			case 0:
				b.WriteString(",")
			case 1:
				b.WriteString(" in 2023")
			case 2:
				b.WriteString(" (about 12%)")
			}
			if w < words-1 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(". ")
		if rnd(6) == 0 {
			b.WriteString("\n\n")
		}
	}
	return b.Bytes()[:n]
}

var codeLines = []string{
	"func (s *Server) handle(w http.ResponseWriter, r *http.Request) error {",
	"\tctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)",
	"\tdefer cancel()",
	"\tif err := s.store.Put(ctx, key, value); err != nil {",
	"\t\treturn fmt.Errorf(\"server: put %s: %w\", key, err)",
	"\t}",
	"\tconst mask = 0xFFFF0000 | 0x1F // flags",
	"\tbuf := make([]byte, 4096)",
	"\ttokens := tokenizer.Encode(prompt.Text)",
	"\tlog.Debugf(\"read %d bytes from %s\", n, conn.RemoteAddr())",
	"def load_config(path: str) -> dict:",
	"    with open(path, encoding=\"utf-8\") as fh:",
	"        cfg = yaml.safe_load(fh)",
	"    password = os.environ.get(\"DB_PASSWORD\")",
	"    return {k: v for k, v in cfg.items() if not k.startswith(\"_\")}",
	"const url = `https://api.internal/v1/users/${userId}/orders?limit=50`;",
	"for (let i = 0; i < items.length; i++) { total += items[i].price * 1.2; }",
	"// See https://github.com/golang/go/issues/12345 for the history.",
	"x := sha256.Sum256(data) // e3b0c44298fc1c149afbf4c8996fb924",
	"\tcase 'a', 'b', 'c':",
	"    assert resp.status_code == 200, resp.text",
	"SELECT id, name, created_at FROM accounts WHERE org_id = $1 ORDER BY id LIMIT 100;",
}

// genCode returns about n bytes of mixed Go/Python/JS source code.
func genCode(n int) []byte {
	var b bytes.Buffer
	x := uint32(88172645)
	for b.Len() < n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b.WriteString(codeLines[x%uint32(len(codeLines))])
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

func benchScan(b *testing.B, text []byte) {
	d := mustDetector(b, DetectorOptions{})
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Scan(text)
	}
}

func BenchmarkScanProse(b *testing.B) { benchScan(b, genProse(1<<20)) }
func BenchmarkScanCode(b *testing.B)  { benchScan(b, genCode(1<<20)) }
func BenchmarkScan4KB(b *testing.B) {
	text := genProse(4096)
	copy(text[1000:], " contact me at jane.doe@acme-corp.com ")
	benchScan(b, text)
}

// pathological returns inputs that stress repeated keywords; Scan must
// stay linear on them (BenchmarkScanPathological measures it).
func pathological(n int) map[string][]byte {
	rep := func(s string) []byte { return bytes.Repeat([]byte(s), n/len(s)+1)[:n] }
	return map[string][]byte{
		"pem_headers": rep("-----BEGIN RSA PRIVATE KEY-----\n"),
		"dropbox":     rep("sl."),
		"bot":         rep("bot "),
		"scheme":      rep("a://"),
		"password":    rep("password=password "),
		"digits":      rep("1 2-3 4.5 "),
		"colons":      rep("1:a:"),
		"at":          rep("a@b."),
		"eyj":         rep("eyJ."),
	}
}

func TestScanPathologicalCompletes(t *testing.T) {
	d := mustDetector(t, DetectorOptions{})
	for name, in := range pathological(64 << 10) {
		fs := d.Scan(in)
		for _, f := range fs {
			if f.Start < 0 || f.End > len(in) || f.Start >= f.End {
				t.Errorf("%s: bad span %+v", name, f)
			}
		}
	}
}

func BenchmarkScanPathological(b *testing.B) {
	d := mustDetector(b, DetectorOptions{})
	for name, in := range pathological(256 << 10) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for i := 0; i < b.N; i++ {
				d.Scan(in)
			}
		})
	}
}
