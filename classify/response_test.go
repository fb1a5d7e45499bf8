package classify

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type goldenResponse struct {
	Usage  Usage    `json:"usage"`
	Texts  []string `json:"texts"`
	Events int      `json:"events,omitempty"`
}

// decodeStreamPieces feeds body to a new decoder in the given pieces.
func decodeStreamPieces(shape, ctype string, pieces [][]byte) (Usage, string, int) {
	d := NewStreamDecoder(shape, ctype)
	var sb strings.Builder
	d.OnText = func(s string) { sb.WriteString(s) }
	for _, p := range pieces {
		if n, err := d.Write(p); n != len(p) || err != nil {
			panic("short write")
		}
	}
	d.Close()
	return d.Usage(), sb.String(), d.Events()
}

// checkSplits asserts that every 2-way split and some random n-way splits
// decode to the same result as the whole body.
func checkSplits(t *testing.T, shape, ctype string, body []byte) {
	t.Helper()
	u0, s0, e0 := decodeStreamPieces(shape, ctype, [][]byte{body})
	for i := 0; i <= len(body); i++ {
		u, s, e := decodeStreamPieces(shape, ctype, [][]byte{body[:i], body[i:]})
		if u != u0 || s != s0 || e != e0 {
			t.Fatalf("split at %d: got %+v %q %d, want %+v %q %d", i, u, s, e, u0, s0, e0)
		}
	}
	rng := rand.New(rand.NewSource(int64(len(body))))
	for k := 0; k < 50; k++ {
		var pieces [][]byte
		rest := body
		for len(rest) > 0 {
			n := 1 + rng.Intn(min(len(rest), 40))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		u, s, e := decodeStreamPieces(shape, ctype, pieces)
		if u != u0 || s != s0 || e != e0 {
			t.Fatalf("random split %d: got %+v %q %d, want %+v %q %d", k, u, s, e, u0, s0, e0)
		}
	}
}

func TestParseResponseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/responses/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txtar")
		t.Run("ok/"+name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			comment, secs := parseTxtar(raw)
			meta, _ := section(secs, "meta")
			ml := strings.Split(strings.TrimSpace(string(meta)), "\n")
			if len(ml) != 2 {
				t.Fatal("meta: want shape and content type lines")
			}
			shape, ctype := ml[0], ml[1]
			body, _ := section(secs, "body")
			u, texts := ParseResponse(shape, ctype, body)
			g := goldenResponse{Usage: u, Texts: texts}
			if mt, _, _ := mime.ParseMediaType(ctype); mt != "application/json" {
				_, _, g.Events = decodeStreamPieces(shape, ctype, [][]byte{body})
				checkSplits(t, shape, ctype, body)
			}
			got, _ := json.MarshalIndent(g, "", "  ")
			got = append(got, '\n')
			if *updateGolden {
				var out []txtarSection
				for _, s := range secs {
					if s.name != "want" {
						out = append(out, s)
					}
				}
				out = append(out, txtarSection{name: "want", data: got})
				if err := os.WriteFile(f, formatTxtar(comment, out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, ok := section(secs, "want")
			if !ok {
				t.Fatal("no want section (run with -update)")
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func readFileForTest(name string) ([]byte, error) { return os.ReadFile(name) }
