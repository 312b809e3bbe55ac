#!/usr/bin/env bash
# The node agent's unit tests on Debian's python3, two at a time when pytest-xdist is there:
# most of their time is spent waiting on sockets and timers, not on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-packages.sh --python
jobs=()
/usr/bin/python3 -c "import xdist" 2>/dev/null && jobs=(-n 2)
exec /usr/bin/python3 -m pytest -q "${jobs[@]}" node-agent "$@"
