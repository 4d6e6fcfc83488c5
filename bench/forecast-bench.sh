#!/usr/bin/env bash
# Next-window GPU balancedness of last-window placement, the history-aware default (`forecast`),
# DeepSeek's algorithm and the oracle, on the real DeepSeek-V2-Lite series (read from ../shared, never
# copied) and on the bundled synthetic series. Writes bench/results/<device>-forecast-*.txt.
#   bash bench/forecast-bench.sh [DEVICE_LABEL]   (default: lavapipe)
set -euo pipefail
cd "$(dirname "$0")/.."
label=${1:-lavapipe}
real=../shared/traces/deepseek-v2-lite-routing/deepseek-v2-lite-routing.json
npm run build >/dev/null
run() {
  local out=$1
  shift
  {
    echo "\$ npx adrs $*"
    node bin/adrs.js "$@" 2>/dev/null
    echo
  } >>"$out"
}
if [ -f "$real" ]; then
  out=bench/results/$label-forecast-v2lite.txt
  : >"$out"
  for dep in "80 8 1" "64 8 1" "96 16 2"; do
    set -- $dep
    run "$out" bench --trace "$real" --replicas "$1" --gpus "$2" --nodes "$3" --balancers forecast,deepseek --repeat 10
  done
  for steps in 50 200; do
    run "$out" bench --trace "$real" --window-steps "$steps" --replicas 80 --gpus 8 --nodes 1 --balancers forecast,deepseek --repeat 10
  done
  for h in 4 16; do
    run "$out" bench --trace "$real" --history "$h" --replicas 80 --gpus 8 --nodes 1 --balancers forecast --repeat 10
  done
else
  echo "skipping the real series: $real is absent" >&2
fi
out=bench/results/$label-forecast-synthetic.txt
: >"$out"
run "$out" bench --trace synthetic-v4-windows --trace synthetic-v4-heldout --balancers forecast,deepseek --repeat 10
run "$out" bench --trace synthetic-v4-windows --trace synthetic-v4-heldout --replicas 256 --balancers forecast,deepseek --repeat 10
