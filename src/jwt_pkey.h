/*
 * jwt_pkey.h
 *	  Private interface of jwt_pkey.c: the asymmetric JWS algorithms
 *	  (RS*, PS*, ES*, EdDSA) with PEM keys, the per-backend cache of parsed
 *	  verification keys and the per-backend cache of verified tokens.
 *	  Used only by jwt.c; other modules go through jwt.h.
 */
#ifndef MEDPRO_JWT_PKEY_H
#define MEDPRO_JWT_PKEY_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "jwt.h"

/* RSA modulus sizes accepted, in bits. */
#define JWT_RSA_MIN_BITS	2048
#define JWT_RSA_MAX_BITS	16384
/* Largest signature of any algorithm, in bytes (RSA at JWT_RSA_MAX_BITS). */
#define JWT_MAX_SIG_LEN		(JWT_RSA_MAX_BITS / 8)
/* Largest PEM key accepted, in bytes; checked before the key is detoasted. */
#define JWT_MAX_PEM_LEN		65536

/*
 * The time claims of an authenticated token, as PostgreSQL-epoch
 * microseconds.  valid is set once exp (and nbf, iat when present) parsed.
 */
typedef struct JwtTimes
{
	bool		valid;
	int64		exp_us;
	bool		has_nbf;
	int64		nbf_us;
	bool		has_iat;
	int64		iat_us;
} JwtTimes;

/* Does key look like PEM text (a "-----BEGIN" line after blanks)? */
extern bool jwt_key_is_pem(const uint8 *key, size_t keylen);

/*
 * Check that key (PEM text) fits the asymmetric algorithm alg, and prepare
 * it: for signing (for_sign) a private key is required and is held until
 * jwt_pkey_sign uses it (or until the current memory context is reset, on
 * an error path); for verifying, a public or private key is accepted and
 * its public part is taken from (or put into) the key cache.  Raises 22023
 * for any unfit key, never printing it.  Returns the signature length.
 *
 * jwt_pkey_sign, jwt_pkey_verify and the token cache functions below find
 * the key prepared last by its pointer and length, so they must follow
 * jwt_pkey_prepare for the same key argument within the same call.
 */
extern size_t jwt_pkey_prepare(JwtAlg alg, const uint8 *key, size_t keylen,
							   bool for_sign);

/*
 * Sign data with the private key prepared for key/keylen; the raw JWS
 * signature goes into sig (sigmax bytes of room).  Never raises: returns
 * false when the crypto library fails.  The private key is freed (and
 * wiped by OpenSSL) before returning.
 */
extern bool jwt_pkey_sign(JwtAlg alg, const uint8 *key, size_t keylen,
						  const char *data, size_t len,
						  uint8 *sig, size_t sigmax, size_t *siglen);

/*
 * Check the raw JWS signature sig over data with the key prepared for
 * key/keylen.  Sets *ok (a signature of the wrong length or form, DER for
 * ES* included, is simply not ok).  Never raises: returns false only when
 * the crypto library fails.
 */
extern bool jwt_pkey_verify(JwtAlg alg, const uint8 *key, size_t keylen,
							const char *data, size_t len,
							const uint8 *sig, size_t siglen, bool *ok);

/*
 * Verified-token cache, keyed by (algorithm, SHA-256 of the key bytes,
 * SHA-256 of the token).  A hit copies the header and payload into the
 * current memory context and returns the stored time claims, which the
 * caller checks against the clock again.  put stores copies; only tokens
 * whose signature verified and whose claims parsed are to be stored.
 */
extern bool jwt_token_cache_get(JwtAlg alg, const uint8 *key, size_t keylen,
								const char *token, size_t len,
								JwtTimes *times, Jsonb **header,
								Jsonb **payload);
extern void jwt_token_cache_put(JwtAlg alg, const uint8 *key, size_t keylen,
								const char *token, size_t len,
								const JwtTimes *times, const Jsonb *header,
								const Jsonb *payload);

/* Cache statistics for tests: entries in use, hits since the last reset. */
extern void jwt_pkey_cache_stats(int *keys, int *tokens, int64 *token_hits);

#endif							/* MEDPRO_JWT_PKEY_H */
