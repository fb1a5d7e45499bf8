package audit

import (
	"encoding/json"
	"time"
)

// Event kinds.
const (
	KindIntercept    = "intercept"
	KindTunnel       = "tunnel"
	KindConnectBlock = "connect_block"
	KindDNS          = "dns"
	KindSensor       = "sensor"
)

// Event is one audit record: one JSON line in the trail and one row in the
// store. Proxy, DNS and sensor events share it (DESIGN.md section 6). It
// never holds a raw secret, key or (unless the policy asks) prompt text.
type Event struct {
	ID       string    `json:"id"` // ULID: sortable by time
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Client   Client    `json:"client"`
	Dest     Dest      `json:"dest"`
	Provider string    `json:"provider,omitempty"`
	Service  string    `json:"service,omitempty"`
	Category string    `json:"category,omitempty"`
	Endpoint string    `json:"endpoint,omitempty"`
	Model    string    `json:"model,omitempty"`
	Stream   bool      `json:"stream,omitempty"`
	Account  *Account  `json:"account,omitempty"`
	Request  *ReqInfo  `json:"request,omitempty"`
	Response *RespInfo `json:"response,omitempty"`

	Findings   map[string]int `json:"findings,omitempty"` // finding type -> count
	Decision   *Decision      `json:"decision,omitempty"`
	Redactions int            `json:"redactions,omitempty"`
	PolicyHash string         `json:"policy_hash,omitempty"`
	Latency    *Latency       `json:"latency_ms,omitempty"`
	Error      string         `json:"error,omitempty"`
	// Prompt is present only as the policy's retention mode says:
	// "hash" gives "sha256:…", "redacted" the redacted text, "full" the text.
	Prompt string `json:"prompt,omitempty"`

	DNS    *DNSInfo    `json:"dns,omitempty"`
	Sensor *SensorInfo `json:"sensor,omitempty"`

	// raw is the event's JSON, encoded once by Encode before the event is
	// handed to the sinks, so that the trail and the store share it.
	raw []byte
}

// Encode marshals the event once, for every sink that writes it. Call it
// after the last change and before Write; the sinks then reuse the bytes.
func (e *Event) Encode() error {
	e.raw = nil
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	e.raw = b
	return nil
}

// marshal returns the event's JSON, from Encode when it was called.
func (e *Event) marshal() ([]byte, error) {
	if e.raw != nil {
		return e.raw, nil
	}
	return json.Marshal(e)
}

// Client is who made the request.
type Client struct {
	IP      string   `json:"ip,omitempty"`
	Port    int      `json:"port,omitempty"`
	User    string   `json:"user,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Process *Process `json:"process,omitempty"`
}

// Process is the local program behind a connection (eBPF mode).
type Process struct {
	PID       uint32 `json:"pid"`
	Comm      string `json:"comm,omitempty"`
	UID       uint32 `json:"uid"`
	Cgroup    string `json:"cgroup,omitempty"`
	Unit      string `json:"unit,omitempty"`      // systemd unit, when derivable
	Container string `json:"container,omitempty"` // container ID, when derivable
}

// Dest is where the request went.
type Dest struct {
	Host string `json:"host,omitempty"`
	SNI  string `json:"sni,omitempty"`
	IP   string `json:"ip,omitempty"`
	Port int    `json:"port,omitempty"`
}

// Account is the AI account in use. EmailHash is "sha256:…" of the
// lower-cased e-mail claim; Email is set only when the policy asks.
type Account struct {
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	Org            string `json:"org,omitempty"`
	Project        string `json:"project,omitempty"`
	EmailHash      string `json:"email_hash,omitempty"`
	Email          string `json:"email,omitempty"`
	Corporate      *bool  `json:"corporate,omitempty"`
}

// ReqInfo sums up the request.
type ReqInfo struct {
	Bytes         int64  `json:"bytes"`
	Parts         int    `json:"parts"`
	Attachments   int    `json:"attachments"`
	Uninspectable string `json:"uninspectable,omitempty"`
}

// RespInfo sums up the response.
type RespInfo struct {
	Status int    `json:"status"`
	Bytes  int64  `json:"bytes"`
	Tokens Tokens `json:"tokens"`
}

// Tokens is token usage.
type Tokens struct {
	Input     int64 `json:"input"`
	Output    int64 `json:"output"`
	Cached    int64 `json:"cached"`
	Reasoning int64 `json:"reasoning"`
}

// Decision is the policy verdict as recorded.
type Decision struct {
	Action string `json:"action"`
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Latency in milliseconds (fractional).
type Latency struct {
	Upstream  float64 `json:"upstream"`
	Total     float64 `json:"total"`
	FirstByte float64 `json:"first_byte"`
}

// DNSInfo is set on dns events.
type DNSInfo struct {
	Name    string   `json:"name"`
	QType   string   `json:"qtype"`
	Answers []string `json:"answers,omitempty"`
	Rcode   string   `json:"rcode"`
	Action  string   `json:"action"` // forward | steer | refuse | cached
}

// SensorInfo is set on sensor events: one per (client, service) pair seen
// in a capture.
type SensorInfo struct {
	Source    string    `json:"source"` // sni | quic | http_host | dns
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Flows     int64     `json:"flows"`
	Lookups   int64     `json:"lookups,omitempty"` // DNS lookups of the service's names (source dns_query)
	Bytes     int64     `json:"bytes"`
	Packets   int64     `json:"packets"`
}

// Sink receives events. Write must not block the caller for long: sinks
// that do I/O buffer and count what they could not keep.
type Sink interface {
	Write(e *Event)
	Close() error
}
