package mockllm

import (
	"net/http"
	"strings"
	"time"
)

func errorType(status int) (typ, code string) {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error", "invalid_api_key"
	case status == http.StatusForbidden:
		return "permission_error", "forbidden"
	case status == http.StatusNotFound:
		return "not_found_error", "not_found"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error", "rate_limit_exceeded"
	case status < 500:
		return "invalid_request_error", "invalid_request"
	}
	return "api_error", "server_error"
}

func mockMessage(status int) string {
	return "mock error " + http.StatusText(status)
}

// ---- OpenAI ----

func openAIError(c *call, status int, msg string) {
	typ, code := errorType(status)
	if typ == "invalid_request_error" || typ == "not_found_error" {
		typ = "invalid_request_error"
	}
	writeJSON(c.w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
}

func openAIUsage() map[string]any {
	return map[string]any{
		"prompt_tokens": UsageInput, "completion_tokens": UsageOutput, "total_tokens": UsageInput + UsageOutput,
		"prompt_tokens_details":     map[string]any{"cached_tokens": UsageCached},
		"completion_tokens_details": map[string]any{"reasoning_tokens": UsageReasoning},
	}
}

func openAIChat(c *call) {
	if c.status != 0 {
		openAIError(c, c.status, mockMessage(c.status))
		return
	}
	req := c.jsonBody()
	model := c.model(req)
	created := time.Now().Unix()
	const id = "chatcmpl-mock"
	if stream, _ := req["stream"].(bool); !stream {
		writeJSON(c.w, 200, map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": model,
			"choices": []any{map[string]any{
				"index": 0, "message": map[string]any{"role": "assistant", "content": c.reply, "refusal": nil},
				"logprobs": nil, "finish_reason": "stop",
			}},
			"usage": openAIUsage(), "system_fingerprint": "fp_mock",
		})
		return
	}
	includeUsage := false
	if so, ok := req["stream_options"].(map[string]any); ok {
		includeUsage, _ = so["include_usage"].(bool)
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		m := map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_mock",
			"choices":            []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
		if includeUsage {
			m["usage"] = nil
		}
		return m
	}
	c.startSSE()
	c.sse("", chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil))
	for _, piece := range splitReply(c.reply, c.chunks) {
		if !c.pace() {
			return
		}
		c.sse("", chunk(map[string]any{"content": piece}, nil))
	}
	c.sse("", chunk(map[string]any{}, "stop"))
	if includeUsage {
		c.sse("", map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_mock", "choices": []any{}, "usage": openAIUsage(),
		})
	}
	c.sse("", "[DONE]")
}

func responsesUsage() map[string]any {
	return map[string]any{
		"input_tokens":          UsageInput,
		"input_tokens_details":  map[string]any{"cached_tokens": UsageCached},
		"output_tokens":         UsageOutput,
		"output_tokens_details": map[string]any{"reasoning_tokens": UsageReasoning},
		"total_tokens":          UsageInput + UsageOutput,
	}
}

func openAIResponses(c *call) {
	if c.status != 0 {
		openAIError(c, c.status, mockMessage(c.status))
		return
	}
	req := c.jsonBody()
	model := c.model(req)
	created := time.Now().Unix()
	const id, msgID = "resp_mock", "msg_mock"
	textPart := func(text string) map[string]any {
		return map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
	}
	item := func(status string, content []any) map[string]any {
		return map[string]any{"type": "message", "id": msgID, "status": status, "role": "assistant", "content": content}
	}
	response := func(status string, output []any, usage any) map[string]any {
		return map[string]any{
			"id": id, "object": "response", "created_at": created, "status": status, "model": model,
			"output": output, "usage": usage, "error": nil, "incomplete_details": nil,
		}
	}
	final := response("completed", []any{item("completed", []any{textPart(c.reply)})}, responsesUsage())
	if stream, _ := req["stream"].(bool); !stream {
		writeJSON(c.w, 200, final)
		return
	}
	seq := 0
	ev := func(typ string, fields map[string]any) {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		c.sse(typ, fields)
	}
	c.startSSE()
	ev("response.created", map[string]any{"response": response("in_progress", []any{}, nil)})
	ev("response.in_progress", map[string]any{"response": response("in_progress", []any{}, nil)})
	ev("response.output_item.added", map[string]any{"output_index": 0, "item": item("in_progress", []any{})})
	ev("response.content_part.added", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "part": textPart("")})
	for _, piece := range splitReply(c.reply, c.chunks) {
		if !c.pace() {
			return
		}
		ev("response.output_text.delta", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "delta": piece})
	}
	ev("response.output_text.done", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "text": c.reply})
	ev("response.content_part.done", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "part": textPart(c.reply)})
	ev("response.output_item.done", map[string]any{"output_index": 0, "item": item("completed", []any{textPart(c.reply)})})
	ev("response.completed", map[string]any{"response": final})
}

