package classify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"hash/crc32"
	"regexp"
	"strings"
)

// checkRes is what a detRule-specific check says about a candidate token.
type checkRes struct {
	ok        bool
	validated bool
	conf      float64 // 0 keeps the detRule's confidence
	typ       string  // "" keeps the detRule's type
}

type checkFunc func(text []byte, s, e int) checkRes

// anchorSpec describes a fixed-prefix token: prefix (exact case) followed
// by a run of body bytes whose length is in [min, max].
type anchorSpec struct {
	typ    string
	extra  []string // other types check may return
	conf   float64
	prefix string
	body   string // byteSet spec
	min    int
	max    int
	re     string // optional full-token structure
	check  checkFunc
}

func anchored(a anchorSpec) detRule {
	body := newByteSet(a.body)
	var re *regexp.Regexp
	if a.re != "" {
		re = regexp.MustCompile("^(?:" + a.re + ")$")
	}
	prefix := a.prefix
	trimDot := body['.']
	return detRule{types: append([]string{a.typ}, a.extra...), keywords: []string{prefix}, fn: func(st *scanState, ri int, text []byte, ks, ke int) {
		if string(text[ks:ke]) != prefix {
			return
		}
		if ks > 0 && ascWord(text[ks-1]) {
			return
		}
		// A hit inside a run this rule already examined ("sl.sl.sl.")
		// is part of that run: skip it, which keeps the scan linear.
		if int32(ks) < st.lastWinE[ri] {
			return
		}
		j, lim := ke, ke+a.max+1
		for j < len(text) && j < lim && body[text[j]] {
			j++
		}
		st.lastWinE[ri] = int32(j)
		if trimDot {
			for j > ke && text[j-1] == '.' {
				j--
			}
		}
		if n := j - ke; n < a.min || n > a.max {
			return
		}
		tok := text[ks:j]
		if re != nil && !re.Match(tok) {
			return
		}
		f := Finding{Type: a.typ, Category: FindingSecret, Start: ks, End: j, Confidence: a.conf}
		if a.check != nil {
			r := a.check(text, ks, j)
			if !r.ok {
				return
			}
			applyCheck(&f, r)
		}
		st.emit(f)
	}}
}

func applyCheck(f *Finding, r checkRes) {
	f.Validated = r.validated
	if r.conf > 0 {
		f.Confidence = r.conf
	}
	if r.typ != "" {
		f.Type = r.typ
	}
}

// windowSpec describes a format found by a regexp in a window around a
// context keyword. Group 1, when present, is the reported span.
type windowSpec struct {
	typ        string
	conf       float64
	keywords   []string
	before     int
	after      int
	re         string
	bound      string // bytes that must not touch the span
	minEntropy float64
	check      checkFunc
}

func windowed(w windowSpec) detRule {
	re := regexp.MustCompile(w.re)
	var bound *byteSet
	if w.bound != "" {
		bound = newByteSet(w.bound)
	}
	return detRule{types: []string{w.typ}, keywords: w.keywords, fn: func(st *scanState, ri int, text []byte, ks, ke int) {
		ws, we := ks-w.before, ke+w.after
		if ws < 0 {
			ws = 0
		}
		if we > len(text) {
			we = len(text)
		}
		// Hits close to each other share one window: rescan only once the
		// new keyword is past the middle of the last window's tail, so
		// the regexp work stays linear in the text.
		if st.lastWinE[ri] > 0 && int32(ws) >= st.lastWinS[ri] && int32(ke+w.after/2) <= st.lastWinE[ri] {
			return
		}
		st.lastWinS[ri], st.lastWinE[ri] = int32(ws), int32(we)
		for _, m := range re.FindAllSubmatchIndex(text[ws:we], -1) {
			s, e := m[0], m[1]
			if len(m) >= 4 && m[2] >= 0 {
				s, e = m[2], m[3]
			}
			s, e = s+ws, e+ws
			if e <= s {
				continue
			}
			if bound != nil && ((s > 0 && bound[text[s-1]]) || (e < len(text) && bound[text[e]])) {
				continue
			}
			if w.minEntropy > 0 && shannonBits(text[s:e]) < w.minEntropy {
				continue
			}
			f := Finding{Type: w.typ, Category: FindingSecret, Start: s, End: e, Confidence: w.conf}
			if w.check != nil {
				r := w.check(text, s, e)
				if !r.ok {
					continue
				}
				applyCheck(&f, r)
			}
			st.emit(f)
		}
	}}
}

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// base62Pad encodes v in base62, left-padded with '0' to width.
func base62Pad(v uint32, width int) string {
	buf := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		buf[i] = base62Alphabet[v%62]
		v /= 62
	}
	if v != 0 {
		return ""
	}
	return string(buf)
}

// githubChecksumOK validates a ghX_ token: the last 6 characters are the
// CRC32 (IEEE) of the 30 random characters, base62, zero-padded.
func githubChecksumOK(tok []byte) bool {
	if len(tok) != 40 || tok[3] != '_' {
		return false
	}
	ent := tok[4:34]
	return base62Pad(crc32.ChecksumIEEE(ent), 6) == string(tok[34:])
}

func githubCheck(text []byte, s, e int) checkRes {
	if githubChecksumOK(text[s:e]) {
		return checkRes{ok: true, validated: true, conf: 0.99}
	}
	if shannonBits(text[s+4:e]) < 3.0 {
		return checkRes{}
	}
	return checkRes{ok: true, conf: 0.8}
}

