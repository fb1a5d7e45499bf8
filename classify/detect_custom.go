package classify

import (
	"fmt"
	"strings"
)

// customWordsRule matches policy words (code names, customer names) at word
// boundaries through the shared keyword automaton.
func customWordsRule(id string, words []string, caseSensitive bool, conf float64) (detRule, error) {
	exact := map[string]bool{}
	var kws []string
	for _, w := range words {
		w = strings.TrimSpace(w)
		if w == "" {
			return detRule{}, fmt.Errorf("classify: custom detRule %q: empty word", id)
		}
		if len(w) > 256 {
			return detRule{}, fmt.Errorf("classify: custom detRule %q: word longer than 256 bytes", id)
		}
		exact[w] = true
		kws = append(kws, w)
	}
	return detRule{types: []string{id}, keywords: kws, fn: func(st *scanState, _ int, text []byte, ks, ke int) {
		if ks > 0 && ascWord(text[ks-1]) && ascWord(text[ks]) {
			return
		}
		if ke < len(text) && ascWord(text[ke]) && ascWord(text[ke-1]) {
			return
		}
		if caseSensitive && !exact[string(text[ks:ke])] {
			return
		}
		st.emit(Finding{Type: id, Category: FindingCustom, Start: ks, End: ke, Confidence: conf})
	}}, nil
}
