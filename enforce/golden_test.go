package enforce

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aigress/aigress/classify"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// archive is a minimal txtar reader/writer (golang.org/x/tools/txtar is
// not a dependency of this module).
type archive struct {
	comment []byte
	names   []string
	files   map[string][]byte
}

func parseTxtar(data []byte) *archive {
	a := &archive{files: map[string][]byte{}}
	var cur string
	var buf []byte
	flush := func() {
		if cur == "" {
			a.comment = buf
		} else {
			a.files[cur] = buf
			a.names = append(a.names, cur)
		}
		buf = nil
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		l := bytes.TrimRight(line, "\n")
		if bytes.HasPrefix(l, []byte("-- ")) && bytes.HasSuffix(l, []byte(" --")) && len(l) > 6 {
			flush()
			cur = string(l[3 : len(l)-3])
			continue
		}
		buf = append(buf, line...)
	}
	flush()
	return a
}

func (a *archive) format() []byte {
	var b bytes.Buffer
	b.Write(a.comment)
	for _, n := range a.names {
		b.WriteString("-- " + n + " --\n")
		b.Write(a.files[n])
	}
	return b.Bytes()
}

func (a *archive) set(name string, v []byte) {
	if _, ok := a.files[name]; !ok {
		a.names = append(a.names, name)
	}
	a.files[name] = v
}

// TestGolden runs each testdata/*.txtar: a policy, the request (host,
// path, identity, service facts, JSON body, findings by value), and the
// expected decision and outgoing body (the redacted body, the unchanged
// body, or the block response). Run with -update to rewrite expectations.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txtar")
	if len(files) < 5 {
		t.Fatalf("golden files: %v", files)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txtar")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			a := parseTxtar(data)
			p, err := Parse(a.files["policy.yaml"], "policy.yaml")
			if err != nil {
				t.Fatal(err)
			}
			in := map[string]string{}
			for _, l := range strings.Split(string(a.files["input"]), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok {
					in[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			body := bytes.TrimSuffix(a.files["request.json"], []byte("\n"))
			req := testRequest(t, in["provider"], in["model"], body)
			req.Shape = in["shape"]
			req.Uninspectable = in["uninspectable"]
			svc := classify.Service{Provider: in["provider"], Service: in["service"], Category: classify.Category(in["category"]), Inspect: true}
			id := Identity{IP: ip(in["ip"]), User: in["user"], Source: SourceIP}
			if in["groups"] != "" {
				id.Groups = strings.Split(in["groups"], ",")
			}
			acct := p.ClassifyAccount(classify.Account{Email: in["account_email"], KeyFingerprint: in["key_fingerprint"], Org: in["org"]})
			var fs []classify.PartFinding
			for _, l := range strings.Split(strings.TrimSpace(string(a.files["findings"])), "\n") {
				fields := strings.SplitN(l, " ", 4)
				if len(fields) != 4 {
					continue
				}
				conf, _ := strconv.ParseFloat(fields[2], 64)
				fs = append(fs, findText(req, fields[0], fields[1], conf, fields[3])...)
			}
			if cd := p.ConnectDecision(id, in["host"], svc, true); cd.Action == ActionBlock {
				t.Logf("refused at CONNECT: %v", cd)
			}
			d := p.Decide(Input{Identity: id, Service: svc, Request: req, Findings: fs, Account: acct})
			var out []byte
			switch d.Action {
			case ActionBlock, ActionQuota:
				r := BlockResponse(svc.Provider, req.Shape, 0, d, "EVT")
				out = append([]byte(strconv.Itoa(r.Status)+" "+r.Header.Get("Content-Type")+"\n"), r.Body...)
			default:
				out, _, _ = p.Redact(req, fs, d)
			}
			gotDecision := []byte(d.String() + "\n")
			gotBody := append(out, '\n')
			if *update {
				a.set("decision", gotDecision)
				a.set("body", gotBody)
				if err := os.WriteFile(f, a.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := a.files["decision"]; !bytes.Equal(gotDecision, want) {
				t.Errorf("decision\n got %s\nwant %s", gotDecision, want)
			}
			if want := a.files["body"]; !bytes.Equal(gotBody, want) {
				t.Errorf("body\n got %s\nwant %s", gotBody, want)
			}
		})
	}
}
