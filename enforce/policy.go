package enforce

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aigress/aigress/classify"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// APIVersion is the only policy apiVersion understood.
const APIVersion = "aigress/v1"

// Retention modes for prompts in the audit trail.
const (
	RetentionNone     = "none"
	RetentionHash     = "hash"
	RetentionRedacted = "redacted"
	RetentionFull     = "full"
)

// Account classes for match.account.
const (
	AccountCorporate = "corporate"
	AccountPersonal  = "personal"
	AccountUnknown   = "unknown"
)

// Defaults applied when the policy leaves a limit unset.
const (
	DefaultMaxBodyBytes    = 10 << 20
	DefaultMaxDecodedBytes = 32 << 20
	DefaultWindowBytes     = 256
	maxWindowBytes         = 64 << 10
)

// Policy is a compiled, validated policy. It is immutable after Parse and
// safe for concurrent use; only its authentication cache mutates, under a
// lock.
type Policy struct {
	doc      Document
	name     string
	hash     string
	warnings []string

	groups         []group
	userGroups     map[string][]string
	trustedProxies []netip.Prefix
	htpasswd       map[string][]byte
	auth           *authCache
	dummyHash      []byte // a real entry's hash, compared for unknown users

	corpFP, corpOrg, corpProject, corpDomain map[string]bool

	rules     []*rule
	outRules  []*outRule
	quotas    []*quota
	defAction Action
	personal  Action
	failDef   Action
	failPer   map[string]Action
	custom    []classify.CustomRule
	hashKey   []byte
	connBlock []string
	listed    map[string]bool // providers/services named by any rule (lower-case)
}

type group struct {
	name     string
	prefixes []netip.Prefix
}

type matcher struct {
	groups     []string
	users      []string
	providers  []string
	services   []string
	categories []string
	models     []string
	endpoints  []string
	account    string
	findings   *findingFilter
}

type findingFilter struct {
	types      map[string]bool
	categories map[string]bool
	minConf    float64
}

type rule struct {
	id      string
	m       matcher
	action  Action
	reason  string
	message string
	mode    string // placeholder | hash
	restore bool
}

type outRule struct {
	id      string
	m       matcher
	f       findingFilter
	action  Action
	reason  string
	message string
}

type quota struct {
	spec QuotaSpec
	m    matcher
}

// Name is the policy's name (the name field, or the file name).
func (p *Policy) Name() string { return p.name }

// Hash is "sha256:" and the first 12 hex digits of the policy file's
// SHA-256. Audit events carry it.
func (p *Policy) Hash() string { return p.hash }

// Warnings are non-fatal remarks found while compiling (for example an
// unknown finding type, or an unbounded setting).
func (p *Policy) Warnings() []string { return append([]string(nil), p.warnings...) }

// Document returns a copy of the decoded document.
func (p *Policy) Document() Document { return p.doc }

// Retention is the prompt retention mode: none, hash, redacted or full.
func (p *Policy) Retention() string { return p.doc.Audit.PromptRetention }

// StoreEmail reports whether raw account e-mail claims may be stored.
func (p *Policy) StoreEmail() bool { return p.doc.Audit.StoreEmail }

// MaxBodyBytes bounds the request body size that is inspected.
func (p *Policy) MaxBodyBytes() int64 { return p.doc.Limits.MaxBodyBytes }

// MaxDecodedBytes bounds the decoded (decompressed) body size.
func (p *Policy) MaxDecodedBytes() int64 { return p.doc.Limits.MaxDecodedBytes }

// AuthRequired reports whether proxy authentication is mandatory.
func (p *Policy) AuthRequired() bool { return p.doc.Identity.Auth.Required }

// CustomRules are the custom detectors, ready for classify.NewDetector.
func (p *Policy) CustomRules() []classify.CustomRule {
	return append([]classify.CustomRule(nil), p.custom...)
}

// FailMode is the action for a request to service (a service name or a
// provider, case-insensitive) whose body cannot be inspected: ActionAllow
// (fail open) or ActionBlock (fail closed).
func (p *Policy) FailMode(service string) Action {
	if a, ok := p.failPer[strings.ToLower(service)]; ok {
		return a
	}
	return p.failDef
}

// LoadFile reads and compiles a policy file. A relative htpasswd path is
// resolved against the policy file's directory.
func LoadFile(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("enforce: load policy %s: %w", file, err)
	}
	return parse(data, file, filepath.Dir(file))
}

// Parse compiles a policy from YAML. name is used in error messages (and
// as the policy name when the document has none); a relative htpasswd path
// is resolved against the current directory.
func Parse(data []byte, name string) (*Policy, error) {
	return parse(data, name, ".")
}

