#!/usr/bin/env bash
# The fast tier (no root, no lab): pytest beside mocha. pytest mostly waits on sockets and timers,
# so the two share two cores well; its output follows mocha's. Ruff runs as one of mocha's tests
# (test/node-agent.test.ts; alone: npm run lint:python). Extra arguments go to mocha.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
bash scripts/pytest.sh >"$log" 2>&1 &
pytest_pid=$!
# mocha hands the files to its two jobs in the order given: the slowest first, then the rest by
# name, so that both jobs end about together.
slow=(test/monitoring.test.ts test/desired-program.test.ts test/replacement-program.test.ts test/plan-cli.test.ts)
files=("${slow[@]}")
shopt -s globstar
for f in test/**/*.test.ts; do [[ " ${slow[*]} " == *" $f "* ]] || files+=("$f"); done
npx mocha --parallel --jobs 2 --grep "@lab|@rootfs|@daemons|@cli" --invert "${files[@]}" "$@"
mocha=$?
wait "$pytest_pid"
pytest=$?
cat "$log"
echo "test:unit: $((SECONDS - start)) s (mocha exit $mocha, pytest exit $pytest)"
[ "$mocha" -eq 0 ] && [ "$pytest" -eq 0 ]
