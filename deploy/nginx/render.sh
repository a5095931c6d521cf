#!/bin/sh
# Write deploy/nginx/tidings.conf with other node addresses and listen address:
#   render.sh IN OUT LISTEN NODE...     e.g. render.sh tidings.conf default.conf 8080 \
#                                             tidings1:8443 tidings2:8443 tidings3:8443
# The k-th "server" line of each upstream gets NODE number k. POSIX sh and awk only:
# it runs in the official nginx image, Debian's nginx and on a host.
set -eu
[ $# -ge 4 ] || { echo "usage: render.sh IN OUT LISTEN NODE..." >&2; exit 2; }
in=$1; out=$2; listen=$3; shift 3
awk -v listen="$listen" -v nodes="$*" '
    BEGIN { n = split(nodes, node, " ") }
    /^upstream / { k = 0 }
    /^[ \t]*server 127\.0\.0\.1:[0-9]+/ {
        k++
        if (k > n) next
        sub(/127\.0\.0\.1:[0-9]+/, node[k])
    }
    /^[ \t]*listen 8080;/ { sub(/8080/, listen) }
    { print }
' "$in" >"$out.tmp"
mv "$out.tmp" "$out"
