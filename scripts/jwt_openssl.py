#!/usr/bin/env python3
"""scripts/jwt_openssl.py: JWS signing and verification with the `openssl`
command line, an implementation independent of medpro, for
test/jwt_openssl.sql.  Python standard library only; all cryptography is done
by `openssl` subprocesses (dgst for HS*, RS*, PS*, ES*; pkeyutl -rawin for
EdDSA).  ES* signatures are converted here between JOSE's raw R||S and the
DER that openssl reads and writes.

A KEY argument is "hex:<hex bytes>" (an HS* secret) or a PEM file path.

    jwt_openssl.py batch SPEC_JSON
        SPEC_JSON is a list of {"alg", "priv", "pub", "token"}: token was
        signed by medpro with priv.  Prints a JSON object keyed by alg with:
          verify          openssl's verdict on token under pub: the claims,
                          or {"invalid": why}
          tampered        the verdict on token with another payload spliced in
          resign_same     whether openssl, signing token's own signing input
                          with priv, produces token's signature exactly
          token           a token signed by openssl with priv (header
                          {"alg":ALG,"kid":"openssl"}, payload BODY below)
          token_tampered  that token with another payload spliced in
          token_der       (ES* only) token's signing input with openssl's DER
                          signature instead of R||S
    jwt_openssl.py vector NAME
        Check the signature of vector NAME of $MEDPRO_VECTORS/jwt_public.json
        (default ../shared/vectors) with its key_pem through openssl.
        Prints "signature valid" or "signature invalid".
"""
import base64
import json
import os
import subprocess
import sys
import tempfile

BODY = {"sub": "openssl-user", "exp": 4102444800, "scope": ["read", "write"]}
OTHER = {"sub": "admin", "exp": 4102444800}

HASH = {"256": "sha256", "384": "sha384", "512": "sha512"}
EC_COORD = {"ES256": 32, "ES384": 48, "ES512": 66}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def run(args, data=None):
    return subprocess.run(["openssl"] + args, input=data, capture_output=True)


# --- DER <-> raw R||S for ECDSA ------------------------------------------

def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_int(v):
    b = v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big")
    if b[0] & 0x80:
        b = b"\x00" + b
    return b"\x02" + der_len(len(b)) + b


def raw_to_der(raw, n):
    r = int.from_bytes(raw[:n], "big")
    s = int.from_bytes(raw[n:], "big")
    body = der_int(r) + der_int(s)
    return b"\x30" + der_len(len(body)) + body


def der_read(buf, i):
    tag = buf[i]
    n = buf[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[i:i + k], "big")
        i += k
    return tag, buf[i:i + n], i + n


def der_to_raw(der, n):
    tag, seq, _ = der_read(der, 0)
    assert tag == 0x30
    _, r, i = der_read(seq, 0)
    _, s, _ = der_read(seq, i)
    return int.from_bytes(r, "big").to_bytes(n, "big") + int.from_bytes(s, "big").to_bytes(n, "big")


# --- signing and verifying through openssl ---------------------------------

def sign(alg, key, data):
    with tempfile.TemporaryDirectory() as d:
        inp = os.path.join(d, "in")
        out = os.path.join(d, "sig")
        with open(inp, "wb") as f:
            f.write(data)
        if alg.startswith("HS"):
            r = run(["dgst", "-" + HASH[alg[2:]], "-mac", "HMAC", "-macopt",
                     "hexkey:" + key[4:], "-binary", "-out", out, inp])
        elif alg == "EdDSA":
            r = run(["pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", inp, "-out", out])
        else:
            args = ["dgst", "-" + HASH[alg[2:]], "-sign", key, "-out", out]
            if alg.startswith("PS"):
                args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest",
                         "-sigopt", "rsa_mgf1_md:" + HASH[alg[2:]]]
            r = run(args + [inp])
        if r.returncode != 0:
            raise SystemExit("openssl failed to sign: " + r.stderr.decode())
        with open(out, "rb") as f:
            sig = f.read()
    if alg in EC_COORD:
        sig = der_to_raw(sig, EC_COORD[alg])
    return sig


def check(alg, key, data, sig):
    """True when openssl accepts sig (JOSE form) over data."""
    if alg.startswith("HS"):
        return sign(alg, key, data) == sig
    if alg in EC_COORD:
        if len(sig) != 2 * EC_COORD[alg]:
            return False
        sig = raw_to_der(sig, EC_COORD[alg])
    with tempfile.TemporaryDirectory() as d:
        inp = os.path.join(d, "in")
        sigf = os.path.join(d, "sig")
        keyf = key
        with open(inp, "wb") as f:
            f.write(data)
        with open(sigf, "wb") as f:
            f.write(sig)
        if alg == "EdDSA":
            r = run(["pkeyutl", "-verify", "-pubin", "-inkey", keyf, "-rawin",
                     "-in", inp, "-sigfile", sigf])
        else:
            args = ["dgst", "-" + HASH[alg[2:]], "-verify", keyf, "-signature", sigf]
            if alg.startswith("PS"):
                args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest",
                         "-sigopt", "rsa_mgf1_md:" + HASH[alg[2:]]]
            r = run(args + [inp])
        return r.returncode == 0


def verify(token, key, alg):
    parts = token.split(".")
    if len(parts) != 3:
        return {"invalid": "malformed"}
    header = json.loads(unb64url(parts[0]))
    if header.get("alg") != alg:
        return {"invalid": "algorithm not allowed"}
    if not check(alg, key, (parts[0] + "." + parts[1]).encode("ascii"), unb64url(parts[2])):
        return {"invalid": "signature mismatch"}
    claims = json.loads(unb64url(parts[1]))
    if not isinstance(claims, dict):
        return {"invalid": "payload is not a JSON object"}
    return claims


def splice(token, claims):
    h, _, s = token.split(".")
    return h + "." + b64url(json.dumps(claims).encode()) + "." + s


def batch(spec):
    out = {}
    for e in spec:
        alg, priv, pub, token = e["alg"], e["priv"], e["pub"], e["token"]
        h, p, s = token.split(".")
        r = {
            "verify": verify(token, pub, alg),
            "tampered": verify(splice(token, OTHER), pub, alg),
            "resign_same": b64url(sign(alg, priv, (h + "." + p).encode("ascii"))) == s,
        }
        sh = b64url(json.dumps({"alg": alg, "kid": "openssl"}).encode())
        sp = b64url(json.dumps(BODY).encode())
        t = sh + "." + sp + "." + b64url(sign(alg, priv, (sh + "." + sp).encode("ascii")))
        assert verify(t, pub, alg) == BODY
        r["token"] = t
        r["token_tampered"] = splice(t, OTHER)
        if alg in EC_COORD:
            raw = unb64url(t.split(".")[2])
            r["token_der"] = sh + "." + sp + "." + b64url(raw_to_der(raw, EC_COORD[alg]))
        out[alg] = r
    return out


def vector(name):
    path = os.path.join(os.environ.get("MEDPRO_VECTORS", "../shared/vectors"), "jwt_public.json")
    with open(path) as f:
        vec = next(v for v in json.load(f)["vectors"] if v["name"] == name)
    h, p, s = vec["token"].split(".")
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as kf:
        kf.write(vec["key_pem"])
        kf.flush()
        ok = check(vec["algorithm"], kf.name, (h + "." + p).encode("ascii"), unb64url(s))
    return "signature valid" if ok else "signature invalid"


def main(argv):
    if len(argv) == 3 and argv[1] == "batch":
        print(json.dumps(batch(json.loads(argv[2]))))
    elif len(argv) == 3 and argv[1] == "vector":
        print(vector(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
