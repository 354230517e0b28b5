#!/usr/bin/env bash
# Runs every native Go fuzz target for a short time (default 10s each).
# Usage: scripts/fuzz.sh [duration]
# Minimizing a new interesting input is capped at 2s: Go's default (60s)
# can outlast a short -fuzztime, and a run that ends while minimizing
# fails with "context deadline exceeded" though it found nothing
# (FuzzOCSPRequest's inputs, a store lookup or a signature per CertID,
# minimize slowly); such a run is repeated once.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
    echo "fuzz $pkg $t ($dur)"
    run() { timeout 300 go test "$pkg" -run '^$' -fuzz "^${t}\$" -fuzztime "$dur" -fuzzminimizetime 2s >/tmp/fuzz-$t.log 2>&1; }
    if ! run; then
      # The run ending inside a minimization is not a finding (no failing
      # input is written): run once more. Anything else fails at once.
      if grep -q 'context deadline exceeded' /tmp/fuzz-$t.log && ! grep -q 'Failing input written' /tmp/fuzz-$t.log; then
        echo "fuzz $t: the run ended while minimizing; once more"
        run || { cat /tmp/fuzz-$t.log; exit 1; }
      else
        cat /tmp/fuzz-$t.log; exit 1
      fi
    fi
  done
done
