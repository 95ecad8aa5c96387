#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time (default 600 s each, one after
# the other: the machine has two cores) and writes a summary table to
# target/fuzz/summary.md (docs/fuzzing.md records the last full run).
#
#   scripts/fuzz.sh [SECONDS_EACH] [TARGET...]
#
# Not part of CI (CI only builds the targets). Needs the nightly toolchain and
# installs cargo-fuzz if it is missing. Each target starts from its seeds in
# fuzz/corpus/<target> (small, in the repo) plus, for the document targets,
# deeply nested and huge documents generated here (not committed: up to 1
# MiB; libFuzzer cuts them to the 256 KiB -max_len, which keeps 100,000 `[`
# 128 Ki levels deep); what it finds goes to target/fuzz/corpus/<target>. An input that
# takes more than 5 s is a failure (-timeout), so "bounded time" is checked
# as well as "no panic".
set -euo pipefail
cd "$(dirname "$0")/.."

each=${1:-600}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
out=target/fuzz
mkdir -p "$out/logs" "$out/corpus" "$out/seeds"

# Deep and huge documents for the parsers of specs and bodies.
python3 - "$out/seeds" <<'PY'
import json, os, sys
root = sys.argv[1]
docs = {
    "deep-flow-100k.yaml": "name: x\nnodes: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "deep-map-50k.yaml": "name: x\nnodes: " + "{a: " * 50_000 + "}" * 50_000 + "\n",
    "deep-json-100k.json": '{"name": "x", "nodes": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "deep-block-40.yaml": "name: x\nnodes:\n" + "".join(" " * (2 * i + 2) + "-\n" for i in range(40)),
    "alias-bomb.yaml": "name: x\nl0: &l0 [a, a, a, a, a, a, a, a, a, a]\n"
    + "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i-1}"] * 10) + "]\n" for i in range(1, 9)),
    "huge-json.json": json.dumps({"name": "x", "description": "y" * 1_000_000, "nodes": []}),
    "many-nodes.yaml": "name: x\nnodes:\n" + "".join(f"  - {{name: n{i}}}\n" for i in range(20_000)),
}
for target in ("slice_spec", "substrate", "document", "api_bodies"):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    for name, text in docs.items():
        data = text.encode()
        if target == "api_bodies":
            data = b"\x08" + data
        open(os.path.join(d, name), "wb").write(data)
PY

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
summary="$out/summary.md"
{
    echo "Run of $(date -u '+%Y-%m-%d %H:%M') UTC, commit $(git rev-parse --short HEAD), ${each} s per target:"
    echo
    echo "| target | executions | exec/s | coverage (edges) | features | corpus (inputs/size) | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
} > "$summary"
for t in "${targets[@]}"; do
    corpus="$out/corpus/$t"
    mkdir -p "$corpus"
    seeds=()
    [ -d "fuzz/corpus/$t" ] && seeds+=("fuzz/corpus/$t")
    [ -d "$out/seeds/$t" ] && seeds+=("$out/seeds/$t")
    case "$t" in
        # Deep documents stay deep when cut to this; the size limit itself
        # is reached with small inputs by the document target's tight limits.
        slice_spec|substrate|document|api_bodies) max_len=262144 ;;
        *) max_len=16384 ;;
    esac
    echo "== $t ($each s, max_len $max_len)"
    set +e
    (cd fuzz && cargo +nightly fuzz run "$t" "../$corpus" "${seeds[@]/#/../}" -- \
        -max_total_time="$each" -timeout=5 -rss_limit_mb=4096 -max_len="$max_len" \
        -print_final_stats=1) > "$out/logs/$t.log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/logs/$t.log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$out/logs/$t.log" | grep -o '[0-9]*$' | tail -1)
    last=$(grep -E '^#[0-9]+' "$out/logs/$t.log" | tail -1)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')
    corp=$(echo "$last" | grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' | cut -d' ' -f2)
    if [ $rc -eq 0 ]; then result="no crash"; else result="FAILED (exit $rc, see $out/logs/$t.log)"; fi
    echo "| $t | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $result |" | tee -a "$summary"
done
echo
cat "$summary"
