/*
 * jwt_pkey.c
 *	  Asymmetric JWS algorithms (RFC 7518 3.3-3.5, RFC 8037) over OpenSSL 3,
 *	  with PEM keys.
 *
 * This file owns:
 *	  - PEM key parsing (OSSL_DECODER; encrypted keys are refused, never
 *		prompted for) and the checks that a key fits its algorithm: RSA of
 *		2048..16384 bits for RS* and PS*, EC on the algorithm's curve for
 *		ES*, Ed25519 for EdDSA;
 *	  - RS* (PKCS#1 v1.5), PS* (PSS, MGF1 with the same hash, salt length
 *		equal to the hash length), ES* (raw R||S of exactly twice the
 *		curve's size, converted to and from OpenSSL's DER) and EdDSA;
 *	  - a bounded per-backend cache of parsed verification keys (public
 *		parts only), keyed by the SHA-256 of the key bytes, each with the
 *		OpenSSL verification contexts set up for the algorithms it served;
 *	  - a bounded per-backend cache of verified tokens keyed by (algorithm,
 *		key digest, token digest), holding the header, the payload and the
 *		parsed time claims, which jwt.c re-checks against the clock on every
 *		hit;
 *	  - jwt_token_cache_reset (declared in jwt.h), and the SQL functions
 *		medpro_jwt_cache_stats and medpro_jwt_cache_reset.
 *
 * No function that may be called with OpenSSL objects alive raises: they
 * free what they made and return a status, and the ereport happens after.
 * A private key prepared for signing is owned by a memory context callback
 * until it is used, so an error between preparation and signing frees it
 * too.  No message ever contains a key or a part of it.
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "jwt.h"
#include "jwt_pkey.h"

#define JWT_DIGEST_LEN		32	/* SHA-256 */
#define JWT_KEY_CACHE_SIZE	16
#define JWT_TOKEN_CACHE_SIZE 256	/* a power of two */

/* ----------------------------------------------------------------------
 * Algorithms
 * ----------------------------------------------------------------------
 */

typedef enum JwtScheme
{
	JWT_SCHEME_RSA_PKCS1,
	JWT_SCHEME_RSA_PSS,
	JWT_SCHEME_ECDSA,
	JWT_SCHEME_EDDSA
} JwtScheme;

/* What a parsed key is. */
typedef enum JwtKeyType
{
	JWT_KT_RSA,
	JWT_KT_EC,
	JWT_KT_ED25519,
	JWT_KT_OTHER
} JwtKeyType;

typedef struct JwtPkeyAlg
{
	JwtAlg		alg;
	const char *name;
	JwtScheme	scheme;
	const char *digest;			/* OpenSSL digest name; NULL for EdDSA */
	const char *group;			/* OpenSSL group name (ES*) */
	const char *curve;			/* curve name for messages (ES*) */
	size_t		coord_len;		/* bytes of R and of S (ES*) */
} JwtPkeyAlg;

/* Indexed by alg - JWT_RS256. */
static const JwtPkeyAlg jwt_pkey_algs[] = {
	{JWT_RS256, "RS256", JWT_SCHEME_RSA_PKCS1, "SHA256", NULL, NULL, 0},
	{JWT_RS384, "RS384", JWT_SCHEME_RSA_PKCS1, "SHA384", NULL, NULL, 0},
	{JWT_RS512, "RS512", JWT_SCHEME_RSA_PKCS1, "SHA512", NULL, NULL, 0},
	{JWT_PS256, "PS256", JWT_SCHEME_RSA_PSS, "SHA256", NULL, NULL, 0},
	{JWT_PS384, "PS384", JWT_SCHEME_RSA_PSS, "SHA384", NULL, NULL, 0},
	{JWT_PS512, "PS512", JWT_SCHEME_RSA_PSS, "SHA512", NULL, NULL, 0},
	{JWT_ES256, "ES256", JWT_SCHEME_ECDSA, "SHA256", "prime256v1", "P-256", 32},
	{JWT_ES384, "ES384", JWT_SCHEME_ECDSA, "SHA384", "secp384r1", "P-384", 48},
	{JWT_ES512, "ES512", JWT_SCHEME_ECDSA, "SHA512", "secp521r1", "P-521", 66},
	{JWT_EDDSA, "EdDSA", JWT_SCHEME_EDDSA, NULL, NULL, NULL, 0},
};

static const JwtPkeyAlg *
jwt_pkey_alg(JwtAlg alg)
{
	int			i = (int) alg - (int) JWT_RS256;

	if (i < 0 || i >= (int) lengthof(jwt_pkey_algs))
		elog(ERROR, "JWT algorithm %d is not asymmetric", (int) alg);
	Assert(jwt_pkey_algs[i].alg == alg);
	return &jwt_pkey_algs[i];
}

/* The kind of key alg needs, for messages: "RSA", "EC P-256", "Ed25519". */
static const char *
jwt_pkey_needs(const JwtPkeyAlg *pa)
{
	switch (pa->scheme)
	{
		case JWT_SCHEME_RSA_PKCS1:
		case JWT_SCHEME_RSA_PSS:
			return "RSA";
		case JWT_SCHEME_ECDSA:
			return pa->alg == JWT_ES256 ? "EC P-256" :
				pa->alg == JWT_ES384 ? "EC P-384" : "EC P-521";
		case JWT_SCHEME_EDDSA:
			return "Ed25519";
	}
	return "?";
}

/* ----------------------------------------------------------------------
 * Digests
 * ----------------------------------------------------------------------
 */

