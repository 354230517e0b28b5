#!/usr/bin/env bash
# Runs every native Go fuzz target for a short time (default 10s each).
# Usage: scripts/fuzz.sh [duration]
# Minimizing a new interesting input is capped at 2s: Go's default (60s)
# can outlast a short -fuzztime, and a run that ends while minimizing
# fails with "context deadline exceeded" (FuzzOCSPRequest's inputs, each
# a store lookup or a signature per CertID, minimize slowly).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
    echo "fuzz $pkg $t ($dur)"
    timeout 300 go test "$pkg" -run '^$' -fuzz "^${t}\$" -fuzztime "$dur" -fuzzminimizetime 2s >/tmp/fuzz-$t.log 2>&1 || { cat /tmp/fuzz-$t.log; exit 1; }
  done
done
