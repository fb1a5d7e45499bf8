package classify

import (
	"encoding/base64"
	"net/http"
	"testing"
)

func TestFingerprint(t *testing.T) {
	// sha256("abc") = ba7816bf8f01cfea...
	if got := Fingerprint("abc"); got != "sha256:ba7816bf8f01cfea" {
		t.Fatalf("got %s", got)
	}
}

func TestAccountFrom(t *testing.T) {
	jwt := func(payload string) string {
		return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	cases := []struct {
		name  string
		hdr   map[string]string
		query string
		want  Account
	}{
		{name: "ok/bearer", hdr: map[string]string{"Authorization": "Bearer sk-abc"}, want: Account{KeyFingerprint: Fingerprint("sk-abc")}},
		{name: "ok/x-api-key", hdr: map[string]string{"x-api-key": "sk-ant-1"}, want: Account{KeyFingerprint: Fingerprint("sk-ant-1")}},
		{name: "ok/azure_api_key", hdr: map[string]string{"api-key": "azk"}, want: Account{KeyFingerprint: Fingerprint("azk")}},
		{name: "ok/goog_header", hdr: map[string]string{"x-goog-api-key": "AIza1"}, want: Account{KeyFingerprint: Fingerprint("AIza1")}},
		{name: "ok/goog_query", query: "alt=sse&key=AIza2", want: Account{KeyFingerprint: Fingerprint("AIza2")}},
		{name: "ok/sigv4", hdr: map[string]string{"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=ff"},
			want: Account{KeyFingerprint: Fingerprint("AKIAIOSFODNN7EXAMPLE")}},
		{name: "ok/org_project", hdr: map[string]string{"Authorization": "Bearer k", "OpenAI-Organization": "org-1", "OpenAI-Project": "proj-2"},
			want: Account{KeyFingerprint: Fingerprint("k"), Org: "org-1", Project: "proj-2"}},
		{name: "ok/jwt_email", hdr: map[string]string{"Authorization": "Bearer " + jwt(`{"email":"bob@example.com"}`)},
			want: Account{KeyFingerprint: Fingerprint(jwt(`{"email":"bob@example.com"}`)), Email: "bob@example.com"}},
		{name: "ok/jwt_openai_profile", hdr: map[string]string{"Authorization": "Bearer " + jwt(`{"https://api.openai.com/profile":{"email":"eve@example.com"}}`)},
			want: Account{KeyFingerprint: Fingerprint(jwt(`{"https://api.openai.com/profile":{"email":"eve@example.com"}}`)), Email: "eve@example.com"}},
		{name: "fail/jwt_garbage_payload", hdr: map[string]string{"Authorization": "Bearer a.!!!.c"}, want: Account{KeyFingerprint: Fingerprint("a.!!!.c")}},
		{name: "fail/sigv4_without_credential", hdr: map[string]string{"Authorization": "AWS4-HMAC-SHA256 SignedHeaders=host"}, want: Account{}},
		{name: "fail/nothing", want: Account{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.hdr {
				h.Set(k, v)
			}
			if got := accountFrom(RequestInput{Header: h, Query: tc.query}); got != tc.want {
				t.Fatalf("got %+v want %+v", got, tc.want)
			}
		})
	}
}
