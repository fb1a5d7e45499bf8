package enforce

// This file holds the policy document as written in YAML. Every field here
// must also appear in policies/schema.json (a test walks both).

// Document is the YAML policy file.
type Document struct {
	APIVersion    string            `yaml:"apiVersion"`
	Kind          string            `yaml:"kind"`
	Name          string            `yaml:"name"`
	Description   string            `yaml:"description"`
	Identity      IdentitySpec      `yaml:"identity"`
	Accounts      AccountsSpec      `yaml:"accounts"`
	Rules         []RuleSpec        `yaml:"rules"`
	DefaultAction string            `yaml:"default_action"`
	Output        OutputSpec        `yaml:"output"`
	Quotas        []QuotaSpec       `yaml:"quotas"`
	Uninspectable UninspectableSpec `yaml:"uninspectable"`
	Limits        LimitsSpec        `yaml:"limits"`
	Audit         AuditSpec         `yaml:"audit"`
	Detectors     []DetectorSpec    `yaml:"detectors"`
	Connect       ConnectSpec       `yaml:"connect"`
	Redaction     RedactionKeySpec  `yaml:"redaction"`
}

// IdentitySpec says how clients are identified.
type IdentitySpec struct {
	Groups        []GroupSpec        `yaml:"groups"`
	Auth          AuthSpec           `yaml:"auth"`
	TrustedHeader *TrustedHeaderSpec `yaml:"trusted_header"`
}

// GroupSpec names a group of clients by address and/or user name.
type GroupSpec struct {
	Name  string   `yaml:"name"`
	CIDRs []string `yaml:"cidrs"`
	Users []string `yaml:"users"`
}

// AuthSpec is proxy authentication (Proxy-Authorization: Basic).
type AuthSpec struct {
	Required bool   `yaml:"required"`
	Htpasswd string `yaml:"htpasswd"`
}

// TrustedHeaderSpec accepts a user name (and groups) from a header set by a
// trusted upstream proxy.
type TrustedHeaderSpec struct {
	Name           string   `yaml:"name"`
	GroupsHeader   string   `yaml:"groups_header"`
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// AccountsSpec tells corporate AI accounts from personal ones.
type AccountsSpec struct {
	Corporate      CorporateSpec `yaml:"corporate"`
	PersonalAction string        `yaml:"personal_action"`
	PersonalReason string        `yaml:"personal_reason"`
}

// CorporateSpec lists what marks an account as corporate.
type CorporateSpec struct {
	KeyFingerprints []string `yaml:"key_fingerprints"`
	Orgs            []string `yaml:"orgs"`
	Projects        []string `yaml:"projects"`
	EmailDomains    []string `yaml:"email_domains"`
}

// RuleSpec is one ordered rule.
type RuleSpec struct {
	ID        string         `yaml:"id"`
	Match     MatchSpec      `yaml:"match"`
	Action    string         `yaml:"action"`
	Reason    string         `yaml:"reason"`
	Message   string         `yaml:"message"`
	Redaction *RedactionSpec `yaml:"redaction"`
}

// MatchSpec holds a rule's conditions; all present conditions must hold,
// and within a list any element may match. String lists are
// case-insensitive globs (path.Match syntax) except groups (exact).
type MatchSpec struct {
	Groups     []string      `yaml:"groups"`
	Users      []string      `yaml:"users"`
	Providers  []string      `yaml:"providers"`
	Services   []string      `yaml:"services"`
	Categories []string      `yaml:"categories"`
	Models     []string      `yaml:"models"`
	Endpoints  []string      `yaml:"endpoints"`
	Account    string        `yaml:"account"`
	Findings   *FindingsSpec `yaml:"findings"`
}

// FindingsSpec selects findings: any listed type or category, at or above
// min_confidence.
type FindingsSpec struct {
	Types         []string `yaml:"types"`
	Categories    []string `yaml:"categories"`
	MinConfidence float64  `yaml:"min_confidence"`
}

// RedactionSpec is how a redact rule rewrites what it matched.
type RedactionSpec struct {
	Mode    string `yaml:"mode"` // placeholder | hash
	Restore bool   `yaml:"restore"`
}

// RedactionKeySpec holds the key for hash-mode placeholders.
type RedactionKeySpec struct {
	HashKey    string `yaml:"hash_key"`
	HashKeyEnv string `yaml:"hash_key_env"`
}

// OutputSpec holds the response (model output) rules.
type OutputSpec struct {
	WindowBytes int              `yaml:"window_bytes"`
	Rules       []OutputRuleSpec `yaml:"rules"`
}

// OutputRuleSpec maps findings in model output to alert or block.
type OutputRuleSpec struct {
	ID       string       `yaml:"id"`
	Match    MatchSpec    `yaml:"match"`
	Action   string       `yaml:"action"`
	Reason   string       `yaml:"reason"`
	Message  string       `yaml:"message"`
	Findings FindingsSpec `yaml:"findings"`
}

// QuotaSpec is one quota.
type QuotaSpec struct {
	ID                string    `yaml:"id"`
	Per               string    `yaml:"per"` // user | group | client_ip
	Match             MatchSpec `yaml:"match"`
	RequestsPerMinute int64     `yaml:"requests_per_minute"`
	RequestsPerDay    int64     `yaml:"requests_per_day"`
	TokensPerMinute   int64     `yaml:"tokens_per_minute"`
	TokensPerDay      int64     `yaml:"tokens_per_day"`
	Message           string    `yaml:"message"`
}

// UninspectableSpec is what happens to bodies aigress cannot inspect.
type UninspectableSpec struct {
	Default    string            `yaml:"default"` // fail_closed | fail_open
	PerService map[string]string `yaml:"per_service"`
}

// LimitsSpec bounds body sizes.
type LimitsSpec struct {
	MaxBodyBytes    int64 `yaml:"max_body_bytes"`
	MaxDecodedBytes int64 `yaml:"max_decoded_bytes"`
}

// AuditSpec is what the audit trail may keep.
type AuditSpec struct {
	PromptRetention string `yaml:"prompt_retention"` // none | hash | redacted | full
	StoreEmail      bool   `yaml:"store_email"`
}

// DetectorSpec is a custom detector (word list or regular expression).
type DetectorSpec struct {
	ID            string   `yaml:"id"`
	Words         []string `yaml:"words"`
	Regex         string   `yaml:"regex"`
	CaseSensitive bool     `yaml:"case_sensitive"`
	Confidence    float64  `yaml:"confidence"`
}

// ConnectSpec is what may be refused at CONNECT time, before any TLS.
type ConnectSpec struct {
	BlockUnlistedAI bool     `yaml:"block_unlisted_ai"`
	Block           []string `yaml:"block"`
	Reason          string   `yaml:"reason"`
}