static EVP_MD *jwt_sha256 = NULL;

/* Digests of the algorithms, fetched once (index: alg - JWT_RS256). */
static EVP_MD *jwt_alg_md[lengthof(jwt_pkey_algs)];

/* The digest of pa, or NULL (EdDSA, or when it cannot be fetched). */
static EVP_MD *
jwt_md(const JwtPkeyAlg *pa, bool *ok)
{
	int			i = (int) pa->alg - (int) JWT_RS256;

	*ok = true;
	if (pa->digest == NULL)
		return NULL;
	if (jwt_alg_md[i] == NULL)
		jwt_alg_md[i] = EVP_MD_fetch(NULL, pa->digest, NULL);
	*ok = (jwt_alg_md[i] != NULL);
	return jwt_alg_md[i];
}

/* SHA-256 of data into out; never raises, false on failure. */
static bool
jwt_digest(const void *data, size_t len, uint8 *out)
{
	unsigned int outlen = 0;

	if (jwt_sha256 == NULL)
	{
		jwt_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (jwt_sha256 == NULL)
		{
			ERR_clear_error();
			return false;
		}
	}
	if (EVP_Digest(data, len, out, &outlen, jwt_sha256, NULL) != 1 ||
		outlen != JWT_DIGEST_LEN)
	{
		ERR_clear_error();
		return false;
	}
	return true;
}

static void
jwt_digest_or_raise(const void *data, size_t len, uint8 *out)
{
	if (!jwt_digest(data, len, out))
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("could not compute a SHA-256 digest")));
}

/* ----------------------------------------------------------------------
 * PEM parsing
 * ----------------------------------------------------------------------
 */

/* Why a key could not be used; see jwt_pkey_refuse. */
typedef enum JwtKeyProblem
{
	JWT_KP_NONE,
	JWT_KP_NOT_PEM,				/* no -----BEGIN line: a secret */
	JWT_KP_BAD_PEM,				/* PEM armour broken, or more than one block */
	JWT_KP_LABEL,				/* not a key label (a certificate, ...) */
	JWT_KP_ENCRYPTED,			/* passphrase-protected */
	JWT_KP_DECODE,				/* OpenSSL could not decode it */
	JWT_KP_PUBLIC_FOR_SIGN,		/* a public key offered to sign */
	JWT_KP_INTERNAL				/* OpenSSL failed otherwise */
} JwtKeyProblem;

