package classify

import "encoding/json"

// ParseRealtimeServerEvent reads token usage from one OpenAI Realtime
// server event ("response.done" carries response.usage). ok is false for
// events without usage. It never panics on malformed input.
func ParseRealtimeServerEvent(msg []byte) (u Usage, text string, ok bool) {
	var ev struct {
		Type     string `json:"type"`
		Delta    string `json:"delta"`
		Text     string `json:"text"`
		Response struct {
			Usage *struct {
				InputTokens       int64 `json:"input_tokens"`
				OutputTokens      int64 `json:"output_tokens"`
				InputTokenDetails struct {
					CachedTokens int64 `json:"cached_tokens"`
				} `json:"input_token_details"`
			} `json:"usage"`
		} `json:"response"`
	}
	if json.Unmarshal(msg, &ev) != nil {
		return Usage{}, "", false
	}
	switch ev.Type {
	case "response.text.delta", "response.output_text.delta", "response.audio_transcript.delta":
		return Usage{}, ev.Delta, false
	case "response.done":
		if ev.Response.Usage == nil {
			return Usage{}, "", false
		}
		r := ev.Response.Usage
		return Usage{Input: r.InputTokens, Output: r.OutputTokens, Cached: r.InputTokenDetails.CachedTokens}, "", true
	}
	return Usage{}, "", false
}
