package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/test/mockllm"
)

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there"}]}`

// TestCurlInterceptAndTunnel: an AI host gets the aigress-minted
// certificate; a non-AI host is tunnelled and presents its own.
func TestCurlInterceptAndTunnel(t *testing.T) {
	m := startMock(t, mockllm.Options{})
	bank, err := mockllm.StartPlainTLS("bank.example")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bank.Close() })
	bankCA := filepath.Join(t.TempDir(), "bank-ca.pem")
	os.WriteFile(bankCA, bank.CAPEM(), 0o600)
	cfg := baseConfig(t, m, fmt.Sprintf("  \"bank.example:443\": %q\n", bank.Addr()))
	in := startAigress(t, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Intercepted: curl trusts only the aigress CA and still succeeds.
	out, errOut, err := runCmd(t, ctx, nil, "curl", "-sS", "-v", "-x", "http://"+in.addr, "--cacert", in.caFile,
		"-H", "Authorization: Bearer sk-test-not-a-real-key", "-H", "Content-Type: application/json",
		"-d", chatBody, "https://api.openai.com/v1/chat/completions")
	if err != nil {
		t.Fatalf("curl via aigress: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, `"choices"`) {
		t.Fatalf("unexpected body: %s", out)
	}
	if !strings.Contains(errOut, "CN=aigress local CA") {
		t.Fatalf("certificate was not minted by aigress:\n%s", errOut)
	}
	// Tunnelled: curl trusts only the bank's own CA and succeeds, so the
	// bytes were never decrypted.
	out, errOut, err = runCmd(t, ctx, nil, "curl", "-sS", "-v", "-x", "http://"+in.addr, "--cacert", bankCA, "https://bank.example/")
	if err != nil || out != mockllm.BankBody {
		t.Fatalf("curl bank via tunnel: %v %q\n%s", err, out, errOut)
	}
	if strings.Contains(errOut, "CN=aigress local CA") {
		t.Fatalf("bank certificate was minted by aigress:\n%s", errOut)
	}
	// HTTPS_PROXY in the environment, as network admins set it.
	out, errOut, err = runCmd(t, ctx, []string{"HTTPS_PROXY=http://" + in.addr}, "curl", "-sS", "--cacert", in.caFile,
		"-H", "Content-Type: application/json", "-d", chatBody, "https://api.openai.com/v1/chat/completions")
	if err != nil || !strings.Contains(out, `"choices"`) {
		t.Fatalf("curl with HTTPS_PROXY: %v\n%s\n%s", err, out, errOut)
	}

	evs := in.events(t, 3)
	var intercepts, tunnels int
	for _, e := range evs {
		switch e.Kind {
		case "intercept":
			intercepts++
			if e.Provider != "openai" || e.Model != "gpt-4o-mini" || e.Response == nil || e.Response.Status != 200 {
				t.Errorf("intercept event: %+v", e)
			}
		case "tunnel":
			tunnels++
			if e.Dest.Host != "bank.example" {
				t.Errorf("tunnel event dest %+v", e.Dest)
			}
		}
	}
	if intercepts != 2 || tunnels != 1 {
		t.Fatalf("events: %d intercepts, %d tunnels; want 2 and 1", intercepts, tunnels)
	}
	if strings.Contains(in.rawTrail(t), "sk-test-not-a-real-key") || strings.Contains(in.log.String(), "sk-test-not-a-real-key") {
		t.Fatal("the API key reached the audit trail or the log")
	}
	if strings.Contains(in.rawTrail(t), "hello there") || strings.Contains(in.log.String(), "hello there") {
		t.Fatal("prompt text reached the audit trail or the log (retention is none by default)")
	}
	// The mock received the request unchanged.
	reqs := m.Requests()
	if len(reqs) != 2 || string(reqs[0].Body) != chatBody {
		t.Fatalf("mock received %d requests; first body %q", len(reqs), firstBody(reqs))
	}
}

func firstBody(r []mockllm.Recorded) string {
	if len(r) == 0 {
		return ""
	}
	return string(r[0].Body)
}

// TestSSEStreamsChunkByChunk: events reach the client at the upstream's
// pace, over HTTP/2 and HTTP/1.1, and streamed usage lands in the audit.
func TestSSEStreamsChunkByChunk(t *testing.T) {
	m := startMock(t, mockllm.Options{ChunkDelay: 80 * time.Millisecond, Chunks: 6})
	in := startAigress(t, baseConfig(t, m, ""), nil)
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			c := in.client(t)
			if !h2 {
				c.Transport.(*http.Transport).ForceAttemptHTTP2 = false
				c.Transport.(*http.Transport).TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			body := `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"count"}]}`
			req, _ := http.NewRequest("POST", "https://api.openai.com/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if h2 != (resp.ProtoMajor == 2) {
				t.Fatalf("proto %s, want h2=%v", resp.Proto, h2)
			}
			var arrivals []time.Time
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					arrivals = append(arrivals, time.Now())
				}
			}
			if len(arrivals) < 6 {
				t.Fatalf("got %d events", len(arrivals))
			}
			// Paced: the span from first to last is most of the upstream's
			// 5 gaps of 80 ms, and no gap is hidden in one lump at the end.
			span := arrivals[len(arrivals)-1].Sub(arrivals[0])
			if span < 250*time.Millisecond {
				t.Fatalf("events arrived in a lump: span %v", span)
			}
			spaced := 0
			for i := 1; i < len(arrivals); i++ {
				if arrivals[i].Sub(arrivals[i-1]) > 40*time.Millisecond {
					spaced++
				}
			}
			if spaced < 4 {
				t.Fatalf("only %d of %d gaps kept the upstream's pace", spaced, len(arrivals)-1)
			}
		})
	}
	evs := in.events(t, 2)
	for _, e := range evs {
		if !e.Stream || e.Response == nil || e.Response.Tokens.Input != mockllm.UsageInput || e.Response.Tokens.Output != mockllm.UsageOutput {
			t.Errorf("streamed usage not recorded: %+v %+v", e, e.Response)
		}
	}
}

