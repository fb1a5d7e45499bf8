package classify

import (
	"strings"
	"testing"
)

func TestDefaultCatalogValid(t *testing.T) {
	c := DefaultCatalog()
	if c.Len() < 100 {
		t.Fatalf("default catalog has %d entries, want >= 100", c.Len())
	}
	seen := map[Category]int{}
	for _, e := range c.Entries() {
		seen[e.Category]++
		if e.Provider != strings.ToLower(e.Provider) || strings.ContainsAny(e.Provider, " .") {
			t.Errorf("entry %q: provider %q is not a lower-case slug", e.Host, e.Provider)
		}
	}
	for cat := range knownCategories {
		if seen[cat] == 0 {
			t.Errorf("no entry of category %q", cat)
		}
	}
	if len(defaultEntries) != c.Len() {
		t.Errorf("Len %d, table %d", c.Len(), len(defaultEntries))
	}
}

func TestCatalogLookup(t *testing.T) {
	c := DefaultCatalog()
	tests := []struct {
		name     string
		host     string
		provider string // "" means no match
		service  string
	}{
		{"ok/exact", "api.openai.com", "openai", "OpenAI API"},
		{"ok/upper-case", "API.OpenAI.COM", "openai", "OpenAI API"},
		{"ok/trailing-dot", "api.anthropic.com.", "anthropic", "Anthropic API"},
		{"ok/port", "api.anthropic.com:443", "anthropic", "Anthropic API"},
		{"ok/port-and-dot", "chatgpt.com.:8443", "openai", "ChatGPT"},
		{"ok/wildcard-azure", "myco.openai.azure.com", "azure", "Azure OpenAI"},
		{"ok/wildcard-deep", "a.b.openai.azure.com", "azure", "Azure OpenAI"},
		{"ok/wildcard-cognitive", "x.cognitiveservices.azure.com", "azure", "Azure AI Services"},
		{"ok/wildcard-foundry", "proj.services.ai.azure.com", "azure", "Azure AI Foundry"},
		{"ok/bedrock-region", "bedrock-runtime.eu-west-3.amazonaws.com", "aws", "Amazon Bedrock"},
		{"ok/bedrock-new-region", "bedrock-runtime.mx-central-1.amazonaws.com", "aws", "Amazon Bedrock"},
		{"ok/bedrock-agents", "bedrock-agent-runtime.us-east-1.amazonaws.com", "aws", "Amazon Bedrock Agents"},
		{"ok/vertex-region", "us-central1-aiplatform.googleapis.com", "google", "Vertex AI"},
		{"ok/vertex-global", "aiplatform.googleapis.com", "google", "Vertex AI"},
		{"ok/gemini", "generativelanguage.googleapis.com", "google", "Gemini API"},
		{"ok/exact-beats-wildcard", "oai.helicone.ai", "helicone", "Helicone (OpenAI proxy)"},
		{"ok/helicone-wildcard", "gateway.helicone.ai", "helicone", "Helicone"},
		{"ok/copilot-exact", "api.githubcopilot.com", "github", "GitHub Copilot"},
		{"ok/copilot-wildcard", "api.individual.githubcopilot.com", "github", "GitHub Copilot"},
		{"ok/cursor", "api2.cursor.sh", "cursor", "Cursor"},
		{"ok/cursor-wildcard", "repo42.cursor.sh", "cursor", "Cursor"},
		{"ok/ipv6-literal-miss", "[2001:db8::1]:443", "", ""},
		{"fail/wildcard-not-apex", "openai.azure.com", "", ""},
		{"fail/wildcard-not-apex-cursor", "cursor.sh", "", ""},
		{"fail/label-wildcard-two-labels", "bedrock-runtime.a.b.amazonaws.com", "", ""},
		{"fail/label-wildcard-empty", "bedrock-runtime..amazonaws.com", "", ""},
		{"fail/vertex-two-labels", "x.us-central1-aiplatform.googleapis.com", "", ""},
		{"fail/vertex-empty-prefix", "-aiplatform.googleapis.com", "", ""},
		{"fail/path-rule-host", "github.com", "", ""},
		{"fail/path-rule-host-bing", "www.bing.com", "", ""},
		{"fail/suffix-trick", "api.openai.com.evil.example", "", ""},
		{"fail/prefix-trick", "evilapi.openai.com", "", ""},
		{"fail/lookalike", "openai.azure.com.evil.example", "", ""},
		{"fail/empty", "", "", ""},
		{"fail/dot", ".", "", ""},
		{"fail/unrelated", "example.com", "", ""},
		{"fail/s3", "s3.us-east-1.amazonaws.com", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := c.Lookup(tt.host)
			if ok != (tt.provider != "") {
				t.Fatalf("Lookup(%q) ok=%v (%+v), want provider %q", tt.host, ok, s, tt.provider)
			}
			if ok && (s.Provider != tt.provider || s.Service != tt.service) {
				t.Fatalf("Lookup(%q) = %+v, want %s/%s", tt.host, s, tt.provider, tt.service)
			}
		})
	}
}

