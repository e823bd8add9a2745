#!/usr/bin/env python3
"""scripts/jwt_interop.py: an independent HS256/HS384/HS512 JWT implementation
(Python standard library only: hmac, hashlib, base64, json) used by
test/jwt_interop.sql to check medpro's tokens against something that shares
no code with it.

    jwt_interop.py verify TOKEN KEY_HEX ALG [NOW]
        Check TOKEN: three segments, header "alg" equal to ALG, HMAC, payload
        a JSON object, exp after NOW (Unix seconds, default: the clock).
        Prints the claims as JSON, or {"invalid": "<why>"}.
    jwt_interop.py sign ALG KEY_HEX HEADER_JSON PAYLOAD_JSON
        Print a token whose header and payload segments are exactly the
        given arguments' bytes, signed with KEY.
    jwt_interop.py vector NAME
        Check the signature of the vector NAME in
        $MEDPRO_VECTORS/jwt_public.json (default ../shared/vectors) with its
        key_hex or key_text.
        Prints "signature valid" or "signature invalid".
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mac(alg, key, signing_input):
    return hmac.new(key, signing_input.encode("ascii"), DIGESTS[alg]).digest()


def verify(token, key, alg, now):
    parts = token.split(".")
    if len(parts) != 3:
        return {"invalid": "malformed"}
    try:
        header = json.loads(unb64url(parts[0]).decode("utf-8"))
    except ValueError:
        return {"invalid": "bad header"}
    if not isinstance(header, dict) or header.get("alg") != alg:
        return {"invalid": "algorithm not allowed"}
    expected = mac(alg, key, parts[0] + "." + parts[1])
    try:
        given = unb64url(parts[2])
    except ValueError:
        return {"invalid": "bad signature encoding"}
    if not hmac.compare_digest(expected, given):
        return {"invalid": "signature mismatch"}
    try:
        claims = json.loads(unb64url(parts[1]).decode("utf-8"))
    except ValueError:
        return {"invalid": "payload is not JSON"}
    if not isinstance(claims, dict):
        return {"invalid": "payload is not a JSON object"}
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return {"invalid": "missing exp"}
    if now >= exp:
        return {"invalid": "expired"}
    return claims


def sign(alg, key, header, payload):
    signing_input = b64url(header) + "." + b64url(payload)
    return signing_input + "." + b64url(mac(alg, key, signing_input))


def vector(name):
    path = os.path.join(os.environ.get("MEDPRO_VECTORS") or "../shared/vectors", "jwt_public.json")
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    vec = next(v for v in vectors if v["name"] == name)
    key = bytes.fromhex(vec["key_hex"]) if "key_hex" in vec else vec["key_text"].encode("utf-8")
    head, body, sig = vec["token"].split(".")
    ok = hmac.compare_digest(mac(vec["algorithm"], key, head + "." + body), unb64url(sig))
    return "signature valid" if ok else "signature invalid"


def main(argv):
    if len(argv) >= 4 and argv[0] == "verify":
        now = float(argv[4]) if len(argv) > 4 else time.time()
        print(json.dumps(verify(argv[1], bytes.fromhex(argv[2]), argv[3], now), separators=(",", ":")))
    elif len(argv) == 5 and argv[0] == "sign":
        print(sign(argv[1], bytes.fromhex(argv[2]), os.fsencode(argv[3]), os.fsencode(argv[4])))
    elif len(argv) == 2 and argv[0] == "vector":
        print(vector(argv[1]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
