#!/usr/bin/env bash
# Regenerates bench/RESULTS.md: the machine's limit, criterion figures, and ca-bench load
# scenarios against a real ca-server (and `cfssl serve` on the same CA, same CSRs) on this
# machine, each figure as a fraction of the limit L measured in the same run.
#
#   bench/run-all.sh          # about 10 minutes
#   bench/run-all.sh --long   # adds 1,000,000 issuances, sampling the server's resident memory
#   bench/run-all.sh --large-store   # adds 9 minutes of issuance (~7M certificates), then
#                                    # the batch scenario again on that store
# (both flags may be given.) The raw figures stay in bench/last-run/, from which
# `python3 bench/render-results.py bench/last-run --figures bench > bench/RESULTS.md` renders
# RESULTS.md and its figures (bench/*.png, drawn with matplotlib: Debian's python3-matplotlib,
# installed here when missing) again. Every scenario also reports the CPU time per
# certificate of each of the server's thread groups and of the client (`ca-bench --server-pid`).
set -euo pipefail
cd "$(dirname "$0")/.."
LONG=" $* "
DURATION=${DURATION:-10}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
BIN="$CARGO_TARGET_DIR/release"
OUT=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$OUT"' EXIT

scripts/setup.sh
# The renderer draws the report's figures with matplotlib: a python3 that has it, or Debian's
# python3-matplotlib (for /usr/bin/python3), installed now rather than after the run.
PYTHON=""
for py in python3 /usr/bin/python3; do
  if "$py" -c "import matplotlib" >/dev/null 2>&1; then PYTHON=$py; break; fi
done
[ -n "$PYTHON" ] || {
  echo "run-all: installing python3-matplotlib (the report's figures)" >&2
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq python3-matplotlib >/dev/null
  PYTHON=/usr/bin/python3
}
command -v cfssl >/dev/null 2>&1 || {
  echo "run-all: installing golang-cfssl (the peer CA for the comparison)" >&2
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -qq golang-cfssl >/dev/null
}
cargo build --release -p ca-server -p bench --bins
cargo build --release -p pkcs11-fault

step() { printf '\n== %s\n' "$*" >&2; }

