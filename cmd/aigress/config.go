package main

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/aigress/aigress/classify"
)

//go:embed default.yaml
var defaultConfigYAML []byte

// Config is the aigress run configuration. Decoding is strict: an unknown
// key is an error naming its line and column.
type Config struct {
	Listen            string   `yaml:"listen"`
	TransparentListen string   `yaml:"transparent_listen"`
	TransparentMode   string   `yaml:"transparent_mode"` // redirect | tproxy
	DataDir           string   `yaml:"data_dir"`
	CA                CAConfig `yaml:"ca"`
	UpstreamCA        string   `yaml:"upstream_ca"`
	UpstreamMark      int      `yaml:"upstream_mark"`
	// UpstreamHTTP1 keeps upstream connections on HTTP/1.1 (default: HTTP/2
	// when the server offers it).
	UpstreamHTTP1 bool              `yaml:"upstream_http1"`
	Resolve       map[string]string `yaml:"resolve"`
	Policy        string            `yaml:"policy"`
	Audit         AuditConfig       `yaml:"audit"`
	Catalog       []classify.Entry  `yaml:"catalog"`
	Limits        LimitsConfig      `yaml:"limits"`
	Log           LogConfig         `yaml:"log"`
	MetricsListen string            `yaml:"metrics_listen"`
	// DebugPprof adds /debug/pprof to the metrics listener (off by default:
	// profiles expose internals).
	DebugPprof bool       `yaml:"debug_pprof"`
	EBPF       EBPFConfig `yaml:"ebpf"`
}

// CAConfig names an enterprise CA. Empty: DATA_DIR/ca.pem, created on
// first start.
type CAConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// AuditConfig says where audit events go.
type AuditConfig struct {
	// File is the JSONL trail: a path, "-" for stdout, "" for
	// DATA_DIR/audit.jsonl, "off" to disable.
	File     string `yaml:"file"`
	MaxBytes int64  `yaml:"max_bytes"`
	MaxFiles int    `yaml:"max_files"`
	// Store is the SQLite event store: "" for DATA_DIR/events.db, "off".
	Store     string   `yaml:"store"`
	Retention Duration `yaml:"retention"`
}

// LimitsConfig bounds what a client can make aigress hold.
type LimitsConfig struct {
	MaxBodyBytes          int64    `yaml:"max_body_bytes"`
	HandshakeTimeout      Duration `yaml:"handshake_timeout"`
	IdleTimeout           Duration `yaml:"idle_timeout"`
	UpstreamHeaderTimeout Duration `yaml:"upstream_header_timeout"`
	DialTimeout           Duration `yaml:"dial_timeout"`
	ShutdownGrace         Duration `yaml:"shutdown_grace"`
}

// LogConfig is the operational log.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// EBPFConfig turns on cgroup connect redirection.
type EBPFConfig struct {
	Enabled   bool     `yaml:"enabled"`
	Cgroup    string   `yaml:"cgroup"`
	AllTCP443 bool     `yaml:"all_tcp_443"`
	Targets   []string `yaml:"targets"` // CIDRs or addresses of AI endpoints
	BlockQUIC bool     `yaml:"block_quic"`
}

// Duration decodes "30s", "5m", "90d" (days are accepted).
type Duration time.Duration

// UnmarshalYAML implements yaml.BytesUnmarshaler.
func (d *Duration) UnmarshalYAML(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"'`)
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || days < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return v, nil
}

// decodeStrict decodes YAML into v, refusing unknown keys, and turns the
// error into "name:line:col: message".
func decodeStrict(data []byte, name string, v any) error {
	err := yaml.UnmarshalWithOptions(data, v, yaml.DisallowUnknownField())
	if err == nil {
		return nil
	}
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		pos := ye.GetToken().Position
		return fmt.Errorf("%s:%d:%d: %s", name, pos.Line, pos.Column, ye.GetMessage())
	}
	return fmt.Errorf("%s: %v", name, err)
}

// loadConfig reads path, or the embedded default when path is empty.
func loadConfig(path string) (*Config, error) {
	data, name := defaultConfigYAML, "embedded default config"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		data, name = b, path
	}
	var c Config
	if len(bytes.TrimSpace(data)) > 0 {
		if err := decodeStrict(data, name, &c); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	if path != "" && c.Policy != "" && !filepath.IsAbs(c.Policy) {
		c.Policy = filepath.Join(filepath.Dir(path), c.Policy)
	}
	return &c, nil
}

// applyDefaults fills what the config left empty and validates.
func (c *Config) applyDefaults() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir()
	}
	if c.TransparentMode == "" {
		c.TransparentMode = "redirect"
	}
	if c.TransparentMode != "redirect" && c.TransparentMode != "tproxy" {
		return fmt.Errorf("config: transparent_mode %q: want redirect or tproxy", c.TransparentMode)
	}
	if (c.CA.Cert == "") != (c.CA.Key == "") {
		return errors.New("config: ca.cert and ca.key go together")
	}
	for k, v := range c.Resolve {
		if _, _, err := net.SplitHostPort(k); err != nil {
			return fmt.Errorf("config: resolve key %q: want host:port", k)
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("config: resolve %q: value %q: want ip:port", k, v)
		}
	}
	if c.Audit.MaxBytes == 0 {
		c.Audit.MaxBytes = 100 << 20
	}
	if c.Audit.MaxFiles == 0 {
		c.Audit.MaxFiles = 5
	}
	if c.Limits.ShutdownGrace == 0 {
		c.Limits.ShutdownGrace = Duration(30 * time.Second)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	return nil
}