static inline bool
jwt_is_blank(uint8 c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* jwt_key_is_pem: see jwt_pkey.h. */
bool
jwt_key_is_pem(const uint8 *key, size_t keylen)
{
	static const char begin[] = "-----BEGIN";
	size_t		i = 0;

	while (i < keylen && jwt_is_blank(key[i]))
		i++;
	return keylen - i >= sizeof(begin) - 1 &&
		memcmp(key + i, begin, sizeof(begin) - 1) == 0;
}

/*
 * Check the PEM armour of key: one block "-----BEGIN L-----" ...
 * "-----END L-----" with blanks only around it and printable ASCII inside;
 * L must be a key label.  Sets *is_private.
 */
static JwtKeyProblem
jwt_pem_check(const uint8 *key, size_t keylen, bool *is_private)
{
	static const char *const private_labels[] = {
		"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"
	};
	static const char *const public_labels[] = {
		"PUBLIC KEY", "RSA PUBLIC KEY"
	};
	const char *s = (const char *) key;
	const char *end = s + keylen;
	const char *label;
	size_t		label_len;
	const char *p;
	char		endline[64];
	int			endlen;
	size_t		i;

	if (!jwt_key_is_pem(key, keylen))
		return JWT_KP_NOT_PEM;
	for (p = s; p < end; p++)
	{
		uint8		c = (uint8) *p;

		if (!(jwt_is_blank(c) || (c >= 0x20 && c < 0x7f)))
			return JWT_KP_BAD_PEM;
	}
	while (jwt_is_blank((uint8) *s))
		s++;
	label = s + strlen("-----BEGIN ");
	if (label > end || label[-1] != ' ')
		return JWT_KP_BAD_PEM;
	for (p = label; p + 5 <= end && memcmp(p, "-----", 5) != 0; p++)
	{
		if (*p == '\n' || *p == '\r')
			return JWT_KP_BAD_PEM;
	}
	if (p + 5 > end)
		return JWT_KP_BAD_PEM;
	label_len = p - label;
	if (label_len == 0 || label_len > 40)
		return JWT_KP_BAD_PEM;

	/* the END line must match, and only blanks may follow it */
	endlen = snprintf(endline, sizeof(endline), "-----END %.*s-----",
					  (int) label_len, label);
	for (p = label; p + endlen <= end; p++)
	{
		if (memcmp(p, endline, endlen) == 0)
			break;
	}
	if (p + endlen > end)
		return JWT_KP_BAD_PEM;
	for (p += endlen; p < end; p++)
	{
		if (!jwt_is_blank((uint8) *p))
			return JWT_KP_BAD_PEM;
	}

	if (label_len == strlen("ENCRYPTED PRIVATE KEY") &&
		memcmp(label, "ENCRYPTED PRIVATE KEY", label_len) == 0)
		return JWT_KP_ENCRYPTED;
	for (i = 0; i < lengthof(private_labels); i++)
	{
		if (label_len == strlen(private_labels[i]) &&
			memcmp(label, private_labels[i], label_len) == 0)
		{
			/*
			 * Traditional encrypted PEM has a "Proc-Type: 4,ENCRYPTED"
			 * header (':' is not base64, so the body cannot match).
			 */
			for (p = label; p + 10 <= end; p++)
			{
				if (memcmp(p, "Proc-Type:", 10) == 0)
					return JWT_KP_ENCRYPTED;
			}
			*is_private = true;
			return JWT_KP_NONE;
		}
	}
	for (i = 0; i < lengthof(public_labels); i++)
	{
		if (label_len == strlen(public_labels[i]) &&
			memcmp(label, public_labels[i], label_len) == 0)
		{
			*is_private = false;
			return JWT_KP_NONE;
		}
	}
	return JWT_KP_LABEL;
}

/* Passphrase callback that supplies none: encrypted keys fail to decode. */
static int
jwt_no_passphrase(char *pass, size_t pass_size, size_t *pass_len,
				  const OSSL_PARAM params[], void *arg)
{
	return 0;
}

/*
 * Decode the PEM key into *out.  With public_only, a private key is reduced
 * to its public part (the private one freed at once).  Never raises; on
 * failure everything is freed and *errtext holds OpenSSL's reason (palloc'd)
 * or NULL.
 */
static JwtKeyProblem
jwt_pem_decode(const uint8 *key, size_t keylen, bool want_private,
			   bool public_only, EVP_PKEY **out, char **errtext)
{
	bool		is_private = false;
	JwtKeyProblem kp;
	OSSL_DECODER_CTX *dctx;
	EVP_PKEY   *pkey = NULL;
	const unsigned char *data = key;
	size_t		datalen = keylen;

	*out = NULL;
	*errtext = NULL;
	kp = jwt_pem_check(key, keylen, &is_private);
	if (kp != JWT_KP_NONE)
		return kp;
	if (want_private && !is_private)
		return JWT_KP_PUBLIC_FOR_SIGN;
	/* OpenSSL's PEM reader wants the BEGIN line first */
	while (datalen > 0 && jwt_is_blank(*data))
	{
		data++;
		datalen--;
	}

	ERR_clear_error();
	dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
										 is_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
										 NULL, NULL);
	if (dctx == NULL ||
		OSSL_DECODER_CTX_set_passphrase_cb(dctx, jwt_no_passphrase, NULL) != 1)
	{
		OSSL_DECODER_CTX_free(dctx);
		ERR_clear_error();
		return JWT_KP_INTERNAL;
	}
	if (OSSL_DECODER_from_data(dctx, &data, &datalen) != 1 || pkey == NULL)
	{
		unsigned long e = ERR_peek_last_error();
		char		buf[256];

		buf[0] = '\0';
		if (e != 0)
			ERR_error_string_n(e, buf, sizeof(buf));
		OSSL_DECODER_CTX_free(dctx);
		EVP_PKEY_free(pkey);
		ERR_clear_error();
		/* only now that nothing of OpenSSL's is held may palloc raise */
		if (buf[0] != '\0')
			*errtext = pstrdup(buf);
		return JWT_KP_DECODE;
	}
	OSSL_DECODER_CTX_free(dctx);

	if (is_private && public_only)
	{
		unsigned char *der = NULL;
		const unsigned char *q;
		int			derlen = i2d_PUBKEY(pkey, &der);
		EVP_PKEY   *pub = NULL;

		EVP_PKEY_free(pkey);
		if (derlen > 0)
		{
			q = der;
			pub = d2i_PUBKEY(NULL, &q, derlen);
		}
		OPENSSL_free(der);
		if (pub == NULL)
		{
			ERR_clear_error();
			return JWT_KP_INTERNAL;
		}
		pkey = pub;
	}
	*out = pkey;
	return JWT_KP_NONE;
}

/* Classify a parsed key. */
static JwtKeyType
jwt_pkey_type(EVP_PKEY *pkey, int *bits, char *group, size_t grouplen)
{
	size_t		gl = 0;

	*bits = EVP_PKEY_get_bits(pkey);
	group[0] = '\0';
	if (EVP_PKEY_is_a(pkey, "RSA"))
		return JWT_KT_RSA;
	if (EVP_PKEY_is_a(pkey, "EC"))
	{
		if (EVP_PKEY_get_group_name(pkey, group, grouplen, &gl) != 1)
		{
			ERR_clear_error();
			group[0] = '\0';
		}
		return JWT_KT_EC;
	}
	if (EVP_PKEY_is_a(pkey, "ED25519"))
		return JWT_KT_ED25519;
	return JWT_KT_OTHER;
}

/* What a parsed key is, as a phrase for messages ("an RSA key"). */
static const char *
jwt_key_type_name(EVP_PKEY *pkey, JwtKeyType kt, const char *group)
{
	switch (kt)
	{
		case JWT_KT_RSA:
			return "an RSA key";
		case JWT_KT_EC:
			if (strcmp(group, "prime256v1") == 0)
				return "an EC key on P-256";
			if (strcmp(group, "secp384r1") == 0)
				return "an EC key on P-384";
			if (strcmp(group, "secp521r1") == 0)
				return "an EC key on P-521";
			return "an EC key on another curve";
		case JWT_KT_ED25519:
			return "an Ed25519 key";
		case JWT_KT_OTHER:
			if (EVP_PKEY_is_a(pkey, "ED448"))
				return "an Ed448 key";
			if (EVP_PKEY_is_a(pkey, "X25519"))
				return "an X25519 key";
			if (EVP_PKEY_is_a(pkey, "X448"))
				return "an X448 key";
			if (EVP_PKEY_is_a(pkey, "RSA-PSS"))
				return "an RSA-PSS key";
			if (EVP_PKEY_is_a(pkey, "DSA"))
				return "a DSA key";
			break;
	}
	return "a key of an unsupported type";
}

