package enforce

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/classify"
)

// testRequest builds a classified request by hand: every string value of
// a "content" or "text" key in a JSON body becomes a user part. It stands
// in for classify.ParseRequest so these tests do not depend on it.
func testRequest(t testing.TB, provider, model string, body []byte) *classify.Request {
	t.Helper()
	req := &classify.Request{Provider: provider, Model: model, Body: body, Endpoint: classify.EndpointChat, Shape: provider + ".chat"}
	off := 0
	for {
		s, e, ok := stringAfterKey(body[off:], "content", "text")
		if !ok {
			break
		}
		text, ok := decodeJSONString(body[off+s:off+e], nil)
		if !ok {
			t.Fatalf("bad string at %d", off+s)
		}
		req.Parts = append(req.Parts, classify.Part{Role: classify.RoleUser, Text: string(text), Start: off + s, End: off + e})
		off += e
	}
	return req
}

// findText returns a finding for every occurrence of value in the parts.
func findText(req *classify.Request, typ, category string, conf float64, value string) []classify.PartFinding {
	var out []classify.PartFinding
	for i, p := range req.Parts {
		from := 0
		for {
			j := strings.Index(p.Text[from:], value)
			if j < 0 {
				break
			}
			st := from + j
			out = append(out, classify.PartFinding{Part: i, Finding: classify.Finding{Type: typ, Category: category, Start: st, End: st + len(value), Confidence: conf}})
			from = st + len(value)
		}
	}
	return out
}

func mustParse(t testing.TB, y string) *Policy {
	t.Helper()
	p, err := Parse([]byte(y), "test.yaml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

const policyHead = "apiVersion: aigress/v1\nkind: Policy\n"

func timeNow() time.Time { return time.Date(2026, 11, 30, 12, 0, 30, 0, time.UTC) }
