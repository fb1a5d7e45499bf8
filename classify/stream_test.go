package classify

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"
)

// awsFrame encodes one application/vnd.amazon.eventstream message with
// string headers.
func awsFrame(headers [][2]string, payload []byte) []byte {
	var h bytes.Buffer
	for _, kv := range headers {
		h.WriteByte(byte(len(kv[0])))
		h.WriteString(kv[0])
		h.WriteByte(7)
		_ = binary.Write(&h, binary.BigEndian, uint16(len(kv[1])))
		h.WriteString(kv[1])
	}
	total := 12 + h.Len() + len(payload) + 4
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, uint32(total))
	_ = binary.Write(&b, binary.BigEndian, uint32(h.Len()))
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(b.Bytes()))
	b.Write(h.Bytes())
	b.Write(payload)
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(b.Bytes()))
	return b.Bytes()
}

func awsEvent(evType, payload string) []byte {
	return awsFrame([][2]string{{":event-type", evType}, {":content-type", "application/json"}, {":message-type", "event"}}, []byte(payload))
}

func converseStream() []byte {
	var b bytes.Buffer
	b.Write(awsEvent("messageStart", `{"role":"assistant","p":"abcd"}`))
	b.Write(awsEvent("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Here "},"p":"ab"}`))
	b.Write(awsEvent("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"you go"},"p":"ab"}`))
	b.Write(awsEvent("contentBlockStop", `{"contentBlockIndex":0}`))
	b.Write(awsEvent("messageStop", `{"stopReason":"end_turn"}`))
	b.Write(awsEvent("metadata", `{"usage":{"inputTokens":21,"outputTokens":4,"totalTokens":25},"metrics":{"latencyMs":400}}`))
	return b.Bytes()
}