/* Is a key of type kt (on curve group, for EC) the kind pa needs? */
static bool
jwt_key_fits(const JwtPkeyAlg *pa, JwtKeyType kt, const char *group)
{
	switch (pa->scheme)
	{
		case JWT_SCHEME_RSA_PKCS1:
		case JWT_SCHEME_RSA_PSS:
			return kt == JWT_KT_RSA;
		case JWT_SCHEME_ECDSA:
			return kt == JWT_KT_EC && strcmp(group, pa->group) == 0;
		case JWT_SCHEME_EDDSA:
			return kt == JWT_KT_ED25519;
	}
	return false;
}

/*
 * Raise 22023 for problem kp with a key offered for pa.  errtext is
 * OpenSSL's reason, if any (it never contains key material).
 */
static void jwt_pkey_refuse(const JwtPkeyAlg *pa, JwtKeyProblem kp,
							const char *errtext) pg_attribute_noreturn();

static void
jwt_pkey_refuse(const JwtPkeyAlg *pa, JwtKeyProblem kp, const char *errtext)
{
	switch (kp)
	{
		case JWT_KP_NOT_PEM:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key for %s must be a PEM %s key, not a shared secret",
							pa->name, jwt_pkey_needs(pa)),
					 errdetail("The key does not begin with a \"-----BEGIN\" line."),
					 errhint("Shared secrets are for HS256, HS384 and HS512 only.")));
			break;
		case JWT_KP_BAD_PEM:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key for %s is not well-formed PEM", pa->name),
					 errdetail("A key must be exactly one PEM block of printable ASCII, with a matching END line and nothing but blanks around it.")));
			break;
		case JWT_KP_LABEL:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key for %s is not a PEM public or private key", pa->name),
					 errdetail("The accepted PEM labels are PUBLIC KEY, RSA PUBLIC KEY, PRIVATE KEY, RSA PRIVATE KEY and EC PRIVATE KEY.")));
			break;
		case JWT_KP_ENCRYPTED:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key for %s is an encrypted private key", pa->name),
					 errdetail("Passphrase-protected keys are not accepted."),
					 errhint("Decrypt it first, for example with \"openssl pkey\".")));
			break;
		case JWT_KP_DECODE:
			if (errtext != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("key for %s could not be decoded", pa->name),
						 errdetail_internal("%s", errtext)));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key for %s could not be decoded", pa->name)));
			break;
		case JWT_KP_PUBLIC_FOR_SIGN:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("signing with %s needs a private key", pa->name),
					 errdetail("The key is a public key.")));
			break;
		case JWT_KP_INTERNAL:
		case JWT_KP_NONE:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("could not load the key for %s", pa->name)));
	pg_unreachable();
}

/*
 * Raise 22023 unless a key of type kt fits pa.  Called with no OpenSSL
 * object owned by the caller alone (the key is cached, or already freed).
 */
static void
jwt_check_fit(const JwtPkeyAlg *pa, JwtKeyType kt, int bits,
			  const char *type_name, const char *group)
{
	if (!jwt_key_fits(pa, kt, group))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key for %s must be an %s key", pa->name,
						jwt_pkey_needs(pa)),
				 errdetail("The key is %s.", type_name)));
	if (kt == JWT_KT_RSA && bits < JWT_RSA_MIN_BITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("RSA key too short for %s", pa->name),
				 errdetail("The key has %d bits; at least %d are required.",
						   bits, JWT_RSA_MIN_BITS)));
	if (kt == JWT_KT_RSA && bits > JWT_RSA_MAX_BITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("RSA key too long for %s", pa->name),
				 errdetail("The key has %d bits; at most %d are accepted.",
						   bits, JWT_RSA_MAX_BITS)));
}

/* Signature length of pa with a key of the given size. */
static size_t
jwt_sig_len(const JwtPkeyAlg *pa, int bits)
{
	switch (pa->scheme)
	{
		case JWT_SCHEME_RSA_PKCS1:
		case JWT_SCHEME_RSA_PSS:
			return (size_t) (bits + 7) / 8;
		case JWT_SCHEME_ECDSA:
			return 2 * pa->coord_len;
		case JWT_SCHEME_EDDSA:
			return 64;
	}
	return 0;
}

/* ----------------------------------------------------------------------
 * Verification key cache
 * ----------------------------------------------------------------------
 */

typedef struct JwtKeyEntry
{
	bool		used;
	uint8		digest[JWT_DIGEST_LEN];
	EVP_PKEY   *pkey;			/* public part only */
	JwtKeyType	type;
	int			bits;
	char		group[32];
	const char *type_name;		/* static */
	uint64		last_use;
	/* verification contexts set up once per algorithm used with the key */
	EVP_PKEY_CTX *vctx[lengthof(jwt_pkey_algs)];	/* RS*, PS*, ES* */
	EVP_MD_CTX *edctx;			/* EdDSA */
} JwtKeyEntry;

static JwtKeyEntry jwt_keys[JWT_KEY_CACHE_SIZE];
static uint64 jwt_key_clock = 0;

/*
 * The key prepared last, so that jwt_pkey_verify (and the token cache) can
 * find it without hashing the key again.  Valid only for the same key
 * pointer and length; cleared when its entry is evicted.
 */
