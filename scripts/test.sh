#!/usr/bin/env bash
# The test command (README): installs what a fresh machine lacks, then runs every
# test of the workspace, the end-to-end ones included (they need root).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

if [ "$(id -u)" != 0 ] && [ "${NETSLICE_SKIP_E2E:-}" != 1 ]; then
    echo "end-to-end tests need root; re-running under sudo" >&2
    exec sudo -E env "PATH=$PATH" "$0" "$@"
fi

# Agents pick their substrate I/O with NETSLICE_IO: the default (auto: AF_XDP
# where it works) runs with every test; the end-to-end tests run a second time
# with the socket fallback, so both backends are exercised.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-tests=pass "$@"
    NETSLICE_IO=sockets cargo nextest run -p netslice --test e2e --test programmable "$@"
    # nextest does not run doctests (the guides in docs/ are doctests).
    cargo test --workspace --doc
else
    cargo test --workspace "$@"
    NETSLICE_IO=sockets cargo test -p netslice --test e2e --test programmable "$@"
fi
