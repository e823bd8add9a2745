/*
 * jwt.c
 *	  Compact JWS (RFC 7515) signing and strict verification of JWTs
 *	  (RFC 7519).
 *
 * This file owns:
 *	  - the table of JWS algorithms medpro knows (HS256/384/512 here; RS*,
 *		PS*, ES* and EdDSA dispatch to jwt_pkey.c) and the check that a key
 *		is of the kind its algorithm takes;
 *	  - strict unpadded base64url;
 *	  - the compact JSON serialisation of a jsonb value used when signing;
 *	  - the single-pass JSON-to-jsonb parser used when verifying, which also
 *		rejects duplicate members at any depth, deep nesting and numbers that
 *		jsonb cannot store, without ever raising an error for bad input;
 *	  - the exp / nbf / iat checks;
 *	  - the SQL functions medpro_jwt_sign, medpro_jwt_verify and
 *		medpro_jwt_decode (each with a bytea and a text key).
 *
 * Verification order: size limits, structure, base64url of all three
 * segments, header JSON, "alg" pinned to the caller's algorithm, MAC
 * (constant-time comparison) or signature, payload JSON, time claims.  An
 * unauthenticated payload is never parsed.  Asymmetric verifications first
 * look in jwt_pkey.c's verified-token cache; a hit still checks the time
 * claims against the clock.
 *
 * Nothing here ever puts a token, a key or a part of either into a message.
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "access/detoast.h"
#include "access/htup_details.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "jwt.h"
#include "jwt_pkey.h"
#include "medpro.h"

/* Deepest nesting of objects and arrays accepted in a header or payload. */
#define JWT_MAX_DEPTH			64

/* Time claims must lie in 1970-01-01 .. 9999-12-31T23:59:59Z. */
#define JWT_MAX_TIME_SECS		INT64CONST(253402300799)
#define JWT_MAX_TIME_USECS		(JWT_MAX_TIME_SECS * USECS_PER_SEC)

/* Microseconds between the Unix epoch and the PostgreSQL epoch. */
#define JWT_EPOCH_DIFF_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/*
 * Limits that keep numeric_in() from raising for a JSON number: the display
 * scale must fit numeric's 14-bit dscale field, and the decimal weight its
 * int16 base-10000 weight (with a margin).
 */
#define JWT_NUMBER_MAX_DSCALE	16383
#define JWT_NUMBER_MAX_DWEIGHT	131000

/* Length of the unpadded base64url encoding of n bytes. */
#define B64URL_LEN(n)			(((n) * 4 + 2) / 3)

/* ----------------------------------------------------------------------
 * Algorithm table
 * ----------------------------------------------------------------------
 */

/* What kind of key an algorithm takes. */
typedef enum JwtKeyKind
{
	JWT_KEY_SECRET,				/* shared secret bytes (HMAC) */
	JWT_KEY_PEM					/* PEM key text (jwt_pkey.c) */
} JwtKeyKind;

typedef struct JwtAlgDesc JwtAlgDesc;

/*
 * Compute the signature of data under key into sig (room for
 * JWT_MAX_SIG_LEN bytes), setting *siglen.  Must not raise: it returns
 * false when the crypto library fails, after freeing everything it made.
 */
typedef bool (*jwt_sign_fn) (const JwtAlgDesc *desc,
							 const uint8 *key, size_t keylen,
							 const char *data, size_t len,
							 uint8 *sig, size_t *siglen);

/*
 * Check sig against data under key.  Sets *ok, and returns false only when
 * the crypto library fails; must not raise.
 */
typedef bool (*jwt_check_fn) (const JwtAlgDesc *desc,
							  const uint8 *key, size_t keylen,
							  const char *data, size_t len,
							  const uint8 *sig, size_t siglen, bool *ok);

struct JwtAlgDesc
{
	JwtAlg		alg;
	const char *name;			/* "alg" header value (RFC 7518) */
	JwtKeyKind	keykind;
	const char *digest;			/* OpenSSL digest name */
	size_t		siglen;			/* signature length in bytes (0: the key's) */
	size_t		min_key_len;	/* shortest secret accepted (HS*), bytes */
	jwt_sign_fn sign;
	jwt_check_fn check;
};

static bool jwt_hmac_sign(const JwtAlgDesc *desc,
						  const uint8 *key, size_t keylen,
						  const char *data, size_t len,
						  uint8 *sig, size_t *siglen);
static bool jwt_hmac_check(const JwtAlgDesc *desc,
						   const uint8 *key, size_t keylen,
						   const char *data, size_t len,
						   const uint8 *sig, size_t siglen, bool *ok);

static bool jwt_asym_sign(const JwtAlgDesc *desc,
						  const uint8 *key, size_t keylen,
						  const char *data, size_t len,
						  uint8 *sig, size_t *siglen);
static bool jwt_asym_check(const JwtAlgDesc *desc,
						   const uint8 *key, size_t keylen,
						   const char *data, size_t len,
						   const uint8 *sig, size_t siglen, bool *ok);

/* Indexed by JwtAlg. */
static const JwtAlgDesc jwt_algs[] = {
	{JWT_HS256, "HS256", JWT_KEY_SECRET, "SHA256", 32, 32,
	jwt_hmac_sign, jwt_hmac_check},
	{JWT_HS384, "HS384", JWT_KEY_SECRET, "SHA384", 48, 48,
	jwt_hmac_sign, jwt_hmac_check},
	{JWT_HS512, "HS512", JWT_KEY_SECRET, "SHA512", 64, 64,
	jwt_hmac_sign, jwt_hmac_check},
	{JWT_RS256, "RS256", JWT_KEY_PEM, "SHA256", 0, 0, jwt_asym_sign, jwt_asym_check},
	{JWT_RS384, "RS384", JWT_KEY_PEM, "SHA384", 0, 0, jwt_asym_sign, jwt_asym_check},
	{JWT_RS512, "RS512", JWT_KEY_PEM, "SHA512", 0, 0, jwt_asym_sign, jwt_asym_check},
	{JWT_PS256, "PS256", JWT_KEY_PEM, "SHA256", 0, 0, jwt_asym_sign, jwt_asym_check},
	{JWT_PS384, "PS384", JWT_KEY_PEM, "SHA384", 0, 0, jwt_asym_sign, jwt_asym_check},
	{JWT_PS512, "PS512", JWT_KEY_PEM, "SHA512", 0, 0, jwt_asym_sign, jwt_asym_check},
	{JWT_ES256, "ES256", JWT_KEY_PEM, "SHA256", 64, 0, jwt_asym_sign, jwt_asym_check},
	{JWT_ES384, "ES384", JWT_KEY_PEM, "SHA384", 96, 0, jwt_asym_sign, jwt_asym_check},
	{JWT_ES512, "ES512", JWT_KEY_PEM, "SHA512", 132, 0, jwt_asym_sign, jwt_asym_check},
	{JWT_EDDSA, "EdDSA", JWT_KEY_PEM, NULL, 64, 0, jwt_asym_sign, jwt_asym_check},
};

/* The hint listing what jwt_alg_from_name accepts. */
#define JWT_ALG_HINT \
	"The supported algorithms are HS256, HS384, HS512, RS256, RS384, RS512, " \
	"PS256, PS384, PS512, ES256, ES384, ES512 and EdDSA."

#define JWT_NALGS	lengthof(jwt_algs)

static inline const JwtAlgDesc *
jwt_desc(JwtAlg alg)
{
	if ((int) alg < 0 || (size_t) alg >= JWT_NALGS)
		elog(ERROR, "invalid JWT algorithm %d", (int) alg);
	Assert(jwt_algs[alg].alg == alg);
	return &jwt_algs[alg];
}

