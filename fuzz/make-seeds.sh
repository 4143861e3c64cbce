#!/usr/bin/env bash
# Writes the named seed inputs of each fuzz target into fuzz/corpus/<target>/ (real inputs made
# with OpenSSL, and the JSON bodies of the API documents). The rest of each corpus is what
# libFuzzer found, minimized with `cargo fuzz cmin`. Needs openssl and python3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
corpus="$here/corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p "$corpus"/{csr,ocsp_request,pem,json_bodies,acme_jws,acme_bodies}

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.key 2>/dev/null
openssl genpkey -algorithm ED25519 -out ed.key
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null

# CSRs, PEM and DER.
csr() { # name key subject [subjectAltName]
  openssl req -new -key "$2" -subj "$3" ${4:+-addext "subjectAltName=$4"} -out "$1.pem"
  openssl req -in "$1.pem" -outform DER -out "$1.der"
  cp "$1.pem" "$1.der" "$corpus/csr/"
}
csr seed-ec-p256-tls ec.key "/CN=www.example.com/O=Example/C=BR" \
  "DNS:www.example.com,DNS:*.example.com,IP:192.0.2.1,IP:2001:db8::1"
csr seed-ed25519-client ed.key "/CN=alice/OU=Users/ST=SP/L=Campinas" \
  "DNS:alice.example.com,email:alice@example.com"
csr seed-rsa-2048-personal rsa.key \
  "/CN=Maria Silva/GN=Maria/SN=Silva/serialNumber=12345678900/O=Acme/C=BR" "email:maria@example.com"
csr seed-ec-p384-nosan ec384.key "/CN=host.example.org"
csr seed-ec-p256-uri ec.key "/CN=svc.example" "URI:https://svc.example/,DNS:svc.example"
openssl req -new -key ec.key -subj "/" -addext "subjectAltName=DNS:only-san.example" \
  -out "$corpus/csr/seed-empty-subject.pem"

# OCSP requests against the fixture CA of the ocsp_request target, and their GET forms.
openssl x509 -inform DER -in "$here/fixtures/ocsp-ca.der" -out ca.pem
openssl pkey -inform DER -in "$here/fixtures/ocsp-ca.key.der" -out ca.key
openssl req -new -key ec.key -subj "/CN=leaf.example" -out leaf.csr
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key \
  -set_serial 0x41a2b3c4d5e6f708192a3b4c5d6e7f80 -days 30 -out leaf.pem 2>/dev/null
o="$corpus/ocsp_request"
openssl ocsp -issuer ca.pem -cert leaf.pem -reqout "$o/seed-sha1-nonce.der"
openssl ocsp -issuer ca.pem -cert leaf.pem -no_nonce -reqout "$o/seed-sha1-nononce.der"
openssl ocsp -sha256 -issuer ca.pem -cert leaf.pem -no_nonce -reqout "$o/seed-sha256-nononce.der"
openssl ocsp -issuer ca.pem -serial 0x7fffffffffffffffffffffffffffff01 \
  -serial 0x41a2b3c4d5e6f708192a3b4c5d6e7f80 -serial 12345 -reqout "$o/seed-multi.der"
openssl ocsp -issuer leaf.pem -cert ca.pem -no_nonce -reqout "$o/seed-other-issuer.der"
openssl ocsp -issuer ca.pem -cert leaf.pem -signer leaf.pem -signkey ec.key \
  -reqout "$o/seed-signed.der"
python3 - "$o" <<'PY'
import base64, sys, urllib.parse
o = sys.argv[1]
for name in ["sha1-nononce", "sha256-nononce", "sha1-nonce"]:
    b = base64.b64encode(open(f"{o}/seed-{name}.der", "rb").read()).decode()
    open(f"{o}/seed-get-{name}.txt", "w").write(urllib.parse.quote(b, safe=""))
b = base64.b64encode(open(f"{o}/seed-multi.der", "rb").read()).decode()
open(f"{o}/seed-get-multi-raw.txt", "w").write("/" + b.rstrip("="))
PY

# PEM texts.
p="$corpus/pem"
cp ca.pem "$p/seed-ca.pem"
cat leaf.pem ca.pem > "$p/seed-chain.pem"
cp seed-ec-p256-tls.pem "$p/seed-csr.pem"
sed 's/CERTIFICATE REQUEST/NEW CERTIFICATE REQUEST/' seed-ed25519-client.pem > "$p/seed-csr-new.pem"
(cat ca.pem; openssl pkey -in ec.key -pubout; cat leaf.pem) | sed 's/$/\r/' > "$p/seed-mixed-crlf.pem"
{ printf '  \n\t'; cat seed-ec-p256-tls.pem; } > "$p/seed-ws-prefix.pem"

# JSON bodies, as in docs/API.md.
python3 - "$corpus/json_bodies" <<'PY'
import json, sys
out = sys.argv[1]
csr = open("seed-ec-p256-tls.pem").read()
csr2 = open("seed-ed25519-client.pem").read()
csr3 = open("seed-rsa-2048-personal.pem").read()
bodies = {
    "issue": {"csr": csr, "profile": "tls-server", "validity_days": 90, "request_id": "ra-42-7f3c"},
    "issue-client": {"csr": csr2, "profile": "tls-client"},
    "batch": {"requests": [{"csr": csr, "profile": "tls-server"},
                           {"csr": csr3, "profile": "personal", "validity_days": 365},
                           {"csr": "x", "profile": "nope"}]},
    "renew": {"csr": csr, "validity_days": 30, "request_id": "renew-1"},
    "renew-empty": {},
    "revoke": {"reason": "keyCompromise", "invalidity_date": "2024-01-02T03:04:05Z"},
    "revoke-hold": {"reason": "certificateHold"},
    "enrol-create": {"profile": "personal", "subject": "CN=Maria Silva,O=Acme\\, Inc.,C=BR",
                     "sans": ["maria@example.com"], "expires_in_hours": 72, "max_attempts": 5},
    "enrol-create-tls": {"profile": "tls-server", "subject": "CN=www.example.com",
                         "sans": ["www.example.com", "8.8.8.8", "*.example.com"],
                         "expires_in_hours": 0.5, "max_attempts": 1, "validity_days": 30},
    "redeem-csr": {"code": "ABCD-EFGH-JKMN-PQRS", "csr": csr2},
    "redeem-p12": {"code": "abcd efgh jkmn pqr0", "key_type": "ec-p256",
                   "pkcs12_password": "correct horse battery"},
    "token": {"role": "ra", "name": "ra-frontend"},
}
for name, body in bodies.items():
    open(f"{out}/seed-{name}.json", "w").write(json.dumps(body))
