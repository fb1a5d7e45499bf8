package classify

import "sort"

// kwMatcher is a compact, byte-level, ASCII case-insensitive Aho-Corasick
// automaton compiled into a dense DFA over an alphabet of byte classes.
//
// Only the bytes that occur in some keyword get their own class; every
// other byte maps to class 0, which keeps the table small (states x
// classes). Transitions are stored pre-multiplied by the class count, and
// states that emit at least one keyword are numbered last, so the hot loop
// is one table load and one comparison per input byte.
type kwMatcher struct {
	classes  [256]uint8
	nclass   int32
	trans    []int32  // trans[state*nclass+class] = nextState*nclass
	outFrom  int32    // pre-multiplied id of the first state with outputs
	outStart []int32  // per state (plain id): start index into outs
	outs     []uint16 // keyword ids, grouped per state
	kwLen    []int32  // keyword id -> length
}

func foldByte(b byte) byte {
	if b >= 'A' && b <= 'Z' {
		return b + 32
	}
	return b
}

// newKWMatcher builds the automaton. Keywords are compared ASCII
// case-insensitively; empty keywords are ignored. Keyword ids are the
// indexes into kws.
func newKWMatcher(kws []string) *kwMatcher {
	m := &kwMatcher{kwLen: make([]int32, len(kws))}
	// Alphabet.
	var used [256]bool
	for _, k := range kws {
		for i := 0; i < len(k); i++ {
			used[foldByte(k[i])] = true
		}
	}
	n := int32(1)
	for b := 0; b < 256; b++ {
		if used[b] {
			m.classes[b] = uint8(n)
			n++
		}
	}
	for b := 'A'; b <= 'Z'; b++ {
		m.classes[b] = m.classes[b+32]
	}
	m.nclass = n

	// Trie with goto function (sparse while building).
	type node struct {
		next map[int32]int32
		fail int32
		out  []uint16
	}
	nodes := []node{{next: map[int32]int32{}}}
	for id, k := range kws {
		m.kwLen[id] = int32(len(k))
		if k == "" {
			continue
		}
		s := int32(0)
		for i := 0; i < len(k); i++ {
			c := int32(m.classes[k[i]])
			nx, ok := nodes[s].next[c]
			if !ok {
				nodes = append(nodes, node{next: map[int32]int32{}})
				nx = int32(len(nodes) - 1)
				nodes[s].next[c] = nx
			}
			s = nx
		}
		nodes[s].out = append(nodes[s].out, uint16(id))
	}
	// BFS for failure links and the full DFA.
	ns := int32(len(nodes))
	dfa := make([]int32, ns*n)
	queue := make([]int32, 0, ns)
	for c := int32(0); c < n; c++ {
		if nx, ok := nodes[0].next[c]; ok {
			nodes[nx].fail = 0
			dfa[c] = nx
			queue = append(queue, nx)
		}
	}
	for qi := 0; qi < len(queue); qi++ {
		s := queue[qi]
		f := nodes[s].fail
		nodes[s].out = append(nodes[s].out, nodes[f].out...)
		for c := int32(0); c < n; c++ {
			if nx, ok := nodes[s].next[c]; ok {
				nodes[nx].fail = dfa[f*n+c]
				dfa[s*n+c] = nx
				queue = append(queue, nx)
			} else {
				dfa[s*n+c] = dfa[f*n+c]
			}
		}
	}
	// Renumber: states without outputs first, then states with outputs.
	order := make([]int32, ns)
	for i := range order {
		order[i] = int32(i)
	}
	sort.SliceStable(order, func(i, j int) bool {
		return len(nodes[order[i]].out) == 0 && len(nodes[order[j]].out) != 0
	})
	// Root must stay 0: it has no outputs (keywords are non-empty) so it
	// sorts first with a stable sort.
	newID := make([]int32, ns)
	for newPos, old := range order {
		newID[old] = int32(newPos)
	}
	m.trans = make([]int32, ns*n)
	m.outStart = make([]int32, ns+1)
	m.outFrom = ns * n
	for newPos, old := range order {
		for c := int32(0); c < n; c++ {
			m.trans[int32(newPos)*n+c] = newID[dfa[old*n+c]] * n
		}
		if len(nodes[old].out) != 0 && int32(newPos)*n < m.outFrom {
			m.outFrom = int32(newPos) * n
		}
	}
	for newPos, old := range order {
		m.outStart[newPos] = int32(len(m.outs))
		m.outs = append(m.outs, nodes[old].out...)
	}
	m.outStart[ns] = int32(len(m.outs))
	return m
}

// next scans text from pos and returns the index just after the byte at
// which some keyword ends together with the state reached, or -1 when the
// text is exhausted. The caller resumes with the returned state.
func (m *kwMatcher) next(text []byte, pos int, state int32) (int, int32) {
	trans, classes, outFrom := m.trans, &m.classes, m.outFrom
	for i := pos; i < len(text); i++ {
		state = trans[state+int32(classes[text[i]])]
		if state >= outFrom {
			return i + 1, state
		}
	}
	return -1, state
}

// outputs returns the keyword ids that end in (pre-multiplied) state.
func (m *kwMatcher) outputs(state int32) []uint16 {
	s := state / m.nclass
	return m.outs[m.outStart[s]:m.outStart[s+1]]
}