# A server on a fresh data directory: start_server NAME CA_KEY_TYPE [WORKERS [INIT-ARGS...]]
start_server() {
  local name=$1 dir="$OUT/$1" key_type=$2 workers=${3:-}
  shift 2; shift $(( $# > 0 ? 1 : 0 ))
  mkdir -p "$dir"
  [ -n "$workers" ] && printf '[engine]\nworkers = %s\n' "$workers" > "$dir/config.toml"
  "$BIN/ca-server" init --data-dir "$dir" --key-type "$key_type" --subject "CN=Bench $key_type CA" "$@" >/dev/null 2>&1
  serve_dir "$name"
}
# serve_dir NAME: `ca-server serve` on the data directory $OUT/NAME, its pid and port noted there.
serve_dir() {
  local dir="$OUT/$1" port
  "$BIN/ca-server" serve --data-dir "$dir" --listen 127.0.0.1:0 > "$dir/out.log" 2> "$dir/err.log" &
  echo $! > "$dir/pid"
  for _ in $(seq 100); do
    port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$dir/out.log")
    [ -n "$port" ] && { echo "$port" > "$dir/port"; return; }
    sleep 0.1
  done
  echo "server $1 did not start" >&2; cat "$dir/err.log" >&2; exit 1
}
stop_server() { kill "$(cat "$OUT/$1/pid")" 2>/dev/null || true; wait "$(cat "$OUT/$1/pid")" 2>/dev/null || true; }
# load NAME SCENARIO-LABEL ca-bench-args...
load() {
  local name=$1 label=$2; shift 2
  step "$label"
  "$BIN/ca-bench" --url "http://127.0.0.1:$(cat "$OUT/$name/port")" --data-dir "$OUT/$name" \
    --server-pid "$(cat "$OUT/$name/pid")" \
    --duration "$DURATION" --label "$label" --json "$OUT/results/$label.json" "$@" | tail -n 4
}
mkdir -p "$OUT/results"

step "machine limit (OpenSSL)"
openssl speed -seconds 3 ecdsap256 2>/dev/null | tail -n 1 | tee "$OUT/openssl-p256.txt"
openssl speed -seconds 3 -multi "$(nproc)" ecdsap256 2>/dev/null | tail -n 1 | tee "$OUT/openssl-p256-multi.txt"

step "criterion: stages and the in-process engine"
cargo bench -p bench --bench issuance -- --warm-up-time 1 --measurement-time 5 2>&1 | grep -E "^[a-z_]+/|time:|thrpt:" | tee "$OUT/criterion.txt"
step "criterion: store commit per group size (the writer alone)"
cargo bench -p bench --bench store -- --warm-up-time 1 --measurement-time 5 2>&1 | grep -E "^[a-z_]+/|time:|thrpt:" | tee "$OUT/criterion-store.txt"
step "criterion: the request outcome log's cost per certificate"
cargo bench -p bench --bench request_log -- --warm-up-time 1 --measurement-time 3 2>&1 | grep -E "^[a-z_]+/|time:" | tee "$OUT/criterion-log.txt"
step "criterion: 1,000,000-entry CRL, and issuance while it is built"
cargo bench -p bench --bench crl 2>&1 | grep -E "^[a-z_]+/|time:|thrpt:|complete CRL|built during" | tee "$OUT/criterion-crl.txt"
step "criterion: the CA key in SoftHSM2 through PKCS#11, and a 3 ms token with 16 sessions"
cargo bench -p bench --bench pkcs11 -- --warm-up-time 1 --measurement-time 5 2>&1 | grep -E "^[a-z_0-9]+/|time:|thrpt:" | tee "$OUT/criterion-pkcs11.txt"
step "criterion: auditor queries over 1,000,000 stored certificates (the store is built once, ~2 min)"
cargo bench -p bench --bench query -- --warm-up-time 1 --measurement-time 3 2>&1 | tr '\r' '\n' | grep -E "^[a-z_0-9]+/|time:|rows, more" | tee "$OUT/criterion-query.txt"

start_server p256 ec-p256
for c in 1 4 16 64; do load p256 "single-c$c" --connections "$c"; done
load p256 single-c64-der --connections 64 --body der
load p256 batch100-c4 --mode batch --batch-size 100 --connections 4
half=$(python3 -c "import json;print(round(json.load(open('$OUT/results/single-c64.json'))['certificates_per_sec']/2))")
load p256 single-c64-half-rate --connections 64 --rate "$half"

step "cfssl serve on the same CA and CSRs"
cat > "$OUT/cfssl.json" <<'EOF'
{"signing": {"default": {"expiry": "2160h", "usages": ["digital signature", "server auth"]}}}
EOF
cfssl_port=$((20000 + RANDOM % 20000))
cfssl serve -address 127.0.0.1 -port "$cfssl_port" -ca "$OUT/p256/ca.pem" -ca-key "$OUT/p256/ca-key.pem" \
  -config "$OUT/cfssl.json" > "$OUT/cfssl.log" 2>&1 &
mkdir -p "$OUT/cfssl"; echo $! > "$OUT/cfssl/pid"
sleep 2
echo "$cfssl_port" > "$OUT/cfssl/port"
for c in 16 64; do load cfssl "cfssl-single-c$c" --target cfssl --connections "$c" --limit-seconds 0; done
kill %?cfssl 2>/dev/null || pkill -f "cfssl serve -address 127.0.0.1 -port $cfssl_port" || true
stop_server p256

start_server ed25519 ed25519
# Ed25519 subject keys under tls-client: the TLS BR (7.1.3.1) allow no Ed25519, so tls-server
# refuses them.
load ed25519 ed25519-single-c64 --connections 64 --key-type ed25519 --ca-key-type ed25519 --profile tls-client
load ed25519 ed25519-batch100-c4 --mode batch --connections 4 --key-type ed25519 --ca-key-type ed25519 --profile tls-client
stop_server ed25519

start_server rsa rsa-3072
load rsa rsa3072-single-c64 --connections 64 --ca-key-type rsa-3072
load rsa rsa3072-batch100-c4 --mode batch --connections 4 --ca-key-type rsa-3072
stop_server rsa

# The CA key in a SoftHSM2 token: ca-bench measures L_hsm with the same key before each
# scenario.
step "the CA key in SoftHSM2"
HSM="$OUT/softhsm"
mkdir -p "$HSM/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$HSM/tokens" > "$HSM/softhsm2.conf"
export SOFTHSM2_CONF="$HSM/softhsm2.conf"
( umask 077; printf 1234 > "$HSM/pin" )
for token in bench bench-rsa; do
  softhsm2-util --init-token --free --label "$token" --pin 1234 --so-pin 5678 >/dev/null
done
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
hsm_args() { echo --pkcs11-module "$SOFTHSM" --pkcs11-token "$1" --pkcs11-pin-file "$HSM/pin"; }
# shellcheck disable=SC2046
start_server hsm ec-p256 "" $(hsm_args bench)
# shellcheck disable=SC2046
load hsm hsm-single-c64 --connections 64 $(hsm_args bench)
# shellcheck disable=SC2046
load hsm hsm-batch100-c4 --mode batch --connections 4 $(hsm_args bench)
stop_server hsm
# shellcheck disable=SC2046
start_server hsm-rsa rsa-3072 "" $(hsm_args bench-rsa)
# shellcheck disable=SC2046
load hsm-rsa hsm-rsa3072-batch100-c4 --mode batch --connections 4 $(hsm_args bench-rsa)
stop_server hsm-rsa
unset SOFTHSM2_CONF

# The store in PostgreSQL: a throwaway cluster on loopback, sharing the two vCPUs (PostgreSQL
# refuses to run as root: then as the unprivileged user the tests use, created when missing,
# in a directory of its own).
# One node; then two nodes of one CA (a copy of the first node's data directory, as the README
# says), each loaded by its own ca-bench at the same time; then `cfssl serve` with its
# certificate database in the same cluster. The cluster's own CPU is sampled from /proc around
# each load (results/LABEL.pg-ticks, in clock ticks).
step "the store in PostgreSQL"
PG=$(mktemp -d)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pg_port=$((20000 + RANDOM % 20000))
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u ca-test-pg -- "$@"; else "$@"; fi; }
if [ "$(id -u)" -eq 0 ] && ! id -u ca-test-pg >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin ca-test-pg
fi
( umask 077; printf 'bench-cluster-password' > "$PG/password"; cp "$PG/password" "$PG/initdb-password" )
[ "$(id -u)" -ne 0 ] || chown -R ca-test-pg "$PG"
as_pg "$PGBIN/initdb" -D "$PG/data" -U postgres -E UTF8 --auth-local=trust \
  --auth-host=scram-sha-256 --pwfile "$PG/initdb-password" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PG/data" -l "$PG/log" -w \
  -o "-p $pg_port -k $PG -c listen_addresses=127.0.0.1" start >/dev/null
[ "$(id -u)" -ne 0 ] || chown root "$PG/password"
pg_psql() { as_pg "$PGBIN/psql" -h "$PG" -p "$pg_port" -U postgres -X -q "$@"; }
# Clock ticks of CPU the cluster's processes have used so far.
pg_cpu() {
  local sum=0 p
  for p in $(pgrep -u "$(stat -c %U "$PG/data")" -f "postgres"); do
    sum=$(( sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) ))
  done
  echo "$sum"
}
# pg_load NAME LABEL ca-bench-args...: load, with the cluster's CPU in results/LABEL.pg-ticks.
pg_load() {
  local label=$2 before
  before=$(pg_cpu)
  load "$@"
  echo "$(( $(pg_cpu) - before ))" > "$OUT/results/$label.pg-ticks"
}
start_server pg ec-p256 "" --store-url "postgres://postgres@127.0.0.1:$pg_port/postgres" \
  --store-password-file "$PG/password"