/*
 * jwt_alg_lookup: find the algorithm called exactly "name" (case matters,
 * as in RFC 7518).  Returns false when there is none.
 */
bool
jwt_alg_lookup(const char *name, JwtAlg *alg)
{
	size_t		i;

	for (i = 0; i < JWT_NALGS; i++)
	{
		if (strcmp(jwt_algs[i].name, name) == 0)
		{
			*alg = jwt_algs[i].alg;
			return true;
		}
	}
	return false;
}

/*
 * Is name harmless to print: short and made of the characters algorithm
 * names use?  A caller who swapped two arguments may have passed a key or a
 * token as the algorithm; those must not end up in a message.
 */
static bool
jwt_alg_name_printable(const char *name)
{
	size_t		len = strlen(name);
	size_t		i;

	if (len == 0 || len > 16)
		return false;
	for (i = 0; i < len; i++)
	{
		char		c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

/*
 * jwt_alg_from_name: as jwt_alg_lookup, but raises 22023 for an unknown or
 * unsupported name, including "none".
 */
JwtAlg
jwt_alg_from_name(const char *name)
{
	JwtAlg		alg;

	if (jwt_alg_lookup(name, &alg))
		return alg;

	if (strcmp(name, "none") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported JWT algorithm \"%s\"", name),
				 errdetail("Unsecured JWTs are never accepted."),
				 errhint(JWT_ALG_HINT)));
	if (jwt_alg_name_printable(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported JWT algorithm \"%s\"", name),
				 errhint(JWT_ALG_HINT)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unsupported JWT algorithm"),
			 errhint(JWT_ALG_HINT)));
	pg_unreachable();
}

/* jwt_alg_name: the "alg" header value of alg. */
const char *
jwt_alg_name(JwtAlg alg)
{
	return jwt_desc(alg)->name;
}

/*
 * jwt_alg_min_key_len: shortest secret accepted for an HS* alg, in bytes;
 * 0 for the asymmetric algorithms (their PEM keys are checked when parsed).
 */
size_t
jwt_alg_min_key_len(JwtAlg alg)
{
	return jwt_desc(alg)->min_key_len;
}

/* jwt_alg_is_hmac: does alg take a shared secret? */
bool
jwt_alg_is_hmac(JwtAlg alg)
{
	return jwt_desc(alg)->keykind == JWT_KEY_SECRET;
}

/*
 * Raise 22023 unless a key of keylen bytes is acceptable for desc.
 */
static void
jwt_check_key_len(const JwtAlgDesc *desc, size_t keylen)
{
	if (keylen < desc->min_key_len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("HMAC key too short for %s", desc->name),
				 errdetail("The key has %zu bytes; RFC 7518 section 3.2 requires at least %zu.",
						   keylen, desc->min_key_len)));
}

/*
 * Raise 22023 unless key is of the kind desc takes, before any MAC or
 * signature is computed: a secret of the right length that is not PEM text
 * for HS*, a PEM key of the right type (a private key when for_sign) for
 * the others (jwt_pkey_prepare).  Returns the signature length.
 */
static size_t
jwt_check_key(const JwtAlgDesc *desc, const uint8 *key, size_t keylen,
			  bool for_sign)
{
	if (desc->keykind == JWT_KEY_PEM)
		return jwt_pkey_prepare(desc->alg, key, keylen, for_sign);
	if (jwt_key_is_pem(key, keylen))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key for %s must be a shared secret, not a PEM key", desc->name),
				 errdetail("PEM keys are for RS*, PS*, ES* and EdDSA; HMAC takes the secret bytes themselves."),
				 errhint("Pass the secret, or pin the algorithm of the key.")));
	jwt_check_key_len(desc, keylen);
	return desc->siglen;
}

/* Asymmetric signing and checking: see jwt_sign_fn, jwt_check_fn. */
static bool
jwt_asym_sign(const JwtAlgDesc *desc, const uint8 *key, size_t keylen,
			  const char *data, size_t len, uint8 *sig, size_t *siglen)
{
	return jwt_pkey_sign(desc->alg, key, keylen, data, len,
						 sig, JWT_MAX_SIG_LEN, siglen);
}

static bool
jwt_asym_check(const JwtAlgDesc *desc, const uint8 *key, size_t keylen,
			   const char *data, size_t len,
			   const uint8 *sig, size_t siglen, bool *ok)
{
	return jwt_pkey_verify(desc->alg, key, keylen, data, len, sig, siglen, ok);
}

/* ----------------------------------------------------------------------
 * HMAC (OpenSSL 3 EVP_MAC)
 * ----------------------------------------------------------------------
 */

/*
 * One HMAC context per algorithm with the digest already set and no key.
 * Each computation duplicates it (cheaper than fetching the digest again),
 * keys the copy, and frees the copy, so no key material outlives a call.
 */
static EVP_MAC *jwt_hmac_mac = NULL;
static EVP_MAC_CTX *jwt_hmac_templates[JWT_NALGS];

/*
 * Make sure the keyless template for desc exists.  May raise; holds no key.
 */
static void
jwt_hmac_prepare(const JwtAlgDesc *desc)
{
	EVP_MAC_CTX *ctx;
	OSSL_PARAM	params[2];

	if (jwt_hmac_templates[desc->alg] != NULL)
		return;

	if (jwt_hmac_mac == NULL)
	{
		jwt_hmac_mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
		if (jwt_hmac_mac == NULL)
		{
			ERR_clear_error();
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("could not load the HMAC implementation of OpenSSL")));
		}
	}

	ctx = EVP_MAC_CTX_new(jwt_hmac_mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
												 (char *) desc->digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx == NULL || EVP_MAC_CTX_set_params(ctx, params) != 1)
	{
		EVP_MAC_CTX_free(ctx);
		ERR_clear_error();
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("could not set up HMAC with %s", desc->digest)));
	}
	jwt_hmac_templates[desc->alg] = ctx;
}

/*
 * HMAC of data under key into sig; see jwt_sign_fn.  jwt_hmac_prepare must
 * have been called for desc.  Never raises.
 */
static bool
jwt_hmac_sign(const JwtAlgDesc *desc, const uint8 *key, size_t keylen,
			  const char *data, size_t len, uint8 *sig, size_t *siglen)
{
	EVP_MAC_CTX *ctx;
	size_t		outlen = 0;
	bool		ok;

	ctx = EVP_MAC_CTX_dup(jwt_hmac_templates[desc->alg]);
	ok = (ctx != NULL &&
		  EVP_MAC_init(ctx, key, keylen, NULL) == 1 &&
		  EVP_MAC_update(ctx, (const unsigned char *) data, len) == 1 &&
		  EVP_MAC_final(ctx, sig, &outlen, EVP_MAX_MD_SIZE) == 1 &&
		  outlen == desc->siglen);
	EVP_MAC_CTX_free(ctx);
	if (!ok)
		ERR_clear_error();
	*siglen = outlen;
	return ok;
}

/*
 * Compare the HMAC of data with sig in constant time; see jwt_check_fn.
 */
static bool
jwt_hmac_check(const JwtAlgDesc *desc, const uint8 *key, size_t keylen,
			   const char *data, size_t len,
			   const uint8 *sig, size_t siglen, bool *ok)
{
	uint8		mac[EVP_MAX_MD_SIZE];
	size_t		maclen;

	*ok = false;
	if (!jwt_hmac_sign(desc, key, keylen, data, len, mac, &maclen))
	{
		OPENSSL_cleanse(mac, sizeof(mac));
		return false;
	}
	*ok = (siglen == maclen && CRYPTO_memcmp(mac, sig, maclen) == 0);
	OPENSSL_cleanse(mac, sizeof(mac));
	return true;
}

static void jwt_crypto_failed(const JwtAlgDesc *desc) pg_attribute_noreturn();

