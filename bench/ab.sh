#!/usr/bin/env bash
# A/B of two ca-server builds on the batch and single scenarios, alternating rounds so that a
# change of the machine's speed hits both alike; each figure is a fraction of the L that
# ca-bench measures just before it runs, and the server's CPU time per certificate (all
# threads, and its HTTP threads alone).
#   BASE=DIR_WITH_OLD_ca-server bench/ab.sh DIR_WITH_NEW_ca-server [ROUNDS] [OUTDIR]
# ca-bench comes from BENCH (default: BASE); SCENARIOS="single batch" by default.
set -euo pipefail
NEW=$1; ROUNDS=${2:-3}; OUT=${3:-$(mktemp -d)}; BASE=${BASE:?set BASE to the directory of the old build}; BENCH=${BENCH:-$BASE}
mkdir -p "$OUT"
run() { # variant bindir round
  local v=$1 bin=$2 r=$3 dir; dir=$(mktemp -d)
  "$bin/ca-server" init --data-dir "$dir/ca" --key-type ec-p256 --subject "CN=Bench" >/dev/null 2>&1
  "$bin/ca-server" serve --data-dir "$dir/ca" --listen 127.0.0.1:0 > "$dir/out.log" 2> "$dir/err.log" &
  local pid=$! port=""
  for _ in $(seq 200); do port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$dir/out.log"); [ -n "$port" ] && break; sleep 0.1; done
  for sc in ${SCENARIOS:-single batch}; do
    if [ $sc = single ]; then args=(--connections 64); else args=(--mode batch --batch-size 100 --connections 4); fi
    "$BENCH/ca-bench" --url "http://127.0.0.1:$port" --data-dir "$dir/ca" --server-pid $pid --duration 10 \
      --label "$v-$sc-$r" --json "$OUT/$v-$sc-$r.json" "${args[@]}" > /dev/null 2>&1
    python3 -c "import json;d=json.load(open('$OUT/$v-$sc-$r.json'));c=d['cpu_us_per_certificate'];print('$v $sc round $r', round(d['certificates_per_sec']), round(d['fraction_of_limit'],3), 'server_cpu_us/cert', round(sum(x for k,x in c.items() if k.startswith('server:')),2), 'ca-http', round(c.get('server:ca-http',0),2))"
  done
  kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
}
for r in $(seq "$ROUNDS"); do run base "$BASE" "$r"; run new "$NEW" "$r"; done