func openAIEmbeddings(c *call) {
	if c.status != 0 {
		openAIError(c, c.status, mockMessage(c.status))
		return
	}
	req := c.jsonBody()
	n := 1
	if in, ok := req["input"].([]any); ok && len(in) > 0 {
		if _, nested := in[0].(float64); !nested { // a list of token ids is one input
			n = len(in)
		}
	}
	data := make([]any, n)
	for i := range data {
		vec := make([]float64, EmbeddingDims)
		for j := range vec {
			vec[j] = float64(i+1) / float64(j+2)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": vec}
	}
	writeJSON(c.w, 200, map[string]any{
		"object": "list", "data": data, "model": c.model(req),
		"usage": map[string]any{"prompt_tokens": UsageInput, "total_tokens": UsageInput},
	})
}

// ---- Anthropic ----

func anthropicMessages(c *call) {
	if c.status != 0 {
		typ, _ := errorType(c.status)
		if c.status == 529 {
			typ = "overloaded_error"
		}
		c.w.Header().Set("request-id", "req_mock")
		writeJSON(c.w, c.status, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": mockMessage(c.status)}})
		return
	}
	req := c.jsonBody()
	model := c.model(req)
	const id = "msg_mock"
	if stream, _ := req["stream"].(bool); !stream {
		writeJSON(c.w, 200, map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": model,
			"content":     []any{map[string]any{"type": "text", "text": c.reply}},
			"stop_reason": "end_turn", "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": UsageInput, "output_tokens": UsageOutput,
				"cache_read_input_tokens": UsageCached, "cache_creation_input_tokens": 0},
		})
		return
	}
	ev := func(typ string, fields map[string]any) {
		fields["type"] = typ
		c.sse(typ, fields)
	}
	c.startSSE()
	ev("message_start", map[string]any{"message": map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": UsageInput, "output_tokens": 1,
			"cache_read_input_tokens": UsageCached, "cache_creation_input_tokens": 0},
	}})
	ev("content_block_start", map[string]any{"index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
	ev("ping", map[string]any{})
	for _, piece := range splitReply(c.reply, c.chunks) {
		if !c.pace() {
			return
		}
		ev("content_block_delta", map[string]any{"index": 0, "delta": map[string]any{"type": "text_delta", "text": piece}})
	}
	ev("content_block_stop", map[string]any{"index": 0})
	ev("message_delta", map[string]any{
		"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": UsageOutput},
	})
	ev("message_stop", map[string]any{})
}

// ---- Gemini ----

func geminiStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 503:
		return "UNAVAILABLE"
	}
	return "INTERNAL"
}

