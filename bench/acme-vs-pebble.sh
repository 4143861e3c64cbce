#!/usr/bin/env bash
# ACME orders per second on this machine, in one run: ca-server's ACME front, then Debian's
# pebble (the reference test server), each driven by the same `ca-bench --mode acme` (same
# accounts, connections, duration, CSR kind, http-01 responder), each figure next to L_acme
# measured just before it. Prints both rates, the ratio, and the fraction of L_acme.
#
#   bench/acme-vs-pebble.sh                      # 20 s each
#   DURATION=10 CONNECTIONS=32 bench/acme-vs-pebble.sh
#
# Environment: DURATION (20 s), CONNECTIONS (128: on 2 vCPUs ca-server's rate stops growing
# there; at 64 the vCPUs idle a tenth of the time while orders wait on fsyncs), ACCOUNTS (16),
# LIMIT_SECONDS (2, per rate of L_acme), OUT (a directory to keep acme-ca.json and acme-pebble.json in; default: discarded),
# SKIP_BUILD=1 with BIN=DIR to use ca-server and ca-bench already built in DIR.
#
# The pieces, all on loopback:
# - pebble-challtestsrv as the mock DNS only (every name A 127.0.0.1, no AAAA; its HTTP,
#   HTTPS and TLS-ALPN challenge servers off): both servers resolve through it.
# - ca-bench's own http-01 responder on HTTP01_PORT: ca-server's `[acme] http01_port` and
#   pebble's `httpPort` point at it.
# - ca-server on a fresh data directory (plain HTTP on loopback), `[acme]` enabled without
#   EAB, no order rate limit, no authorization reuse (every order validates), `deny_networks
#   = []` (loopback is the validation target), and `[limits] public_requests_per_second = 0`
#   (ACME requests carry no bearer token: they would share the 100/s of one client address).
# - pebble (HTTPS only, its own TLS certificate made here with openssl), with
#   PEBBLE_VA_NOSLEEP=1 (no random validation delay), PEBBLE_WFE_NONCEREJECT=0 (no made-up
#   badNonce) and PEBBLE_AUTHZREUSE=0 (every order validates, as on ca-server).
# Each server runs alone: ca-server is stopped before pebble starts.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-128}
ACCOUNTS=${ACCOUNTS:-16}
LIMIT_SECONDS=${LIMIT_SECONDS:-2}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
BIN=${BIN:-$CARGO_TARGET_DIR/release}
WORK=$(mktemp -d)
RESULTS=${OUT:-$WORK/results}
mkdir -p "$RESULTS"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

port() { echo $((20000 + RANDOM % 20000)); }
DNS_PORT=${DNS_PORT:-$(port)}
HTTP01_PORT=${HTTP01_PORT:-$(port)}
PEBBLE_PORT=${PEBBLE_PORT:-$(port)}
step() { printf '\n== %s\n' "$*" >&2; }

command -v pebble >/dev/null 2>&1 || {
  echo "acme-vs-pebble: installing pebble (the peer ACME server)" >&2
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -qq pebble >/dev/null
}
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p ca-server --bins
  cargo build --release -p bench --bin ca-bench
fi

# waits until URL answers (curl's exit status), for up to 10 s: wait_for URL [curl-args...]
wait_for() {
  local url=$1; shift
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "acme-vs-pebble: $url did not answer" >&2
  return 1
}
# bench NAME DIRECTORY-URL SERVER-PID CONNECTIONS [ca-bench args...]
bench() {
  local name=$1 url=$2 pid=$3 connections=$4; shift 4
  step "ca-bench --mode acme against $name ($url), $connections connections"
  "$BIN/ca-bench" --mode acme --url "$url" --accounts "$ACCOUNTS" --connections "$connections" \
    --duration "$DURATION" --http01-port "$HTTP01_PORT" --limit-seconds "$LIMIT_SECONDS" \
    --server-pid "$pid" --label "$name" --json "$RESULTS/acme-$name.json" "$@"
}

step "mock DNS: pebble-challtestsrv on 127.0.0.1:$DNS_PORT"
pebble-challtestsrv -dns01 "127.0.0.1:$DNS_PORT" -http01 "" -https01 "" -tlsalpn01 "" \
  -management "127.0.0.1:$(port)" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
  > "$WORK/challtestsrv.log" 2>&1 &
PIDS+=($!)

step "ca-server with [acme] enabled"
CA="$WORK/ca"
mkdir -m 700 "$CA"
"$BIN/ca-server" init --data-dir "$CA" --key-type ec-p256 --subject "CN=Bench ACME CA" >/dev/null 2>&1
python3 - "$CA/config.toml" "$HTTP01_PORT" "$DNS_PORT" <<'EOF'
import re, sys
path, http01, dns = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
# Drop the [acme] table written at init (its deny_networks spans lines), then add ours: keys
# not named keep their defaults.
lines, kept, skipping = text.split("\n"), [], False
for line in lines:
    if line.strip() == "[acme]":
        skipping = True
        continue
    if skipping and line.startswith("["):
        skipping = False
    if not skipping:
        kept.append(line)