static void
jwt_crypto_failed(const JwtAlgDesc *desc)
{
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("could not compute the %s signature", desc->name)));
}

/* ----------------------------------------------------------------------
 * Scratch memory
 * ----------------------------------------------------------------------
 */

/*
 * Intermediate data of one call (decoded segments, lexer state, the jsonb
 * tree before it is flattened) lives in a context of our own that is reset
 * at the start and end of every call, so that a query verifying many tokens
 * does not pile them up.  Results are always allocated in the caller's
 * context.
 */
static MemoryContext jwt_scratch_cxt = NULL;

static MemoryContext
jwt_scratch_begin(void)
{
	if (jwt_scratch_cxt == NULL)
		jwt_scratch_cxt = AllocSetContextCreate(TopMemoryContext,
												"medpro JWT scratch",
												ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(jwt_scratch_cxt);
	return MemoryContextSwitchTo(jwt_scratch_cxt);
}

static void
jwt_scratch_end(MemoryContext caller)
{
	MemoryContextSwitchTo(caller);
	MemoryContextReset(jwt_scratch_cxt);
}

/* ----------------------------------------------------------------------
 * base64url (RFC 4648 section 5, no padding)
 * ----------------------------------------------------------------------
 */

static const char b64url_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of each byte in the base64url alphabet, or -1. */
static const int8 b64url_values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static inline int
b64url_value(unsigned char c)
{
	return b64url_values[c];
}

/* Append the unpadded base64url encoding of src[0..len) to buf. */
static void
b64url_encode(StringInfo buf, const uint8 *src, size_t len)
{
	char	   *dst;
	size_t		i;

	enlargeStringInfo(buf, B64URL_LEN(len) + 1);
	dst = buf->data + buf->len;
	for (i = 0; i + 3 <= len; i += 3)
	{
		uint32		v = ((uint32) src[i] << 16) | ((uint32) src[i + 1] << 8) | src[i + 2];

		*dst++ = b64url_alphabet[(v >> 18) & 63];
		*dst++ = b64url_alphabet[(v >> 12) & 63];
		*dst++ = b64url_alphabet[(v >> 6) & 63];
		*dst++ = b64url_alphabet[v & 63];
	}
	if (len - i == 1)
	{
		uint32		v = (uint32) src[i] << 16;

		*dst++ = b64url_alphabet[(v >> 18) & 63];
		*dst++ = b64url_alphabet[(v >> 12) & 63];
	}
	else if (len - i == 2)
	{
		uint32		v = ((uint32) src[i] << 16) | ((uint32) src[i + 1] << 8);

		*dst++ = b64url_alphabet[(v >> 18) & 63];
		*dst++ = b64url_alphabet[(v >> 12) & 63];
		*dst++ = b64url_alphabet[(v >> 6) & 63];
	}
	buf->len = dst - buf->data;
	*dst = '\0';
}

/*
 * Strictly decode src[0..len) into dst (room for len * 3 / 4 + 1 bytes);
 * the result is NUL-terminated, *dstlen does not count the NUL.  Rejects
 * characters outside the base64url alphabet (so also '=' and whitespace),
 * a length of 1 mod 4, and non-zero unused bits in the last character, so
 * that every byte string has exactly one accepted encoding.
 */
static bool
b64url_decode(const char *src, size_t len, uint8 *dst, size_t *dstlen)
{
	uint8	   *out = dst;
	size_t		i;
	size_t		rem = len % 4;

	if (rem == 1)
		return false;
	for (i = 0; i + 4 <= len; i += 4)
	{
		int			a = b64url_value((unsigned char) src[i]);
		int			b = b64url_value((unsigned char) src[i + 1]);
		int			c = b64url_value((unsigned char) src[i + 2]);
		int			d = b64url_value((unsigned char) src[i + 3]);
		uint32		v;

		if ((a | b | c | d) < 0)
			return false;
		v = ((uint32) a << 18) | ((uint32) b << 12) | ((uint32) c << 6) | (uint32) d;
		*out++ = (v >> 16) & 0xFF;
		*out++ = (v >> 8) & 0xFF;
		*out++ = v & 0xFF;
	}
	if (rem == 2)
	{
		int			a = b64url_value((unsigned char) src[i]);
		int			b = b64url_value((unsigned char) src[i + 1]);

		if ((a | b) < 0 || (b & 0x0F) != 0)
			return false;
		*out++ = (uint8) ((a << 2) | (b >> 4));
	}
	else if (rem == 3)
	{
		int			a = b64url_value((unsigned char) src[i]);
		int			b = b64url_value((unsigned char) src[i + 1]);
		int			c = b64url_value((unsigned char) src[i + 2]);

		if ((a | b | c) < 0 || (c & 0x03) != 0)
			return false;
		*out++ = (uint8) ((a << 2) | (b >> 4));
		*out++ = (uint8) (((b & 0x0F) << 4) | (c >> 2));
	}
	*out = '\0';
	*dstlen = out - dst;
	return true;
}

/* ----------------------------------------------------------------------
 * Compact JSON serialisation (signing)
 * ----------------------------------------------------------------------
 */

/*
 * Append str[0..len) as a JSON string, escaped exactly as PostgreSQL's
 * escape_json() does (so that tokens match those of pgjwt and of jsonb's
 * own output): \b \f \n \r \t \" \\ by name, other control characters as
 * \u00XX (lower-case hex), everything else as is.
 */
static void
jwt_escape_json(StringInfo buf, const char *str, int len)
{
	const char *p = str;
	const char *end = str + len;
	const char *run = str;

	appendStringInfoChar(buf, '"');
	for (; p < end; p++)
	{
		unsigned char c = (unsigned char) *p;
		const char *esc;

		if (c >= ' ' && c != '"' && c != '\\')
			continue;
		if (p > run)
			appendBinaryStringInfo(buf, run, p - run);
		run = p + 1;
		switch (c)
		{
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			case '"':
				esc = "\\\"";
				break;
			case '\\':
				esc = "\\\\";
				break;
			default:
				appendStringInfo(buf, "\\u%04x", (int) c);
				continue;
		}
		appendStringInfoString(buf, esc);
	}
	if (p > run)
		appendBinaryStringInfo(buf, run, p - run);
	appendStringInfoChar(buf, '"');
}

static void
jwt_put_scalar(StringInfo buf, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendStringInfoString(buf, "null");
			break;
		case jbvBool:
			appendStringInfoString(buf, v->val.boolean ? "true" : "false");
			break;
		case jbvString:
			jwt_escape_json(buf, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			appendStringInfoString(buf,
								   DatumGetCString(DirectFunctionCall1(numeric_out,
																	   NumericGetDatum(v->val.numeric))));
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

/*
 * Append the compact JSON text of root (no whitespace, jsonb's own member
 * order) to buf.  Stops and returns false as soon as buf grows past limit.
 */
static bool
jwt_jsonb_compact(StringInfo buf, JsonbContainer *root, int limit)
{
	JsonbIterator *it = JsonbIteratorInit(root);
	JsonbIteratorToken tok;
	JsonbValue	v;
	bool		need_comma = false;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
			case WJB_BEGIN_ARRAY:
				if (need_comma)
					appendStringInfoChar(buf, ',');
				appendStringInfoChar(buf, tok == WJB_BEGIN_OBJECT ? '{' : '[');
				need_comma = false;
				break;
			case WJB_END_OBJECT:
			case WJB_END_ARRAY:
				appendStringInfoChar(buf, tok == WJB_END_OBJECT ? '}' : ']');
				need_comma = true;
				break;
			case WJB_KEY:
				if (need_comma)
					appendStringInfoChar(buf, ',');
				jwt_escape_json(buf, v.val.string.val, v.val.string.len);
				appendStringInfoChar(buf, ':');
				need_comma = false;
				break;
			case WJB_ELEM:
				if (need_comma)
					appendStringInfoChar(buf, ',');
				jwt_put_scalar(buf, &v);
				need_comma = true;
				break;
			case WJB_VALUE:
				jwt_put_scalar(buf, &v);
				need_comma = true;
				break;
			case WJB_DONE:
				break;
		}
		if (buf->len > limit)
			return false;
	}
	return true;
}

/*
 * In a database whose encoding is not UTF-8, convert buf's JSON text to
 * UTF-8 in place (a JWT is UTF-8 by definition).
 */
static void
jwt_json_to_utf8(StringInfo buf, const char *what)
{
	int			enc = GetDatabaseEncoding();
	char	   *conv;

	if (enc == PG_UTF8)
		return;
	if (enc == PG_SQL_ASCII)
	{
		if (!pg_verify_mbstr(PG_UTF8, buf->data, buf->len, true))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s is not valid UTF-8", what)));
		return;
	}
	conv = pg_server_to_any(buf->data, buf->len, PG_UTF8);
	if (conv != buf->data)
	{
		resetStringInfo(buf);
		appendStringInfoString(buf, conv);
	}
}

/* ----------------------------------------------------------------------
 * Signing
 * ----------------------------------------------------------------------
 */

/*
 * jwt_sign: see jwt.h.  The result is palloc'd in the caller's context.
 * Raises 22023 for an unfit key, a payload that is not an object, and a
 * token medpro itself would refuse as too large.
 */
char *
jwt_sign(Jsonb *payload, const uint8 *key, size_t keylen,
		 JwtAlg alg, const char *kid)
{
	const JwtAlgDesc *desc = jwt_desc(alg);
	MemoryContext caller;
	StringInfoData json;
	StringInfoData out;
	uint8		sig[JWT_MAX_SIG_LEN];
	size_t		siglen;
	size_t		expect_siglen;
	bool		ok;
	char	   *result;

	expect_siglen = jwt_check_key(desc, key, keylen, true);
	if (payload == NULL || !JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload must be a JSON object")));
	if (kid != NULL && strlen(kid) > JWT_MAX_HEADER_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kid is too long"),
				 errdetail("The encoded header would have more than %d bytes.",
						   JWT_MAX_HEADER_LEN)));
	if (desc->keykind == JWT_KEY_SECRET)
		jwt_hmac_prepare(desc);

	caller = jwt_scratch_begin();

	/* Header: {"alg":"...","typ":"JWT"[,"kid":"..."]} */
	initStringInfo(&json);
	appendStringInfo(&json, "{\"alg\":\"%s\",\"typ\":\"JWT\"", desc->name);
	if (kid != NULL)
	{
		appendStringInfoString(&json, ",\"kid\":");
		jwt_escape_json(&json, kid, strlen(kid));
	}
	appendStringInfoChar(&json, '}');
	jwt_json_to_utf8(&json, "kid");

	initStringInfo(&out);
	b64url_encode(&out, (const uint8 *) json.data, json.len);
	if (out.len > JWT_MAX_HEADER_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kid is too long"),
				 errdetail("The encoded header would have %d bytes; at most %d are accepted.",
						   out.len, JWT_MAX_HEADER_LEN)));
	appendStringInfoChar(&out, '.');

	/* Payload: compact JSON of the jsonb */
	resetStringInfo(&json);
	if (!jwt_jsonb_compact(&json, &payload->root, JWT_MAX_TOKEN_LEN) ||
		out.len + B64URL_LEN(json.len) + 1 + B64URL_LEN(expect_siglen) > JWT_MAX_TOKEN_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload is too large for a token"),
				 errdetail("Tokens longer than %d bytes are not accepted.",
						   JWT_MAX_TOKEN_LEN)));
	jwt_json_to_utf8(&json, "payload");
	b64url_encode(&out, (const uint8 *) json.data, json.len);
	if (out.len + 1 + B64URL_LEN(expect_siglen) > JWT_MAX_TOKEN_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload is too large for a token"),
				 errdetail("Tokens longer than %d bytes are not accepted.",
						   JWT_MAX_TOKEN_LEN)));

	/* Signature over the ASCII "header.payload" */
	ok = desc->sign(desc, key, keylen, out.data, out.len, sig, &siglen);
	if (!ok)
	{
		OPENSSL_cleanse(sig, sizeof(sig));
		jwt_crypto_failed(desc);
	}
	appendStringInfoChar(&out, '.');
	b64url_encode(&out, sig, siglen);
	OPENSSL_cleanse(sig, sizeof(sig));

	MemoryContextSwitchTo(caller);
	result = pnstrdup(out.data, out.len);
	jwt_scratch_end(caller);
	return result;
}

