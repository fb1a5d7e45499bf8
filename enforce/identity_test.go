package enforce

import (
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aigress/aigress/classify"
	"golang.org/x/crypto/bcrypt"
)

func identityPolicy(t *testing.T, required bool) *Policy {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte("alice:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	req := "false"
	if required {
		req = "true"
	}
	y := policyHead + `
identity:
  groups:
    - {name: lan, cidrs: [10.0.0.0/8, "fd00::/8"]}
    - {name: admins, users: [alice, carol]}
  auth: {required: ` + req + `, htpasswd: htpasswd}
  trusted_header:
    name: X-Aigress-User
    groups_header: X-Aigress-Groups
    trusted_proxies: [192.0.2.1/32]
`
	f := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(f, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func basic(u, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+pw))
}

func TestIdentify(t *testing.T) {
	p := identityPolicy(t, true)
	cases := []struct {
		name    string
		remote  string
		hdr     map[string]string
		user    string
		groups  string
		source  string
		wantErr bool
		note    string
	}{
		{"ok/basic", "10.1.2.3", map[string]string{"Proxy-Authorization": basic("alice", "s3cret")}, "alice", "lan,admins", SourceProxyAuth, false, ""},
		{"ok/basic-cached", "10.1.2.3", map[string]string{"Proxy-Authorization": basic("alice", "s3cret")}, "alice", "lan,admins", SourceProxyAuth, false, ""},
		{"ok/v4-mapped", "::ffff:10.1.2.3", map[string]string{"Proxy-Authorization": "basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))}, "alice", "lan,admins", SourceProxyAuth, false, ""},
		{"ok/trusted-header", "192.0.2.1", map[string]string{"X-Aigress-User": "carol", "X-Aigress-Groups": "sales, eu"}, "carol", "sales,eu,admins", SourceHeader, false, ""},
		{"fail/header-untrusted", "10.9.9.9", map[string]string{"X-Aigress-User": "carol"}, "", "lan", SourceIP, true, "untrusted"},
		{"fail/wrong-password", "10.1.2.3", map[string]string{"Proxy-Authorization": basic("alice", "nope")}, "", "lan", SourceIP, true, ""},
		{"fail/unknown-user", "10.1.2.3", map[string]string{"Proxy-Authorization": basic("mallory", "s3cret")}, "", "lan", SourceIP, true, ""},
		{"fail/garbage", "10.1.2.3", map[string]string{"Proxy-Authorization": "Basic %%%"}, "", "lan", SourceIP, true, ""},
		{"fail/missing", "10.1.2.3", nil, "", "lan", SourceIP, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.hdr {
				h.Set(k, v)
			}
			id, err := p.Identify(ip(c.remote), h)
			if c.wantErr != (err != nil) {
				t.Fatalf("err %v", err)
			}
			if err != nil && !errors.Is(err, ErrProxyAuthRequired) {
				t.Fatalf("error %v is not ErrProxyAuthRequired", err)
			}
			if id.User != c.user || strings.Join(id.Groups, ",") != c.groups || id.Source != c.source || !strings.Contains(id.Note, c.note) {
				t.Fatalf("identity %+v", id)
			}
			if id.IP.Is4In6() {
				t.Fatal("address not unmapped")
			}
		})
	}
	if p.auth == nil || len(p.auth.ents) != 1 {
		t.Fatal("successful check not cached")
	}
	// Optional auth: no credentials is fine, wrong ones are not.
	p2 := identityPolicy(t, false)
	if id, err := p2.Identify(ip("10.0.0.1"), http.Header{}); err != nil || id.User != "" {
		t.Fatalf("optional auth: %v %+v", err, id)
	}
	if _, err := p2.Identify(ip("10.0.0.1"), http.Header{"Proxy-Authorization": {basic("alice", "x")}}); err == nil {
		t.Fatal("wrong password accepted")
	}
	if r := AuthRequiredResponse("E1"); r.Status != 407 || r.Header.Get("Proxy-Authenticate") != `Basic realm="aigress"` {
		t.Fatalf("407: %+v", r)
	}
}

func TestAuthCacheBounded(t *testing.T) {
	c := newAuthCache(4, authCacheTTL)
	now := timeNow()
	for i := 0; i < 20; i++ {
		c.put([32]byte{byte(i)}, "u", now)
	}
	if len(c.ents) > 4 {
		t.Fatalf("cache grew to %d", len(c.ents))
	}
	if _, ok := c.get([32]byte{19}, now.Add(2*authCacheTTL)); ok {
		t.Fatal("expired entry served")
	}
}

func TestClassifyAccount(t *testing.T) {
	p := mustParse(t, policyHead+`
accounts:
  corporate:
    key_fingerprints: ["sha256:00112233AABBCCDD"]
    orgs: [org-corp]
    projects: [proj_corp]
    email_domains: ["@Corp.Example"]
`)
	cases := []struct {
		name  string
		acct  classify.Account
		class string
	}{
		{"ok/fingerprint", classify.Account{KeyFingerprint: "sha256:00112233aabbccdd"}, AccountCorporate},
		{"ok/org", classify.Account{Org: "org-corp", KeyFingerprint: "sha256:ffff"}, AccountCorporate},
		{"ok/project", classify.Account{Project: "proj_corp"}, AccountCorporate},
		{"ok/email-domain", classify.Account{Email: "Bob@corp.example"}, AccountCorporate},
		{"ok/nothing", classify.Account{}, AccountUnknown},
		{"ok/other-org-only", classify.Account{Org: "org-other"}, AccountUnknown},
		{"fail/personal-email", classify.Account{Email: "bob@gmail.com"}, AccountPersonal},
		{"fail/other-key", classify.Account{KeyFingerprint: "sha256:deadbeef"}, AccountPersonal},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := p.ClassifyAccount(c.acct)
			if a.Class() != c.class {
				t.Fatalf("class %s, want %s", a.Class(), c.class)
			}
			if c.acct.Email != "" && (!strings.HasPrefix(a.EmailHash, "sha256:") || len(a.EmailHash) != 71 || a.Email != "") {
				t.Fatalf("email handling %+v", a)
			}
		})
	}
	// Without corporate fingerprints configured, an unknown key is unknown.
	if a := mustParse(t, policyHead).ClassifyAccount(classify.Account{KeyFingerprint: "sha256:1"}); a.Class() != AccountUnknown {
		t.Fatal("fingerprint without configuration is not personal")
	}
	// store_email keeps the lower-cased claim.
	p2 := mustParse(t, policyHead+"audit: {store_email: true}\n")
	a := p2.ClassifyAccount(classify.Account{Email: "Bob@X.org"})
	if a.Email != "bob@x.org" || a.EmailHash != p.ClassifyAccount(classify.Account{Email: "bob@x.org"}).EmailHash {
		t.Fatalf("store_email: %+v", a)
	}
}