func entropyCheck(min float64) checkFunc {
	return func(text []byte, s, e int) checkRes {
		return checkRes{ok: shannonBits(text[s:e]) >= min}
	}
}

var openAIMarker = []byte("T3BlbkFJ")

func openAICheck(text []byte, s, e int) checkRes {
	tok := text[s:e]
	body := tok[3:]
	switch {
	case bytes.HasPrefix(body, []byte("ant-")):
		return checkRes{} // anthropic detRule
	case bytes.HasPrefix(body, []byte("or-v1-")):
		if len(body) == 6+64 && allHex(body[6:]) {
			return checkRes{ok: true, conf: 0.97, validated: true, typ: "openrouter_api_key"}
		}
		return checkRes{}
	case bytes.HasPrefix(body, []byte("proj-")), bytes.HasPrefix(body, []byte("svcacct-")), bytes.HasPrefix(body, []byte("admin-")):
		i := bytes.IndexByte(body, '-')
		rest := body[i+1:]
		if len(rest) < 40 || shannonBits(rest) < 3.5 {
			return checkRes{}
		}
		r := checkRes{ok: true, conf: 0.95, validated: bytes.Contains(rest, openAIMarker)}
		if r.validated {
			r.conf = 0.98
		}
		if body[0] == 'a' {
			r.typ = "openai_admin_key"
		}
		return r
	}
	if len(body) != 48 {
		return checkRes{}
	}
	for _, c := range body {
		if !ascAlnum(c) {
			return checkRes{}
		}
	}
	if bytes.Equal(body[20:28], openAIMarker) {
		return checkRes{ok: true, validated: true, conf: 0.98}
	}
	if shannonBits(body) < 4.0 {
		return checkRes{}
	}
	return checkRes{ok: true, conf: 0.7}
}

// contextCheck requires one of words (lower case) in the bytes before the
// candidate, for formats too generic to stand alone ("key-" + 32 hex).
func contextCheck(before int, words ...string) checkFunc {
	return func(text []byte, s, _ int) checkRes {
		ctx := text[max(0, s-before):s]
		for _, w := range words {
			for i := 0; i+len(w) <= len(ctx); i++ {
				if hasPrefixFold(ctx, i, w) {
					return checkRes{ok: true}
				}
			}
		}
		return checkRes{}
	}
}

func allHex(b []byte) bool {
	for _, c := range b {
		if !ascHex(c) {
			return false
		}
	}
	return len(b) > 0
}

func anthropicCheck(text []byte, s, e int) checkRes {
	tok := text[s:e]
	if bytes.HasPrefix(tok, []byte("sk-ant-admin")) {
		return checkRes{ok: true, validated: true, typ: "anthropic_admin_key"}
	}
	return checkRes{ok: true, validated: true}
}

func googleKeyCheck(text []byte, s, e int) checkRes {
	from := s - 300
	if from < 0 {
		from = 0
	}
	ctx := bytes.ToLower(text[from:s])
	for _, k := range []string{"gemini", "generativelanguage", "genai", "google_ai", "aistudio"} {
		if bytes.Contains(ctx, []byte(k)) {
			return checkRes{ok: true, typ: "google_ai_api_key"}
		}
	}
	return checkRes{ok: true}
}

