#!/usr/bin/env bash
# The main job (README): build netslice and run `netslice demo` on the built-in
# local testbed. Installs what a fresh machine lacks; needs root for namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then
    echo "installing iproute2"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y iproute2
fi

cargo build --release --bin netslice
as_root ./target/release/netslice demo "$@"