// posError is a validation error at a YAML path.
type posError struct {
	path string
	msg  string
}

func parse(data []byte, name, baseDir string) (*Policy, error) {
	var doc Document
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("enforce: %s: empty policy", name)
	}
	if err := decodeYAML(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	sum := sha256.Sum256(data)
	p := &Policy{doc: doc, hash: "sha256:" + hex.EncodeToString(sum[:])[:12]}
	p.name = doc.Name
	if p.name == "" {
		p.name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	errs := p.compile(baseDir)
	if len(errs) > 0 {
		return nil, positionErrors(name, data, errs)
	}
	return p, nil
}

// decodeYAML decodes strictly. The YAML library has panicked on some
// malformed input (found by FuzzParse): that becomes an error.
func decodeYAML(data []byte, doc *Document) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed YAML (decoder failed: %v)", r)
		}
	}()
	return yaml.UnmarshalWithOptions(data, doc, yaml.DisallowUnknownField())
}

// yamlError formats a decode error as "enforce: NAME:LINE:COL: message".
func yamlError(name string, err error) error {
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		pos := ye.GetToken().Position
		return fmt.Errorf("enforce: %s:%d:%d: %s", name, pos.Line, pos.Column, ye.GetMessage())
	}
	return fmt.Errorf("enforce: %s: %w", name, err)
}

// positionErrors resolves each error's YAML path to a line and column.
func positionErrors(name string, data []byte, errs []posError) error {
	var file *ast.File
	func() {
		defer func() { _ = recover() }() // positions are best effort
		file, _ = parser.ParseBytes(data, 0)
	}()
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		line, col := locate(file, e.path)
		where := name
		if line > 0 {
			where = fmt.Sprintf("%s:%d:%d", name, line, col)
		}
		msg := e.msg
		if e.path != "" {
			msg = strings.TrimPrefix(e.path, "$.") + ": " + msg
		}
		out = append(out, fmt.Errorf("enforce: %s: %s", where, msg))
	}
	return errors.Join(out...)
}

// locate finds the position of a YAML path, or of its nearest ancestor.
func locate(file *ast.File, p string) (int, int) {
	if file == nil {
		return 0, 0
	}
	defer func() { _ = recover() }()
	for p != "" && p != "$" {
		if yp, err := yaml.PathString(p); err == nil {
			if n, err := yp.FilterFile(file); err == nil && n != nil && n.GetToken() != nil {
				pos := n.GetToken().Position
				return pos.Line, pos.Column
			}
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			break
		}
		p = p[:i]
	}
	return 0, 0
}

func parseAction(s string, allowed ...Action) (Action, bool) {
	for _, a := range allowed {
		if string(a) == s {
			return a, true
		}
	}
	return "", false
}

// knownFindingTypes are the types classify's detectors emit. An unknown
// type in a policy is only a warning: a newer classify may know it.
var knownFindingTypes = map[string]bool{
	"aws_access_key": true, "aws_secret_key": true, "github_token": true, "gitlab_token": true,
	"slack_token": true, "slack_webhook": true, "stripe_key": true, "google_api_key": true,
	"openai_api_key": true, "anthropic_api_key": true, "private_key": true, "jwt": true,
	"generic_secret": true, "password": true, "azure_key": true, "gcp_service_account": true,
	"npm_token": true, "pypi_token": true, "twilio_key": true, "sendgrid_key": true,
	"huggingface_token": true, "database_url": true, "basic_auth_url": true,
	"email": true, "phone": true, "credit_card": true, "iban": true, "ssn": true,
	"ip_address": true, "ipv4": true, "ipv6": true, "passport": true, "national_id": true,
}

