#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine, when it is missing:
# a C++ compiler and libclang (RocksDB's bindings), the OpenSSL CLI, SoftHSM2 and OpenSC's
# pkcs11-tool (the HSM tests), PostgreSQL (throwaway clusters for the shared-database
# tests), lego, certbot and pebble-challtestsrv (the ACME tests), promtool and
# systemd-analyze (the operations tests), cargo-deny, and pkilint and schemathesis in venvs.
# Idempotent and quiet when everything is there.
set -euo pipefail

need_apt=()
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The README's examples, which the tests run, use curl and jq.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
# The HSM tests (tests/src/softhsm.rs): SoftHSM2's PKCS#11 module and softhsm2-util, and
# OpenSC's pkcs11-tool, which looks into its tokens.
{ [ -f /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null 2>&1; } ||
  need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || need_apt+=(opensc)
# The ACME tests: the clients lego and certbot (tests/src/acme.rs), and pebble-challtestsrv,
# from Debian's pebble package, the DNS that serves the A, AAAA, TXT and CAA records of the
# validation authority's tests (acme-va/tests/dns.rs) and resolves every name to 127.0.0.1.
command -v lego >/dev/null 2>&1 || need_apt+=(lego)
command -v certbot >/dev/null 2>&1 || need_apt+=(certbot)
command -v pebble-challtestsrv >/dev/null 2>&1 || need_apt+=(pebble)
# The tests of the shared database (tests/src/postgres.rs) run throwaway clusters with
# initdb and pg_ctl, which Debian keeps in /usr/lib/postgresql/N/bin.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
# libclang itself (libclang.so.N or libclang-N.so.M), not libclang-cpp, which some images carry
# without it.
has_libclang() {
  local dir
  for dir in /usr/lib/llvm-*/lib /usr/lib/*-linux-gnu /usr/lib; do
    compgen -G "$dir/libclang.so*" >/dev/null && return 0
    compgen -G "$dir/libclang-[0-9]*.so*" >/dev/null && return 0
  done
  return 1
}
has_libclang || need_apt+=(libclang-dev)
# The operations tests (tests/tests/e2e/ops.rs): promtool, from Debian's prometheus package,
# checks and unit-tests deploy/prometheus/alerts.yml; systemd-analyze verifies
# deploy/systemd/ca-server.service (it runs without systemd as PID 1).
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
if [ "${1:-}" = "--with-pkilint" ]; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo is missing; install Rust with rustup" >&2; exit 1; }
# cargo-deny, for ./test's license, ban and source checks (deny.toml); built from source, a
# few minutes once (under four on two cores).
if ! cargo deny --version >/dev/null 2>&1; then
  echo "setup: installing cargo-deny" >&2
  cargo install --locked --quiet cargo-deny
fi

if [ "${1:-}" = "--with-pkilint" ]; then
  venv="${PKILINT_VENV:-$(pwd)/.venv}"
  # pkilint, pinned: the tests assert on its finding codes (tests/tests/e2e/judges.rs), which a
  # new version may rename; installed again when the venv holds another version.
  pkilint_version=0.13.3
  if ! compgen -G "$venv/lib/python3*/site-packages/pkilint-$pkilint_version.dist-info" >/dev/null; then
    echo "setup: installing pkilint $pkilint_version into $venv" >&2
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "pkilint==$pkilint_version"
  fi
  # schemathesis (tests/tests/e2e/openapi.rs), pinned, in a venv of its own so that its
  # dependencies never move pkilint's.
  schemathesis_version=4.32.5
  st_venv="${SCHEMATHESIS_VENV:-$venv-schemathesis}"
  if ! compgen -G "$st_venv/lib/python3*/site-packages/schemathesis-$schemathesis_version.dist-info" >/dev/null; then
    echo "setup: installing schemathesis $schemathesis_version into $st_venv" >&2
    [ -x "$st_venv/bin/pip" ] || python3 -m venv "$st_venv"
    "$st_venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$schemathesis_version"
  fi
fi
