#!/usr/bin/env bash
# Installs the Debian packages the tests and the lab run for real, when any is missing.
# As root it installs them with apt-get; otherwise it names them and the command to run.
# With --python, only what the node agent's unit tests need (npm run test:python).
set -euo pipefail
# command -> the Debian package that provides it
declare -A need=(
  [wg]=wireguard-tools [wireguard-go]=wireguard-go [cloud-init]=cloud-init
  [ip]=iproute2 [debootstrap]=debootstrap [openssl]=openssl [nsenter]=util-linux [ssh-keygen]=openssh-client
  [promtool]=prometheus [amtool]=prometheus-alertmanager [prometheus-node-exporter]=prometheus-node-exporter
  [systemd-nspawn]=systemd-container
)
[ "${1:-}" = --python ] && need=()
# Python module -> the Debian package that provides it to Debian's python3 (/usr/bin/python3:
# a python3 earlier on PATH may be another one): pytest and xdist, and what the node agent imports.
declare -A python_need=(
  [pytest]=python3-pytest [dns.resolver]=python3-dnspython [cryptography]=python3-cryptography
  [psycopg2]=python3-psycopg2 [yaml]=python3-yaml [xdist]=python3-pytest-xdist
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
for module in "${!python_need[@]}"; do
  /usr/bin/python3 -c "import $module" >/dev/null 2>&1 || missing+=("${python_need[$module]}")
done
# PostgreSQL's server (initdb, postgres), which the database roles tool's tests run on loopback
# (node-agent/tests/pg_server.py): Debian keeps it off PATH, under /usr/lib/postgresql/<major>/bin.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "The tests run real tools that are not installed: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}   (tests that need them are skipped until then)" >&2
  exit 0
fi
echo "Installing Debian packages the tests use: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" ca-certificates >/dev/null
