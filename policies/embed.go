// Package policies holds the example policy files and their JSON Schema.
// default.yaml is the policy aigress runs with when none is configured.
// Every file here is loaded by a test (enforce/policies_test.go).
package policies

import "embed"

// FS holds every example policy and schema.json.
//
//go:embed *.yaml schema.json
var FS embed.FS

// Default returns the embedded default policy (default.yaml).
func Default() []byte {
	b, err := FS.ReadFile("default.yaml")
	if err != nil {
		panic("policies: default.yaml missing from the embedded files")
	}
	return b
}
