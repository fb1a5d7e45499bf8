package classify

import "testing"

func TestParseRealtimeServerEvent(t *testing.T) {
	cases := []struct {
		name string
		in   string
		ok   bool
		u    Usage
		text string
	}{
		{"ok/response.done", `{"type":"response.done","response":{"usage":{"input_tokens":12,"output_tokens":30,"input_token_details":{"cached_tokens":4}}}}`, true, Usage{Input: 12, Output: 30, Cached: 4}, ""},
		{"ok/delta", `{"type":"response.text.delta","delta":"hel"}`, false, Usage{}, "hel"},
		{"fail/no-usage", `{"type":"response.done","response":{}}`, false, Usage{}, ""},
		{"fail/garbage", `{"type":`, false, Usage{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, text, ok := ParseRealtimeServerEvent([]byte(c.in))
			if ok != c.ok || u != c.u || text != c.text {
				t.Fatalf("got %+v %q %v", u, text, ok)
			}
		})
	}
}

func FuzzParseRealtimeServerEvent(f *testing.F) {
	f.Add([]byte(`{"type":"response.done","response":{"usage":{"input_tokens":1}}}`))
	f.Fuzz(func(t *testing.T, b []byte) { ParseRealtimeServerEvent(b) })
}