/* ----------------------------------------------------------------------
 * Strict JSON parsing into jsonb (verification)
 * ----------------------------------------------------------------------
 */

/* A top-level member whose value the checks need. */
typedef struct JwtMember
{
	const char *name;
	bool		present;
	JsonTokenType type;			/* scalar token type, or OBJECT/ARRAY_START */
	char	   *value;			/* scalar text (de-escaped for strings) */
} JwtMember;

#define JWT_MAX_MEMBERS 3

/* Header members we look at. */
enum
{
	HDR_ALG,
	HDR_CRIT,
	HDR_COUNT
};

/* Payload members we look at. */
enum
{
	CLM_EXP,
	CLM_NBF,
	CLM_IAT,
	CLM_COUNT
};

typedef struct JwtParse
{
	JsonbParseState *pstate;
	JsonbValue *result;			/* the root object, once complete */
	int			depth;			/* open containers */
	bool		is_array[JWT_MAX_DEPTH + 2];
	int			npairs[JWT_MAX_DEPTH + 2];	/* members seen per open object */
	bool		duplicate;
	bool		bad_number;
	bool		too_deep;
	int			cur;			/* index in members of the top-level member
								 * being parsed, or -1 */
	int			nmembers;
	JwtMember	members[JWT_MAX_MEMBERS];
} JwtParse;

static void
jwt_parse_init(JwtParse *ps, bool payload)
{
	memset(ps, 0, sizeof(*ps));
	ps->cur = -1;
	if (payload)
	{
		ps->nmembers = CLM_COUNT;
		ps->members[CLM_EXP].name = "exp";
		ps->members[CLM_NBF].name = "nbf";
		ps->members[CLM_IAT].name = "iat";
	}
	else
	{
		ps->nmembers = HDR_COUNT;
		ps->members[HDR_ALG].name = "alg";
		ps->members[HDR_CRIT].name = "crit";
	}
}

/*
 * Can numeric_in() store the JSON number text num without raising?  num is
 * known to match the JSON number grammar.
 */
static bool
jwt_number_storable(const char *num)
{
	const char *p = num;
	int			nint = 0;
	int			nfrac = 0;
	int64		exp10 = 0;

	if (*p == '-')
		p++;
	while (*p >= '0' && *p <= '9')
		nint++, p++;
	if (*p == '.')
	{
		p++;
		while (*p >= '0' && *p <= '9')
			nfrac++, p++;
	}
	if (*p == 'e' || *p == 'E')
	{
		bool		neg = false;

		p++;
		if (*p == '+' || *p == '-')
			neg = (*p++ == '-');
		while (*p >= '0' && *p <= '9')
		{
			if (exp10 < INT64CONST(100000000))
				exp10 = exp10 * 10 + (*p - '0');
			p++;
		}
		if (neg)
			exp10 = -exp10;
	}
	return (nfrac - exp10 <= JWT_NUMBER_MAX_DSCALE &&
			nint + exp10 <= JWT_NUMBER_MAX_DWEIGHT);
}

