package main

import (
	"strings"
	"testing"

	"github.com/aigress/aigress/classify"
)

func TestPromptFor(t *testing.T) {
	det, err := classify.NewDetector(classify.DetectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req := &classify.Request{Parts: []classify.Part{
		{Role: classify.RoleSystem, Text: "system prompt, never retained"},
		{Role: classify.RoleUser, Text: "key AKIAIOSFODNN7EXAMPLQ and mail jane.doe@acme-widgets.com ok"},
	}}
	st := &flowState{findings: det.ScanRequest(req)}
	cases := []struct{ mode, want string }{
		{"none", ""},
		{"full", "key AKIAIOSFODNN7EXAMPLQ and mail jane.doe@acme-widgets.com ok"},
		{"redacted", "key [AWS_ACCESS_KEY] and mail [EMAIL] ok"},
	}
	for _, c := range cases {
		t.Run("ok/"+c.mode, func(t *testing.T) {
			if got := promptFor(c.mode, req, st); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	if h := promptFor("hash", req, st); !strings.HasPrefix(h, "sha256:") || len(h) != 7+64 || strings.Contains(h, "AKIA") {
		t.Fatalf("hash %q", h)
	}
}
