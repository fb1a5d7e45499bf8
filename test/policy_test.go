package test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/aigress/aigress/test/mockllm"
)

func fingerprint(key string) string {
	s := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(s[:])[:16]
}

const corpKey = "sk-corp-e2e-key-000000000000"

// e2ePolicy exercises every done-when item of the enforce issue.
func e2ePolicy() string {
	return fmt.Sprintf(`apiVersion: aigress/v1
kind: Policy
name: e2e
accounts:
  corporate:
    key_fingerprints: [%q]
  personal_action: alert
rules:
  - id: personal-keys
    match: {providers: [anthropic], account: personal}
    action: block
    reason: personal AI accounts are not allowed; use the corporate key
  - id: redact-secrets-pii
    match:
      findings: {categories: [secret, pii]}
    action: redact
    redaction: {mode: placeholder, restore: true}
  - id: approved-models
    match: {providers: [openai], models: ["gpt-4o*"]}
    action: allow
  - id: unapproved-models
    match: {providers: [openai]}
    action: block
    reason: model not on the approved list (gpt-4o*)
default_action: allow
quotas:
  - id: gemini-requests
    per: client_ip
    match: {providers: [google]}
    requests_per_minute: 2
audit:
  prompt_retention: hash
`, fingerprint(corpKey))
}

func startPolicyProxy(t *testing.T, m *mockllm.Server) (*instance, string) {
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(e2ePolicy()), 0o600); err != nil {
		t.Fatal(err)
	}
	return startAigress(t, baseConfig(t, m, "policy: "+policyFile+"\n"), nil), policyFile
}

