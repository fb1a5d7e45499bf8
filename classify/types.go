package classify

// This file holds the types that other packages depend on. They are the
// contract between classify and mitm, enforce, audit and discover: change
// them only together with every user.

import "net/http"

// Category is the kind of AI service.
type Category string

// Categories of catalog entries.
const (
	CategoryAPI     Category = "api"
	CategoryChat    Category = "chat"
	CategoryCoding  Category = "coding"
	CategoryMedia   Category = "media"
	CategoryWriting Category = "writing"
	CategoryGateway Category = "gateway"
)

// Service is what the catalog knows about an AI destination.
type Service struct {
	Provider string   `json:"provider" yaml:"provider"` // "openai", "anthropic", "google", ...
	Service  string   `json:"service" yaml:"service"`   // "OpenAI API", "ChatGPT", ...
	Category Category `json:"category" yaml:"category"`
	// Inspect is true when aigress can and should decrypt this host's
	// traffic (it is not certificate-pinned and its content is parseable).
	Inspect bool `json:"inspect" yaml:"inspect"`
}

// Endpoint kinds.
const (
	EndpointChat        = "chat"
	EndpointCompletions = "completions"
	EndpointResponses   = "responses"
	EndpointEmbeddings  = "embeddings"
	EndpointFiles       = "files"
	EndpointRealtime    = "realtime"
	EndpointMessages    = "messages"
	EndpointGenerate    = "generate"
	EndpointConverse    = "converse"
	EndpointInvoke      = "invoke"
	EndpointFIM         = "fim"
	EndpointWebChat     = "web_chat"
	EndpointOther       = "other"
)

// Roles of text parts.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
	RoleUnknown   = "unknown"
)

// RequestInput is everything a request parser may look at. Body is the raw
// body as received (possibly Content-Encoded); parsers decode it themselves
// through DecodeBody.
type RequestInput struct {
	Method string
	Host   string // without port
	Path   string // URL path, without query
	Query  string // raw query
	Header http.Header
	Body   []byte
	// MaxDecoded bounds the decoded body size; 0 means DefaultMaxDecoded.
	MaxDecoded int
}

// Part is one piece of text in a request body, with its role.
//
// Start and End are byte offsets into Request.Body (the decoded body) of the
// whole JSON string token, quotes included, that holds Text. Text is the
// unescaped value. Redaction rewrites Body[Start:End] with a new JSON string
// token, so every other byte stays identical. For non-JSON bodies (multipart
// text files, plain text) Raw is true and Start/End delimit Text itself.
type Part struct {
	Role  string `json:"role"`
	Text  string `json:"-"`
	Start int    `json:"start"`
	End   int    `json:"end"`
	Raw   bool   `json:"raw,omitempty"`
}

// Attachment is a file or media item inside a request.
type Attachment struct {
	Name      string `json:"name,omitempty"`
	MediaType string `json:"media_type"`
	Size      int    `json:"size"`
	SHA256    string `json:"sha256"`
	// Inspected is true when its text was extracted into Parts.
	Inspected bool `json:"inspected"`
}

// Account is what the request says about the AI account in use. Email is
// the raw claim and must never be logged or stored as is: audit stores it
// hashed unless the policy says otherwise.
type Account struct {
	KeyFingerprint string `json:"key_fingerprint,omitempty"` // "sha256:" + 16 hex chars
	Org            string `json:"org,omitempty"`
	Project        string `json:"project,omitempty"`
	Email          string `json:"-"`
}

// Request is the understanding of one request.
type Request struct {
	Provider string `json:"provider"`
	Shape    string `json:"shape"` // parser that understood it: "openai.chat", "anthropic.messages", "json.generic", ...
	Endpoint string `json:"endpoint"`
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`

	// Body is the decoded body (Content-Encoding removed). Part offsets
	// refer to it.
	Body        []byte       `json:"-"`
	Encoding    string       `json:"encoding,omitempty"` // Content-Encoding that was removed
	Parts       []Part       `json:"parts"`
	Attachments []Attachment `json:"attachments,omitempty"`
	Account     Account      `json:"account"`

	// Uninspectable is non-empty when the body could not be inspected
	// (too large, decompression bomb, unknown encoding, malformed). Policy
	// decides what happens then.
	Uninspectable string `json:"uninspectable,omitempty"`
}

// Usage is token usage reported by the provider.
type Usage struct {
	Input     int64  `json:"input"`
	Output    int64  `json:"output"`
	Cached    int64  `json:"cached"`
	Reasoning int64  `json:"reasoning"`
	Model     string `json:"model,omitempty"` // the model actually served
}

// Finding categories.
const (
	FindingSecret = "secret"
	FindingPII    = "pii"
	FindingCustom = "custom"
)

// Finding is one detected secret or personal datum. Start and End are byte
// offsets into the scanned text.
type Finding struct {
	Type       string  `json:"type"`     // "aws_access_key", "email", ...
	Category   string  `json:"category"` // secret | pii | custom
	Start      int     `json:"start"`
	End        int     `json:"end"`
	Confidence float64 `json:"confidence"` // 0..1
	Validated  bool    `json:"validated"`  // a checksum or structure check passed
}

// PartFinding is a finding inside one request part: Part indexes
// Request.Parts and Start/End are offsets into that part's Text.
type PartFinding struct {
	Part int `json:"part"`
	Finding
}