text = "\n".join(kept)
text, n = re.subn(r"(?m)^public_requests_per_second = .*$", "public_requests_per_second = 0.0", text)
assert n == 1, "no [limits] public_requests_per_second in config.toml"
text += f"""
[acme]
enabled = true
eab_required = false
http01_port = {http01}
dns_resolver = "127.0.0.1:{dns}"
deny_networks = []
orders_per_account_per_hour = 0
authz_reuse_secs = 0
failed_validations_per_hour = 0
"""
open(path, "w").write(text)
EOF
"$BIN/ca-server" serve --data-dir "$CA" --listen 127.0.0.1:0 > "$WORK/ca.out" 2> "$WORK/ca.err" &
CA_PID=$!
PIDS+=("$CA_PID")
ca_port=""
for _ in $(seq 100); do
  ca_port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$WORK/ca.out")
  [ -n "$ca_port" ] && break
  sleep 0.1
done
[ -n "$ca_port" ] || { echo "ca-server did not start" >&2; cat "$WORK/ca.err" >&2; exit 1; }
wait_for "http://127.0.0.1:$ca_port/acme/directory"
bench ca "http://127.0.0.1:$ca_port/acme/directory" "$CA_PID" "$CONNECTIONS"
kill "$CA_PID"; wait "$CA_PID" 2>/dev/null || true

step "pebble on 127.0.0.1:$PEBBLE_PORT"
TLS="$WORK/pebble-tls"
mkdir -p "$TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$TLS/ca.key" -out "$TLS/ca.pem" -subj "/CN=acme-vs-pebble TLS CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$TLS/key.pem" -out "$TLS/cert.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > "$TLS/ext"
openssl x509 -req -in "$TLS/cert.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
  -days 2 -extfile "$TLS/ext" -out "$TLS/cert.pem" 2>/dev/null
cat > "$WORK/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$PEBBLE_PORT",
    "managementListenAddress": "127.0.0.1:$(port)",
    "certificate": "$TLS/cert.pem",
    "privateKey": "$TLS/key.pem",
    "httpPort": $HTTP01_PORT,
    "tlsPort": $(port),
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
# pebble 2.4 can deadlock under concurrent orders (its memory store takes the store's and an
# authorization's locks in both orders: every handler then waits). A run in which no order
# completed for two seconds (ca-bench's `stalled`) is kept as acme-pebble-cN.json and pebble
# runs again, fresh, with half the connections: the figure compared is pebble's rate at the
# highest concurrency it sustained.
c=$CONNECTIONS
while :; do
  PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$WORK/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" > "$WORK/pebble.log" 2>&1 &
  PEBBLE_PID=$!
  PIDS+=("$PEBBLE_PID")
  wait_for "https://127.0.0.1:$PEBBLE_PORT/dir" --cacert "$TLS/ca.pem"
  bench pebble "https://127.0.0.1:$PEBBLE_PORT/dir" "$PEBBLE_PID" "$c" --ca-file "$TLS/ca.pem"
  kill "$PEBBLE_PID"; wait "$PEBBLE_PID" 2>/dev/null || true
  stalled=$(python3 -c "import json,sys;print(int(json.load(open(sys.argv[1]))['outcome']['stalled']))" "$RESULTS/acme-pebble.json")
  [ "$stalled" = 1 ] && [ "$c" -gt 1 ] || break
  mv "$RESULTS/acme-pebble.json" "$RESULTS/acme-pebble-c$c.json"
  echo "acme-vs-pebble: pebble stalled at $c connections; again with $((c / 2))" >&2
  c=$((c / 2))
done

step "summary (targets: ca-server >= 0.5 L_acme and >= 5x pebble)"
python3 - "$RESULTS" <<'EOF'
import glob, json, os, sys
res = sys.argv[1]
ca, pb = (json.load(open(os.path.join(res, f))) for f in ("acme-ca.json", "acme-pebble.json"))
for path in sorted(glob.glob(os.path.join(res, "acme-pebble-c*.json"))):
    r = json.load(open(path))
    print(f"pebble stalled at {r['connections']} connections: {r['outcome']['orders']} orders, "
          f"each second {r['outcome']['orders_each_second']}")
def line(name, r):
    f = r.get("fraction_of_limit")
    return (f"{name:10} c{r['connections']:<3} {r['orders_per_sec']:9.1f} orders/s  "
            f"{'-' if f is None else format(f, '.3f'):>6} of L_acme "
            f"({r['limit_orders_per_sec'] or 0:.0f}/s)  JWS/order {r['jws_per_order']:.2f} "
            f"(k {r['authz_polls_per_order']:.2f}, m {r['order_polls_per_order']:.2f})  "
            f"p50 {r['latency_ms']['p50']:.1f} ms  p99 {r['latency_ms']['p99']:.1f} ms  "
            f"errors {sum(r['errors'].values())}{'  STALLED' if r['outcome']['stalled'] else ''}")
print(line("ca-server", ca))
print(line("pebble", pb))
ratio = ca["orders_per_sec"] / pb["orders_per_sec"] if pb["orders_per_sec"] else float("inf")
print(f"ca-server / pebble = {ratio:.2f}x")
EOF
[ -z "${OUT:-}" ] || echo "results kept in $RESULTS" >&2
