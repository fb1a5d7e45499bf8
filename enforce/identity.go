package enforce

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aigress/aigress/classify"
	"golang.org/x/crypto/bcrypt"
)

// ErrProxyAuthRequired means the client must (re)authenticate: answer 407
// with the header ProxyAuthenticate.
var ErrProxyAuthRequired = errors.New("enforce: proxy authentication required")

// ProxyAuthenticate is the Proxy-Authenticate challenge to send with 407.
const ProxyAuthenticate = `Basic realm="aigress"`

// Identity sources.
const (
	SourceIP        = "ip"
	SourceProxyAuth = "proxy-auth"
	SourceHeader    = "header"
)

// Identity is who sent a request.
type Identity struct {
	IP            netip.Addr `json:"ip"`
	User          string     `json:"user,omitempty"`
	Groups        []string   `json:"groups,omitempty"`
	Authenticated bool       `json:"authenticated"`
	Source        string     `json:"source"` // ip | proxy-auth | header
	// Note records something the caller may want to log, such as a
	// trusted identity header that arrived from an untrusted address.
	Note string `json:"note,omitempty"`
}

const (
	authCacheSize = 1024
	authCacheTTL  = 5 * time.Minute
)

// Identify works out who is behind a request from the client address and
// its headers: groups from CIDRs, the proxy user from Proxy-Authorization
// (checked against htpasswd), or the trusted identity header when the
// client address is a trusted proxy. It returns ErrProxyAuthRequired
// (wrapped) when authentication is required and missing, or when the
// credentials are wrong.
func (p *Policy) Identify(remote netip.Addr, h http.Header) (Identity, error) {
	id := Identity{IP: remote.Unmap(), Source: SourceIP}
	for _, g := range p.groups {
		for _, pf := range g.prefixes {
			if pf.Contains(id.IP) {
				id.Groups = appendUnique(id.Groups, g.name)
				break
			}
		}
	}
	if th := p.doc.Identity.TrustedHeader; th != nil {
		if v := strings.TrimSpace(h.Get(th.Name)); v != "" {
			if p.trusted(id.IP) {
				id.User, id.Authenticated, id.Source = v, true, SourceHeader
				if th.GroupsHeader != "" {
					for _, g := range strings.Split(h.Get(th.GroupsHeader), ",") {
						if g = strings.TrimSpace(g); g != "" {
							id.Groups = appendUnique(id.Groups, g)
						}
					}
				}
			} else {
				id.Note = fmt.Sprintf("ignored %s header from untrusted address %s", th.Name, id.IP)
			}
		}
	}
	if id.Source != SourceHeader && p.htpasswd != nil {
		user, ok, present := p.checkBasic(h.Get("Proxy-Authorization"))
		switch {
		case ok:
			id.User, id.Authenticated, id.Source = user, true, SourceProxyAuth
		case present:
			return id, fmt.Errorf("%w: bad credentials", ErrProxyAuthRequired)
		case p.doc.Identity.Auth.Required:
			return id, fmt.Errorf("%w: no credentials", ErrProxyAuthRequired)
		}
	} else if id.Source != SourceHeader && p.doc.Identity.Auth.Required {
		return id, fmt.Errorf("%w: no trusted identity", ErrProxyAuthRequired)
	}
	if id.User != "" {
		for _, g := range p.userGroups[id.User] {
			id.Groups = appendUnique(id.Groups, g)
		}
	}
	return id, nil
}

func (p *Policy) trusted(a netip.Addr) bool {
	for _, pf := range p.trustedProxies {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// checkBasic verifies a Proxy-Authorization value. present is false when
// there is no Basic credential at all.
func (p *Policy) checkBasic(v string) (user string, ok, present bool) {
	const prefix = "basic "
	if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", false, false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[len(prefix):]))
	if err != nil {
		return "", false, true
	}
	key := sha256.Sum256(raw)
	if u, hit := p.auth.get(key, time.Now()); hit {
		return u, true, true
	}
	u, pw, found := strings.Cut(string(raw), ":")
	if !found {
		return "", false, true
	}
	hash, known := p.htpasswd[u]
	if !known {
		// Spend comparable time so unknown users are not distinguishable.
		_ = bcrypt.CompareHashAndPassword(p.dummyHash, []byte(pw))
		return "", false, true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pw)) != nil {
		return "", false, true
	}
	p.auth.put(key, u, time.Now())
	return u, true, true
}

// authCache remembers successful credential checks, keyed by the SHA-256
// of the credential, so bcrypt is not paid on every request. Bounded.
type authCache struct {
	mu   sync.Mutex
	max  int
	ttl  time.Duration
	ents map[[32]byte]authEntry
}

type authEntry struct {
	user    string
	expires time.Time
}

func newAuthCache(max int, ttl time.Duration) *authCache {
	return &authCache{max: max, ttl: ttl, ents: map[[32]byte]authEntry{}}
}

func (c *authCache) get(k [32]byte, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.ents[k]
	if !ok || now.After(e.expires) {
		return "", false
	}
	return e.user, true
}

func (c *authCache) put(k [32]byte, user string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ents) >= c.max {
		for key, e := range c.ents {
			if now.After(e.expires) {
				delete(c.ents, key)
			}
		}
		for key := range c.ents {
			if len(c.ents) < c.max {
				break
			}
			delete(c.ents, key)
		}
	}
	c.ents[k] = authEntry{user: user, expires: now.Add(c.ttl)}
}

