// Package enforce owns the policy: its language and loading, identity,
// decisions, redaction and restoration, block responses, quotas and
// reload. Apart from loading files (LoadFile, Engine) it is pure: every
// decision is a function of (policy, identity, classified request).
//
// # Policy language
//
// YAML, apiVersion aigress/v1, kind Policy, decoded strictly: an unknown
// key is an error with line and column. Compilation validates everything
// (CIDRs, globs, regexes, actions, unique IDs, htpasswd) and reports every
// error at once, each as "enforce: FILE:LINE:COL: path: message". Unknown
// finding type names are only warnings (Policy.Warnings), because a newer
// classify may know them. policies/schema.json mirrors the Go structs in
// spec.go (a test keeps them in step).
//
// # Decisions
//
// Rules are ordered and every rule has an ID. They come in two kinds,
// each walked in order with the first match winning:
//
//   - access rules (no match.findings): groups, users, providers,
//     services, categories, models, endpoints, account class. With no
//     match, default_action. A personal account meets
//     accounts.personal_action first.
//   - data rules (with match.findings): the first rule whose conditions
//     hold and that selects at least one finding.
//
// An access block wins; otherwise the stricter of the two results is the
// decision (the data rule's on a tie). A single first-match list would
// force a choice between "an allow rule switches redaction off" and "a
// redaction lets an unapproved model through"; two lists avoid both while
// staying predictable. Globs are path.Match patterns, case-insensitive.
//
// Uninspectable requests get the fail mode of their service (by service
// name, then provider, then uninspectable.default): fail-closed blocks,
// fail-open goes through the rules without findings and is raised to at
// least alert so the audit trail shows it.
//
// ConnectDecision refuses at CONNECT only what is certain to be refused:
// connect.block, an access rule that blocks on identity and service alone,
// block_unlisted_ai for services no rule names, default_action block when
// no access rule can apply, and pinned (uninspectable) services failing
// closed. Anything that depends on the request is decided per request.
//
// # Block responses
//
// BlockResponse shapes refusals like the provider's own errors (OpenAI and
// the OpenAI-compatible family, Anthropic, Gemini, Bedrock with
// X-Amzn-ErrorType) so official SDKs raise readable errors; web chat
// shapes get a small escaped HTML page. Messages carry the reason (or the
// rule's message) and "(aigress event ID)". Quota refusals are 429 with
// the provider's rate-limit type. StreamErrorEvent ends a stream that the
// output rules stopped mid-way.
//
// # Redaction
//
// Redact rewrites only the offending text. In a JSON part it replaces
// just the bytes of the string token that encode the finding (escapes
// elsewhere in that string are kept; a finding that starts or ends inside
// an escape takes the whole escape); in a raw part the bytes themselves.
// All other bytes are identical. Placeholders are typed ([EMAIL_1], the
// same value getting the same placeholder within a request) or keyed
// hashes ([EMAIL:1a2b3c4d], HMAC-SHA256 with redaction.hash_key, or a
// random per-load key when none is configured, so hashes are then stable
// only within one policy load). The returned body is the decoded body:
// the caller must set Content-Length to its length and either re-apply
// Request.Encoding or drop Content-Encoding.
//
// A Restorer (when the rule sets redaction.restore) puts originals back
// into the answer: RestoreBody for whole bodies (JSON-escaping originals
// inside JSON), RestoreStream for streams. On SSE it rewrites each event's
// text delta (the first string under "content", "text" or "delta"); a
// placeholder split across events is completed by holding back only the
// possible placeholder prefix (shorter than the longest placeholder) and
// prepending it to the next text event, or emitting it as a copy of its
// event before the next non-text event or at Flush. Bytes split across
// network reads wait for the event's end (bounded at 1 MiB per event).
// Other streams (NDJSON, text) hold back at most the longest placeholder.
//
// # Quotas
//
// Quotas count in fixed windows (minute, UTC day) in a QuotaStore; the
// in-process MemoryStore is bounded. Check counts a request when it lets
// it through and refuses with ActionQuota once a limit is reached; Charge
// adds input+output tokens from the response usage, so a token limit
// refuses the requests after the one that crossed it. Counters are keyed
// by quota ID and survive reloads. Concurrent requests may overshoot a
// request limit by the number in flight (check and add are separate).
//
// # Identity
//
// Groups come from CIDRs and from user names; the user from
// Proxy-Authorization: Basic checked against a bcrypt-only htpasswd file
// (successful checks cached by credential hash for 5 minutes, 1024 entries
// at most), or from the trusted header, accepted only from
// trusted_proxies (otherwise ignored and noted in Identity.Note).
// ErrProxyAuthRequired asks the caller for a 407 (AuthRequiredResponse).
// ClassifyAccount tells corporate accounts from personal ones and hashes
// e-mail claims (raw e-mail only with audit.store_email).
//
// # Reload
//
// Engine holds the current policy in an atomic pointer. ReloadFile and
// Watch (polling size, mtime, then content hash; no fsnotify) install a
// policy only when it compiles; otherwise the old one keeps serving, the
// error is logged and counted (Reloads, aigress_policy_reloads_total on a
// registry the caller passes to RegisterMetrics). OnSwap callbacks let
// the caller rebuild what depends on the policy, such as the detector
// built from CustomRules.
package enforce