pg_load pg pg-batch100-c4 --mode batch --batch-size 100 --connections 4
pg_load pg pg-single-c64 --connections 64
mkdir -m 700 "$OUT/pg2"
cp -p "$OUT/pg/config.toml" "$OUT/pg/ca.pem" "$OUT/pg/ca-key.pem" "$OUT/pg/bootstrap-tokens.json" "$OUT/pg2/"
serve_dir pg2
# Both nodes at once, each ca-bench skipping its limit measurement (which would run against
# the other one's load): their sum is read against the limit measured for pg-batch100-c4.
before=$(pg_cpu)
load pg pg2-a-batch100-c2 --mode batch --batch-size 100 --connections 2 --limit-seconds 0 &
a_load=$!
load pg2 pg2-b-batch100-c2 --mode batch --batch-size 100 --connections 2 --limit-seconds 0
wait "$a_load"
echo "$(( $(pg_cpu) - before ))" > "$OUT/results/pg2-nodes.pg-ticks"
stop_server pg2
stop_server pg
pg_psql -c "CREATE DATABASE cfssl" postgres
pg_psql -c "CREATE TABLE certificates (serial_number bytea NOT NULL,
  authority_key_identifier bytea NOT NULL, ca_label bytea, status bytea NOT NULL, reason int,
  expiry timestamptz, revoked_at timestamptz, pem bytea NOT NULL,
  PRIMARY KEY (serial_number, authority_key_identifier))" cfssl
