/*
 * jwt.h
 *	  Private interface of jwt.c: compact JWS (RFC 7515) signing and strict
 *	  verification of JWTs (RFC 7519): HS*, RS*, PS*, ES* and EdDSA.
 *	  The asymmetric algorithms are implemented in jwt_pkey.c.
 */
#ifndef MEDPRO_JWT_H
#define MEDPRO_JWT_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "jose.h"

typedef enum JwtAlg
{
	JWT_HS256,
	JWT_HS384,
	JWT_HS512,
	JWT_RS256,
	JWT_RS384,
	JWT_RS512,
	JWT_PS256,
	JWT_PS384,
	JWT_PS512,
	JWT_ES256,
	JWT_ES384,
	JWT_ES512,
	JWT_EDDSA
} JwtAlg;

/*
 * Map an algorithm name to JwtAlg.  An unknown or unsupported name
 * (including "none") raises 22023.
 */
extern JwtAlg jwt_alg_from_name(const char *name);
/* Same, but returns false instead of raising. */
extern bool jwt_alg_lookup(const char *name, JwtAlg *alg);
extern const char *jwt_alg_name(JwtAlg alg);
/*
 * HS*: minimum (and recommended) secret length in bytes, the hash output
 * size.  0 for the asymmetric algorithms, whose keys are PEM text checked
 * when parsed (RSA at least 2048 bits, the algorithm's curve, Ed25519).
 */
extern size_t jwt_alg_min_key_len(JwtAlg alg);
/* Is alg one of HS256, HS384, HS512 (key = shared secret bytes)? */
extern bool jwt_alg_is_hmac(JwtAlg alg);

/*
 * Empty this backend's caches of parsed asymmetric keys and of verified
 * asymmetric tokens (to be called when a key is retired or rotated).
 */
extern void jwt_token_cache_reset(void);

/*
 * Wipe and free this backend's cached keyed HMAC contexts and the copies of
 * their keys (they are also wiped on eviction and at backend exit; a key
 * with new bytes never matches an old entry, so this is hygiene, e.g. after
 * a key is retired).
 */
extern void jwt_hmac_cache_reset(void);

/*
 * Sign payload (a jsonb object) and return the compact token, palloc'd.
 * The header is {"alg":..., "typ":"JWT"} plus "kid" when kid is not NULL;
 * header and payload are serialised as compact JSON.  For HS* the key is
 * the secret; for the other algorithms it is a PEM private key.  Raises
 * 22023 for a key that does not fit alg (too short, a PEM key for HS*, a
 * secret or public key for the others, the wrong key type or curve) or a
 * payload that is not an object.
 */
extern char *jwt_sign(Jsonb *payload, const uint8 *key, size_t keylen,
					  JwtAlg alg, const char *kid);

/*
 * Result of jwt_verify.  reason is one of these static strings (docs/jwt.md
 * lists them with the check each stands for; they are stable):
 *	"token too large", "malformed", "header too large", "bad base64url",
 *	"invalid UTF-8", "JSON nested too deeply",
 *	"text not representable in the database encoding",
 *	"header is not a JSON object", "payload is not a JSON object",
 *	"NUL character in JSON string", "duplicate member in header",
 *	"duplicate member in payload", "number out of range", "missing alg",
 *	"algorithm not allowed", "typ not allowed", "malformed crit header",
 *	"unsupported crit header", "signature mismatch",
 *	"missing exp", "exp is not a number", "exp is not a valid time",
 *	"nbf is not a number", "nbf is not a valid time", "iat is not a number",
 *	"iat is not a valid time", "expired", "not yet valid",
 *	"issued in the future".
 * (The SQL functions add "missing" for a NULL token.)  header is set once
 * the header parsed, even when a later check fails; payload only once the
 * signature has been found valid, since an unauthenticated payload is never
 * parsed.
 */
typedef struct JwtResult
{
	bool		valid;			/* all checks passed */
	const char *reason;			/* when !valid: a short reason (static) */
	Jsonb	   *header;			/* decoded header, when it parsed */
	Jsonb	   *payload;		/* decoded payload, when it parsed */
} JwtResult;

/*
 * Verify token (len bytes, need not be NUL-terminated) with key under the
 * pinned algorithm alg, at time "now", with leeway seconds of clock skew.
 * Never raises for anything wrong with the token: res->valid is false and
 * res->reason says why.  Raises 22023 for a bad key (as jwt_sign, except
 * that a PEM public or private key is accepted for the asymmetric
 * algorithms).  Asymmetric verifications go through a per-backend cache of
 * parsed keys and of verified tokens; the time claims are checked against
 * "now" on every call, cache hit or not.
 */
extern void jwt_verify(const char *token, size_t len,
					   const uint8 *key, size_t keylen, JwtAlg alg,
					   TimestampTz now, int leeway, JwtResult *res);

/* What jwt_verify_opts builds besides the verdict. */
#define JWT_VERIFY_HEADER	0x01	/* res->header */
#define JWT_VERIFY_PAYLOAD	0x02	/* res->payload */

/*
 * jwt_verify with a choice of results: the checks are the same, but only
 * the jsonb values named in flags are built (res->header and res->payload
 * stay NULL otherwise).  jwt_verify is flags = both.
 */
extern void jwt_verify_opts(const char *token, size_t len,
							const uint8 *key, size_t keylen, JwtAlg alg,
							TimestampTz now, int leeway, int flags,
							JwtResult *res);

/*
 * Decode only the header of token, without checking anything but its
 * syntax (used to find the "kid" before the key is known).  Returns NULL
 * and sets *reason when the token is malformed.
 */
extern Jsonb *jwt_peek_header(const char *token, size_t len, const char **reason);

/* Largest token accepted, in bytes; checked before any decoding. */
#define JWT_MAX_TOKEN_LEN	JOSE_MAX_TOKEN_LEN
/* Largest encoded header accepted, in bytes. */
#define JWT_MAX_HEADER_LEN	JOSE_MAX_HEADER_LEN

#endif							/* MEDPRO_JWT_H */