// secretRules returns the built-in secret detectors.
func secretRules() []detRule {
	const (
		alnum  = "A-Za-z0-9"
		urlb64 = "A-Za-z0-9_-"
		hexl   = "a-f0-9"
	)
	a := func(typ, prefix, body string, min, max int, conf float64) anchorSpec {
		return anchorSpec{typ: typ, prefix: prefix, body: body, min: min, max: max, conf: conf}
	}
	var rs []detRule
	add := func(specs ...anchorSpec) {
		for _, s := range specs {
			rs = append(rs, anchored(s))
		}
	}
	// AWS
	for _, p := range []string{"AKIA", "ASIA", "ABIA", "ACCA"} {
		add(a("aws_access_key", p, "A-Z2-7", 16, 16, 0.95))
	}
	// Google
	g := a("gcp_api_key", "AIza", urlb64, 35, 35, 0.9)
	g.extra, g.check = []string{"google_ai_api_key"}, googleKeyCheck
	add(g,
		a("gcp_oauth_client_secret", "GOCSPX-", urlb64, 28, 28, 0.95),
		a("gcp_oauth_token", "ya29.", urlb64, 30, 2048, 0.85))
	// GitHub
	for _, p := range []struct{ prefix, typ string }{
		{"ghp_", "github_pat"}, {"gho_", "github_oauth"}, {"ghu_", "github_app_token"},
		{"ghs_", "github_app_token"}, {"ghr_", "github_refresh_token"},
	} {
		s := a(p.typ, p.prefix, alnum, 36, 36, 0.8)
		s.check = githubCheck
		add(s)
	}
	add(anchorSpec{typ: "github_pat", prefix: "github_pat_", body: alnum + "_", min: 82, max: 82,
		re: `github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}`, conf: 0.97})
	// GitLab
	add(anchorSpec{typ: "gitlab_pat", prefix: "glpat-", body: urlb64 + ".", min: 20, max: 80,
		re: `glpat-[A-Za-z0-9_-]{20,}(?:\.[0-9a-z]{2}\.[0-9a-z]{7,9})?`, conf: 0.95},
		a("gitlab_runner_token", "glrt-", urlb64+".", 20, 80, 0.95),
		a("gitlab_trigger_token", "glptt-", hexl, 40, 40, 0.95),
		a("gitlab_deploy_token", "gldt-", urlb64, 20, 80, 0.95))
	// Slack
	add(anchorSpec{typ: "slack_bot_token", prefix: "xoxb-", body: alnum + "-", min: 30, max: 200,
		re: `xoxb-[0-9]{10,13}-[0-9]{10,13}-[A-Za-z0-9]{24,34}`, conf: 0.97},
		anchorSpec{typ: "slack_user_token", prefix: "xoxp-", body: alnum + "-", min: 60, max: 200,
			re: `xoxp-[0-9]{10,13}-[0-9]{10,13}-[0-9]{10,13}-[a-f0-9]{32}`, conf: 0.97},
		anchorSpec{typ: "slack_app_token", prefix: "xapp-", body: alnum + "-", min: 60, max: 200,
			re: `xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,14}-[a-f0-9]{64}`, conf: 0.97},
		anchorSpec{typ: "slack_config_token", prefix: "xoxe", body: alnum + ".-", min: 140, max: 220,
			re: `xoxe(?:\.xox[bp])?-[0-9]-[A-Za-z0-9]{140,200}`, conf: 0.95})
	for _, p := range []string{"xoxa-", "xoxr-", "xoxs-"} {
		add(anchorSpec{typ: "slack_token", prefix: p, body: alnum + "-", min: 20, max: 200,
			re: `xox[ars]-(?:[0-9]+-)+[0-9A-Za-z]{10,}`, conf: 0.9})
	}
	// Stripe
	add(a("stripe_secret_key", "sk_live_", alnum, 24, 247, 0.97),
		a("stripe_restricted_key", "rk_live_", alnum, 24, 247, 0.97),
		a("stripe_test_key", "sk_test_", alnum, 24, 247, 0.6),
		a("stripe_test_key", "rk_test_", alnum, 24, 247, 0.6),
		a("stripe_webhook_secret", "whsec_", alnum+"+/=", 32, 64, 0.9))
	// AI providers
	oa := a("openai_api_key", "sk-", urlb64, 20, 250, 0.9)
	oa.extra, oa.check = []string{"openai_admin_key", "openrouter_api_key"}, openAICheck
	an := anchorSpec{typ: "anthropic_api_key", extra: []string{"anthropic_admin_key"}, prefix: "sk-ant-", body: urlb64,
		min: 80, max: 140, re: `sk-ant-(?:api|admin|oat|ort)[0-9]{2}-[A-Za-z0-9_-]{70,125}`, conf: 0.98, check: anthropicCheck}
	hf := a("huggingface_token", "hf_", alnum, 34, 40, 0.9)
	hf.check = entropyCheck(3.5)
	hfo := a("huggingface_token", "api_org_", alnum, 34, 34, 0.9)
	hfo.check = entropyCheck(3.5)
	add(oa, an, hf, hfo,
		a("groq_api_key", "gsk_", alnum, 52, 52, 0.95),
		a("replicate_api_token", "r8_", alnum, 37, 37, 0.9),
		a("perplexity_api_key", "pplx-", alnum, 48, 48, 0.95),
		a("xai_api_key", "xai-", alnum, 80, 80, 0.95),
		a("tavily_api_key", "tvly-", alnum+"-", 32, 48, 0.9),
		anchorSpec{typ: "langsmith_api_key", prefix: "lsv2_", body: hexl + "_pskt", min: 40, max: 60,
			re: `lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}`, conf: 0.95})
	// Package registries and dev platforms
	add(a("npm_token", "npm_", alnum, 36, 36, 0.95),
		a("pypi_token", "pypi-AgEIcHlwaS5vcmc", urlb64, 50, 400, 0.98),
		anchorSpec{typ: "sendgrid_api_key", prefix: "SG.", body: urlb64 + ".", min: 66, max: 66,
			re: `SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}`, conf: 0.97},
		anchorSpec{typ: "mailgun_api_key", prefix: "key-", body: hexl, min: 32, max: 32, conf: 0.85, check: contextCheck(200, "mailgun", "mg_api", "mg-api")},
		a("shopify_access_token", "shpat_", "a-fA-F0-9", 32, 32, 0.97),
		a("shopify_custom_app_token", "shpca_", "a-fA-F0-9", 32, 32, 0.97),
		a("shopify_private_app_token", "shppa_", "a-fA-F0-9", 32, 32, 0.97),
		a("shopify_shared_secret", "shpss_", "a-fA-F0-9", 32, 32, 0.97),
		a("square_access_token", "sq0atp-", urlb64, 22, 22, 0.95),
		a("square_oauth_secret", "sq0csp-", urlb64, 43, 43, 0.95),
		a("digitalocean_pat", "dop_v1_", hexl, 64, 64, 0.98),
		a("digitalocean_oauth_token", "doo_v1_", hexl, 64, 64, 0.98),
		a("digitalocean_refresh_token", "dor_v1_", hexl, 64, 64, 0.98),
		a("linear_api_key", "lin_api_", alnum, 40, 40, 0.97),
		a("notion_token", "ntn_", alnum, 46, 46, 0.95),
		a("atlassian_api_token", "ATATT3", urlb64+"=", 150, 250, 0.95),
		a("newrelic_user_key", "NRAK-", "A-Z0-9", 27, 27, 0.95),
		a("newrelic_insert_key", "NRII-", urlb64, 32, 32, 0.95),
		a("newrelic_browser_key", "NRJS-", hexl, 19, 19, 0.9),
		a("sentry_auth_token", "sntrys_", alnum+"+/=_", 60, 400, 0.95),
		a("sentry_auth_token", "sntryu_", hexl, 64, 64, 0.95),
		anchorSpec{typ: "doppler_token", prefix: "dp.", body: alnum + ".", min: 43, max: 55,
			re: `dp\.(?:pt|st|ct|sa|scim|audit)\.[A-Za-z0-9]{40,44}`, conf: 0.95},
		a("vault_token", "hvs.", urlb64, 24, 130, 0.9),
		a("vault_token", "hvb.", urlb64, 24, 300, 0.9),
		a("dropbox_access_token", "sl.", urlb64+".", 130, 1400, 0.85),
		a("age_secret_key", "AGE-SECRET-KEY-1", "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58, 58, 0.99),
		anchorSpec{typ: "databricks_token", prefix: "dapi", body: hexl + "-", min: 32, max: 34,
			re: `dapi[a-f0-9]{32}(?:-[0-9])?`, conf: 0.9},
		a("pulumi_access_token", "pul-", hexl, 40, 40, 0.95),
		anchorSpec{typ: "postman_api_key", prefix: "PMAK-", body: hexl + "-", min: 59, max: 59,
			re: `PMAK-[a-f0-9]{24}-[a-f0-9]{34}`, conf: 0.97},
		a("grafana_cloud_token", "glc_", alnum+"+/=", 32, 400, 0.9),
		anchorSpec{typ: "grafana_service_account_token", prefix: "glsa_", body: alnum + "_", min: 41, max: 41,
			re: `glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}`, conf: 0.97},
		anchorSpec{typ: "mapbox_secret_token", prefix: "sk.eyJ", body: urlb64 + ".", min: 60, max: 400,
			re: `sk\.eyJ[A-Za-z0-9_-]{50,}\.[A-Za-z0-9_-]{20,}`, conf: 0.95},
		a("planetscale_token", "pscale_tkn_", urlb64+".", 43, 43, 0.95),
		a("planetscale_password", "pscale_pw_", urlb64+".", 43, 43, 0.95),
		a("supabase_token", "sbp_", hexl, 40, 40, 0.95),
		a("twilio_api_key", "SK", hexl, 32, 32, 0.8),
		a("jfrog_api_key", "AKCp", alnum, 69, 73, 0.9),
		anchorSpec{typ: "airtable_pat", prefix: "pat", body: alnum + ".", min: 79, max: 79,
			re: `pat[A-Za-z0-9]{14}\.[a-f0-9]{64}`, conf: 0.95},
		a("heroku_api_key", "HRKU-", urlb64, 60, 60, 0.95),
		a("square_access_token", "EAAA", urlb64, 60, 60, 0.7))
	nt := a("notion_token", "secret_", alnum, 43, 43, 0.85)
	nt.check = entropyCheck(4.0)
	add(nt)

	// Context (windowed) formats.
	const assign = `["'\]]*\s*(?:[:=]|:=|=>)\s*["']?`
	ws := []windowSpec{
		{typ: "aws_secret_key", conf: 0.9, keywords: []string{"secret_access_key", "aws_secret", "secretaccesskey", "aws secret", "secret access key", "aws_secret_key"},
			before: 30, after: 90, re: `(?i)(?:aws[_ .-]?)?secret[_ .-]?(?:access[_ .-]?)?key(?:[_ .-]?id)?` + assign + `([A-Za-z0-9/+]{40})`,
			bound: "A-Za-z0-9/+=", minEntropy: 3.5},
		{typ: "aws_session_token", conf: 0.85, keywords: []string{"aws_session_token", "awssessiontoken"}, before: 0, after: 1200,
			re: `(?i)aws_?session_?token` + assign + `([A-Za-z0-9/+=]{100,1000})`, bound: "A-Za-z0-9/+="},
		{typ: "gcp_service_account", conf: 0.9, keywords: []string{"service_account"}, before: 40, after: 5,
			re: `"type"\s*:\s*"service_account"`},
		{typ: "gcp_service_account", conf: 0.95, keywords: []string{"private_key_id"}, before: 2, after: 70,
			re: `"private_key_id"\s*:\s*"([a-f0-9]{40})"`},
		{typ: "azure_storage_key", conf: 0.95, keywords: []string{"accountkey="}, before: 0, after: 100,
			re: `(?i)AccountKey=([A-Za-z0-9+/]{86}==)`, bound: "A-Za-z0-9+/"},
		{typ: "azure_connection_string", conf: 0.97, keywords: []string{"defaultendpointsprotocol="}, before: 0, after: 400,
			re: `DefaultEndpointsProtocol=https?;AccountName=[A-Za-z0-9]{3,24};AccountKey=[A-Za-z0-9+/]{86}==(?:;EndpointSuffix=[A-Za-z0-9.]+)?`},
		{typ: "azure_sas_token", conf: 0.85, keywords: []string{"sv=20"}, before: 200, after: 400,
			re: `sv=20[0-9]{2}-[0-9]{2}-[0-9]{2}&[A-Za-z0-9%&=:._-]{10,300}?sig=[A-Za-z0-9%+/=]{40,120}`},
		{typ: "azure_ad_client_secret", conf: 0.9, keywords: []string{"q~"}, before: 5, after: 40,
			re: `([A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})`, bound: "A-Za-z0-9_~.-", minEntropy: 3.5},
		{typ: "twilio_auth_token", conf: 0.85, keywords: []string{"twilio"}, before: 0, after: 80,
			re: `(?i)twilio[\w.-]{0,20}(?:auth)?[_-]?token` + assign + `([a-f0-9]{32})`, bound: "A-Za-z0-9"},
		{typ: "datadog_api_key", conf: 0.85, keywords: []string{"dd_api_key", "datadog_api_key", "dd-api-key", "datadog-api-key", "ddapikey"}, before: 10, after: 70,
			re: `(?i)(?:dd|datadog)[_-]?api[_-]?key` + assign + `([a-f0-9]{32})`, bound: "A-Za-z0-9"},
		{typ: "datadog_app_key", conf: 0.85, keywords: []string{"dd_app_key", "datadog_app_key", "dd_application_key", "dd-application-key", "datadog_application_key"}, before: 10, after: 80,
			re: `(?i)(?:dd|datadog)[_-]?app(?:lication)?[_-]?key` + assign + `([a-f0-9]{40})`, bound: "A-Za-z0-9"},
		{typ: "heroku_api_key", conf: 0.8, keywords: []string{"heroku"}, before: 0, after: 90,
			re: `(?i)heroku[\w.-]{0,20}(?:key|token|secret)` + assign + `([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`, bound: "A-Za-z0-9-"},
		{typ: "okta_api_token", conf: 0.85, keywords: []string{"okta"}, before: 0, after: 90,
			re: `(?i)okta[\w.-]{0,20}(?:token|key|secret)` + assign + `(00[A-Za-z0-9_-]{40})`, bound: "A-Za-z0-9_-"},
		{typ: "twitch_api_token", conf: 0.8, keywords: []string{"twitch"}, before: 0, after: 80,
			re: `(?i)twitch[\w.-]{0,20}(?:token|secret|key)` + assign + `([a-z0-9]{30})`, bound: "A-Za-z0-9"},
		{typ: "cloudflare_api_token", conf: 0.8, keywords: []string{"cloudflare", "cf_api_token"}, before: 0, after: 90,
			re: `(?i)(?:cloudflare|cf)[\w.-]{0,20}(?:token|key)` + assign + `([A-Za-z0-9_-]{40})`, bound: "A-Za-z0-9_-", minEntropy: 3.5},
		{typ: "discord_bot_token", conf: 0.85, keywords: []string{"discord", "bot "}, before: 0, after: 300,
			re: `([MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38})`, bound: "A-Za-z0-9_.-", minEntropy: 3.5},
		{typ: "discord_webhook", conf: 0.95, keywords: []string{"discord.com/api/webhooks/", "discordapp.com/api/webhooks/"}, before: 25, after: 110,
			re: `https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_-]{60,68}`, bound: "A-Za-z0-9_-"},
		{typ: "slack_webhook", conf: 0.95, keywords: []string{"hooks.slack.com/"}, before: 8, after: 120,
			re: `https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{8,12}/[A-Z0-9]{8,12}/[A-Za-z0-9]{20,32}`, bound: "A-Za-z0-9"},
		{typ: "teams_webhook", conf: 0.9, keywords: []string{".webhook.office.com/webhookb2/"}, before: 60, after: 220,
			re: `https://[a-z0-9-]+\.webhook\.office\.com/webhookb2/[a-f0-9-]{36}@[a-f0-9-]{36}/IncomingWebhook/[A-Za-z0-9]{32}/[a-f0-9-]{36}`},
		{typ: "telegram_bot_token", conf: 0.9, keywords: []string{":aa"}, before: 10, after: 36,
			re: `([0-9]{8,10}:AA[0-9A-Za-z_-]{33})`, bound: "A-Za-z0-9_-"},
		{typ: "mailchimp_api_key", conf: 0.9, keywords: []string{"-us"}, before: 32, after: 3,
			re: `([a-f0-9]{32}-us[0-9]{1,2})`, bound: "A-Za-z0-9"},
		{typ: "newrelic_license_key", conf: 0.9, keywords: []string{"nral"}, before: 36, after: 0,
			re: `([a-f0-9]{36}NRAL)`, bound: "A-Za-z0-9"},
		{typ: "terraform_cloud_token", conf: 0.95, keywords: []string{".atlasv1."}, before: 14, after: 80,
			re: `([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})`, bound: "A-Za-z0-9_=-"},
	}
	for _, w := range ws {
		rs = append(rs, windowed(w))
	}
	rs = append(rs, privateKeyRule(), jwtRule(), urlCredRule(), bearerRule(), basicAuthRule(), genericRule())
	return rs
}

// ---- custom-code rules ----

var b64Body = newByteSet("A-Za-z0-9+/=")

func privateKeyRule() detRule {
	return detRule{types: []string{"private_key"}, keywords: []string{"-----begin ", "putty-user-key-file-"}, fn: func(st *scanState, _ int, text []byte, ks, ke int) {
		if text[ks] == 'P' || text[ks] == 'p' {
			if string(text[ks:ke]) != "PuTTY-User-Key-File-" {
				return
			}
			lim := min(len(text), ks+16384)
			mac := bytes.Index(text[ks:lim], []byte("Private-MAC:"))
			if mac < 0 {
				return
			}
			e := ks + mac
			for e < lim && text[e] != '\n' && text[e] != '\r' {
				e++
			}
			st.emit(Finding{Type: "private_key", Category: FindingSecret, Start: ks, End: e, Confidence: 0.99, Validated: true})
			return
		}
		if string(text[ks:ke]) != "-----BEGIN " {
			return
		}
		// Label up to "-----".
		lim := min(len(text), ke+48)
		end := bytes.Index(text[ke:lim], []byte("-----"))
		if end < 0 {
			return
		}
		label := text[ke : ke+end]
		if !bytes.HasSuffix(label, []byte("PRIVATE KEY")) && !bytes.HasSuffix(label, []byte("PRIVATE KEY BLOCK")) {
			return
		}
		for _, c := range label {
			if !ascUpper(c) && !ascDigit(c) && c != ' ' {
				return
			}
		}
		hdrEnd := ke + end + 5
		// Body: base64 lines, possibly with headers (Proc-Type) or
		// JSON-escaped newlines; count base64 bytes until -----END.
		lim = min(len(text), hdrEnd+16384)
		stop := -1
		switch {
		case st.pkFrom >= 0 && hdrEnd >= st.pkFrom && st.pkEnd >= hdrEnd:
			if st.pkEnd < lim {
				stop = st.pkEnd - hdrEnd
			}
		case st.pkFrom >= 0 && hdrEnd >= st.pkFrom && st.pkEnd < 0 && hdrEnd < st.pkLim:
			from := max(hdrEnd, st.pkLim-8)
			if k := bytes.Index(text[from:lim], []byte("-----END ")); k >= 0 {
				stop = from + k - hdrEnd
				st.pkEnd = hdrEnd + stop
			}
			st.pkLim = max(st.pkLim, lim)
		default:
			stop = bytes.Index(text[hdrEnd:lim], []byte("-----END "))
			st.pkFrom, st.pkLim, st.pkEnd = hdrEnd, lim, -1
			if stop >= 0 {
				st.pkEnd = hdrEnd + stop
			}
		}
		var e int
		conf := 0.99
		if stop >= 0 {
			e = hdrEnd + stop + 9
			for e < lim && e < hdrEnd+stop+70 && text[e] != '\n' && text[e] != '\r' && text[e] != '"' && text[e] != '\\' {
				e++
				if bytes.HasSuffix(text[:e], []byte("-----")) && e > hdrEnd+stop+9 {
					break
				}
			}
		} else {
			e = hdrEnd
			for e < lim && (b64Body[text[e]] || text[e] == '\n' || text[e] == '\r' || text[e] == ' ' || text[e] == '\\') {
				e++
			}
			conf = 0.9
		}
		n := 0
		for _, c := range text[hdrEnd:e] {
			if b64Body[c] {
				n++
			}
		}
		if n < 64 {
			return
		}
		st.emit(Finding{Type: "private_key", Category: FindingSecret, Start: ks, End: e, Confidence: conf, Validated: stop >= 0})
	}}
}

var b64url = newByteSet("A-Za-z0-9_-")

func jwtRule() detRule {
	return detRule{types: []string{"jwt"}, keywords: []string{"eyj"}, fn: func(st *scanState, _ int, text []byte, ks, ke int) {
		if text[ks] != 'e' || text[ks+1] != 'y' || text[ks+2] != 'J' {
			return
		}
		if ks > 0 && (b64url[text[ks-1]] || text[ks-1] == '.') {
			return
		}
		var seg [3][2]int
		i := ks
		for k := 0; k < 3; k++ {
			s := i
			for i < len(text) && i-s < 8192 && b64url[text[i]] {
				i++
			}
			seg[k] = [2]int{s, i}
			if k < 2 {
				if i >= len(text) || text[i] != '.' {
					return
				}
				i++
			}
		}
		if i < len(text) && (b64url[text[i]] || text[i] == '.') {
			return
		}
		if seg[0][1]-seg[0][0] < 10 || seg[1][1]-seg[1][0] < 10 || seg[2][1]-seg[2][0] < 16 {
			return
		}
		hdr := text[seg[0][0]:seg[0][1]]
		buf := make([]byte, base64.RawURLEncoding.DecodedLen(len(hdr)))
		n, err := base64.RawURLEncoding.Decode(buf, hdr)
		if err != nil || !json.Valid(buf[:n]) || !bytes.Contains(buf[:n], []byte(`"alg"`)) {
			return
		}
		st.emit(Finding{Type: "jwt", Category: FindingSecret, Start: ks, End: i, Confidence: 0.92, Validated: true})
	}}
}

var dbSchemes = map[string]bool{
	"postgres": true, "postgresql": true, "mysql": true, "mariadb": true, "mongodb": true, "mongodb+srv": true,
	"redis": true, "rediss": true, "amqp": true, "amqps": true, "mssql": true, "sqlserver": true,
	"clickhouse": true, "cockroachdb": true, "oracle": true, "couchdb": true, "neo4j": true, "neo4j+s": true,
	"bolt": true, "cassandra": true, "memcached": true, "nats": true, "kafka": true, "elasticsearch": true,
}

var schemeChars = newByteSet("a-zA-Z0-9+.-")

func urlCredRule() detRule {
	return detRule{types: []string{"database_url", "url_credentials", "sentry_dsn"}, keywords: []string{"://"}, fn: func(st *scanState, ri int, text []byte, ks, ke int) {
		if int32(ke) < st.lastWinE[ri] && st.lastWinS[ri] < 0 {
			return // inside a span already scanned without '@'
		}
		s := ks
		for s > 0 && ks-s < 20 && schemeChars[text[s-1]] {
			s--
		}
		if s == ks || !ascAlpha(text[s]) {
			return
		}
		scheme := strings.ToLower(string(text[s:ks]))
		// Userinfo.
		i, at, colon := ke, -1, -1
		for i < len(text) && i-ke < 256 {
			c := text[i]
			if c == '@' {
				at = i
			}
			if c == '/' || c <= ' ' || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`' || c == '\\' {
				break
			}
			i++
		}
		st.lastWinS[ri], st.lastWinE[ri] = int32(at), int32(i)
		if at < 0 {
			return
		}
		for j := ke; j < at; j++ {
			if text[j] == ':' {
				colon = j
				break
			}
		}
		// Host end.
		e := at + 1
		for e < len(text) && (ascAlnum(text[e]) || text[e] == '.' || text[e] == '-' || text[e] == ':' || text[e] == '_' || text[e] == ',') {
			e++
		}
		if e == at+1 {
			return
		}
		if colon < 0 {
			user := text[ke:at]
			if len(user) == 32 && allHex(user) && bytes.Contains(text[at:e], []byte("sentry")) {
				// Include the project path.
				for e < len(text) && (text[e] == '/' || ascDigit(text[e])) {
					e++
				}
				st.emit(Finding{Type: "sentry_dsn", Category: FindingSecret, Start: s, End: e, Confidence: 0.9, Validated: true})
			}
			return
		}
		pass := text[colon+1 : at]
		if len(pass) < 3 || isPlaceholder(pass) || bytes.HasPrefix(pass, []byte("$")) || bytes.Equal(pass, []byte("pass")) {
			return
		}
		typ, conf := "url_credentials", 0.8
		if dbSchemes[scheme] {
			typ, conf = "database_url", 0.9
		}
		st.emit(Finding{Type: typ, Category: FindingSecret, Start: s, End: e, Confidence: conf})
	}}
}

var tokenChars = newByteSet("A-Za-z0-9._~+/=-")

func bearerRule() detRule {
	return detRule{types: []string{"bearer_token"}, keywords: []string{"bearer "}, fn: func(st *scanState, _ int, text []byte, ks, ke int) {
		if ks > 0 && ascWord(text[ks-1]) {
			return
		}
		s := ke
		for s < len(text) && text[s] == ' ' {
			s++
		}
		e := s
		for e < len(text) && e-s < 4096 && tokenChars[text[e]] {
			e++
		}
		tok := text[s:e]
		if len(tok) < 20 || shannonBits(tok) < 3.5 || charClasses(tok) < 2 || isPlaceholder(tok) {
			return
		}
		st.emit(Finding{Type: "bearer_token", Category: FindingSecret, Start: s, End: e, Confidence: 0.6})
	}}
}

func basicAuthRule() detRule {
	return detRule{types: []string{"basic_auth"}, keywords: []string{"basic "}, fn: func(st *scanState, _ int, text []byte, ks, ke int) {
		if ks > 0 && ascWord(text[ks-1]) {
			return
		}
		s := ke
		e := s
		for e < len(text) && e-s < 512 && b64Body[text[e]] {
			e++
		}
		if e-s < 8 || (e < len(text) && ascWord(text[e])) {
			return
		}
		dec, err := base64.StdEncoding.DecodeString(string(text[s:e]))
		if err != nil {
			return
		}
		c := bytes.IndexByte(dec, ':')
		if c < 1 || c == len(dec)-1 {
			return
		}
		for _, b := range dec {
			if b < 0x20 || b > 0x7e {
				return
			}
		}
		if isPlaceholder(dec[c+1:]) {
			return
		}
		st.emit(Finding{Type: "basic_auth", Category: FindingSecret, Start: s, End: e, Confidence: 0.8, Validated: true})
	}}
}

// ---- generic assignments ----

var genericKeywords = map[string]string{
	"password": "generic_password", "passwd": "generic_password", "pwd": "generic_password", "passphrase": "generic_password",
	"secret":  "generic_secret",
	"token":   "generic_token",
	"api_key": "generic_api_key", "apikey": "generic_api_key", "api-key": "generic_api_key", "access_key": "generic_api_key",
	"accesskey": "generic_api_key", "auth_key": "generic_api_key", "signing_key": "generic_api_key", "encryption_key": "generic_api_key",
	"master_key": "generic_api_key", "private_key": "generic_api_key",
}

// identifier parts that make a "password"/"token" name not hold a secret.
var genericDenyParts = []string{"file", "path", "url", "uri", "name", "length", "len", "policy", "field", "type", "expir",
	"ttl", "count", "limit", "size", "prompt", "label", "placeholder", "header", "reset", "rotation", "endpoint", "hash",
	"_id", "-id", "id_", "usage", "max", "min", "timeout", "format", "regex", "pattern", "kind", "mode", "version", "env"}

var identChars = newByteSet("A-Za-z0-9_-")

func genericRule() detRule {
	var kws []string
	types := map[string]bool{}
	for k, t := range genericKeywords {
		kws = append(kws, k)
		types[t] = true
	}
	var tl []string
	for t := range types {
		tl = append(tl, t)
	}
	return detRule{types: tl, keywords: kws, fn: func(st *scanState, _ int, text []byte, ks, ke int) {
		var kb [16]byte
		for k := ks; k < ke; k++ {
			kb[k-ks] = foldByte(text[k])
		}
		typ := genericKeywords[string(kb[:ke-ks])]
		// Whole identifier around the keyword.
		is := ks
		for is > 0 && ks-is < 40 && identChars[text[is-1]] {
			is--
		}
		ie := ke
		for ie < len(text) && ie-ke < 40 && identChars[text[ie]] {
			ie++
		}
		// Cheap exit: the separator must follow the identifier.
		i := ie
		for i < len(text) && i-ie < 6 && (text[i] == '"' || text[i] == '\'' || text[i] == '`' || text[i] == ']' || text[i] == ' ' || text[i] == '\t') {
			i++
		}
		if i >= len(text) || (text[i] != ':' && text[i] != '=' && !(typ == "generic_password" && (text[i] == 'i' || text[i] == 'I'))) {
			return
		}
		var ib [96]byte
		ident := ib[:ie-is]
		for k := is; k < ie; k++ {
			ident[k-is] = foldByte(text[k])
		}
		for _, p := range genericDenyParts {
			if bytes.Contains(ident, []byte(p)) {
				return
			}
		}
		// Separator.
		i = ie
		for i < len(text) && (text[i] == '"' || text[i] == '\'' || text[i] == '`' || text[i] == ']') && i-ie < 3 {
			i++
		}
		for i < len(text) && (text[i] == ' ' || text[i] == '\t') {
			i++
		}
		prose := false
		switch {
		case i+1 < len(text) && text[i] == ':' && text[i+1] == '=':
			i += 2
		case i+1 < len(text) && text[i] == '=' && text[i+1] == '>':
			i += 2
		case i < len(text) && text[i] == '=':
			if i+1 < len(text) && (text[i+1] == '=' || text[i+1] == '~') {
				return
			}
			i++
		case i < len(text) && text[i] == ':':
			i++
		case typ == "generic_password" && hasPrefixFold(text, i, "is "):
			i += 3
			prose = true
		default:
			return
		}
		for i < len(text) && (text[i] == ' ' || text[i] == '\t') {
			i++
		}
		if i >= len(text) {
			return
		}
		q := text[i]
		var s, e int
		if q == '"' || q == '\'' || q == '`' {
			s = i + 1
			e = s
			for e < len(text) && e-s < 256 && text[e] != q && text[e] != '\n' {
				e++
			}
			if e >= len(text) || text[e] != q {
				return
			}
		} else {
			if q == '{' || q == '[' || q == '(' || q == '<' || q == '$' || q == '%' {
				return
			}
			s = i
			e = s
			for e < len(text) && e-s < 256 {
				c := text[e]
				if c <= ' ' || c == ',' || c == ';' || c == ')' || c == '}' || c == ']' || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>' {
					break
				}
				e++
			}
			// Trailing sentence punctuation.
			for e > s && (text[e-1] == '.' || text[e-1] == '!' || text[e-1] == '?' || text[e-1] == ':') {
				e--
			}
			v := text[s:e]
			if bytes.ContainsAny(v, "()[]") || looksLikeCodeRef(v) {
				return
			}
		}
		v := text[s:e]
		minLen, minEnt := 12, 3.3
		if typ == "generic_password" {
			minLen, minEnt = 6, 2.3
		}
		if len(v) < minLen || isPlaceholder(v) || bytes.Contains(v, []byte("://")) {
			return
		}
		cls := charClasses(v)
		h := shannonBits(v)
		need := minEnt
		if lg := 0.8 * log2i(len(v)); lg < need {
			need = lg
		}
		if h < need {
			return
		}
		if cls < 2 && !(len(v) >= 16 && h >= 3.5) {
			return
		}
		if prose && cls < 3 {
			return
		}
		if isHumanPhrase(v) {
			return
		}
		conf := 0.5
		if h >= 3.5 {
			conf += 0.1
		}
		if cls >= 3 {
			conf += 0.1
		}
		st.emit(Finding{Type: typ, Category: FindingSecret, Start: s, End: e, Confidence: conf})
	}}
}

