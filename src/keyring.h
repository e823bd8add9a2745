/*
 * keyring.h
 *	  Private interface of keyring.c: the JWT keyring's algorithms, key pair
 *	  generation, PEM key import and JWK (RFC 7517) export.
 */
#ifndef MEDPRO_KEYRING_H
#define MEDPRO_KEYRING_H

#include "postgres.h"
#include "lib/stringinfo.h"

/* RSA modulus size of generated RS* and PS* keys, and the smallest accepted. */
#define KEYRING_RSA_BITS		2048
#define KEYRING_RSA_MIN_BITS	2048

typedef enum KeyringKind
{
	KEYRING_HMAC,				/* a random secret (HS*) */
	KEYRING_RSA,				/* RS*, PS*: an rsaEncryption key */
	KEYRING_EC,					/* ES*: a named prime curve */
	KEYRING_OKP					/* EdDSA: Ed25519 */
} KeyringKind;

/* One JOSE algorithm the keyring can hold keys for. */
typedef struct KeyringAlg
{
	const char *name;			/* JOSE "alg", e.g. "ES256" */
	KeyringKind kind;
	int			secret_len;		/* HMAC: bytes of a generated secret */
	const char *group;			/* EC: OpenSSL group name */
	const char *crv;			/* EC, OKP: JWK "crv" */
	int			coord_len;		/* EC: bytes of one coordinate; OKP: key bytes */
} KeyringAlg;

/* The algorithm called exactly name, or NULL. */
extern const KeyringAlg *keyring_alg(const char *name);

/* Same, but raises 22023 for an unknown or NULL name ("none" included). */
extern const KeyringAlg *keyring_alg_from_name(const char *name);

/*
 * A generated asymmetric key pair: the private key as PKCS#8 PEM (palloc'd;
 * the caller wipes it with crypto_wipe after sealing it) and the public key
 * as SubjectPublicKeyInfo PEM.
 */
typedef struct KeyringPair
{
	char	   *private_pem;
	size_t		private_len;
	char	   *public_pem;
} KeyringPair;

/* Generate a key pair for an asymmetric alg; raises on OpenSSL failure. */
extern void keyring_generate(const KeyringAlg *alg, KeyringPair *out);

/*
 * Check a PEM key given for alg (a public key, or a private key of which
 * only the public part is kept) and return its public key as
 * SubjectPublicKeyInfo PEM, palloc'd.  *had_private tells whether the input
 * was a private key.  Raises 22023 when the text is not one PEM key, is
 * encrypted, or does not fit alg (key type, curve, RSA size).
 */
extern char *keyring_import_pem(const KeyringAlg *alg, const char *text, size_t len,
								bool *had_private);

/*
 * Append the public JWK of public_pem (made by this file) to buf as a JSON
 * object: kty, kid, use "sig", alg and n/e (RSA), crv/x/y (EC) or crv/x
 * (OKP), base64url without padding.
 */
extern void keyring_append_jwk(StringInfo buf, const KeyringAlg *alg,
							   const char *kid, const char *public_pem);

#endif							/* MEDPRO_KEYRING_H */
