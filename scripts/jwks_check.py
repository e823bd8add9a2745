#!/usr/bin/env python3
"""scripts/jwks_check.py: check medpro_jwks() and medpro's asymmetric tokens
with code that shares nothing with medpro: the Python standard library
turns each JWK back into a DER SubjectPublicKeyInfo (built by hand here) and
the `openssl` command line checks signatures.  Used by test/keyring.sql.

    jwks_check.py shape JWKS_JSON
        Check the JWK Set's form (RFC 7517/7518/8037): members, use "sig",
        alg/kty/crv consistent, base64url without padding, RSA n without a
        leading zero byte and at least 2048 bits, EC coordinates exactly the
        field size, no private or secret member.  Prints "ok N" (N keys) or
        the first problem.
    jwks_check.py pems JWKS_JSON
        Print a JSON object mapping each kid to the PEM public key rebuilt
        from its JWK.
    jwks_check.py verify JWKS_JSON TOKEN
        Find the JWK named by TOKEN's header kid, check that the header's alg
        is the JWK's alg, rebuild its PEM and verify the signature with the
        openssl command line.  Prints "signature valid <alg>" or
        "signature invalid: <why>".
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile

B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
HASHES = {"256": "sha256", "384": "sha384", "512": "sha512"}
CURVES = {  # crv: (OID, coordinate bytes, ES alg)
    "P-256": ("1.2.840.10045.3.1.7", 32, "ES256"),
    "P-384": ("1.3.132.0.34", 48, "ES384"),
    "P-521": ("1.3.132.0.35", 66, "ES512"),
}
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def unb64url(text):
    if not isinstance(text, str) or not B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != text:
        raise ValueError("non-canonical base64url")
    return data


# DER, just enough for SubjectPublicKeyInfo and ECDSA-Sig-Value.
def der(tag, content):
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def der_int(unsigned):
    unsigned = unsigned.lstrip(b"\x00") or b"\x00"
    if unsigned[0] & 0x80:
        unsigned = b"\x00" + unsigned
    return der(0x02, unsigned)


def der_oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    out = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.insert(0, 0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(chunk)
    return der(0x06, out)


def seq(*items):
    return der(0x30, b"".join(items))


def bit_string(data):
    return der(0x03, b"\x00" + data)


def spki(jwk):
    kty = jwk["kty"]
    if kty == "RSA":
        key = seq(der_int(unb64url(jwk["n"])), der_int(unb64url(jwk["e"])))
        return seq(seq(der_oid("1.2.840.113549.1.1.1"), der(0x05, b"")), bit_string(key))
    if kty == "EC":
        oid = CURVES[jwk["crv"]][0]
        point = b"\x04" + unb64url(jwk["x"]) + unb64url(jwk["y"])
        return seq(seq(der_oid("1.2.840.10045.2.1"), der_oid(oid)), bit_string(point))
    if kty == "OKP" and jwk["crv"] == "Ed25519":
        return seq(seq(der_oid("1.3.101.112")), bit_string(unb64url(jwk["x"])))
    raise ValueError("unsupported kty " + kty)


def pem(jwk):
    body = base64.b64encode(spki(jwk)).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def shape_problem(jwk):
    """The first thing wrong with one JWK, or None."""
    if not isinstance(jwk, dict):
        return "a key is not an object"
    for m in PRIVATE_MEMBERS:
        if m in jwk:
            return "private member %r in %s" % (m, jwk.get("kid"))
    if not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        return "missing kid"
    if jwk.get("use") != "sig":
        return "use is not sig in " + jwk["kid"]
    alg, kty = jwk.get("alg"), jwk.get("kty")
    try:
        if kty == "RSA":
            if set(jwk) != {"kty", "kid", "use", "alg", "n", "e"}:
                return "RSA members %s" % sorted(jwk)
            if alg not in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
                return "alg %s for kty RSA" % alg
            n = unb64url(jwk["n"])
            e = unb64url(jwk["e"])
            if n[0] == 0 or e[0] == 0:
                return "leading zero byte in n or e"
            if int.from_bytes(n, "big").bit_length() < 2048:
                return "RSA modulus under 2048 bits"
        elif kty == "EC":
            if set(jwk) != {"kty", "kid", "use", "alg", "crv", "x", "y"}:
                return "EC members %s" % sorted(jwk)
            if jwk["crv"] not in CURVES or CURVES[jwk["crv"]][2] != alg:
                return "alg %s with crv %s" % (alg, jwk["crv"])
            size = CURVES[jwk["crv"]][1]
            if len(unb64url(jwk["x"])) != size or len(unb64url(jwk["y"])) != size:
                return "EC coordinate not %d bytes" % size
        elif kty == "OKP":
            if set(jwk) != {"kty", "kid", "use", "alg", "crv", "x"}:
                return "OKP members %s" % sorted(jwk)
            if jwk["crv"] != "Ed25519" or alg != "EdDSA":
                return "alg %s with crv %s" % (alg, jwk["crv"])
            if len(unb64url(jwk["x"])) != 32:
                return "Ed25519 key not 32 bytes"
        else:
            return "kty %r" % kty
    except (ValueError, KeyError) as e:
        return "%s: %s" % (jwk.get("kid"), e)
    return None


def shape(jwks):
    if not isinstance(jwks, dict) or set(jwks) != {"keys"} or not isinstance(jwks["keys"], list):
        return "not a JWK Set"
    kids = [k.get("kid") for k in jwks["keys"] if isinstance(k, dict)]
    if len(set(kids)) != len(kids):
        return "duplicate kid"
    for jwk in jwks["keys"]:
        problem = shape_problem(jwk)
        if problem:
            return problem
    return "ok %d" % len(jwks["keys"])


def ecdsa_der(raw):
    half = len(raw) // 2
    return seq(der_int(raw[:half]), der_int(raw[half:]))


def verify(jwks, token):
    parts = token.split(".")
    if len(parts) != 3:
        return "signature invalid: malformed"
    try:
        header = json.loads(unb64url(parts[0]))
    except ValueError as e:
        return "signature invalid: header " + str(e)
    match = [k for k in jwks["keys"] if k.get("kid") == header.get("kid")]
    if len(match) != 1:
        return "signature invalid: no JWK for kid"
    jwk = match[0]
    alg = header.get("alg")
    if alg != jwk["alg"]:
        return "signature invalid: alg %s but JWK says %s" % (alg, jwk["alg"])
    try:
        sig = unb64url(parts[2])
    except ValueError as e:
        return "signature invalid: " + str(e)
    with tempfile.TemporaryDirectory() as d:
        keyfile = os.path.join(d, "key.pem")
        datafile = os.path.join(d, "data")
        sigfile = os.path.join(d, "sig")
        with open(keyfile, "w") as f:
            f.write(pem(jwk))
        with open(datafile, "wb") as f:
            f.write((parts[0] + "." + parts[1]).encode("ascii"))
        if alg == "EdDSA":
            with open(sigfile, "wb") as f:
                f.write(sig)
            cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", keyfile,
                   "-rawin", "-in", datafile, "-sigfile", sigfile]
        else:
            digest = "-" + HASHES[alg[2:]]
            if alg.startswith("ES"):
                if len(sig) != 2 * CURVES[jwk["crv"]][1]:
                    return "signature invalid: R||S is %d bytes" % len(sig)
                sig = ecdsa_der(sig)
            with open(sigfile, "wb") as f:
                f.write(sig)
            cmd = ["openssl", "dgst", digest, "-verify", keyfile, "-signature", sigfile]
            if alg.startswith("PS"):
                # RFC 7518 3.5: MGF1 with the same hash, salt as long as the hash
                cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1",
                        "-sigopt", "rsa_mgf1_md:" + HASHES[alg[2:]]]
            cmd.append(datafile)
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode == 0:
        return "signature valid " + alg
    return "signature invalid: openssl said " + (done.stdout + done.stderr).strip().splitlines()[0]


def main(argv):
    if len(argv) == 3 and argv[1] == "shape":
        print(shape(json.loads(argv[2])))
    elif len(argv) == 3 and argv[1] == "pems":
        print(json.dumps({k["kid"]: pem(k) for k in json.loads(argv[2])["keys"]}))
    elif len(argv) == 4 and argv[1] == "verify":
        print(verify(json.loads(argv[2]), argv[3]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
