#!/usr/bin/env bash
# Runs every native fuzz target in the repository briefly (default 2s each).
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-2s}
n=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  grep -lq '^func Fuzz' "$dir"/*_test.go 2>/dev/null || continue
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/func //'); do
    echo "fuzz $pkg $f ($t)"
    go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg" > /tmp/aigress-fuzz.log 2>&1 || { cat /tmp/aigress-fuzz.log; exit 1; }
    n=$((n+1))
  done
done
echo "fuzz: $n targets ran for $t each"
