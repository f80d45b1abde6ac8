#!/usr/bin/env bash
# Runs one Go fuzz target for a bounded time: deploy/fuzz.sh TARGET PACKAGE [FUZZTIME]
#
# Go 1.26's fuzz coordinator can fail a duration-bounded run with a bare "context deadline exceeded" at the
# -fuzztime boundary although nothing was found (a race fixed in Go 1.27: go.dev/issue/75804). A real finding
# always writes its input under testdata/fuzz and prints "Failing input written to". So: such a bare deadline
# failure passes with a warning, after the seed corpus (with anything new in it) replays cleanly; every other
# failure fails. -fuzzminimizetime bounds the stalls while new inputs are minimized.
set -euo pipefail
target=$1 pkg=$2 fuzztime=${3:-10s}
go=${GO:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if "$go" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" 2>&1 | tee "$log"; then
  exit 0
fi
if grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log"; then
  echo "fuzz: $target: bare 'context deadline exceeded' at the fuzztime boundary (go.dev/issue/75804); replaying the corpus"
  "$go" test -count=1 -run "^${target}\$" "$pkg"
  exit 0
fi
exit 1