PY
# ACME requests (RFC 8555 section 6.2): flattened JWS signed with each accepted algorithm, in
# the jwk form (newAccount) and the kid form, and a POST-as-GET.
python3 - "$corpus/acme_jws" <<'PY'
import base64, json, subprocess, sys
out = sys.argv[1]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def der_ints(der):  # the two INTEGERs of an ECDSA-Sig-Value
    def read(i):
        n = der[i + 1]; i += 2
        if n & 0x80:
            k = n & 0x7f; n = int.from_bytes(der[i:i + k], "big"); i += k
        return i, n
    i, _ = read(0)
    vals = []
    for _ in range(2):
        j, n = read(i); vals.append(int.from_bytes(der[j:j + n], "big")); i = j + n
    return vals
def pub(key):
    return subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                          check=True, capture_output=True).stdout
def sign(key, alg, data):
    open("input", "wb").write(data)
    if alg == "EdDSA":
        cmd = ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", "input"]
    else:
        cmd = ["openssl", "dgst", "-sha384" if alg == "ES384" else "-sha256", "-sign", key, "input"]
    sig = subprocess.run(cmd, check=True, capture_output=True).stdout
    if alg in ("ES256", "ES384"):
        size = 48 if alg == "ES384" else 32
        r, s = der_ints(sig)
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return sig
def jwk(key, alg):
    spki = pub(key)
    if alg == "EdDSA":
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(spki[-32:])}
    if alg in ("ES256", "ES384"):
        size = 48 if alg == "ES384" else 32
        point = spki[-(2 * size + 1):]
        return {"kty": "EC", "crv": "P-384" if size == 48 else "P-256",
                "x": b64(point[1:1 + size]), "y": b64(point[1 + size:])}
    text = subprocess.run(["openssl", "rsa", "-pubin", "-inform", "DER", "-noout", "-modulus"],
                          input=spki, check=True, capture_output=True).stdout.decode()
    return {"kty": "RSA", "n": b64(bytes.fromhex(text.strip().split("=")[1])), "e": "AQAB"}
def jws(key, alg, form, payload):
    header = {"alg": alg, "nonce": "bm9uY2Utc2VlZA", "url": "https://ca.test/acme/new-acct"}
    if form == "jwk":
        header["jwk"] = jwk(key, alg)
    else:
        header["kid"] = "https://ca.test/acme/acct/1"
    protected, body = b64(json.dumps(header).encode()), b64(payload)
    signature = sign(key, alg, f"{protected}.{body}".encode())
    return json.dumps({"protected": protected, "payload": body, "signature": b64(signature)})
new_account = json.dumps({"termsOfServiceAgreed": True,
                          "contact": ["mailto:admin@example.org"]}).encode()
new_order = json.dumps({"identifiers": [{"type": "dns", "value": "www.example.org"}]}).encode()
for key, alg in [("ec.key", "ES256"), ("ec384.key", "ES384"), ("rsa.key", "RS256"),
                 ("ed.key", "EdDSA")]:
    open(f"{out}/seed-{alg.lower()}-new-account.json", "w").write(
        jws(key, alg, "jwk", new_account))
open(f"{out}/seed-es256-kid-new-order.json", "w").write(jws("ec.key", "ES256", "kid", new_order))
open(f"{out}/seed-eddsa-post-as-get.json", "w").write(jws("ed.key", "EdDSA", "jwk", b""))
PY
# ACME payloads (RFC 8555 section 7): the first byte picks the parser (acme_bodies.rs).
python3 - "$corpus/acme_bodies" <<'PY'
import json, sys
out = sys.argv[1]
ed = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
seeds = {
    "new-account": (0, {"termsOfServiceAgreed": True, "contact": ["mailto:admin@example.org"]}),
    "only-existing": (0, {"onlyReturnExisting": True}),
    "new-order": (1, {"identifiers": [{"type": "dns", "value": "www.example.org"},
                                      {"type": "dns", "value": "*.example.org"},
                                      {"type": "ip", "value": "2001:db8::1"}]}),
    "finalize": (2, {"csr": "MIIBAA"}),
    "revoke": (3, {"certificate": "MIIBAA", "reason": 1}),
    "challenge": (4, {}),
    "deactivate": (5, {"status": "deactivated"}),
    "key-change": (6, {"account": "https://ca.test/acme/acct/1", "oldKey": ed}),
    "eab": (7, {"protected": "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidXJsIjoiaHR0cHM6Ly9jYS50ZXN0L2FjbWUvbmV3LWFjY291bnQifQ",
                "payload": "e30", "signature": "AAAA"}),
}
for name, (which, body) in seeds.items():
    open(f"{out}/seed-{name}", "wb").write(bytes([which]) + json.dumps(body).encode())
PY
echo "seeds written to $corpus"