static struct
{
	const uint8 *key;
	size_t		keylen;
	JwtKeyEntry *entry;
	uint8		digest[JWT_DIGEST_LEN];
	bool		has_digest;
} jwt_memo;

static void
jwt_key_entry_clear(JwtKeyEntry *e)
{
	int			i;

	if (jwt_memo.entry == e)
		jwt_memo.entry = NULL;
	for (i = 0; i < (int) lengthof(e->vctx); i++)
		EVP_PKEY_CTX_free(e->vctx[i]);
	EVP_MD_CTX_free(e->edctx);
	EVP_PKEY_free(e->pkey);
	memset(e, 0, sizeof(*e));
}

static JwtKeyEntry *
jwt_key_cache_find(const uint8 *digest)
{
	int			i;

	for (i = 0; i < JWT_KEY_CACHE_SIZE; i++)
	{
		if (jwt_keys[i].used &&
			memcmp(jwt_keys[i].digest, digest, JWT_DIGEST_LEN) == 0)
		{
			jwt_keys[i].last_use = ++jwt_key_clock;
			return &jwt_keys[i];
		}
	}
	return NULL;
}

/* Take ownership of pkey into a cache slot, evicting the least recent. */
static JwtKeyEntry *
jwt_key_cache_add(const uint8 *digest, EVP_PKEY *pkey)
{
	JwtKeyEntry *victim = &jwt_keys[0];
	int			i;

	for (i = 0; i < JWT_KEY_CACHE_SIZE; i++)
	{
		if (!jwt_keys[i].used)
		{
			victim = &jwt_keys[i];
			break;
		}
		if (jwt_keys[i].last_use < victim->last_use)
			victim = &jwt_keys[i];
	}
	if (victim->used)
		jwt_key_entry_clear(victim);

	victim->used = true;
	memcpy(victim->digest, digest, JWT_DIGEST_LEN);
	victim->pkey = pkey;
	victim->type = jwt_pkey_type(pkey, &victim->bits, victim->group,
								 sizeof(victim->group));
	victim->type_name = jwt_key_type_name(pkey, victim->type, victim->group);
	victim->last_use = ++jwt_key_clock;
	return victim;
}

/* Set the memo for key (digest known), pointing at entry (may be NULL). */
static void
jwt_memo_set(const uint8 *key, size_t keylen, const uint8 *digest,
			 JwtKeyEntry *entry)
{
	jwt_memo.key = key;
	jwt_memo.keylen = keylen;
	jwt_memo.entry = entry;
	memcpy(jwt_memo.digest, digest, JWT_DIGEST_LEN);
	jwt_memo.has_digest = true;
}

/* The digest of key: from the memo when it is the prepared key.  No raise. */
static bool
jwt_key_digest(const uint8 *key, size_t keylen, uint8 *digest)
{
	if (jwt_memo.has_digest && jwt_memo.key == key && jwt_memo.keylen == keylen)
	{
		memcpy(digest, jwt_memo.digest, JWT_DIGEST_LEN);
		return true;
	}
	return jwt_digest(key, keylen, digest);
}

/* ----------------------------------------------------------------------
 * Signing key (held between jwt_pkey_prepare and jwt_pkey_sign)
 * ----------------------------------------------------------------------
 */

typedef struct JwtSignKey
{
	MemoryContextCallback cb;
	EVP_PKEY   *pkey;
	const uint8 *key;
	size_t		keylen;
} JwtSignKey;

static JwtSignKey *jwt_signing = NULL;

static void
jwt_sign_key_free(void *arg)
{
	JwtSignKey *sk = (JwtSignKey *) arg;

	EVP_PKEY_free(sk->pkey);	/* OpenSSL wipes the private parts */
	sk->pkey = NULL;
	if (jwt_signing == sk)
		jwt_signing = NULL;
}

/* ----------------------------------------------------------------------
 * Preparation (raises for unfit keys)
 * ----------------------------------------------------------------------
 */

size_t
jwt_pkey_prepare(JwtAlg alg, const uint8 *key, size_t keylen, bool for_sign)
{
	const JwtPkeyAlg *pa = jwt_pkey_alg(alg);
	EVP_PKEY   *pkey = NULL;
	char	   *errtext = NULL;
	JwtKeyProblem kp;
	uint8		digest[JWT_DIGEST_LEN];
	JwtKeyEntry *e;

	if (keylen > JWT_MAX_PEM_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key for %s is too large", pa->name),
				 errdetail("A PEM key may have at most %d bytes.", JWT_MAX_PEM_LEN)));

	if (for_sign)
	{
		JwtKeyType	kt;
		int			bits;
		char		group[32];
		const char *tname;
		JwtSignKey *sk;

		/* a key prepared earlier but never used (an error came between) */
		if (jwt_signing != NULL)
			jwt_sign_key_free(jwt_signing);

		/*
		 * The holder is made first, so that nothing can raise while the
		 * private key is owned by no one; from the moment it is decoded the
		 * memory context owns it, errors included.
		 */
		sk = MemoryContextAllocZero(CurrentMemoryContext, sizeof(JwtSignKey));
		sk->key = key;
		sk->keylen = keylen;
		sk->cb.func = jwt_sign_key_free;
		sk->cb.arg = sk;
		MemoryContextRegisterResetCallback(CurrentMemoryContext, &sk->cb);

		kp = jwt_pem_decode(key, keylen, true, false, &pkey, &errtext);
		sk->pkey = pkey;
		jwt_signing = sk;
		if (kp != JWT_KP_NONE)
			jwt_pkey_refuse(pa, kp, errtext);
		kt = jwt_pkey_type(pkey, &bits, group, sizeof(group));
		tname = jwt_key_type_name(pkey, kt, group);
		if (!jwt_key_fits(pa, kt, group) ||
			(kt == JWT_KT_RSA && (bits < JWT_RSA_MIN_BITS || bits > JWT_RSA_MAX_BITS)))
		{
			jwt_sign_key_free(sk);
			jwt_check_fit(pa, kt, bits, tname, group);
		}
		return jwt_sig_len(pa, bits);
	}

	if (!jwt_key_is_pem(key, keylen))
		jwt_pkey_refuse(pa, JWT_KP_NOT_PEM, NULL);
	jwt_digest_or_raise(key, keylen, digest);
	e = jwt_key_cache_find(digest);
	if (e == NULL)
	{
		kp = jwt_pem_decode(key, keylen, false, true, &pkey, &errtext);
		if (kp != JWT_KP_NONE)
			jwt_pkey_refuse(pa, kp, errtext);
		/* cached even when unfit: the same key then fails fast */
		e = jwt_key_cache_add(digest, pkey);
	}
	jwt_memo_set(key, keylen, digest, e);
	jwt_check_fit(pa, e->type, e->bits, e->type_name, e->group);
	return jwt_sig_len(pa, e->bits);
}