pg_psql -c "CREATE TABLE ocsp_responses (serial_number bytea NOT NULL,
  authority_key_identifier bytea NOT NULL, body bytea NOT NULL, expiry timestamptz,
  PRIMARY KEY (serial_number, authority_key_identifier))" cfssl
( umask 077
  printf '{"driver": "postgres", "data_source": "postgres://postgres:%s@127.0.0.1:%s/cfssl?sslmode=disable"}\n' \
    "$(cat "$PG/password")" "$pg_port" > "$OUT/cfssl-db.json" )
cfssl_port=$((20000 + RANDOM % 20000))
cfssl serve -address 127.0.0.1 -port "$cfssl_port" -ca "$OUT/p256/ca.pem" -ca-key "$OUT/p256/ca-key.pem" \
  -config "$OUT/cfssl.json" -db-config "$OUT/cfssl-db.json" > "$OUT/cfssl-pg.log" 2>&1 &
mkdir -p "$OUT/cfssl-pg"; echo $! > "$OUT/cfssl-pg/pid"
sleep 2
echo "$cfssl_port" > "$OUT/cfssl-pg/port"
for c in 16 64; do pg_load cfssl-pg "cfssl-pg-single-c$c" --target cfssl --connections "$c" --limit-seconds 0; done
kill "$(cat "$OUT/cfssl-pg/pid")" 2>/dev/null || true
pg_psql -t -c "SELECT count(*) FROM certificates" cfssl | tr -d ' ' > "$OUT/cfssl-pg-rows.txt"
as_pg "$PGBIN/pg_ctl" -D "$PG/data" -m fast stop >/dev/null
rm -rf "$PG"

start_server w1 ec-p256 1
load w1 workers1-batch100-c4 --mode batch --connections 4
stop_server w1
start_server w2 ec-p256 2
load w2 workers2-batch100-c4 --mode batch --connections 4
stop_server w2

step "ACME orders: ca-server and pebble (bench/acme-vs-pebble.sh)"
mkdir -p "$OUT/acme"
SKIP_BUILD=1 BIN="$BIN" OUT="$OUT/acme" DURATION="$DURATION" bench/acme-vs-pebble.sh | tail -n 4
cp "$OUT"/acme/acme-*.json "$OUT/results/"

if [[ "$LONG" == *" --long "* ]]; then
  step "1,000,000 issuances: resident memory"
  start_server mem ec-p256
  pid=$(cat "$OUT/mem/pid")
  ( while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS/ {print $2}' "/proc/$pid/status"; sleep 1; done ) > "$OUT/rss.txt" &
  DURATION=$(( 1000000 / 15000 + 5 )) load mem million --mode batch --connections 4 --limit-seconds 0
  stop_server mem
  du -sb "$OUT/mem/db" | cut -f1 > "$OUT/store-bytes.txt"
fi

if [[ "$LONG" == *" --large-store "* ]]; then
  step "a store of millions of certificates"
  start_server large ec-p256
  pid=$(cat "$OUT/large/pid")
  ( while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS/ {print $2}' "/proc/$pid/status"; sleep 1; done ) > "$OUT/rss-large.txt" &
  DURATION=540 load large large-fill --mode batch --connections 4 --limit-seconds 0
  load large large-after --mode batch --connections 4
  stop_server large
  du -sb "$OUT/large/db" | cut -f1 > "$OUT/large-store-bytes.txt"
fi

step "rendering bench/RESULTS.md (raw figures kept in bench/last-run/)"
# The run's date and machine, for the report's header and figures.
"$PYTHON" - "$OUT/run.json" "bench/run-all.sh${*:+ $*}" <<'EOF'
import json, os, platform, sys
from datetime import datetime, timezone
model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
              if line.startswith("model name")), "")
machine = ", ".join(x for x in [f"{os.cpu_count()} vCPUs", model, f"Linux {platform.release()}"] if x)
json.dump({"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": machine, "by": sys.argv[2]}, open(sys.argv[1], "w"), indent=2)
EOF
rm -rf bench/last-run && mkdir -p bench/last-run
cp -r "$OUT/results" "$OUT/run.json" bench/last-run/
find "$OUT" -maxdepth 1 -name '*.txt' -exec cp {} bench/last-run/ \;
"$PYTHON" bench/render-results.py bench/last-run --figures bench > bench/RESULTS.md.new
mv bench/RESULTS.md.new bench/RESULTS.md
echo "bench/RESULTS.md and its figures (bench/*.png) written" >&2