/*
 * Convert the JSON number text num (seconds since the Unix epoch, possibly
 * fractional or in exponent form) to microseconds, rounding up, exactly:
 * for an integer n of microseconds, n >= value, n < value and value > n
 * hold exactly when they hold for the rounded-up value.  Returns false when
 * the value lies outside 0 .. JWT_MAX_TIME_SECS.
 */
static bool
jwt_number_to_usecs(const char *num, int64 *usecs)
{
	const char *p = num;
	const char *digits;
	bool		neg = false;
	int64		nint = 0;
	int64		exp10 = 0;
	int64		cut;
	int64		k = 0;
	int64		acc = 0;
	bool		rest_nonzero = false;

	if (*p == '-')
		neg = true, p++;
	digits = p;
	while (*p >= '0' && *p <= '9')
		nint++, p++;
	if (*p == '.')
	{
		p++;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E')
	{
		const char *e = p + 1;
		bool		eneg = false;

		if (*e == '+' || *e == '-')
			eneg = (*e++ == '-');
		while (*e >= '0' && *e <= '9')
		{
			if (exp10 < INT64CONST(100000000))
				exp10 = exp10 * 10 + (*e - '0');
			e++;
		}
		if (eneg)
			exp10 = -exp10;
	}

	/*
	 * The value is 0.D * 10^(nint + exp10) where D is the digit string
	 * (integer digits then fraction digits).  The first nint + exp10 + 6
	 * digits of D make the whole microseconds; any non-zero digit after
	 * them rounds up.
	 */
	cut = nint + exp10 + 6;
	for (; digits < p && (*digits != 'e' && *digits != 'E'); digits++)
	{
		int			d;

		if (*digits == '.')
			continue;
		d = *digits - '0';
		if (k < cut)
		{
			acc = acc * 10 + d;
			if (acc > JWT_MAX_TIME_USECS)
				return false;
		}
		else if (d != 0)
			rest_nonzero = true;
		k++;
	}
	/* Trailing zeros implied by a positive exponent. */
	if (acc != 0)
	{
		for (; k < cut; k++)
		{
			acc *= 10;
			if (acc > JWT_MAX_TIME_USECS)
				return false;
		}
	}
	if (rest_nonzero)
		acc++;
	if (neg && acc != 0)
		return false;
	if (acc > JWT_MAX_TIME_USECS)
		return false;
	*usecs = acc;
	return true;
}

/* Note a top-level member's value kind, if it is one we track. */
static inline void
jwt_note_member(JwtParse *ps, JsonTokenType type, char *value)
{
	if (ps->depth == 1 && ps->cur >= 0)
	{
		ps->members[ps->cur].type = type;
		ps->members[ps->cur].value = value;
	}
}

static void
jwt_sem_object_start(void *state)
{
	JwtParse   *ps = (JwtParse *) state;

	jwt_note_member(ps, JSON_TOKEN_OBJECT_START, NULL);
	if (ps->depth >= JWT_MAX_DEPTH)
	{
		/* unreachable after the pre-scan; count, but stop building */
		ps->too_deep = true;
		ps->depth++;
		return;
	}
	(void) pushJsonbValue(&ps->pstate, WJB_BEGIN_OBJECT, NULL);
	ps->depth++;
	ps->is_array[ps->depth] = false;
	ps->npairs[ps->depth] = 0;
}

static void
jwt_sem_object_end(void *state)
{
	JwtParse   *ps = (JwtParse *) state;
	JsonbValue *res;

	if (ps->depth > JWT_MAX_DEPTH)
	{
		ps->depth--;
		return;
	}
	res = pushJsonbValue(&ps->pstate, WJB_END_OBJECT, NULL);

	/*
	 * pushJsonbValue sorted the members and dropped duplicate keys (keeping
	 * the last); fewer members than we pushed means there were duplicates.
	 */
	if (res->val.object.nPairs != ps->npairs[ps->depth])
		ps->duplicate = true;
	ps->depth--;
	if (ps->depth == 0)
		ps->result = res;
}

static void
jwt_sem_array_start(void *state)
{
	JwtParse   *ps = (JwtParse *) state;

	jwt_note_member(ps, JSON_TOKEN_ARRAY_START, NULL);
	if (ps->depth >= JWT_MAX_DEPTH)
	{
		ps->too_deep = true;
		ps->depth++;
		return;
	}
	(void) pushJsonbValue(&ps->pstate, WJB_BEGIN_ARRAY, NULL);
	ps->depth++;
	ps->is_array[ps->depth] = true;
}

static void
jwt_sem_array_end(void *state)
{
	JwtParse   *ps = (JwtParse *) state;

	if (ps->depth <= JWT_MAX_DEPTH)
		(void) pushJsonbValue(&ps->pstate, WJB_END_ARRAY, NULL);
	ps->depth--;
}

static void
jwt_sem_field_start(void *state, char *fname, bool isnull)
{
	JwtParse   *ps = (JwtParse *) state;
	JsonbValue	v;
	int			i;

	if (ps->depth > JWT_MAX_DEPTH)
		return;
	if (ps->depth == 1)
	{
		ps->cur = -1;
		for (i = 0; i < ps->nmembers; i++)
		{
			if (strcmp(fname, ps->members[i].name) == 0)
			{
				ps->cur = i;
				ps->members[i].present = true;
				break;
			}
		}
	}
	ps->npairs[ps->depth]++;
	v.type = jbvString;
	v.val.string.val = fname;
	v.val.string.len = strlen(fname);
	(void) pushJsonbValue(&ps->pstate, WJB_KEY, &v);
}

static void
jwt_sem_field_end(void *state, char *fname, bool isnull)
{
	JwtParse   *ps = (JwtParse *) state;

	if (ps->depth == 1)
		ps->cur = -1;
}

static void
jwt_sem_scalar(void *state, char *token, JsonTokenType type)
{
	JwtParse   *ps = (JwtParse *) state;
	JsonbValue	v;

	if (ps->depth > JWT_MAX_DEPTH)
		return;
	jwt_note_member(ps, type, token);

	switch (type)
	{
		case JSON_TOKEN_STRING:
			v.type = jbvString;
			v.val.string.val = token;
			v.val.string.len = strlen(token);
			break;
		case JSON_TOKEN_NUMBER:
			if (!jwt_number_storable(token))
			{
				ps->bad_number = true;
				v.type = jbvNull;
				break;
			}
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																CStringGetDatum(token),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)));
			break;
		case JSON_TOKEN_TRUE:
			v.type = jbvBool;
			v.val.boolean = true;
			break;
		case JSON_TOKEN_FALSE:
			v.type = jbvBool;
			v.val.boolean = false;
			break;
		default:
			v.type = jbvNull;
			break;
	}
	(void) pushJsonbValue(&ps->pstate,
						  ps->is_array[ps->depth] ? WJB_ELEM : WJB_VALUE, &v);
}

static inline bool
jwt_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Linear pre-scan of JSON text s[0..len): nesting depth (brackets outside
 * strings), and, when ascii_only, any character outside ASCII, raw or as a
 * \u escape.  Robust against malformed input (the lexer reports that).
 */
static const char *
jwt_json_prescan(const char *s, size_t len, bool ascii_only)
{
	size_t		i;
	int			depth = 0;
	bool		in_string = false;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c >= 0x80)
		{
			if (ascii_only)
				return "text not representable in the database encoding";
			continue;
		}
		if (in_string)
		{
			if (c == '"')
				in_string = false;
			else if (c == '\\' && i + 1 < len)
			{
				i++;
				if (s[i] == 'u' && ascii_only && i + 4 < len)
				{
					/* \u0000 .. \u007f are ASCII: the first two digits are 0 */
					if (s[i + 1] != '0' || s[i + 2] != '0' ||
						!(s[i + 3] >= '0' && s[i + 3] <= '7'))
						return "text not representable in the database encoding";
				}
			}
		}
		else if (c == '"')
			in_string = true;
		else if (c == '{' || c == '[')
		{
			if (++depth > JWT_MAX_DEPTH)
				return "JSON nested too deeply";
		}
		else if ((c == '}' || c == ']') && depth > 0)
			depth--;
	}
	return NULL;
}

