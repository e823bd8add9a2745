/*
 * crypto.h
 *	  Private interface of crypto.c: random bytes, the master key, sealing of
 *	  secrets (AES-256-GCM), Argon2id password hashing and constant-time
 *	  comparison.
 */
#ifndef MEDPRO_CRYPTO_H
#define MEDPRO_CRYPTO_H

#include "postgres.h"

/* Fill buf with len cryptographically strong random bytes, or ERROR. */
extern void crypto_random_bytes(uint8 *buf, size_t len);

/* Zero memory in a way the compiler cannot elide. */
extern void crypto_wipe(void *p, size_t len);

/* Constant-time equality of two buffers of the same length. */
extern bool crypto_ct_equal(const void *a, const void *b, size_t len);

/*
 * Seal plaintext under the master key with AES-256-GCM.  A fresh random
 * 96-bit nonce is used each time; "context" (e.g. "medpro.keys:<kid>") is
 * bound as additional authenticated data, so a sealed value copied to
 * another row does not unseal there.  Raises ERROR (55000) when the master
 * key is not configured or unreadable.
 *
 * Format of the result: 1 byte version (1) | 12 bytes nonce | 16 bytes tag |
 * ciphertext.
 */
extern bytea *crypto_seal(const uint8 *plain, size_t len, const char *context);

/*
 * Unseal a value made by crypto_seal with the same context.  Returns a
 * palloc'd buffer of *len bytes (plus a trailing NUL not counted in *len);
 * the caller wipes it with crypto_wipe when done.  Raises ERROR on a wrong
 * context, a tampered value or a missing master key.
 */
extern uint8 *crypto_unseal(const bytea *sealed, const char *context, size_t *len);

/*
 * Argon2id PHC string for password (m=19456 KiB, t=2, p=1, 16-byte salt,
 * 32-byte hash).  Result is palloc'd.
 */
extern char *crypto_password_hash(const char *password, size_t len);

/*
 * Verify password against a PHC string.  An unparsable hash gives false.
 * crypto_password_verify_dummy() does the same work against a fixed hash, so
 * that an unknown user costs the same time as a wrong password.
 */
extern bool crypto_password_verify(const char *phc, const char *password, size_t len);
extern void crypto_password_verify_dummy(const char *password, size_t len);

/* Forget the cached master key (called when the setting changes). */
extern void crypto_forget_master_key(void);

/* Bytes crypto_seal adds in front of the ciphertext: version, nonce, tag. */
#define CRYPTO_SEAL_OVERHEAD	(1 + 12 + 16)

/* Longest password accepted, in bytes. */
#define CRYPTO_PASSWORD_MAX_LEN	1024

/*
 * Check a password argument before hashing it: ERROR 22023 "password must
 * not be empty" or "password is too long" (over CRYPTO_PASSWORD_MAX_LEN
 * bytes).  crypto_password_hash calls it too; callers that hash or store a
 * password call it first so that the user gets the message early.
 */
extern void crypto_check_password_arg(const char *password, size_t len);

/*
 * Read and check the master key file as the first seal of a session would,
 * without caching the key or touching the cached one; raises the same
 * ERROR (55000) crypto_seal would, else returns.
 */
extern void crypto_check_master_key(void);

/* Bytes of an HMAC-SHA256 and of a derived key. */
#define CRYPTO_HMAC_LEN		32

/* HMAC-SHA256 of msg under key into out (CRYPTO_HMAC_LEN bytes), or ERROR. */
extern void crypto_hmac_sha256(const uint8 *key, size_t keylen, const uint8 *msg,
							   size_t len, uint8 *out);

/*
 * A 256-bit key for one purpose, derived from the master key:
 * HMAC-SHA256(master key, "medpro-kdf-v1" NUL label).  ERROR (55000) without
 * a usable master key.  The caller wipes out when done.
 */
extern void crypto_derive_key(const char *label, uint8 *out);

/*
 * AES-256-GCM under a caller's 256-bit key, in the sealed format (version |
 * nonce | tag | ciphertext) with aad as the additional authenticated data.
 * Decryption of a value that is malformed, altered or bound to other aad
 * raises XX001 "could not decrypt value"; the result (palloc'd, NUL added,
 * *len bytes) is wiped by the caller.
 */
extern bytea *crypto_aead_encrypt(const uint8 *key, const uint8 *plain, size_t len,
								  const uint8 *aad, size_t aadlen);
extern uint8 *crypto_aead_decrypt(const uint8 *key, const uint8 *data, size_t datalen,
								  const uint8 *aad, size_t aadlen, size_t *len);

#endif							/* MEDPRO_CRYPTO_H */