/* ----------------------------------------------------------------------
 * Signing and verifying (never raise)
 * ----------------------------------------------------------------------
 */

/* Set PSS parameters on a signing or verifying context. */
static bool
jwt_set_pss(EVP_PKEY_CTX *pctx, const char *digest)
{
	return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
		EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, digest, NULL) > 0;
}

bool
jwt_pkey_sign(JwtAlg alg, const uint8 *key, size_t keylen,
			  const char *data, size_t len,
			  uint8 *sig, size_t sigmax, size_t *siglen)
{
	const JwtPkeyAlg *pa = jwt_pkey_alg(alg);
	EVP_PKEY   *pkey;
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	size_t		derlen = 0;
	ECDSA_SIG  *es = NULL;
	EVP_MD	   *md;
	bool		md_ok;
	bool		ok = false;

	*siglen = 0;
	if (jwt_signing == NULL || jwt_signing->pkey == NULL ||
		jwt_signing->key != key || jwt_signing->keylen != keylen)
		return false;
	pkey = jwt_signing->pkey;

	md = jwt_md(pa, &md_ok);
	mctx = EVP_MD_CTX_new();
	if (!md_ok || mctx == NULL ||
		EVP_DigestSignInit(mctx, &pctx, md, NULL, pkey) != 1)
		goto done;
	if (pa->scheme == JWT_SCHEME_RSA_PSS && !jwt_set_pss(pctx, pa->digest))
		goto done;

	if (pa->scheme == JWT_SCHEME_ECDSA)
	{
		const BIGNUM *r;
		const BIGNUM *s;
		const unsigned char *q;

		if (2 * pa->coord_len > sigmax ||
			EVP_DigestSign(mctx, NULL, &derlen, (const unsigned char *) data, len) != 1)
			goto done;
		der = OPENSSL_malloc(derlen);
		if (der == NULL ||
			EVP_DigestSign(mctx, der, &derlen, (const unsigned char *) data, len) != 1)
			goto done;
		q = der;
		es = d2i_ECDSA_SIG(NULL, &q, (long) derlen);
		if (es == NULL)
			goto done;
		ECDSA_SIG_get0(es, &r, &s);
		if (BN_bn2binpad(r, sig, (int) pa->coord_len) != (int) pa->coord_len ||
			BN_bn2binpad(s, sig + pa->coord_len, (int) pa->coord_len) != (int) pa->coord_len)
			goto done;
		*siglen = 2 * pa->coord_len;
		ok = true;
	}
	else
	{
		size_t		outlen = sigmax;

		if (EVP_DigestSign(mctx, NULL, &outlen, (const unsigned char *) data, len) != 1 ||
			outlen > sigmax)
			goto done;
		if (EVP_DigestSign(mctx, sig, &outlen, (const unsigned char *) data, len) != 1)
			goto done;
		*siglen = outlen;
		ok = true;
	}

done:
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(mctx);
	/* the private key is used once */
	jwt_sign_key_free(jwt_signing);
	if (!ok)
		ERR_clear_error();
	return ok;
}

/*
 * The verification context of entry e for pa, set up on first use and kept
 * with the key (OpenSSL 3 spends more on setting one up than RS256 takes to
 * verify).  NULL when OpenSSL fails.
 */
static EVP_PKEY_CTX *
jwt_verify_ctx(JwtKeyEntry *e, const JwtPkeyAlg *pa, EVP_MD *md)
{
	int			i = (int) pa->alg - (int) JWT_RS256;
	EVP_PKEY_CTX *pctx = e->vctx[i];

	if (pctx != NULL)
		return pctx;
	pctx = EVP_PKEY_CTX_new_from_pkey(NULL, e->pkey, NULL);
	if (pctx == NULL ||
		EVP_PKEY_verify_init(pctx) != 1 ||
		(pa->scheme == JWT_SCHEME_RSA_PKCS1 &&
		 EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) ||
		(pa->scheme == JWT_SCHEME_RSA_PSS && !jwt_set_pss(pctx, pa->digest)) ||
		EVP_PKEY_CTX_set_signature_md(pctx, md) <= 0)
	{
		EVP_PKEY_CTX_free(pctx);
		return NULL;
	}
	e->vctx[i] = pctx;
	return pctx;
}

