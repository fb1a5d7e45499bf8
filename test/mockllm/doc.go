// Package mockllm is the mock LLM upstream for aigress's end-to-end tests and
// benchmarks (DESIGN.md section 8, issue 2 part 5). It never touches the
// network beyond 127.0.0.1.
//
// Start serves HTTPS on 127.0.0.1:0 with HTTP/1.1 and HTTP/2 (ALPN) from its
// own test CA, generated in memory at start (ECDSA P-256 root and one leaf
// for Options.Hosts plus localhost, 127.0.0.1 and ::1). Tests trust it with
// CAPEM/WriteCA and reach provider host names through aigress's resolve
// override. Every request is recorded (Requests, Reset) before it is
// answered, so a test can assert what actually left the proxy.
//
// API shapes (path → behaviour):
//   - POST /v1/chat/completions: OpenAI chat; JSON, or SSE chunks with
//     choices[].delta.content, a usage chunk (choices: []) when
//     stream_options.include_usage is true, then "data: [DONE]".
//   - POST /v1/responses: OpenAI Responses; typed SSE events from
//     response.created to response.completed (usage with cached and
//     reasoning details).
//   - POST /v1/embeddings: EmbeddingDims-long vectors, one per input.
//   - POST /v1/messages: Anthropic messages; SSE message_start …
//     message_stop.
//   - POST /v1beta/models/{m}:generateContent and :streamGenerateContent
//     (SSE with ?alt=sse, else a streamed JSON array): Gemini with
//     usageMetadata on the last chunk.
//   - POST /model/{id}/converse and /converse-stream: Bedrock Converse;
//     the stream is application/vnd.amazon.eventstream frames with correct
//     CRCs (messageStart, contentBlockDelta…, contentBlockStop, messageStop,
//     metadata{usage}). EncodeMessage/ReadEventStreamMessage are exported.
//   - POST /api/chat, /api/generate: Ollama NDJSON (streams unless
//     "stream": false).
//   - GET /v1/realtime: WebSocket echo (RFC 6455 handshake and framing
//     written here, HTTP/1.1 only); GET /v1/models: a one-model list.
//
// Determinism: every shape reports UsageInput, UsageOutput (and where the
// API has them UsageCached, UsageReasoning) tokens, whatever the request.
// The model text is DefaultReply or the X-Mock-Reply header, cut into
// Options.Chunks (X-Mock-Chunks) deltas of near-equal rune counts (fewer if
// the text is shorter), each written and flushed after a pause of
// Options.ChunkDelay (X-Mock-Delay-Ms). Stream preambles (role chunk,
// message_start, …) are sent at once; closing events right after the last
// delta. X-Mock-Status: NNN answers that status in the provider's own
// error shape (OpenAI error object, Anthropic type=error, Gemini
// error.status, Bedrock message + x-amzn-ErrorType, Ollama error string).
//
// StartPlainTLS is a non-AI origin ("bank.example") with its own distinct
// CA: tests compare Fingerprint with what a tunnelled client saw.
// StartUntrusted is an HTTPS server whose CA is never exposed, for
// 502-on-bad-certificate tests.
package mockllm