func TestCatalogLookupPath(t *testing.T) {
	c := DefaultCatalog()
	tests := []struct {
		name, host, path string
		service          string // "" means no match
	}{
		{"ok/copilot-web", "github.com", "/copilot/c/123", "GitHub Copilot Chat (web)"},
		{"ok/copilot-web-port", "GitHub.com:443", "/copilot", "GitHub Copilot Chat (web)"},
		{"ok/bing-chat", "www.bing.com", "/chat?q=x", "Bing Copilot"},
		{"ok/notion", "www.notion.so", "/api/v3/getCompletion", "Notion AI"},
		{"ok/host-level-fallback", "api.openai.com", "/v1/chat/completions", "OpenAI API"},
		{"ok/wildcard-fallback", "x.openai.azure.com", "/openai/deployments/x", "Azure OpenAI"},
		{"fail/github-other-path", "github.com", "/aigress/aigress", ""},
		{"fail/case-sensitive-path", "github.com", "/Copilot", ""},
		{"fail/notion-other", "www.notion.so", "/api/v3/loadPageChunk", ""},
		{"fail/unknown-host", "example.com", "/copilot", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := c.LookupPath(tt.host, tt.path)
			if ok != (tt.service != "") || s.Service != tt.service {
				t.Fatalf("LookupPath(%q, %q) = %+v, %v; want %q", tt.host, tt.path, s, ok, tt.service)
			}
		})
	}
	if !c.HasPathRules("github.com") || !c.HasPathRules("WWW.BING.COM.") {
		t.Error("HasPathRules: github.com and www.bing.com have path rules")
	}
	if c.HasPathRules("api.openai.com") || c.HasPathRules("example.com") {
		t.Error("HasPathRules: false positives")
	}
}