/*
 * Parse the JSON text json[0..len) (NUL-terminated, in scratch memory) of a
 * header or payload into ps->result, checking everything a JWT needs of it.
 * Returns NULL on success or a reason.  Never raises for bad input.
 */
static const char *
jwt_parse_json(char *json, size_t len, bool payload, JwtParse *ps)
{
	const char *not_object = payload ? "payload is not a JSON object" :
	"header is not a JSON object";
	const char *reason;
	JsonLexContext *lex;
	JsonSemAction sem;
	JsonParseErrorType err;
	size_t		i;

	jwt_parse_init(ps, payload);

	if (!pg_verify_mbstr(PG_UTF8, json, len, true))
		return "invalid UTF-8";
	reason = jwt_json_prescan(json, len, GetDatabaseEncoding() != PG_UTF8);
	if (reason != NULL)
		return reason;
	for (i = 0; i < len && jwt_json_space(json[i]); i++)
		;
	if (i == len || json[i] != '{')
		return not_object;

	memset(&sem, 0, sizeof(sem));
	sem.semstate = ps;
	sem.object_start = jwt_sem_object_start;
	sem.object_end = jwt_sem_object_end;
	sem.array_start = jwt_sem_array_start;
	sem.array_end = jwt_sem_array_end;
	sem.object_field_start = jwt_sem_field_start;
	sem.object_field_end = jwt_sem_field_end;
	sem.scalar = jwt_sem_scalar;

	lex = makeJsonLexContextCstringLen(json, (int) len, PG_UTF8, true);
	err = pg_parse_json(lex, &sem);
	if (err == JSON_UNICODE_CODE_POINT_ZERO)
		return "NUL character in JSON string";
	if (err != JSON_SUCCESS || ps->result == NULL ||
		ps->result->type != jbvObject)
		return not_object;
	if (ps->too_deep)
		return "JSON nested too deeply";
	if (ps->duplicate)
		return payload ? "duplicate member in payload" :
			"duplicate member in header";
	if (ps->bad_number)
		return "number out of range";
	return NULL;
}

/* ----------------------------------------------------------------------
 * Verification
 * ----------------------------------------------------------------------
 */

typedef struct JwtSegments
{
	const char *header;
	size_t		header_len;
	const char *payload;
	size_t		payload_len;
	const char *sig;
	size_t		sig_len;
	size_t		signed_len;		/* length of "header.payload" */
} JwtSegments;

/*
 * Size limits and the three-segment structure, before any decoding.
 */
static const char *
jwt_split(const char *token, size_t len, JwtSegments *seg)
{
	const char *end = token + len;
	const char *dot1;
	const char *dot2;

	if (len > JWT_MAX_TOKEN_LEN)
		return "token too large";
	dot1 = memchr(token, '.', len);
	if (dot1 == NULL)
		return "malformed";
	dot2 = memchr(dot1 + 1, '.', end - (dot1 + 1));
	if (dot2 == NULL || memchr(dot2 + 1, '.', end - (dot2 + 1)) != NULL)
		return "malformed";
	if (dot1 - token > JWT_MAX_HEADER_LEN)
		return "header too large";

	seg->header = token;
	seg->header_len = dot1 - token;
	seg->payload = dot1 + 1;
	seg->payload_len = dot2 - (dot1 + 1);
	seg->sig = dot2 + 1;
	seg->sig_len = end - (dot2 + 1);
	seg->signed_len = dot2 - token;
	return NULL;
}

/* Decode a segment into fresh scratch memory; NULL if not base64url. */
static uint8 *
jwt_decode_segment(const char *src, size_t len, size_t *outlen)
{
	uint8	   *buf = palloc(len / 4 * 3 + 3);

	if (!b64url_decode(src, len, buf, outlen))
		return NULL;
	return buf;
}

/*
 * Decode and check the header; on success *header (caller's context) and
 * *hp are set.  Returns NULL or a reason.
 */
static const char *
jwt_read_header(const JwtSegments *seg, MemoryContext caller,
				JwtParse *hp, Jsonb **header)
{
	uint8	   *raw;
	size_t		rawlen;
	const char *reason;
	MemoryContext scratch;

	raw = jwt_decode_segment(seg->header, seg->header_len, &rawlen);
	if (raw == NULL)
		return "bad base64url";
	reason = jwt_parse_json((char *) raw, rawlen, false, hp);
	if (reason != NULL)
		return reason;
	scratch = MemoryContextSwitchTo(caller);
	*header = JsonbValueToJsonb(hp->result);
	MemoryContextSwitchTo(scratch);
	return NULL;
}

/* Check a time claim's kind and value; on success set *usecs. */
static const char *
jwt_time_claim(const JwtMember *m, const char *not_number,
			   const char *not_time, int64 *usecs)
{
	if (m->type != JSON_TOKEN_NUMBER)
		return not_number;
	if (!jwt_number_to_usecs(m->value, usecs))
		return not_time;
	/* to the PostgreSQL epoch, like TimestampTz */
	*usecs -= JWT_EPOCH_DIFF_USECS;
	return NULL;
}

/*
 * The time checks on parsed claims, shared by the full pipeline and a
 * verified-token cache hit.  Returns NULL or the reason.
 */
static const char *
jwt_check_times(const JwtTimes *t, TimestampTz now, int leeway)
{
	int64		leeway_us = (int64) leeway * USECS_PER_SEC;

	/* RFC 7519 4.1.4: valid only while now < exp (plus leeway) */
	if (now - leeway_us >= t->exp_us)
		return "expired";
	/* RFC 7519 4.1.5: valid only from nbf (minus leeway) */
	if (t->has_nbf && now + leeway_us < t->nbf_us)
		return "not yet valid";
	if (t->has_iat && t->iat_us > now + leeway_us)
		return "issued in the future";
	return NULL;
}

/*
 * The body of jwt_verify, in scratch memory.  Returns NULL when the token
 * is valid, else the reason.  times->valid is set once the signature
 * verified and the payload and its time claims parsed.
 */