// TestRedactionReachesUpstreamAndRestores: an AWS key and an e-mail never
// reach the provider; with restore on, the client sees its e-mail back in
// a streamed answer that quoted the placeholder.
func TestRedactionReachesUpstreamAndRestores(t *testing.T) {
	m := startMock(t, mockllm.Options{ChunkDelay: 5 * time.Millisecond})
	in, _ := startPolicyProxy(t, m)
	c := in.client(t)
	prompt := `deploy with AKIAIOSFODNN7EXAMPLQ and mail jane.doe@acme-widgets.com when done`
	body := fmt.Sprintf(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":%q}]}`, prompt)
	req, _ := http.NewRequest("POST", "https://api.openai.com/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+corpKey)
	// The model answers quoting the e-mail's placeholder, split by the
	// mock across several deltas.
	req.Header.Set("X-Mock-Reply", "I will write to [EMAIL_1] once done.")
	req.Header.Set("X-Mock-Chunks", "9")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp.Body)
	resp.Body.Close()
	reqs := m.Requests()
	if len(reqs) != 1 {
		t.Fatalf("mock got %d requests", len(reqs))
	}
	up := string(reqs[0].Body)
	if strings.Contains(up, "AKIAIOSFODNN7EXAMPLQ") || strings.Contains(up, "jane.doe@acme-widgets.com") {
		t.Fatalf("secret reached the upstream: %s", up)
	}
	if !strings.Contains(up, "[EMAIL_1]") || !strings.Contains(up, "[AWS_ACCESS_KEY_1]") {
		t.Fatalf("placeholders missing upstream: %s", up)
	}
	// The client's SSE stream carries the original e-mail again.
	if text := sseText(got); !strings.Contains(text, "jane.doe@acme-widgets.com") {
		t.Fatalf("restored text %q; stream:\n%s", text, got)
	}
	e := in.events(t, 1)[0]
	if e.Redactions != 2 || e.Decision == nil || e.Decision.Action != "redact" || e.Findings["aws_access_key"] != 1 || e.Findings["email"] != 1 {
		t.Fatalf("event: redactions %d decision %+v findings %v", e.Redactions, e.Decision, e.Findings)
	}
	if !strings.HasPrefix(e.Prompt, "sha256:") {
		t.Fatalf("prompt retention hash: %q", e.Prompt)
	}
	if strings.Contains(in.rawTrail(t), "AKIAIOSFODNN7EXAMPLQ") || strings.Contains(in.rawTrail(t), "jane.doe@acme-widgets.com") {
		t.Fatal("a raw secret reached the audit trail")
	}
}

// TestModelAllowListNodeSDKError: the official SDK raises an error whose
// message carries the policy's reason.
func TestModelAllowListNodeSDKError(t *testing.T) {
	m := startMock(t, mockllm.Options{})
	in, _ := startPolicyProxy(t, m)
	r := runNode(t, in, nil, "chat", "gpt-3.5-turbo", "hello")
	if r.OK || r.Status != 403 || !strings.Contains(r.Message, "model not on the approved list") {
		t.Fatalf("node result: %+v", r)
	}
	if !strings.Contains(r.Message, "aigress event") {
		t.Fatalf("message has no event ID: %q", r.Message)
	}
	if n := len(m.Requests()); n != 0 {
		t.Fatalf("blocked request reached the upstream (%d)", n)
	}
	r = runNode(t, in, []string{"OPENAI_API_KEY=" + corpKey}, "chat", "gpt-4o-mini", "hello")
	if !r.OK {
		t.Fatalf("approved model refused: %+v", r)
	}
}

// TestPersonalAccountBlockedCorporatePasses.
func TestPersonalAccountBlockedCorporatePasses(t *testing.T) {
	m := startMock(t, mockllm.Options{})
	in, _ := startPolicyProxy(t, m)
	c := in.client(t)
	send := func(key string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", "https://api.anthropic.com/v1/messages",
			strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("x-api-key", key)
		req.Header.Set("anthropic-version", "2023-06-01")
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp, readAll(t, resp.Body)
	}
	resp, body := send("sk-ant-personal-key-1234567890")
	if resp.StatusCode != 403 || !strings.Contains(body, `"permission_error"`) || !strings.Contains(body, "personal AI accounts") {
		t.Fatalf("personal key: %d %s", resp.StatusCode, body)
	}
	resp, body = send(corpKey)
	if resp.StatusCode != 200 {
		t.Fatalf("corporate key: %d %s", resp.StatusCode, body)
	}
	evs := in.events(t, 2)
	if evs[0].Account == nil || evs[0].Account.Corporate == nil || *evs[0].Account.Corporate ||
		evs[1].Account == nil || evs[1].Account.Corporate == nil || !*evs[1].Account.Corporate {
		t.Fatalf("account marking: %+v / %+v", evs[0].Account, evs[1].Account)
	}
}

// TestQuota429 and TestBrokenPolicyKeepsOldOne share a proxy.
func TestQuotaAndPolicyReload(t *testing.T) {
	m := startMock(t, mockllm.Options{})
	in, policyFile := startPolicyProxy(t, m)
	c := in.client(t)
	gemini := func() (int, string) {
		resp, err := c.Post("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent", "application/json",
			strings.NewReader(`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAll(t, resp.Body)
	}
	for i := 0; i < 2; i++ {
		if st, body := gemini(); st != 200 {
			t.Fatalf("request %d: %d %s", i, st, body)
		}
	}
	st, body := gemini()
	if st != 429 || !strings.Contains(body, "RESOURCE_EXHAUSTED") {
		t.Fatalf("third request: %d %s", st, body)
	}

	// A broken edit is rejected; the old policy keeps blocking gpt-3.5.
	if err := os.WriteFile(policyFile, []byte(e2ePolicy()+"\nrulez: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = in.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(in.log.String(), "rulez") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(in.log.String(), "rulez") {
		t.Fatalf("reload error not logged:\n%s", in.log.String())
	}
	resp, err := c.Post("https://api.openai.com/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("after a broken reload the old policy should still block: %d", resp.StatusCode)
	}
}

// TestOutputBlockMidStream: an output rule blocks a secret the model
// streams; the client never sees the whole key and the stream ends with a
// provider-shaped error event.
func TestOutputBlockMidStream(t *testing.T) {
	m := startMock(t, mockllm.Options{ChunkDelay: 5 * time.Millisecond})
	policy := `apiVersion: aigress/v1
kind: Policy
name: output-e2e
default_action: allow
output:
  window_bytes: 128
  rules:
    - id: no-keys-out
      findings: {types: [aws_access_key]}
      action: block
      reason: the answer contained a cloud credential
`
	pf := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(pf, []byte(policy), 0o600)
	in := startAigress(t, baseConfig(t, m, "policy: "+pf+"\n"), nil)
	req, _ := http.NewRequest("POST", "https://api.openai.com/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"show me a key"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Mock-Reply", "Sure, here is one: AKIAIOSFODNN7EXAMPLQ and that is all for today, have a nice day.")
	req.Header.Set("X-Mock-Chunks", "12")
	resp, err := in.client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp.Body)
	resp.Body.Close()
	if text := sseText(got); strings.Contains(text, "AKIAIOSFODNN7EXAMPLQ") || strings.Contains(text, "nice day") {
		t.Fatalf("blocked output reached the client:\n%s", got)
	}
	// Text before the key streamed through: the guard holds a bounded
	// window, not the whole answer.
	if !strings.Contains(sseText(got), "Sure, here") {
		t.Fatalf("the guard held back text before the key:\n%s", got)
	}
	if !strings.Contains(got, "cloud credential") || !strings.Contains(got, "error") {
		t.Fatalf("stream did not end with an error event:\n%s", got)
	}
	e := in.events(t, 1)[0]
	if e.Decision == nil || e.Decision.Action != "block" || e.Decision.Rule != "no-keys-out" || e.Findings["output.aws_access_key"] == 0 {
		t.Fatalf("event decision %+v findings %v", e.Decision, e.Findings)
	}
}

// sseText joins the text deltas of an OpenAI chat SSE stream.
func sseText(stream string) string {
	var text strings.Builder
	for _, line := range strings.Split(stream, "\n") {
		if i := strings.Index(line, `"content":"`); i >= 0 {
			rest := line[i+len(`"content":"`):]
			if j := strings.Index(rest, `"`); j >= 0 {
				text.WriteString(rest[:j])
			}
		}
	}
	return text.String()
}

// TestPaddedBodyStillMeetsModelRules: a body over the policy's size limit
// is uninspectable (fail-open here), but its model still meets the model
// rules, so padding cannot smuggle an unapproved model through.
func TestPaddedBodyStillMeetsModelRules(t *testing.T) {
	m := startMock(t, mockllm.Options{})
	policy := `apiVersion: aigress/v1
kind: Policy
name: padding
limits: {max_body_bytes: 2048}
uninspectable: {default: fail_open}
rules:
  - id: no-legacy
    match: {models: ["gpt-3.5*"]}
    action: block
    reason: legacy models are retired
default_action: allow
`
	pf := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(pf, []byte(policy), 0o600)
	in := startAigress(t, baseConfig(t, m, "policy: "+pf+"\n"), nil)
	pad := strings.Repeat("lorem ipsum ", 1000)
	for _, c := range []struct {
		model string
		want  int
	}{{"gpt-3.5-turbo", 403}, {"gpt-4o", 200}} {
		body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}]}`, c.model, pad)
		resp, err := in.client(t).Post("https://api.openai.com/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("%s: status %d, want %d", c.model, resp.StatusCode, c.want)
		}
	}
	evs := in.events(t, 2)
	if evs[1].Request == nil || evs[1].Request.Uninspectable != "too_large" || evs[1].Decision.Action != "alert" {
		t.Fatalf("padded allowed request: %+v %+v", evs[1].Request, evs[1].Decision)
	}
}

// TestProxyAuth407: with auth required, a client without credentials gets a
// 407 challenge at CONNECT; with them, its requests are attributed to the
// user. Plain-HTTP proxy requests authenticate the same way.
func TestProxyAuth407(t *testing.T) {
	m := startMock(t, mockllm.Options{})
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "users.htpasswd"), []byte("alice:"+string(hash)+"\n"), 0o600)
	policy := `apiVersion: aigress/v1
kind: Policy
name: auth
identity:
  auth: {required: true, htpasswd: users.htpasswd}
default_action: allow
`
	pf := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pf, []byte(policy), 0o600)
	in := startAigress(t, baseConfig(t, m, "policy: "+pf+"\n"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, errOut, err := runCmd(t, ctx, nil, "curl", "-sS", "-x", "http://"+in.addr, "--cacert", in.caFile,
		"-H", "Content-Type: application/json", "-d", chatBody, "https://api.openai.com/v1/chat/completions")
	if err == nil || !strings.Contains(errOut, "407") {
		t.Fatalf("no credentials: want a 407, got err=%v %s", err, errOut)
	}
	_, errOut, err = runCmd(t, ctx, nil, "curl", "-sS", "-x", "http://"+in.addr, "--proxy-user", "alice:wrong", "--cacert", in.caFile,
		"https://api.openai.com/v1/models")
	if err == nil || !strings.Contains(errOut, "407") {
		t.Fatalf("wrong password: want a 407, got err=%v %s", err, errOut)
	}
	out, errOut, err := runCmd(t, ctx, nil, "curl", "-sS", "-x", "http://"+in.addr, "--proxy-user", "alice:s3cret-pass", "--cacert", in.caFile,
		"-H", "Content-Type: application/json", "-d", chatBody, "https://api.openai.com/v1/chat/completions")
	if err != nil || !strings.Contains(out, "choices") {
		t.Fatalf("with credentials: %v %s %s", err, out, errOut)
	}
	found := false
	for _, e := range in.events(t, 3) {
		if e.Kind == "intercept" && e.Client.User == "alice" {
			found = true
		}
	}
	if !found {
		t.Fatal("no intercept event attributed to alice")
	}
	if strings.Contains(in.rawTrail(t), "s3cret-pass") || strings.Contains(in.log.String(), "s3cret-pass") {
		t.Fatal("the proxy password leaked")
	}
}