func TestNewCatalog(t *testing.T) {
	svc := Service{Provider: "acme", Service: "Acme LLM", Category: CategoryAPI, Inspect: true}
	tests := []struct {
		name    string
		extra   []Entry
		wantErr string
		check   func(t *testing.T, c *Catalog)
	}{
		{name: "ok/add-exact", extra: []Entry{{Host: "llm.acme.internal", Service: svc}},
			check: func(t *testing.T, c *Catalog) {
				if s, ok := c.Lookup("llm.acme.internal"); !ok || s.Provider != "acme" {
					t.Fatalf("got %+v %v", s, ok)
				}
				if c.Len() != len(defaultEntries)+1 {
					t.Fatalf("Len %d", c.Len())
				}
			}},
		{name: "ok/override-default", extra: []Entry{{Host: "API.OpenAI.com.", Service: Service{Provider: "openai", Service: "OpenAI (pinned here)", Category: CategoryAPI}}},
			check: func(t *testing.T, c *Catalog) {
				s, ok := c.Lookup("api.openai.com")
				if !ok || s.Inspect || s.Service != "OpenAI (pinned here)" {
					t.Fatalf("got %+v %v", s, ok)
				}
				if c.Len() != len(defaultEntries) {
					t.Fatalf("override added an entry: Len %d", c.Len())
				}
			}},
		{name: "ok/longer-wildcard-wins", extra: []Entry{{Host: "*.azure.com", Service: svc}},
			check: func(t *testing.T, c *Catalog) {
				if s, _ := c.Lookup("x.openai.azure.com"); s.Provider != "azure" {
					t.Fatalf("longer suffix should win: %+v", s)
				}
				if s, _ := c.Lookup("x.other.azure.com"); s.Provider != "acme" {
					t.Fatalf("shorter suffix should match: %+v", s)
				}
			}},
		{name: "ok/label-wildcard-vs-suffix", extra: []Entry{
			{Host: "*.amazonaws.com", Service: svc},
		}, check: func(t *testing.T, c *Catalog) {
			if s, _ := c.Lookup("bedrock-runtime.us-east-1.amazonaws.com"); s.Provider != "aws" {
				t.Fatalf("label wildcard with more literal chars should win: %+v", s)
			}
			if s, _ := c.Lookup("s3.us-east-1.amazonaws.com"); s.Provider != "acme" {
				t.Fatalf("suffix should match: %+v", s)
			}
		}},
		{name: "ok/path-rule", extra: []Entry{{Host: "intranet.example", Path: "/ai/", Service: svc}},
			check: func(t *testing.T, c *Catalog) {
				if _, ok := c.Lookup("intranet.example"); ok {
					t.Fatal("path rule matched by Lookup")
				}
				if s, ok := c.LookupPath("intranet.example", "/ai/chat"); !ok || s.Provider != "acme" {
					t.Fatalf("got %+v %v", s, ok)
				}
			}},
		{name: "ok/wildcard-path-rule", extra: []Entry{{Host: "*.example.org", Path: "/llm", Service: svc}},
			check: func(t *testing.T, c *Catalog) {
				if !c.HasPathRules("a.example.org") {
					t.Fatal("HasPathRules false")
				}
				if _, ok := c.LookupPath("a.example.org", "/llm/x"); !ok {
					t.Fatal("no match")
				}
				if _, ok := c.LookupPath("example.org", "/llm/x"); ok {
					t.Fatal("apex matched")
				}
			}},
		{name: "fail/empty-host", extra: []Entry{{Host: " ", Service: svc}}, wantErr: "user entry 0"},
		{name: "fail/bare-star", extra: []Entry{{Host: "*", Service: svc}}, wantErr: "wildcard"},
		{name: "fail/star-tld", extra: []Entry{{Host: "*.com", Service: svc}}, wantErr: "too broad"},
		{name: "fail/two-stars", extra: []Entry{{Host: "*.*.example.com", Service: svc}}, wantErr: "more than one"},
		{name: "fail/star-mid-label", extra: []Entry{{Host: "api*.example.com", Service: svc}}, wantErr: "start a label"},
		{name: "fail/bad-char", extra: []Entry{{Host: "api openai.com", Service: svc}}, wantErr: "invalid character"},
		{name: "fail/empty-label", extra: []Entry{{Host: "a..b", Service: svc}}, wantErr: "empty label"},
		{name: "fail/unknown-category", extra: []Entry{{Host: "x.example", Service: Service{Provider: "x", Service: "X", Category: "toys"}}}, wantErr: `category "toys"`},
		{name: "fail/empty-provider", extra: []Entry{{Host: "x.example", Service: Service{Service: "X", Category: CategoryAPI}}}, wantErr: "provider"},
		{name: "fail/relative-path", extra: []Entry{{Host: "x.example", Path: "chat", Service: svc}}, wantErr: "must start with '/'"},
		{name: "fail/duplicate-user", extra: []Entry{{Host: "x.example", Service: svc}, {Host: "X.example", Service: svc}}, wantErr: "user entry 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCatalog(tt.extra)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "classify: ") {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestCatalogEntriesIsCopy(t *testing.T) {
	c := DefaultCatalog()
	es := c.Entries()
	es[0].Host = "changed.example"
	es[0].Provider = "changed"
	if c.Entries()[0].Host == "changed.example" {
		t.Fatal("Entries returned internal storage")
	}
	var nilCat *Catalog
	if _, ok := nilCat.Lookup("api.openai.com"); ok || nilCat.Len() != 0 {
		t.Fatal("nil catalog matched")
	}
}

func TestCatalogLookupNoAlloc(t *testing.T) {
	c := DefaultCatalog()
	for _, h := range []string{"api.openai.com", "x.openai.azure.com", "bedrock-runtime.us-east-1.amazonaws.com:443", "www.example.com.", "a.b.c.d.example.net"} {
		n := testing.AllocsPerRun(100, func() { c.Lookup(h) })
		if n != 0 {
			t.Errorf("Lookup(%q) allocates %.1f times", h, n)
		}
	}
}

func BenchmarkCatalogLookup(b *testing.B) {
	c := DefaultCatalog()
	cases := []struct{ name, host string }{
		{"exact", "api.openai.com"},
		{"wildcard", "mycompany.openai.azure.com"},
		{"label-wildcard", "bedrock-runtime.eu-central-1.amazonaws.com"},
		{"miss", "www.example.com"},
		{"miss-deep", "a.b.c.cdn.example.net:443"},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.Lookup(bc.host)
			}
		})
	}
}

func BenchmarkDefaultCatalog(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		DefaultCatalog()
	}
}