// TestUntrustedUpstream502: a bad upstream certificate gives a JSON 502
// naming the cause and the event ID, never an empty reply.
func TestUntrustedUpstream502(t *testing.T) {
	m := startMock(t, mockllm.Options{})
	bad, err := mockllm.StartUntrusted()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bad.Close() })
	cfg := strings.Replace(baseConfig(t, m, ""), fmt.Sprintf("%q: %q", "api.anthropic.com:443", m.Addr()),
		fmt.Sprintf("%q: %q", "api.anthropic.com:443", bad.Addr()), 1)
	in := startAigress(t, cfg, nil)
	resp, err := in.client(t).Post("https://api.anthropic.com/v1/messages", "application/json",
		strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error   struct{ Message, Code string }
		EventID string `json:"aigress_event_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 502 || body.Error.Code != "upstream_bad_certificate" || body.EventID == "" {
		t.Fatalf("status %d body %+v", resp.StatusCode, body)
	}
	evs := in.events(t, 1)
	if evs[0].ID != body.EventID || !strings.Contains(evs[0].Error, "certificate") {
		t.Fatalf("audit event %+v does not match the 502 (event %s)", evs[0], body.EventID)
	}
}

// TestKeepAliveAndOneAuditLinePerRequest: 20 requests share one client
// connection and produce exactly 20 audit lines.
func TestKeepAliveAndOneAuditLinePerRequest(t *testing.T) {
	m := startMock(t, mockllm.Options{})
	in := startAigress(t, baseConfig(t, m, ""), nil)
	c := in.client(t)
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	c.Transport.(*http.Transport).TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	reused := 0
	for i := 0; i < 20; i++ {
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
			if ci.Reused {
				reused++
			}
		}}
		req, _ := http.NewRequest("POST", "https://api.openai.com/v1/chat/completions", strings.NewReader(chatBody))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		if st, body := doJSON(t, c, req); st != 200 {
			t.Fatalf("status %d: %s", st, body)
		}
	}
	if reused != 19 {
		t.Fatalf("%d of 19 follow-up requests reused the connection", reused)
	}
	time.Sleep(1500 * time.Millisecond) // let the trail flush; then count exactly
	evs := in.events(t, 20)
	if len(evs) != 20 {
		t.Fatalf("%d audit lines for 20 requests", len(evs))
	}
	ids := map[string]bool{}
	for _, e := range evs {
		ids[e.ID] = true
	}
	if len(ids) != 20 {
		t.Fatal("audit IDs are not unique")
	}
}
