package enforce

import (
	"encoding/json"
	"io/fs"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/aigress/aigress/policies"
)

// TestPolicyFiles loads every example policy in policies/, from disk (so
// relative htpasswd paths resolve) and checks the embedded copy is the same.
func TestPolicyFiles(t *testing.T) {
	files, err := filepath.Glob("../policies/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("policy files: %v %v", files, err)
	}
	for _, f := range files {
		t.Run("ok/"+filepath.Base(f), func(t *testing.T) {
			p, err := LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if w := p.Warnings(); len(w) > 0 {
				t.Errorf("warnings: %q", w)
			}
			if _, err := fs.ReadFile(policies.FS, filepath.Base(f)); err != nil {
				t.Errorf("not embedded: %v", err)
			}
		})
	}
	p, err := Parse(policies.Default(), "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "default" || p.FailMode("anything") != ActionAllow {
		t.Fatalf("default policy: %s %s", p.Name(), p.FailMode("x"))
	}
}

// TestSchemaMatchesStructs walks the Document's yaml tags and the JSON
// Schema's properties and wants the same set of field paths in both.
func TestSchemaMatchesStructs(t *testing.T) {
	raw, err := fs.ReadFile(policies.FS, "schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Fatalf("$schema %v", schema["$schema"])
	}
	defs, _ := schema["$defs"].(map[string]any)
	fromSchema := map[string]bool{}
	var walkSchema func(prefix string, node map[string]any, depth int)
	walkSchema = func(prefix string, node map[string]any, depth int) {
		if depth > 12 {
			return
		}
		if ref, ok := node["$ref"].(string); ok {
			def, _ := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
			if def == nil {
				t.Errorf("%s: dangling $ref %s", prefix, ref)
				return
			}
			walkSchema(prefix, def, depth+1)
			return
		}
		if items, ok := node["items"].(map[string]any); ok {
			walkSchema(prefix+"[]", items, depth+1)
		}
		if ap, ok := node["additionalProperties"].(map[string]any); ok {
			walkSchema(prefix+"{}", ap, depth+1)
		}
		props, _ := node["properties"].(map[string]any)
		for k, v := range props {
			p := prefix + "." + k
			fromSchema[p] = true
			if m, ok := v.(map[string]any); ok {
				walkSchema(p, m, depth+1)
			}
		}
		if node["type"] == "object" && props != nil && node["additionalProperties"] != false {
			t.Errorf("%s: object without additionalProperties: false", prefix)
		}
	}
	walkSchema("", schema, 0)

	fromGo := map[string]bool{}
	var walkType func(prefix string, tp reflect.Type, depth int)
	walkType = func(prefix string, tp reflect.Type, depth int) {
		if depth > 12 {
			return
		}
		switch tp.Kind() {
		case reflect.Pointer:
			walkType(prefix, tp.Elem(), depth+1)
		case reflect.Slice:
			walkType(prefix+"[]", tp.Elem(), depth+1)
		case reflect.Map:
			walkType(prefix+"{}", tp.Elem(), depth+1)
		case reflect.Struct:
			for i := 0; i < tp.NumField(); i++ {
				f := tp.Field(i)
				tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
				if tag == "" || tag == "-" {
					t.Errorf("%s.%s: field without a yaml tag", prefix, f.Name)
					continue
				}
				p := prefix + "." + tag
				fromGo[p] = true
				walkType(p, f.Type, depth+1)
			}
		}
	}
	walkType("", reflect.TypeOf(Document{}), 0)

	var missing, extra []string
	for k := range fromGo {
		if !fromSchema[k] {
			missing = append(missing, k)
		}
	}
	for k := range fromSchema {
		if !fromGo[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("in Go structs but not in schema.json: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("in schema.json but not in Go structs: %v", extra)
	}
	if len(fromGo) < 60 {
		t.Errorf("suspiciously few fields walked: %d", len(fromGo))
	}
}