static const char *
jwt_verify_internal(const char *token, size_t len,
					const uint8 *key, size_t keylen, const JwtAlgDesc *desc,
					TimestampTz now, int leeway, MemoryContext caller,
					JwtResult *res, JwtTimes *times)
{
	JwtSegments seg;
	JwtParse	ps;
	const char *reason;
	uint8	   *sig;
	size_t		siglen;
	uint8	   *body;
	size_t		bodylen;
	bool		match;
	int64		exp_us = 0;
	int64		nbf_us = 0;
	int64		iat_us = 0;
	JwtMember  *alg;
	MemoryContext scratch;

	reason = jwt_split(token, len, &seg);
	if (reason != NULL)
		return reason;

	/* base64url of the other two segments is pure syntax: check it first */
	sig = jwt_decode_segment(seg.sig, seg.sig_len, &siglen);
	body = jwt_decode_segment(seg.payload, seg.payload_len, &bodylen);
	if (sig == NULL || body == NULL)
		return "bad base64url";

	reason = jwt_read_header(&seg, caller, &ps, &res->header);
	if (reason != NULL)
		return reason;

	/* The algorithm is pinned by the caller, never chosen by the token. */
	alg = &ps.members[HDR_ALG];
	if (!alg->present)
		return "missing alg";
	if (alg->type != JSON_TOKEN_STRING || strcmp(alg->value, desc->name) != 0)
		return "algorithm not allowed";
	/* RFC 7515 4.1.11: we understand no extension, so any "crit" fails */
	if (ps.members[HDR_CRIT].present)
		return "unsupported crit header";

	if (!desc->check(desc, key, keylen, token, seg.signed_len,
					 sig, siglen, &match))
		jwt_crypto_failed(desc);
	if (!match)
		return "signature mismatch";

	/* Authenticated: now the payload may be parsed. */
	reason = jwt_parse_json((char *) body, bodylen, true, &ps);
	if (reason != NULL)
		return reason;
	scratch = MemoryContextSwitchTo(caller);
	res->payload = JsonbValueToJsonb(ps.result);
	MemoryContextSwitchTo(scratch);

	if (!ps.members[CLM_EXP].present)
		return "missing exp";
	reason = jwt_time_claim(&ps.members[CLM_EXP], "exp is not a number",
							"exp is not a valid time", &exp_us);
	if (reason != NULL)
		return reason;
	if (ps.members[CLM_NBF].present)
	{
		reason = jwt_time_claim(&ps.members[CLM_NBF], "nbf is not a number",
								"nbf is not a valid time", &nbf_us);
		if (reason != NULL)
			return reason;
	}
	if (ps.members[CLM_IAT].present)
	{
		reason = jwt_time_claim(&ps.members[CLM_IAT], "iat is not a number",
								"iat is not a valid time", &iat_us);
		if (reason != NULL)
			return reason;
	}

	times->exp_us = exp_us;
	times->has_nbf = ps.members[CLM_NBF].present;
	times->nbf_us = nbf_us;
	times->has_iat = ps.members[CLM_IAT].present;
	times->iat_us = iat_us;
	times->valid = true;
	return jwt_check_times(times, now, leeway);
}

/*
 * jwt_verify: see jwt.h.  res->header and res->payload are allocated in the
 * caller's context; the payload is only ever filled once the signature has
 * been found valid.
 */
void
jwt_verify(const char *token, size_t len,
		   const uint8 *key, size_t keylen, JwtAlg alg,
		   TimestampTz now, int leeway, JwtResult *res)
{
	const JwtAlgDesc *desc = jwt_desc(alg);
	MemoryContext caller;
	const char *reason;
	JwtTimes	times;

	res->valid = false;
	res->reason = NULL;
	res->header = NULL;
	res->payload = NULL;
	memset(&times, 0, sizeof(times));

	jwt_check_key(desc, key, keylen, false);
	if (TIMESTAMP_NOT_FINITE(now))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("verification time must be finite")));
	if (leeway < 0)
		leeway = 0;
	if (desc->keykind == JWT_KEY_SECRET)
		jwt_hmac_prepare(desc);
	else if (jwt_token_cache_get(alg, key, keylen, token, len, &times,
								 &res->header, &res->payload))
	{
		/* verified before: only the clock can have changed the outcome */
		reason = jwt_check_times(&times, now, leeway);
		res->valid = (reason == NULL);
		res->reason = reason;
		return;
	}

	caller = jwt_scratch_begin();
	reason = jwt_verify_internal(token, len, key, keylen, desc, now, leeway,
								 caller, res, &times);
	jwt_scratch_end(caller);

	if (desc->keykind == JWT_KEY_PEM && times.valid)
		jwt_token_cache_put(alg, key, keylen, token, len, &times,
							res->header, res->payload);

	res->valid = (reason == NULL);
	res->reason = reason;
}

/*
 * jwt_peek_header: see jwt.h.  The result is in the caller's context.
 */
Jsonb *
jwt_peek_header(const char *token, size_t len, const char **reason)
{
	MemoryContext caller;
	JwtSegments seg;
	JwtParse	ps;
	Jsonb	   *header = NULL;

	caller = jwt_scratch_begin();
	*reason = jwt_split(token, len, &seg);
	if (*reason == NULL)
		*reason = jwt_read_header(&seg, caller, &ps, &header);
	jwt_scratch_end(caller);
	return (*reason == NULL) ? header : NULL;
}

/* ----------------------------------------------------------------------
 * SQL functions
 * ----------------------------------------------------------------------
 */

/* A key argument, and the copy (if any) that must be wiped after use. */
typedef struct JwtKeyArg
{
	const uint8 *data;
	size_t		len;
	struct varlena *copy;		/* detoasted copy, or NULL */
} JwtKeyArg;

static void jwt_null_arg(const char *what) pg_attribute_noreturn();

static void
jwt_null_arg(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must not be null", what)));
}

/* The algorithm argument number argno; raises 22023 when bad. */
static JwtAlg
jwt_arg_alg(FunctionCallInfo fcinfo, int argno)
{
	text	   *t;
	int			len;
	char		name[32];

	if (PG_ARGISNULL(argno))
		jwt_null_arg("algorithm");
	t = PG_GETARG_TEXT_PP(argno);
	len = VARSIZE_ANY_EXHDR(t);
	if (len >= (int) sizeof(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported JWT algorithm"),
				 errhint(JWT_ALG_HINT)));
	memcpy(name, VARDATA_ANY(t), len);
	name[len] = '\0';
	return jwt_alg_from_name(name);
}

/* The "at" argument number argno, or the wall clock of this call. */
static TimestampTz
jwt_arg_time(FunctionCallInfo fcinfo, int argno)
{
	TimestampTz at;

	if (PG_ARGISNULL(argno))
		return GetCurrentTimestamp();
	at = PG_GETARG_TIMESTAMPTZ(argno);
	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"at\" must be a finite timestamp")));
	return at;
}

/*
 * The key argument number argno for alg.  Its length is checked before it
 * is detoasted, so that no copy exists when that check raises (for HS* the
 * secret's minimum, for PEM keys JWT_MAX_PEM_LEN).  A text key
 * stands for its UTF-8 bytes; in a database whose encoding is not UTF-8 it
 * must be ASCII (convert non-ASCII keys with convert_to(key, 'UTF8')).
 */
static void
jwt_arg_key(FunctionCallInfo fcinfo, int argno, bool is_text, JwtAlg alg,
			JwtKeyArg *k)
{
	Datum		d;
	struct varlena *v;
	size_t		rawlen;

	if (PG_ARGISNULL(argno))
		jwt_null_arg("key");
	d = PG_GETARG_DATUM(argno);
	rawlen = toast_raw_datum_size(d) - VARHDRSZ;
	if (jwt_alg_is_hmac(alg))
		jwt_check_key_len(jwt_desc(alg), rawlen);
	else if (rawlen > JWT_MAX_PEM_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key for %s is too large", jwt_alg_name(alg)),
				 errdetail("A PEM key may have at most %d bytes.", JWT_MAX_PEM_LEN)));

	v = PG_DETOAST_DATUM_PACKED(d);
	k->data = (const uint8 *) VARDATA_ANY(v);
	k->len = VARSIZE_ANY_EXHDR(v);
	k->copy = (Pointer) v != DatumGetPointer(d) ? v : NULL;

	if (is_text && GetDatabaseEncoding() != PG_UTF8)
	{
		size_t		i;

		for (i = 0; i < k->len; i++)
		{
			if (IS_HIGHBIT_SET(k->data[i]))
			{
				if (k->copy != NULL)
				{
					explicit_bzero(k->copy, VARSIZE_ANY(k->copy));
					pfree(k->copy);
				}
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("text key must be ASCII in a database whose encoding is not UTF8"),
						 errhint("Pass the key as bytea, for example convert_to(key, 'UTF8').")));
			}
		}
	}
}

static void
jwt_key_release(JwtKeyArg *k)
{
	if (k->copy != NULL)
	{
		explicit_bzero(k->copy, VARSIZE_ANY(k->copy));
		pfree(k->copy);
		k->copy = NULL;
	}
}