bool
jwt_pkey_verify(JwtAlg alg, const uint8 *key, size_t keylen,
				const char *data, size_t len,
				const uint8 *sig, size_t siglen, bool *ok)
{
	const JwtPkeyAlg *pa = jwt_pkey_alg(alg);
	JwtKeyEntry *e = NULL;
	EVP_PKEY_CTX *pctx;
	unsigned char *der = NULL;
	int			derlen;
	ECDSA_SIG  *es = NULL;
	BIGNUM	   *r = NULL;
	BIGNUM	   *s = NULL;
	EVP_MD	   *md;
	bool		md_ok;
	uint8		hash[EVP_MAX_MD_SIZE];
	unsigned int hashlen = 0;
	bool		done = false;
	int			rc;

	*ok = false;
	if (jwt_memo.entry != NULL && jwt_memo.key == key && jwt_memo.keylen == keylen)
		e = jwt_memo.entry;
	else
	{
		uint8		digest[JWT_DIGEST_LEN];

		if (jwt_digest(key, keylen, digest))
			e = jwt_key_cache_find(digest);
	}
	/* jwt_pkey_prepare has checked the key and put it in the cache */
	if (e == NULL || !jwt_key_fits(pa, e->type, e->group))
		return false;

	if (siglen != jwt_sig_len(pa, e->bits))
		return true;			/* wrong length (a DER ECDSA signature...) */

	if (pa->scheme == JWT_SCHEME_EDDSA)
	{
		if (e->edctx == NULL)
		{
			e->edctx = EVP_MD_CTX_new();
			if (e->edctx == NULL ||
				EVP_DigestVerifyInit(e->edctx, NULL, NULL, NULL, e->pkey) != 1)
			{
				EVP_MD_CTX_free(e->edctx);
				e->edctx = NULL;
				goto out;
			}
		}
		/* one-shot Ed25519 verification leaves the context reusable */
		rc = EVP_DigestVerify(e->edctx, sig, siglen,
							  (const unsigned char *) data, len);
		*ok = (rc == 1);
		done = true;
		goto out;
	}

	md = jwt_md(pa, &md_ok);
	if (!md_ok ||
		EVP_Digest(data, len, hash, &hashlen, md, NULL) != 1 ||
		(pctx = jwt_verify_ctx(e, pa, md)) == NULL)
		goto out;

	if (pa->scheme == JWT_SCHEME_ECDSA)
	{
		es = ECDSA_SIG_new();
		r = BN_bin2bn(sig, (int) pa->coord_len, NULL);
		s = BN_bin2bn(sig + pa->coord_len, (int) pa->coord_len, NULL);
		if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
			goto out;
		r = s = NULL;			/* owned by es now */
		derlen = i2d_ECDSA_SIG(es, &der);
		if (derlen <= 0)
			goto out;
		rc = EVP_PKEY_verify(pctx, der, (size_t) derlen, hash, hashlen);
	}
	else
		rc = EVP_PKEY_verify(pctx, sig, siglen, hash, hashlen);
	*ok = (rc == 1);
	done = true;

out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	ERR_clear_error();
	return done;
}

/* ----------------------------------------------------------------------
 * Verified-token cache
 * ----------------------------------------------------------------------
 */

typedef struct JwtTokenEntry
{
	bool		used;
	JwtAlg		alg;
	uint8		key_digest[JWT_DIGEST_LEN];
	uint8		token_digest[JWT_DIGEST_LEN];
	JwtTimes	times;
	Jsonb	   *header;			/* in jwt_token_cxt */
	Jsonb	   *payload;		/* in jwt_token_cxt */
} JwtTokenEntry;

static JwtTokenEntry jwt_tokens[JWT_TOKEN_CACHE_SIZE];
static MemoryContext jwt_token_cxt = NULL;
static int64 jwt_token_hits = 0;

static void
jwt_token_entry_clear(JwtTokenEntry *t)
{
	if (t->header != NULL)
		pfree(t->header);
	if (t->payload != NULL)
		pfree(t->payload);
	memset(t, 0, sizeof(*t));
}

/* The slot of a (key, token) pair: direct-mapped. */
static JwtTokenEntry *
jwt_token_slot(const uint8 *kd, const uint8 *td)
{
	uint32		h;

	memcpy(&h, td, sizeof(h));
	h ^= (uint32) kd[0] | ((uint32) kd[1] << 8);
	return &jwt_tokens[h & (JWT_TOKEN_CACHE_SIZE - 1)];
}

/*
 * The digests of the last lookup, so that the put after a miss does not
 * hash the token again.  A lookup always hashes and records; only a put
 * (which jwt_verify makes after its lookup for the same token, in the same
 * call) reads the record, and clears it.
 */
static struct
{
	const char *token;
	size_t		len;
	uint8		kd[JWT_DIGEST_LEN];
	uint8		td[JWT_DIGEST_LEN];
} jwt_last_lookup;

static bool
jwt_token_digests(const uint8 *key, size_t keylen, const char *token,
				  size_t len, bool for_put, uint8 *kd, uint8 *td)
{
	if (len > JWT_MAX_TOKEN_LEN || !jwt_key_digest(key, keylen, kd))
		return false;
	if (for_put && jwt_last_lookup.token == token && jwt_last_lookup.len == len &&
		memcmp(jwt_last_lookup.kd, kd, JWT_DIGEST_LEN) == 0)
	{
		memcpy(td, jwt_last_lookup.td, JWT_DIGEST_LEN);
		jwt_last_lookup.token = NULL;
		return true;
	}
	jwt_last_lookup.token = NULL;
	if (!jwt_digest(token, len, td))
		return false;
	if (for_put)
		return true;
	jwt_last_lookup.token = token;
	jwt_last_lookup.len = len;
	memcpy(jwt_last_lookup.kd, kd, JWT_DIGEST_LEN);
	memcpy(jwt_last_lookup.td, td, JWT_DIGEST_LEN);
	return true;
}