func invokeStream() []byte {
	chunk := func(js string) []byte {
		return awsEvent("chunk", `{"bytes":"`+base64.StdEncoding.EncodeToString([]byte(js))+`","p":"x"}`)
	}
	var b bytes.Buffer
	b.Write(chunk(`{"type":"message_start","message":{"model":"claude-3-haiku-20240307","usage":{"input_tokens":14,"output_tokens":1}}}`))
	b.Write(chunk(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Bonjour"}}`))
	b.Write(chunk(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":6}}`))
	b.Write(chunk(`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":14,"outputTokenCount":6,"invocationLatency":300,"firstByteLatency":100}}`))
	return b.Bytes()
}

func TestStreamDecoder(t *testing.T) {
	big := strings.Repeat("x", streamMaxEvent+10)
	cases := []struct {
		name, shape, ctype string
		body               []byte
		wantText           string
		want               Usage
		events, oversize   int
		bad                int
	}{
		{name: "ok/bedrock_converse_stream", shape: "bedrock.converse", ctype: "application/vnd.amazon.eventstream",
			body: converseStream(), wantText: "Here you go", want: Usage{Input: 21, Output: 4}, events: 6},
		{name: "ok/bedrock_invoke_stream", shape: "bedrock.invoke", ctype: "application/vnd.amazon.eventstream",
			body: invokeStream(), wantText: "Bonjour", want: Usage{Input: 14, Output: 6, Model: "claude-3-haiku-20240307"}, events: 4},
		{name: "ok/bedrock_by_shape_without_ctype", shape: "bedrock.converse", ctype: "",
			body: converseStream(), wantText: "Here you go", want: Usage{Input: 21, Output: 4}, events: 6},
		{name: "ok/sse_crlf", shape: "openai.chat", ctype: "text/event-stream",
			body:     []byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n: comment\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\r\n\r\n"),
			wantText: "ab", events: 2},
		{name: "ok/sse_multiline_data", shape: "openai.chat", ctype: "text/event-stream",
			body:     []byte("data: {\"choices\":\ndata: [{\"delta\":{\"content\":\"a\"}}]}\n\n"),
			wantText: "a", events: 1},
		{name: "ok/sse_last_event_without_blank_line", shape: "openai.chat", ctype: "text/event-stream",
			body:     []byte("data: {\"choices\":[{\"delta\":{\"content\":\"z\"}}]}"),
			wantText: "z", events: 1},
		{name: "ok/ndjson_without_final_newline", shape: "ollama", ctype: "application/x-ndjson",
			body:     []byte(`{"message":{"content":"hi"},"done":false}` + "\n" + `{"done":true,"prompt_eval_count":3,"eval_count":1}`),
			wantText: "hi", want: Usage{Input: 3, Output: 1}, events: 2},
		{name: "fail/sse_oversize_event_skipped", shape: "openai.chat", ctype: "text/event-stream",
			body:     []byte("data: " + big + "\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n"),
			wantText: "ok", events: 1, oversize: 1},
		{name: "fail/ndjson_oversize_line_skipped", shape: "ollama", ctype: "application/x-ndjson",
			body:     []byte(big + "\n" + `{"response":"ok"}` + "\n"),
			wantText: "ok", events: 1, oversize: 1},
		{name: "fail/aws_bad_message_crc", shape: "bedrock.converse", ctype: "application/vnd.amazon.eventstream",
			body: func() []byte {
				b := converseStream()
				f := awsEvent("contentBlockDelta", `{"delta":{"text":"BAD"}}`)
				f[len(f)-6] ^= 0xff // corrupt payload
				return append(f, b...)
			}(), wantText: "Here you go", want: Usage{Input: 21, Output: 4}, events: 6, bad: 1},
		{name: "fail/aws_bad_prelude_resync", shape: "bedrock.converse", ctype: "application/vnd.amazon.eventstream",
			body: append([]byte("garbage-bytes-here"), converseStream()...), wantText: "Here you go", want: Usage{Input: 21, Output: 4}, events: 6, bad: 1},
		{name: "fail/aws_oversize_frame", shape: "bedrock.converse", ctype: "application/vnd.amazon.eventstream",
			body:     append(awsEvent("contentBlockDelta", `{"delta":{"text":"`+big+`"}}`), converseStream()...),
			wantText: "Here you go", want: Usage{Input: 21, Output: 4}, events: 6, oversize: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := NewStreamDecoder(tc.shape, tc.ctype)
			var sb strings.Builder
			d.OnText = func(s string) { sb.WriteString(s) }
			_, _ = d.Write(tc.body)
			d.Close()
			if sb.String() != tc.wantText || d.Usage() != tc.want || d.Events() != tc.events || d.Oversize() != tc.oversize || d.BadFrames() != tc.bad {
				t.Fatalf("got text %q usage %+v events %d oversize %d bad %d", sb.String(), d.Usage(), d.Events(), d.Oversize(), d.BadFrames())
			}
			if len(tc.body) < 4096 {
				checkSplits(t, tc.shape, tc.ctype, tc.body)
			} else {
				// Big bodies: a few splits, including inside the oversize event.
				u0, s0, e0 := decodeStreamPieces(tc.shape, tc.ctype, [][]byte{tc.body})
				for _, i := range []int{1, 7, 100, streamMaxEvent / 2, streamMaxEvent + 3, len(tc.body) - 5} {
					pieces := [][]byte{tc.body[:i], tc.body[i : i+(len(tc.body)-i)/2], tc.body[i+(len(tc.body)-i)/2:]}
					if u, s, e := decodeStreamPieces(tc.shape, tc.ctype, pieces); u != u0 || s != s0 || e != e0 {
						t.Fatalf("split at %d differs", i)
					}
				}
			}
		})
	}
}

func TestParseResponseStreamBodies(t *testing.T) {
	u, texts := ParseResponse("bedrock.converse", "application/vnd.amazon.eventstream", converseStream())
	if u.Input != 21 || u.Output != 4 || len(texts) != 1 || texts[0] != "Here you go" {
		t.Fatalf("got %+v %q", u, texts)
	}
	u, texts = ParseResponse("gemini.generate", "application/json", []byte(`[{"candidates":[{"content":{"parts":[{"text":"a"}]}}]},
{"candidates":[{"content":{"parts":[{"text":"b"}]}}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2}}]`))
	if u.Input != 3 || u.Output != 2 || len(texts) != 2 || texts[0]+texts[1] != "ab" {
		t.Fatalf("gemini array: got %+v %q", u, texts)
	}
	u, texts = ParseResponse("openai.chat", "", []byte("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\n"))
	if len(texts) != 1 || texts[0] != "x" {
		t.Fatalf("sse without content type: got %+v %q", u, texts)
	}
	u, texts = ParseResponse("ollama", "", []byte("{\"response\":\"a\"}\n{\"response\":\"b\",\"done\":true,\"eval_count\":2}\n"))
	if u.Output != 2 || len(texts) != 1 || texts[0] != "ab" {
		t.Fatalf("ndjson without content type: got %+v %q", u, texts)
	}
	u, texts = ParseResponse("openai.chat", "application/json", []byte("{not json"))
	if u != (Usage{}) || texts != nil {
		t.Fatalf("fail/malformed: got %+v %q", u, texts)
	}
}

// streamFuzzSeeds returns one valid stream per format.
func streamFuzzSeeds() map[string][]byte {
	sse, _ := streamSeedFile("testdata/responses/anthropic.messages_stream.txtar")
	return map[string][]byte{
		"text/event-stream":                  sse,
		"application/x-ndjson":               []byte(`{"message":{"content":"a"}}` + "\n" + `{"done":true,"eval_count":2}` + "\n"),
		"application/vnd.amazon.eventstream": invokeStream(),
	}
}

func streamSeedFile(name string) ([]byte, error) {
	b, err := readFileForTest(name)
	if err != nil {
		return nil, err
	}
	_, secs := parseTxtar(b)
	body, _ := section(secs, "body")
	return body, nil
}

func FuzzStreamDecoder(f *testing.F) {
	for ct, b := range streamFuzzSeeds() {
		f.Add(ct, b, uint16(3))
		f.Add(ct, b, uint16(0))
	}
	f.Add("application/vnd.amazon.eventstream", converseStream(), uint16(11))
	cts := []string{"text/event-stream", "application/x-ndjson", "application/vnd.amazon.eventstream"}
	f.Fuzz(func(t *testing.T, ct string, body []byte, split uint16) {
		for _, c := range append(cts, ct) {
			for _, shape := range []string{"openai.chat", "chatgpt.web", "bedrock.invoke"} {
				d := &StreamDecoder{}
				*d = *NewStreamDecoder(shape, c)
				d.OnText = func(string) {}
				i := int(split)
				if i > len(body) {
					i = len(body)
				}
				d.write(body[:i])
				d.write(body[i:])
				d.Close()
				_ = d.Usage()
			}
		}
		_, _ = parseResponse("openai.chat", "application/json", body)
	})
}

func BenchmarkStreamDecoderSSE(b *testing.B) {
	var sse bytes.Buffer
	for sse.Len() < 1<<20 {
		sse.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}],"usage":null}` + "\n\n")
	}
	body := sse.Bytes()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d := NewStreamDecoder("openai.chat", "text/event-stream")
		d.OnText = func(string) {}
		for p := body; len(p) > 0; {
			n := min(len(p), 4096)
			_, _ = d.Write(p[:n])
			p = p[n:]
		}
		d.Close()
	}
}
