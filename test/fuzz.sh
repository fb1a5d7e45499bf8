#!/usr/bin/env bash
# Runs every native fuzz target in the repository briefly.
# Usage: test/fuzz.sh [FUZZTIME]   (default 3000x: a count, not a duration,
# so that a slow machine runs the same work and Go's fuzzer cannot end on
# its own deadline; a duration such as 30s works too).
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-3000x}
n=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  grep -lq '^func Fuzz' "$dir"/*_test.go 2>/dev/null || continue
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/func //'); do
    echo "fuzz $pkg $f ($t)"
    ok=""
    for try in 1 2; do
      if go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" > "$log" 2>&1; then
        ok=1
        break
      fi
      # Go's fuzzer sometimes ends a timed run with "context deadline
      # exceeded" and no failing input: that is the tool, not our code.
      if grep -q 'Failing input\|testdata/fuzz' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
        break
      fi
      echo "  (fuzzer ended on its own deadline; running once more)"
    done
    if [ -z "$ok" ]; then
      cat "$log"
      exit 1
    fi
    n=$((n+1))
  done
done
echo "fuzz: $n targets ran ($t each)"