// loadHtpasswd reads an htpasswd file of bcrypt entries.
func loadHtpasswd(file string) (map[string][]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	return parseHtpasswd(data, file)
}

func parseHtpasswd(data []byte, name string) (map[string][]byte, error) {
	m := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("htpasswd %s:%d: want user:hash", name, n)
		}
		if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
			return nil, fmt.Errorf("htpasswd %s:%d: user %q: unsupported hash type %s (only bcrypt is accepted; create entries with htpasswd -B)", name, n, user, hashKind(hash))
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("htpasswd %s:%d: user %q: bad bcrypt hash: %v", name, n, user, err)
		}
		if _, dup := m[user]; dup {
			return nil, fmt.Errorf("htpasswd %s:%d: duplicate user %q", name, n, user)
		}
		m[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", name, err)
	}
	return m, nil
}

func hashKind(h string) string {
	switch {
	case strings.HasPrefix(h, "$apr1$"):
		return "apr1 (MD5)"
	case strings.HasPrefix(h, "{SHA}"):
		return "SHA1"
	case strings.HasPrefix(h, "$5$"):
		return "SHA-256 crypt"
	case strings.HasPrefix(h, "$6$"):
		return "SHA-512 crypt"
	case strings.HasPrefix(h, "$1$"):
		return "MD5 crypt"
	case len(h) == 13:
		return "DES crypt"
	}
	return "unknown/plain text"
}

// AccountInfo is the attributed AI account. Corporate is nil when unknown.
type AccountInfo struct {
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	Org            string `json:"org,omitempty"`
	Project        string `json:"project,omitempty"`
	EmailHash      string `json:"email_hash,omitempty"`
	Email          string `json:"email,omitempty"` // only when audit.store_email
	Corporate      *bool  `json:"corporate,omitempty"`
}

// Class is "corporate", "personal" or "unknown".
func (a AccountInfo) Class() string {
	switch {
	case a.Corporate == nil:
		return AccountUnknown
	case *a.Corporate:
		return AccountCorporate
	}
	return AccountPersonal
}

// ClassifyAccount attributes the AI account. It is corporate when its key
// fingerprint, organisation, project or e-mail domain is listed as
// corporate; personal when an e-mail claim has another domain, or when a
// key fingerprint is present, corporate fingerprints are configured and it
// is not one of them; unknown otherwise.
func (p *Policy) ClassifyAccount(a classify.Account) AccountInfo {
	info := AccountInfo{KeyFingerprint: a.KeyFingerprint, Org: a.Org, Project: a.Project}
	email := strings.ToLower(strings.TrimSpace(a.Email))
	domain := ""
	if email != "" {
		sum := sha256.Sum256([]byte(email))
		info.EmailHash = "sha256:" + hex.EncodeToString(sum[:])
		if p.doc.Audit.StoreEmail {
			info.Email = email
		}
		if i := strings.LastIndexByte(email, '@'); i >= 0 {
			domain = email[i+1:]
		}
	}
	yes, no := true, false
	switch {
	case a.KeyFingerprint != "" && p.corpFP[strings.ToLower(a.KeyFingerprint)],
		a.Org != "" && p.corpOrg[a.Org],
		a.Project != "" && p.corpProject[a.Project],
		domain != "" && p.corpDomain[domain]:
		info.Corporate = &yes
	case email != "",
		a.KeyFingerprint != "" && len(p.corpFP) > 0:
		info.Corporate = &no
	}
	return info
}