func log2i(n int) float64 {
	f, l := float64(n), 0.0
	for f > 1 {
		f /= 2
		l++
	}
	return l
}

// looksLikeCodeRef reports whether an unquoted value is an identifier or
// attribute access (password=config.password, token: str).
func looksLikeCodeRef(v []byte) bool {
	if len(v) == 0 || !(ascAlpha(v[0]) || v[0] == '_') {
		return false
	}
	digits, dot := false, false
	for _, c := range v {
		switch {
		case ascDigit(c):
			digits = true
		case c == '.':
			dot = true
		case ascAlpha(c) || c == '_':
		default:
			return false
		}
	}
	return dot || !digits
}

// isHumanPhrase rejects values with spaces that read like words.
func isHumanPhrase(v []byte) bool {
	return bytes.Count(v, []byte(" ")) >= 2
}

var placeholderParts = []string{"xxx", "***", "...", "<", ">", "${", "{{", "$(", "%(", "%s", "example", "changeme",
	"change_me", "change-me", "your_", "your-", "yourpass", "yourkey", "yourtoken", "placeholder", "dummy", "sample",
	"redacted", "fake", "insert", "replace", "todo", "fixme", "process.env", "os.environ", "getenv", "env(", "secretref",
	"000000", "123456", "abcdef", "password", "passwd", "secret", "token", "not-set", "notset", "none", "null",
	"undefined", "masked", "hidden", "•"}

// isPlaceholder reports obvious placeholder or template values.
func isPlaceholder(v []byte) bool {
	lv := bytes.ToLower(v)
	for _, p := range placeholderParts {
		if bytes.Contains(lv, []byte(p)) {
			return true
		}
	}
	// A single repeated character (aaaa, ----).
	same := true
	for _, c := range v {
		if c != v[0] {
			same = false
			break
		}
	}
	return same
}