bool
jwt_token_cache_get(JwtAlg alg, const uint8 *key, size_t keylen,
					const char *token, size_t len,
					JwtTimes *times, Jsonb **header, Jsonb **payload)
{
	uint8		kd[JWT_DIGEST_LEN];
	uint8		td[JWT_DIGEST_LEN];
	JwtTokenEntry *t;

	if (!jwt_token_digests(key, keylen, token, len, false, kd, td))
		return false;
	t = jwt_token_slot(kd, td);
	if (!t->used || t->alg != alg ||
		CRYPTO_memcmp(t->token_digest, td, JWT_DIGEST_LEN) != 0 ||
		CRYPTO_memcmp(t->key_digest, kd, JWT_DIGEST_LEN) != 0)
		return false;

	*times = t->times;
	*header = palloc(VARSIZE(t->header));
	memcpy(*header, t->header, VARSIZE(t->header));
	*payload = palloc(VARSIZE(t->payload));
	memcpy(*payload, t->payload, VARSIZE(t->payload));
	jwt_token_hits++;
	return true;
}

void
jwt_token_cache_put(JwtAlg alg, const uint8 *key, size_t keylen,
					const char *token, size_t len,
					const JwtTimes *times, const Jsonb *header,
					const Jsonb *payload)
{
	uint8		kd[JWT_DIGEST_LEN];
	uint8		td[JWT_DIGEST_LEN];
	JwtTokenEntry *t;
	Jsonb	   *h;
	Jsonb	   *p;

	if (!times->valid || header == NULL || payload == NULL ||
		!jwt_token_digests(key, keylen, token, len, true, kd, td))
		return;
	if (jwt_token_cxt == NULL)
		jwt_token_cxt = AllocSetContextCreate(TopMemoryContext,
											  "medpro JWT token cache",
											  ALLOCSET_DEFAULT_SIZES);
	/* the cache is optional: out of memory, the token is just not stored */
	h = MemoryContextAllocExtended(jwt_token_cxt, VARSIZE(header), MCXT_ALLOC_NO_OOM);
	p = MemoryContextAllocExtended(jwt_token_cxt, VARSIZE(payload), MCXT_ALLOC_NO_OOM);
	if (h == NULL || p == NULL)
	{
		if (h != NULL)
			pfree(h);
		if (p != NULL)
			pfree(p);
		return;
	}
	memcpy(h, header, VARSIZE(header));
	memcpy(p, payload, VARSIZE(payload));

	t = jwt_token_slot(kd, td);
	jwt_token_entry_clear(t);
	t->used = true;
	t->alg = alg;
	memcpy(t->key_digest, kd, JWT_DIGEST_LEN);
	memcpy(t->token_digest, td, JWT_DIGEST_LEN);
	t->times = *times;
	t->header = h;
	t->payload = p;
}

/*
 * jwt_token_cache_reset: see jwt.h.  Empties the verified-token cache and
 * the key cache (freeing every OpenSSL object).
 */
void
jwt_token_cache_reset(void)
{
	int			i;

	for (i = 0; i < JWT_TOKEN_CACHE_SIZE; i++)
		jwt_token_entry_clear(&jwt_tokens[i]);
	if (jwt_token_cxt != NULL)
		MemoryContextReset(jwt_token_cxt);
	for (i = 0; i < JWT_KEY_CACHE_SIZE; i++)
		jwt_key_entry_clear(&jwt_keys[i]);
	memset(&jwt_memo, 0, sizeof(jwt_memo));
	memset(&jwt_last_lookup, 0, sizeof(jwt_last_lookup));
	jwt_token_hits = 0;
}

void
jwt_pkey_cache_stats(int *keys, int *tokens, int64 *token_hits)
{
	int			i;

	*keys = 0;
	*tokens = 0;
	for (i = 0; i < JWT_KEY_CACHE_SIZE; i++)
		*keys += jwt_keys[i].used ? 1 : 0;
	for (i = 0; i < JWT_TOKEN_CACHE_SIZE; i++)
		*tokens += jwt_tokens[i].used ? 1 : 0;
	*token_hits = jwt_token_hits;
}

/* ----------------------------------------------------------------------
 * SQL functions
 * ----------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(medpro_jwt_cache_stats);
PG_FUNCTION_INFO_V1(medpro_jwt_cache_reset);

/*
 * medpro_jwt_cache_stats() RETURNS TABLE(keys int, tokens int,
 * token_hits bigint): this backend's asymmetric caches.
 */
Datum
medpro_jwt_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int			keys;
	int			tokens;
	int64		hits;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	jwt_pkey_cache_stats(&keys, &tokens, &hits);
	values[0] = Int32GetDatum(keys);
	values[1] = Int32GetDatum(tokens);
	values[2] = Int64GetDatum(hits);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}

/* medpro_jwt_cache_reset() RETURNS void: jwt_token_cache_reset(). */
Datum
medpro_jwt_cache_reset(PG_FUNCTION_ARGS)
{
	jwt_token_cache_reset();
	PG_RETURN_VOID();
}
