package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigress/aigress/classify"
)

func TestLoadConfig(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr string
	}{
		{"ok/empty", "", ""},
		{"ok/full", "listen: 0.0.0.0:3128\nresolve: {\"api.openai.com:443\": \"127.0.0.1:9443\"}\naudit: {retention: 30d}\n", ""},
		{"fail/typo-names-line-and-column", "listen: 127.0.0.1:8080\naudit:\n  fiel: x.jsonl\n", ":3:3: unknown field \"fiel\""},
		{"fail/top-level-typo", "lisen: 127.0.0.1:8080\n", ":1:1: unknown field \"lisen\""},
		{"fail/bad-duration", "limits: {idle_timeout: soon}\n", "invalid duration"},
		{"fail/bad-resolve", "resolve: {\"api.openai.com\": \"127.0.0.1:9443\"}\n", "want host:port"},
		{"fail/bad-mode", "transparent_mode: magic\n", "want redirect or tproxy"},
		{"fail/half-ca", "ca: {cert: a.pem}\n", "go together"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(f, []byte(c.yaml), 0o600)
			cfg, err := loadConfig(f)
			if err == nil {
				err = cfg.applyDefaults()
			}
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestEmbeddedDefaultConfig(t *testing.T) {
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AIGRESS_DATA_DIR", "/tmp/x")
	if err := cfg.applyDefaults(); err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.DataDir != "/tmp/x" || time.Duration(cfg.Audit.Retention) != 90*24*time.Hour {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestConfigCatalogExtends(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(f, []byte(`catalog:
  - {host: llm.corp.example, provider: corp, service: Corp LLM gateway, category: gateway, inspect: true}
  - {host: "*.openai.azure.com", provider: azure, service: Azure OpenAI (tunnelled here), category: api, inspect: false}
`), 0o600)
	cfg, err := loadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := classify.NewCatalog(cfg.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := cat.Lookup("llm.corp.example"); !ok || s.Service != "Corp LLM gateway" || !s.Inspect {
		t.Fatalf("added entry: %+v %v", s, ok)
	}
	if s, ok := cat.Lookup("myres.openai.azure.com"); !ok || s.Inspect {
		t.Fatalf("overridden entry: %+v %v", s, ok)
	}
	os.WriteFile(f, []byte("catalog:\n  - {host: x.example, provider: p, service: s, category: nonsense}\n"), 0o600)
	cfg, _ = loadConfig(f)
	if _, err := classify.NewCatalog(cfg.Catalog); err == nil {
		t.Fatal("a bad category must be refused")
	}
}
