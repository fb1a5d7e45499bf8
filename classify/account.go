package classify

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// Fingerprint identifies a credential without keeping it: "sha256:" and the
// first 16 hex characters of its SHA-256.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// accountFrom reads credentials and account hints from the headers and
// query. Only fingerprints are kept, never the credentials.
func accountFrom(in RequestInput) Account {
	var a Account
	h := in.Header
	if h != nil {
		if auth := strings.TrimSpace(h.Get("Authorization")); auth != "" {
			scheme, rest, _ := strings.Cut(auth, " ")
			rest = strings.TrimSpace(rest)
			switch strings.ToLower(scheme) {
			case "bearer":
				if rest != "" {
					a.KeyFingerprint = Fingerprint(rest)
					a.Email = jwtEmail(rest)
				}
			case "aws4-hmac-sha256":
				if id := sigv4AccessKey(rest); id != "" {
					a.KeyFingerprint = Fingerprint(id)
				}
			default:
				a.KeyFingerprint = Fingerprint(auth)
			}
		}
		for _, k := range []string{"X-Api-Key", "Api-Key", "X-Goog-Api-Key"} {
			if v := strings.TrimSpace(h.Get(k)); v != "" && a.KeyFingerprint == "" {
				a.KeyFingerprint = Fingerprint(v)
			}
		}
		if a.KeyFingerprint == "" {
			// Web sessions: claude.ai keeps its session in the sessionKey cookie.
			if c, err := (&http.Request{Header: h}).Cookie("sessionKey"); err == nil && c.Value != "" {
				a.KeyFingerprint = Fingerprint(c.Value)
			}
		}
		a.Org = strings.TrimSpace(h.Get("OpenAI-Organization"))
		a.Project = strings.TrimSpace(h.Get("OpenAI-Project"))
		if a.Org == "" {
			a.Org = strings.TrimSpace(h.Get("Anthropic-Organization"))
		}
		if a.Project == "" {
			a.Project = strings.TrimSpace(h.Get("X-Goog-User-Project"))
		}
	}
	if a.KeyFingerprint == "" && in.Query != "" {
		if q, err := url.ParseQuery(in.Query); err == nil {
			if k := q.Get("key"); k != "" {
				a.KeyFingerprint = Fingerprint(k)
			}
		}
	}
	return a
}

// sigv4AccessKey extracts the access key ID from
// "Credential=AKIA.../20240101/us-east-1/bedrock/aws4_request, SignedHeaders=..., Signature=...".
func sigv4AccessKey(params string) string {
	for _, f := range strings.Split(params, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if ok && strings.EqualFold(k, "Credential") {
			id, _, _ := strings.Cut(v, "/")
			return id
		}
	}
	return ""
}

// jwtEmail returns the e-mail claim of an unverified JWT ("email" or the
// "https://api.openai.com/profile" object's "email"), or "".
func jwtEmail(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	v, err := parseJSON(payload)
	if err != nil {
		return ""
	}
	if e := v.gstr("email"); e != "" {
		return e
	}
	return v.path("https://api.openai.com/profile", "email").str()
}
