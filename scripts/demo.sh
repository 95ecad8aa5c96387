#!/usr/bin/env bash
# The main job (README): build netslice and run `netslice demo` on the built-in
# local testbed. Installs what a fresh machine lacks; needs root for namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
# The manager compiles measurement filters with libpcap (linked).
[ -e /usr/include/pcap.h ] || missing+=(libpcap-dev)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

cargo build --release --bin netslice
as_root ./target/release/netslice demo "$@"
