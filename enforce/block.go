package enforce

import (
	"encoding/json"
	"html"
	"net/http"
	"strconv"
	"strings"
)

// Reply is a response aigress produces itself (block, quota, 407).
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// Error families for block responses.
const (
	FamilyOpenAI    = "openai" // OpenAI and the OpenAI-compatible family
	FamilyAnthropic = "anthropic"
	FamilyGemini    = "gemini"
	FamilyBedrock   = "bedrock"
	FamilyHTML      = "html" // web chat apps
)

// Family picks the error shape for a provider and a request shape (the
// classify parser name). Shapes starting with "web" or "html", or a
// provider/category "chat" passed by the caller as shape "web", give the
// HTML block page.
func Family(provider, shape string) string {
	s, p := strings.ToLower(shape), strings.ToLower(provider)
	switch {
	case strings.HasPrefix(s, "web") || strings.HasPrefix(s, "html") || s == "chat":
		return FamilyHTML
	case strings.HasPrefix(s, "anthropic") || strings.HasPrefix(s, "claude"):
		return FamilyAnthropic
	case strings.HasPrefix(s, "gemini") || strings.HasPrefix(s, "google") || strings.HasPrefix(s, "vertex"):
		return FamilyGemini
	case strings.HasPrefix(s, "bedrock"):
		return FamilyBedrock
	case strings.HasPrefix(s, "openai"):
		return FamilyOpenAI
	}
	switch p {
	case "anthropic":
		return FamilyAnthropic
	case "google", "gemini":
		return FamilyGemini
	case "aws", "amazon", "bedrock":
		return FamilyBedrock
	}
	return FamilyOpenAI
}

// blockText is the message carried to the user.
func blockText(d Decision, eventID string) string {
	msg := d.UserMessage()
	if msg == "" {
		msg = "request refused by policy"
	}
	prefix := "aigress: "
	if d.Action == ActionQuota {
		prefix = "aigress quota: "
	}
	if eventID != "" {
		return prefix + msg + " (aigress event " + eventID + ")"
	}
	return prefix + msg
}

// BlockResponse builds the response for a refused request, shaped like the
// provider's own error so its official SDK raises a readable error. status
// 0 means 403 for a block and 429 for a quota decision.
func BlockResponse(provider, shape string, status int, d Decision, eventID string) Reply {
	if status == 0 {
		status = http.StatusForbidden
		if d.Action == ActionQuota {
			status = http.StatusTooManyRequests
		}
	}
	text := blockText(d, eventID)
	quota := status == http.StatusTooManyRequests
	h := http.Header{}
	h.Set("Cache-Control", "no-store")
	if eventID != "" {
		h.Set("X-Aigress-Event", eventID)
	}
	if d.RuleID != "" {
		h.Set("X-Aigress-Rule", d.RuleID)
	}
	var body any
	switch Family(provider, shape) {
	case FamilyHTML:
		h.Set("Content-Type", "text/html; charset=utf-8")
		return Reply{Status: status, Header: h, Body: blockPage(d, eventID, quota)}
	case FamilyAnthropic:
		typ := "permission_error"
		if quota {
			typ = "rate_limit_error"
		}
		body = map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": text}}
	case FamilyGemini:
		st := "PERMISSION_DENIED"
		if quota {
			st = "RESOURCE_EXHAUSTED"
		}
		body = map[string]any{"error": map[string]any{"code": status, "message": text, "status": st}}
	case FamilyBedrock:
		et := "AccessDeniedException"
		if quota {
			et = "ThrottlingException"
		}
		h.Set("X-Amzn-Errortype", et)
		body = map[string]any{"message": text}
	default:
		typ, code := "aigress_policy", "policy_violation"
		if quota {
			typ, code = "insufficient_quota", "rate_limit_exceeded"
		}
		body = map[string]any{"error": map[string]any{"message": text, "type": typ, "param": nil, "code": code}}
	}
	h.Set("Content-Type", "application/json")
	b, _ := json.Marshal(body)
	return Reply{Status: status, Header: h, Body: b}
}

func blockPage(d Decision, eventID string, quota bool) []byte {
	title := "Blocked by your organisation's AI policy"
	if quota {
		title = "AI usage quota reached"
	}
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>`)
	b.WriteString(html.EscapeString(title))
	b.WriteString(`</title><style>body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1d2433;margin:0}main{max-width:36rem;margin:12vh auto;background:#fff;border-radius:12px;padding:2rem 2.5rem;box-shadow:0 2px 12px #0002}h1{font-size:1.35rem;margin:0 0 1rem;color:#b3261e}p{margin:.5rem 0}code{background:#eef;padding:.1rem .3rem;border-radius:4px}small{color:#667}</style></head><body><main><h1>`)
	b.WriteString(html.EscapeString(title))
	b.WriteString(`</h1><p>`)
	msg := d.UserMessage()
	if msg == "" {
		msg = "This request was refused by policy."
	}
	b.WriteString(html.EscapeString(msg))
	b.WriteString(`</p>`)
	if d.RuleID != "" {
		b.WriteString(`<p><small>Rule <code>`)
		b.WriteString(html.EscapeString(d.RuleID))
		b.WriteString(`</code></small></p>`)
	}
	if eventID != "" {
		b.WriteString(`<p><small>Quote this reference to your IT team: <code>aigress event `)
		b.WriteString(html.EscapeString(eventID))
		b.WriteString(`</code></small></p>`)
	}
	b.WriteString(`</main></body></html>`)
	return []byte(b.String())
}

// StreamErrorEvent is an SSE event, in the provider's shape, that ends a
// stream the policy stopped mid-way. Write it, then close the stream.
func StreamErrorEvent(provider, shape string, d Decision, eventID string) []byte {
	text := blockText(d, eventID)
	quota := d.Action == ActionQuota
	var body any
	event := ""
	switch Family(provider, shape) {
	case FamilyAnthropic:
		typ := "permission_error"
		if quota {
			typ = "rate_limit_error"
		}
		event = "error"
		body = map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": text}}
	case FamilyGemini:
		st, code := "PERMISSION_DENIED", 403
		if quota {
			st, code = "RESOURCE_EXHAUSTED", 429
		}
		body = map[string]any{"error": map[string]any{"code": code, "message": text, "status": st}}
	case FamilyBedrock:
		body = map[string]any{"message": text}
	default:
		typ, code := "aigress_policy", "policy_violation"
		if quota {
			typ, code = "insufficient_quota", "rate_limit_exceeded"
		}
		if strings.Contains(strings.ToLower(shape), "responses") {
			event = "error"
			body = map[string]any{"type": "error", "message": text, "code": code, "param": nil}
			break
		}
		body = map[string]any{"error": map[string]any{"message": text, "type": typ, "param": nil, "code": code}}
	}
	b, _ := json.Marshal(body)
	var out []byte
	if event != "" {
		out = append(out, "event: "+event+"\n"...)
	}
	out = append(out, "data: "...)
	out = append(out, b...)
	out = append(out, "\n\n"...)
	return out
}

// AuthRequiredResponse is the 407 answer to ErrProxyAuthRequired.
func AuthRequiredResponse(eventID string) Reply {
	h := http.Header{}
	h.Set("Proxy-Authenticate", ProxyAuthenticate)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	msg := "aigress: proxy authentication required"
	if eventID != "" {
		msg += " (aigress event " + eventID + ")"
	}
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	return Reply{Status: http.StatusProxyAuthRequired, Header: h, Body: []byte(msg + "\n")}
}