func (p *Policy) compile(baseDir string) []posError {
	var errs []posError
	add := func(path, f string, a ...any) { errs = append(errs, posError{path, fmt.Sprintf(f, a...)}) }
	d := &p.doc

	if d.APIVersion != APIVersion {
		add("$.apiVersion", "apiVersion must be %q, got %q", APIVersion, d.APIVersion)
	}
	if d.Kind != "Policy" {
		add("$.kind", "kind must be \"Policy\", got %q", d.Kind)
	}

	// Custom detectors first: their IDs are valid finding types.
	customIDs := map[string]bool{}
	for i, ds := range d.Detectors {
		at := fmt.Sprintf("$.detectors[%d]", i)
		if ds.ID == "" {
			add(at, "detector needs an id")
		} else if customIDs[ds.ID] {
			add(at+".id", "duplicate detector id %q", ds.ID)
		}
		customIDs[ds.ID] = true
		if (len(ds.Words) == 0) == (ds.Regex == "") {
			add(at, "detector %q needs exactly one of words or regex", ds.ID)
		}
		if ds.Regex != "" {
			if _, err := regexp.Compile(ds.Regex); err != nil {
				add(at+".regex", "bad regex: %v", err)
			}
		}
		for j, w := range ds.Words {
			if strings.TrimSpace(w) == "" {
				add(fmt.Sprintf("%s.words[%d]", at, j), "empty word")
			}
		}
		if ds.Confidence < 0 || ds.Confidence > 1 {
			add(at+".confidence", "confidence must be within 0..1")
		}
		conf := ds.Confidence
		if conf == 0 {
			conf = 0.9
		}
		p.custom = append(p.custom, classify.CustomRule{ID: ds.ID, Words: ds.Words, Regex: ds.Regex, CaseSensitive: ds.CaseSensitive, Confidence: conf})
	}

	// Identity.
	p.userGroups = map[string][]string{}
	groupNames := map[string]bool{}
	for i, g := range d.Identity.Groups {
		at := fmt.Sprintf("$.identity.groups[%d]", i)
		if g.Name == "" {
			add(at, "group needs a name")
		} else if groupNames[g.Name] {
			add(at+".name", "duplicate group %q", g.Name)
		}
		groupNames[g.Name] = true
		cg := group{name: g.Name}
		for j, c := range g.CIDRs {
			pf, err := parsePrefix(c)
			if err != nil {
				add(fmt.Sprintf("%s.cidrs[%d]", at, j), "bad CIDR %q: %v", c, err)
				continue
			}
			cg.prefixes = append(cg.prefixes, pf)
		}
		p.groups = append(p.groups, cg)
		for _, u := range g.Users {
			p.userGroups[u] = append(p.userGroups[u], g.Name)
		}
	}
	if th := d.Identity.TrustedHeader; th != nil {
		if th.Name == "" {
			add("$.identity.trusted_header", "trusted_header needs a name")
		}
		if len(th.TrustedProxies) == 0 {
			add("$.identity.trusted_header", "trusted_header needs trusted_proxies (a header from anyone would let anyone claim any user)")
		}
		for j, c := range th.TrustedProxies {
			pf, err := parsePrefix(c)
			if err != nil {
				add(fmt.Sprintf("$.identity.trusted_header.trusted_proxies[%d]", j), "bad CIDR %q: %v", c, err)
				continue
			}
			p.trustedProxies = append(p.trustedProxies, pf)
		}
	}
	if a := d.Identity.Auth; a.Required && a.Htpasswd == "" && d.Identity.TrustedHeader == nil {
		add("$.identity.auth", "auth.required needs an htpasswd file")
	}
	if f := d.Identity.Auth.Htpasswd; f != "" {
		if !filepath.IsAbs(f) {
			f = filepath.Join(baseDir, f)
		}
		m, err := loadHtpasswd(f)
		if err != nil {
			add("$.identity.auth.htpasswd", "%v", err)
		}
		p.htpasswd = m
		for _, h := range m {
			p.dummyHash = h
			break
		}
		p.auth = newAuthCache(authCacheSize, authCacheTTL)
	}

	// Accounts.
	c := d.Accounts.Corporate
	p.corpFP, p.corpOrg, p.corpProject, p.corpDomain = lowerSet(c.KeyFingerprints), set(c.Orgs), set(c.Projects), map[string]bool{}
	for _, dom := range c.EmailDomains {
		p.corpDomain[strings.TrimPrefix(strings.ToLower(dom), "@")] = true
	}
	p.personal = ""
	if s := d.Accounts.PersonalAction; s != "" {
		a, ok := parseAction(s, ActionAllow, ActionAlert, ActionBlock)
		if !ok {
			add("$.accounts.personal_action", "unknown action %q (want allow, alert or block)", s)
		}
		p.personal = a
	}

	checkFindings := func(at string, f *FindingsSpec) *findingFilter {
		ff := &findingFilter{types: map[string]bool{}, categories: map[string]bool{}, minConf: f.MinConfidence}
		for j, t := range f.Types {
			if !knownFindingTypes[t] && !customIDs[t] {
				p.warnings = append(p.warnings, fmt.Sprintf("%s.types[%d]: unknown finding type %q", strings.TrimPrefix(at, "$."), j, t))
			}
			ff.types[t] = true
		}
		for j, cat := range f.Categories {
			switch cat {
			case classify.FindingSecret, classify.FindingPII, classify.FindingCustom:
			default:
				add(fmt.Sprintf("%s.categories[%d]", at, j), "unknown finding category %q (want secret, pii or custom)", cat)
			}
			ff.categories[cat] = true
		}
		if f.MinConfidence < 0 || f.MinConfidence > 1 {
			add(at+".min_confidence", "min_confidence must be within 0..1")
		}
		return ff
	}
	p.listed = map[string]bool{}
	compileMatch := func(at string, m MatchSpec) matcher {
		cm := matcher{groups: m.Groups, account: m.Account}
		for j, g := range m.Groups {
			if !groupNames[g] && d.Identity.TrustedHeader == nil {
				p.warnings = append(p.warnings, fmt.Sprintf("%s.groups[%d]: group %q is not defined in identity.groups", strings.TrimPrefix(at, "$."), j, g))
			}
		}
		globs := func(field string, in []string) []string {
			out := make([]string, 0, len(in))
			for j, s := range in {
				g := strings.ToLower(s)
				if _, err := path.Match(g, ""); err != nil {
					add(fmt.Sprintf("%s.%s[%d]", at, field, j), "bad glob %q: %v", s, err)
				}
				out = append(out, g)
			}
			return out
		}
		cm.users = globs("users", m.Users)
		cm.providers = globs("providers", m.Providers)
		cm.services = globs("services", m.Services)
		cm.categories = globs("categories", m.Categories)
		cm.models = globs("models", m.Models)
		cm.endpoints = globs("endpoints", m.Endpoints)
		for _, s := range cm.providers {
			p.listed[s] = true
		}
		for _, s := range cm.services {
			p.listed[s] = true
		}
		switch m.Account {
		case "", AccountCorporate, AccountPersonal, AccountUnknown:
		default:
			add(at+".account", "unknown account class %q (want corporate, personal or unknown)", m.Account)
		}
		if m.Findings != nil {
			cm.findings = checkFindings(at+".findings", m.Findings)
		}
		return cm
	}

	// Rules.
	ids := map[string]string{}
	claim := func(at, id string) {
		if id == "" {
			add(at, "needs an id")
			return
		}
		if prev, dup := ids[id]; dup {
			add(at+".id", "duplicate id %q (first used at %s)", id, strings.TrimPrefix(prev, "$."))
			return
		}
		ids[id] = at
	}
	for i, rs := range d.Rules {
		at := fmt.Sprintf("$.rules[%d]", i)
		claim(at, rs.ID)
		r := &rule{id: rs.ID, reason: rs.Reason, message: rs.Message, m: compileMatch(at+".match", rs.Match), mode: "placeholder"}
		a, ok := parseAction(rs.Action, ActionAllow, ActionAlert, ActionRedact, ActionBlock)
		if !ok {
			add(at+".action", "unknown action %q (want allow, alert, redact or block)", rs.Action)
		}
		r.action = a
		if a == ActionRedact && rs.Match.Findings == nil {
			add(at, "a redact rule needs match.findings (what to redact)")
		}
		if rs.Redaction != nil {
			if a != ActionRedact {
				add(at+".redaction", "redaction is only valid with action redact")
			}
			switch rs.Redaction.Mode {
			case "", "placeholder":
			case "hash":
				r.mode = "hash"
			default:
				add(at+".redaction.mode", "unknown redaction mode %q (want placeholder or hash)", rs.Redaction.Mode)
			}
			r.restore = rs.Redaction.Restore
		}
		p.rules = append(p.rules, r)
	}
	p.defAction = ActionAllow
	if d.DefaultAction != "" {
		a, ok := parseAction(d.DefaultAction, ActionAllow, ActionAlert, ActionBlock)
		if !ok {
			add("$.default_action", "unknown action %q (want allow, alert or block)", d.DefaultAction)
		}
		p.defAction = a
	}

	// Output rules.
	if d.Output.WindowBytes < 0 || d.Output.WindowBytes > maxWindowBytes {
		add("$.output.window_bytes", "window_bytes must be within 0..%d", maxWindowBytes)
	}
	if d.Output.WindowBytes == 0 {
		p.doc.Output.WindowBytes = DefaultWindowBytes
	}
	for i, ors := range d.Output.Rules {
		at := fmt.Sprintf("$.output.rules[%d]", i)
		claim(at, ors.ID)
		o := &outRule{id: ors.ID, reason: ors.Reason, message: ors.Message, m: compileMatch(at+".match", ors.Match)}
		if ors.Match.Findings != nil {
			add(at+".match.findings", "output rules take findings at the rule level, not in match")
		}
		o.f = *checkFindings(at+".findings", &ors.Findings)
		a, ok := parseAction(ors.Action, ActionAlert, ActionBlock)
		if !ok {
			add(at+".action", "unknown output action %q (want alert or block)", ors.Action)
		}
		o.action = a
		p.outRules = append(p.outRules, o)
	}

	// Quotas.
	for i, qs := range d.Quotas {
		at := fmt.Sprintf("$.quotas[%d]", i)
		claim(at, qs.ID)
		switch qs.Per {
		case "user", "group", "client_ip":
		case "":
			p.doc.Quotas[i].Per = "user"
			qs.Per = "user"
		default:
			add(at+".per", "unknown quota key %q (want user, group or client_ip)", qs.Per)
		}
		if qs.RequestsPerMinute < 0 || qs.RequestsPerDay < 0 || qs.TokensPerMinute < 0 || qs.TokensPerDay < 0 {
			add(at, "quota limits must not be negative")
		}
		if qs.RequestsPerMinute == 0 && qs.RequestsPerDay == 0 && qs.TokensPerMinute == 0 && qs.TokensPerDay == 0 {
			add(at, "quota %q sets no limit", qs.ID)
		}
		if qs.Match.Findings != nil || qs.Match.Account != "" || len(qs.Match.Endpoints) > 0 || len(qs.Match.Services) > 0 || len(qs.Match.Categories) > 0 {
			add(at+".match", "quotas match only groups, users, providers and models")
		}
		p.quotas = append(p.quotas, &quota{spec: qs, m: compileMatch(at+".match", qs.Match)})
	}

	// Uninspectable.
	failAction := func(at, s string) Action {
		switch s {
		case "fail_open":
			return ActionAllow
		case "fail_closed":
			return ActionBlock
		}
		add(at, "unknown fail mode %q (want fail_open or fail_closed)", s)
		return ActionBlock
	}
	p.failDef = ActionAllow
	if d.Uninspectable.Default != "" {
		p.failDef = failAction("$.uninspectable.default", d.Uninspectable.Default)
	}
	p.failPer = map[string]Action{}
	keys := make([]string, 0, len(d.Uninspectable.PerService))
	for k := range d.Uninspectable.PerService {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.failPer[strings.ToLower(k)] = failAction("$.uninspectable.per_service."+quoteKey(k), d.Uninspectable.PerService[k])
	}

	// Limits.
	l := &p.doc.Limits
	if l.MaxBodyBytes < 0 || l.MaxDecodedBytes < 0 {
		add("$.limits", "limits must not be negative")
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxDecodedBytes == 0 {
		l.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if l.MaxBodyBytes > 1<<30 || l.MaxDecodedBytes > 1<<30 {
		p.warnings = append(p.warnings, "limits: body limits above 1 GiB are effectively unbounded")
	}

	// Audit.
	switch d.Audit.PromptRetention {
	case "":
		p.doc.Audit.PromptRetention = RetentionNone
	case RetentionNone, RetentionHash, RetentionRedacted, RetentionFull:
	default:
		add("$.audit.prompt_retention", "unknown retention %q (want none, hash, redacted or full)", d.Audit.PromptRetention)
	}

	// Connect.
	p.connBlock = globsLower(d.Connect.Block)
	for j, g := range p.connBlock {
		if _, err := path.Match(g, ""); err != nil {
			add(fmt.Sprintf("$.connect.block[%d]", j), "bad glob %q: %v", d.Connect.Block[j], err)
		}
	}

	// Redaction key.
	switch {
	case d.Redaction.HashKey != "":
		p.hashKey = []byte(d.Redaction.HashKey)
	case d.Redaction.HashKeyEnv != "":
		if v := os.Getenv(d.Redaction.HashKeyEnv); v != "" {
			p.hashKey = []byte(v)
		} else {
			add("$.redaction.hash_key_env", "environment variable %s is empty", d.Redaction.HashKeyEnv)
		}
	default:
		p.hashKey = make([]byte, 32)
		_, _ = rand.Read(p.hashKey)
	}
	return errs
}

func quoteKey(k string) string {
	for _, r := range k {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return "'" + k + "'"
		}
	}
	return k
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		return pf, err
	}
	if pf.Addr().Is4In6() {
		pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
	}
	return pf.Masked(), nil
}

func set(in []string) map[string]bool {
	m := make(map[string]bool, len(in))
	for _, s := range in {
		m[s] = true
	}
	return m
}

func lowerSet(in []string) map[string]bool {
	m := make(map[string]bool, len(in))
	for _, s := range in {
		m[strings.ToLower(s)] = true
	}
	return m
}

func globsLower(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}

// itoa is strconv.Itoa, kept short for placeholder building.
func itoa(n int) string { return strconv.Itoa(n) }
