#!/usr/bin/env bash
# Install what the benchmarks need, and nothing when it is all there:
#   - a C compiler (the load generator, bench/loadgen/wsload.c),
#   - the Node peers, pinned by bench/peers/package-lock.json (npm ci),
#   - redis-server (the cluster scenario's bus; started by the bench on a free port),
#   - unless "quick": Debian's nginx + libnginx-mod-nchan, and python-socketio in .venv.
# Never starts system services (nginx runs under bench/ with its own config).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-full}
PY=${PY:-.venv/bin/python}

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
apt_install() {
    command -v apt-get >/dev/null 2>&1 || { echo "bench: install $* yourself" >&2; exit 1; }
    policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"; added=1
    fi
    echo "bench: installing $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
    if [ "$added" -eq 1 ]; then $SUDO rm -f "$policy"; fi
}

command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev
command -v node >/dev/null 2>&1 || apt_install nodejs npm
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || apt_install redis-server
if [ ! -f bench/peers/node_modules/.package-lock.json ] ||
   [ bench/peers/package-lock.json -nt bench/peers/node_modules/.package-lock.json ]; then
    (cd bench/peers && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ "$mode" != quick ]; then
    [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] && command -v nginx >/dev/null 2>&1 ||
        apt_install nginx libnginx-mod-nchan
    "$PY" -c 'import socketio' 2>/dev/null || "$PY" -m pip install --quiet 'python-socketio==5.18.1'
fi
echo "bench: dependencies ready"