/*
 * Check the key argument number argno for alg as verify would (raising
 * 22023 when it is unfit), for a call whose token is missing.
 */
static void
jwt_arg_key_check_only(FunctionCallInfo fcinfo, int argno, bool is_text,
					   JwtAlg alg)
{
	JwtKeyArg	key;

	jwt_arg_key(fcinfo, argno, is_text, alg, &key);
	PG_TRY();
	{
		jwt_check_key(jwt_desc(alg), key.data, key.len, false);
	}
	PG_FINALLY();
	{
		jwt_key_release(&key);
	}
	PG_END_TRY();
}

/*
 * The token argument number argno, or NULL (with *reason set) when it is
 * SQL NULL or too large; a too-large token is never detoasted.
 */
static text *
jwt_arg_token(FunctionCallInfo fcinfo, int argno, const char **reason)
{
	if (PG_ARGISNULL(argno))
	{
		*reason = "missing";
		return NULL;
	}
	if (toast_raw_datum_size(PG_GETARG_DATUM(argno)) - VARHDRSZ > JWT_MAX_TOKEN_LEN)
	{
		*reason = "token too large";
		return NULL;
	}
	*reason = NULL;
	return PG_GETARG_TEXT_PP(argno);
}

static Datum
jwt_sql_sign(FunctionCallInfo fcinfo, bool text_key)
{
	Jsonb	   *payload;
	JwtAlg		alg;
	char	   *kid = NULL;
	JwtKeyArg	key;
	char	   *token = NULL;

	if (PG_ARGISNULL(0))
		jwt_null_arg("payload");
	alg = jwt_arg_alg(fcinfo, 2);
	payload = PG_GETARG_JSONB_P(0);
	if (!PG_ARGISNULL(3))
		kid = text_to_cstring(PG_GETARG_TEXT_PP(3));
	jwt_arg_key(fcinfo, 1, text_key, alg, &key);

	PG_TRY();
	{
		token = jwt_sign(payload, key.data, key.len, alg, kid);
	}
	PG_FINALLY();
	{
		jwt_key_release(&key);
	}
	PG_END_TRY();

	PG_RETURN_TEXT_P(cstring_to_text(token));
}

/* Run jwt_verify for the SQL functions; key is released in all cases. */
static void
jwt_sql_run_verify(text *token, JwtKeyArg *key, JwtAlg alg, TimestampTz now,
				   JwtResult *res)
{
	PG_TRY();
	{
		jwt_verify(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token),
				   key->data, key->len, alg, now, medpro_jwt_leeway, res);
	}
	PG_FINALLY();
	{
		jwt_key_release(key);
	}
	PG_END_TRY();
}

static Datum
jwt_sql_verify(FunctionCallInfo fcinfo, bool text_key)
{
	JwtAlg		alg;
	TimestampTz now;
	JwtKeyArg	key;
	text	   *token;
	const char *reason;
	JwtResult	res;

	alg = jwt_arg_alg(fcinfo, 2);
	now = jwt_arg_time(fcinfo, 3);
	if (PG_ARGISNULL(1))
		jwt_null_arg("key");
	token = jwt_arg_token(fcinfo, 0, &reason);
	if (token == NULL)
	{
		/* arguments first: a bad key is an error whatever the token */
		jwt_arg_key_check_only(fcinfo, 1, text_key, alg);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("invalid token: %s", reason)));
	}
	jwt_arg_key(fcinfo, 1, text_key, alg, &key);
	jwt_sql_run_verify(token, &key, alg, now, &res);

	if (!res.valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("invalid token: %s", res.reason)));
	PG_RETURN_JSONB_P(res.payload);
}

static Datum
jwt_sql_decode(FunctionCallInfo fcinfo, bool text_key)
{
	FuncCallContext *funcctx;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext oldcxt;
		TupleDesc	tupdesc;
		JwtAlg		alg;
		TimestampTz now;
		JwtKeyArg	key;
		text	   *token;
		const char *reason;
		JwtResult	res;
		Datum		values[4];
		bool		nulls[4];

		alg = jwt_arg_alg(fcinfo, 2);
		now = jwt_arg_time(fcinfo, 3);
		if (PG_ARGISNULL(1))
			jwt_null_arg("key");
		funcctx = SRF_FIRSTCALL_INIT();
		oldcxt = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);

		token = jwt_arg_token(fcinfo, 0, &reason);
		if (token == NULL)
		{
			jwt_arg_key_check_only(fcinfo, 1, text_key, alg);
			res.valid = false;
			res.reason = reason;
			res.header = NULL;
			res.payload = NULL;
		}
		else
		{
			jwt_arg_key(fcinfo, 1, text_key, alg, &key);
			jwt_sql_run_verify(token, &key, alg, now, &res);
		}

		memset(nulls, 0, sizeof(nulls));
		values[0] = res.header ? JsonbPGetDatum(res.header) : (Datum) 0;
		nulls[0] = (res.header == NULL);
		values[1] = res.payload ? JsonbPGetDatum(res.payload) : (Datum) 0;
		nulls[1] = (res.payload == NULL);
		values[2] = BoolGetDatum(res.valid);
		values[3] = res.valid ? (Datum) 0 : CStringGetTextDatum(res.reason);
		nulls[3] = res.valid;
		funcctx->user_fctx = heap_form_tuple(funcctx->tuple_desc, values, nulls);
		MemoryContextSwitchTo(oldcxt);
	}

	funcctx = SRF_PERCALL_SETUP();
	if (funcctx->call_cntr == 0)
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum((HeapTuple) funcctx->user_fctx));
	SRF_RETURN_DONE(funcctx);
}

PG_FUNCTION_INFO_V1(medpro_jwt_sign_bytea);
PG_FUNCTION_INFO_V1(medpro_jwt_sign_text);
PG_FUNCTION_INFO_V1(medpro_jwt_verify_bytea);
PG_FUNCTION_INFO_V1(medpro_jwt_verify_text);
PG_FUNCTION_INFO_V1(medpro_jwt_decode_bytea);
PG_FUNCTION_INFO_V1(medpro_jwt_decode_text);

/*
 * medpro_jwt_sign(payload jsonb, key bytea|text, algorithm text, kid text)
 * RETURNS text: the compact token.  NULL payload, key or algorithm raise
 * 22023; a NULL kid leaves "kid" out of the header.
 */
Datum
medpro_jwt_sign_bytea(PG_FUNCTION_ARGS)
{
	return jwt_sql_sign(fcinfo, false);
}

Datum
medpro_jwt_sign_text(PG_FUNCTION_ARGS)
{
	return jwt_sql_sign(fcinfo, true);
}

/*
 * medpro_jwt_verify(token text, key bytea|text, algorithm text,
 * at timestamptz) RETURNS jsonb: the claims, or 28000
 * "invalid token: <reason>" (a NULL token is "missing").
 */
Datum
medpro_jwt_verify_bytea(PG_FUNCTION_ARGS)
{
	return jwt_sql_verify(fcinfo, false);
}

Datum
medpro_jwt_verify_text(PG_FUNCTION_ARGS)
{
	return jwt_sql_verify(fcinfo, true);
}

/*
 * medpro_jwt_decode(token text, key bytea|text, algorithm text,
 * at timestamptz) RETURNS TABLE(header jsonb, payload jsonb, valid boolean,
 * reason text): one row, never an error for a bad token.
 */
Datum
medpro_jwt_decode_bytea(PG_FUNCTION_ARGS)
{
	return jwt_sql_decode(fcinfo, false);
}

Datum
medpro_jwt_decode_text(PG_FUNCTION_ARGS)
{
	return jwt_sql_decode(fcinfo, true);
}