func gemini(c *call) {
	if c.status != 0 {
		writeJSON(c.w, c.status, map[string]any{"error": map[string]any{
			"code": c.status, "message": mockMessage(c.status), "status": geminiStatus(c.status)}})
		return
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(c.r.URL.Path, "/v1beta/models/"), "/v1/models/")
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		writeJSON(c.w, 404, map[string]any{"error": map[string]any{"code": 404, "message": "no method in " + c.r.URL.Path, "status": "NOT_FOUND"}})
		return
	}
	model, method := rest[:i], rest[i+1:]
	usage := map[string]any{
		"promptTokenCount": UsageInput, "candidatesTokenCount": UsageOutput,
		"cachedContentTokenCount": UsageCached, "thoughtsTokenCount": UsageReasoning,
		"totalTokenCount": UsageInput + UsageOutput + UsageReasoning,
	}
	cand := func(text string, finish bool) []any {
		m := map[string]any{"content": map[string]any{"parts": []any{map[string]any{"text": text}}, "role": "model"}, "index": 0}
		if finish {
			m["finishReason"] = "STOP"
		}
		return []any{m}
	}
	switch method {
	case "generateContent":
		writeJSON(c.w, 200, map[string]any{"candidates": cand(c.reply, true), "usageMetadata": usage, "modelVersion": model, "responseId": "mock"})
	case "streamGenerateContent":
		pieces := splitReply(c.reply, c.chunks)
		sse := c.r.URL.Query().Get("alt") == "sse"
		if sse {
			c.startSSE()
		} else { // the JSON-array stream of the API without alt=sse
			c.w.Header().Set("Content-Type", "application/json; charset=UTF-8")
			c.w.WriteHeader(200)
			_, _ = c.w.Write([]byte("["))
			c.flush()
		}
		for i, piece := range pieces {
			if !c.pace() {
				return
			}
			last := i == len(pieces)-1
			u := map[string]any{"promptTokenCount": UsageInput, "totalTokenCount": UsageInput}
			if last {
				u = usage
			}
			chunk := map[string]any{"candidates": cand(piece, last), "usageMetadata": u, "modelVersion": model, "responseId": "mock"}
			if sse {
				c.sse("", chunk)
				continue
			}
			b := mustJSON(chunk)
			if i > 0 {
				b = append([]byte(",\r\n"), b...)
			}
			_, _ = c.w.Write(b)
			c.flush()
		}
		if !sse {
			_, _ = c.w.Write([]byte("]"))
			c.flush()
		}
	case "embedContent":
		vec := make([]float64, EmbeddingDims)
		for j := range vec {
			vec[j] = 1 / float64(j+2)
		}
		writeJSON(c.w, 200, map[string]any{"embedding": map[string]any{"values": vec}})
	case "countTokens":
		writeJSON(c.w, 200, map[string]any{"totalTokens": UsageInput})
	default:
		writeJSON(c.w, 404, map[string]any{"error": map[string]any{"code": 404, "message": "unknown method " + method, "status": "NOT_FOUND"}})
	}
}

// ---- Ollama ----

func ollama(c *call) {
	if c.status != 0 {
		writeJSON(c.w, c.status, map[string]any{"error": mockMessage(c.status)})
		return
	}
	req := c.jsonBody()
	model := c.model(req)
	chat := c.r.URL.Path == "/api/chat"
	stream := true // Ollama streams unless told not to
	if v, ok := req["stream"].(bool); ok {
		stream = v
	}
	msg := func(text string, done bool) map[string]any {
		m := map[string]any{"model": model, "created_at": time.Now().UTC().Format(time.RFC3339Nano), "done": done}
		if chat {
			m["message"] = map[string]any{"role": "assistant", "content": text}
		} else {
			m["response"] = text
		}
		if done {
			m["done_reason"] = "stop"
			m["total_duration"] = 1000000
			m["prompt_eval_count"] = UsageInput
			m["eval_count"] = UsageOutput
		}
		return m
	}
	if !stream {
		writeJSON(c.w, 200, msg(c.reply, true))
		return
	}
	c.w.Header().Set("Content-Type", "application/x-ndjson")
	c.w.WriteHeader(200)
	c.flush()
	for _, piece := range splitReply(c.reply, c.chunks) {
		if !c.pace() {
			return
		}
		_, _ = c.w.Write(append(mustJSON(msg(piece, false)), '\n'))
		c.flush()
	}
	_, _ = c.w.Write(append(mustJSON(msg("", true)), '\n'))
	c.flush()
}
