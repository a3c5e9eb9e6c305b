#!/usr/bin/env bash
# Every test: Zig unit tests of the native core, then all Deno tests (unit
# tests beside the code, tests/unit, tests/integration). Run it through
# './reliab task test' so the pinned toolchains are on PATH.
#
# Ends with one plain line 'tests: N passed, N failed' that counts both
# runners, and exits non-zero if either failed.
set -uo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "== zig build test"
zig build test --summary all 2>&1 | tee "$log"
zig_rc=${PIPESTATUS[0]}
zig_passed=$(grep -oE '[0-9]+/[0-9]+ tests passed' "$log" | tail -n1 | cut -d/ -f1)
zig_total=$(grep -oE '[0-9]+/[0-9]+ tests passed' "$log" | tail -n1 | cut -d/ -f2 | cut -d' ' -f1)
zig_passed=${zig_passed:-0}
zig_failed=$(( ${zig_total:-0} - zig_passed ))
(( zig_rc != 0 && zig_failed == 0 )) && zig_failed=1

echo "== deno test"
deno test --quiet --allow-all --no-prompt "$@" 2>&1 | tee "$log"
deno_rc=${PIPESTATUS[0]}
line=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -n1)
deno_passed=$(sed -nE 's/.*\| ([0-9]+) passed.*/\1/p' <<<"$line")
deno_failed=$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' <<<"$line")
deno_passed=${deno_passed:-0}
deno_failed=${deno_failed:-0}
(( deno_rc != 0 && deno_failed == 0 )) && deno_failed=1

echo "tests: $(( zig_passed + deno_passed )) passed, $(( zig_failed + deno_failed )) failed"
(( zig_rc == 0 && deno_rc == 0 ))
