package test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/test/mockllm"
)

type nodeResult struct {
	OK      bool            `json:"ok"`
	Status  int             `json:"status"`
	Message string          `json:"message"`
	Text    string          `json:"text"`
	Chunks  int             `json:"chunks"`
	Usage   json.RawMessage `json:"usage"`
}

// runNode runs the official openai SDK through the proxy.
func runNode(t *testing.T, in *instance, env []string, args ...string) nodeResult {
	t.Helper()
	if _, err := os.Stat("node/node_modules/openai"); err != nil {
		t.Fatal("test/node/node_modules missing: run `make setup` (test/setup.sh installs the Node SDK)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env = append(env, "HTTPS_PROXY=http://"+in.addr, "NODE_EXTRA_CA_CERTS="+in.caFile)
	out, errOut, err := runCmd(t, ctx, env, "node", append([]string{"node/client.mjs"}, args...)...)
	if err != nil {
		t.Fatalf("node: %v\n%s\n%s", err, out, errOut)
	}
	var r nodeResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("node output %q: %v (%s)", out, err, errOut)
	}
	return r
}

// TestNodeOpenAISDK drives the official SDK (plain and streamed).
func TestNodeOpenAISDK(t *testing.T) {
	m := startMock(t, mockllm.Options{ChunkDelay: 10 * time.Millisecond})
	in := startAigress(t, baseConfig(t, m, ""), nil)
	r := runNode(t, in, nil, "chat", "gpt-4o-mini", "hello from node")
	if !r.OK || r.Text == "" {
		t.Fatalf("node chat: %+v", r)
	}
	r = runNode(t, in, nil, "stream", "gpt-4o", "stream from node")
	if !r.OK || r.Chunks < 3 || len(r.Usage) == 0 || string(r.Usage) == "null" {
		t.Fatalf("node stream: %+v", r)
	}
	evs := in.events(t, 2)
	if evs[1].Model != "gpt-4o" || !evs[1].Stream || evs[1].Response.Tokens.Output != mockllm.UsageOutput {
		t.Fatalf("streamed event: %+v %+v", evs[1], evs[1].Response)
	}
	if evs[0].Account == nil || !strings.HasPrefix(evs[0].Account.KeyFingerprint, "sha256:") {
		t.Fatalf("no key fingerprint: %+v", evs[0].Account)
	}
}

const pythonClient = `
import json, os, sys, requests
r = requests.post("https://api.anthropic.com/v1/messages",
    headers={"x-api-key": "sk-ant-test-not-real", "anthropic-version": "2023-06-01"},
    json={"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hello from python"}]},
    timeout=20)
print(json.dumps({"status": r.status_code, "body": r.json()}))
`

// TestPythonRequests uses Debian's python3-requests with REQUESTS_CA_BUNDLE.
func TestPythonRequests(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import requests").Run(); err != nil {
		t.Fatal("python3-requests missing: run `make setup`")
	}
	m := startMock(t, mockllm.Options{})
	in := startAigress(t, baseConfig(t, m, ""), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, errOut, err := runCmd(t, ctx, []string{"HTTPS_PROXY=http://" + in.addr, "REQUESTS_CA_BUNDLE=" + in.caFile}, py, "-c", pythonClient)
	if err != nil {
		t.Fatalf("python: %v\n%s", err, errOut)
	}
	var r struct {
		Status int
		Body   map[string]any
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Status != 200 || r.Body["type"] != "message" {
		t.Fatalf("python result %q: %v", out, err)
	}
	e := in.events(t, 1)[0]
	if e.Provider != "anthropic" || e.Model != "claude-sonnet-4-5" || e.Response.Tokens.Input != mockllm.UsageInput+mockllm.UsageCached || e.Response.Tokens.Cached != mockllm.UsageCached {
		t.Fatalf("event %+v %+v", e, e.Response)
	}
}
