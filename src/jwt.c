/*
 * jwt.c
 *	  Compact JWS (RFC 7515) signing and strict verification of JWTs
 *	  (RFC 7519).
 *
 * This file owns:
 *	  - the table of JWS algorithms medpro knows (HS256/384/512 here; RS*,
 *		PS*, ES* and EdDSA dispatch to jwt_pkey.c) and the check that a key
 *		is of the kind its algorithm takes;
 *	  - the HMAC functions, with a small per-backend cache of keyed
 *		contexts;
 *	  - the compact JSON serialisation of a jsonb value used when signing;
 *	  - the verification pipeline: jose.c (PostgreSQL-independent) splits,
 *		decodes and parses the token and applies the header and time
 *		policy; this file checks the signature in between and builds the
 *		jsonb results from jose.c's parse events;
 *	  - the SQL functions medpro_jwt_sign, medpro_jwt_verify and
 *		medpro_jwt_decode (each with a bytea and a text key).
 *
 * Verification order: size limits, structure, base64url of all three
 * segments, header JSON, "alg" pinned to the caller's algorithm, "typ",
 * "crit", MAC (constant-time comparison) or signature, payload JSON, time
 * claims.  An unauthenticated payload is never parsed.  Asymmetric
 * verifications first look in jwt_pkey.c's verified-token cache; a hit
 * still checks the time claims against the clock.
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
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "jose.h"
#include "jwt.h"
#include "jwt_pkey.h"
#include "medpro.h"

/*
 * jose.c refuses numbers that numeric_in() could not store
 * (JOSE_NUMBER_MAX_SCALE is numeric's 14-bit dscale limit, and
 * JOSE_NUMBER_MAX_WEIGHT keeps within its int16 base-10000 weight), so
 * building the jsonb never raises for a token's number.
 */

/* Length of the unpadded base64url encoding of n bytes. */
#define B64URL_LEN(n)			JOSE_B64URL_LEN(n)

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
 * HMAC (OpenSSL 3 EVP_MAC), with keyed contexts cached per backend
 * ----------------------------------------------------------------------
 */

/*
 * One keyless HMAC context per algorithm, with the digest set: the template
 * from which keyed contexts are duplicated (cheaper than fetching the
 * digest again).
 */
static EVP_MAC *jwt_hmac_mac = NULL;
static EVP_MAC_CTX *jwt_hmac_templates[JWT_NALGS];

/*
 * Keyed contexts, one per (algorithm, key bytes), at most
 * JWT_HMAC_CACHE_SIZE of them, least recently used evicted first.  A MAC
 * with a cached context costs EVP_MAC_init() with a NULL key (which keeps
 * the key and restarts from the precomputed inner and outer pads), update
 * and final; keying anew would hash the key pads again.  The cache holds a
 * copy of each key to find its entry (compared with CRYPTO_memcmp); the
 * copy is wiped and freed with the context on eviction and at backend exit.
 * A rotated key has new bytes, so it simply misses.
 */
#define JWT_HMAC_CACHE_SIZE		8

typedef struct JwtHmacEntry
{
	EVP_MAC_CTX *ctx;			/* keyed; NULL when the slot is free */
	JwtAlg		alg;
	size_t		keylen;
	uint8	   *key;			/* copy, in jwt_hmac_cxt */
	uint64		last_used;
} JwtHmacEntry;

static JwtHmacEntry jwt_hmac_cache[JWT_HMAC_CACHE_SIZE];
static uint64 jwt_hmac_clock = 0;
static MemoryContext jwt_hmac_cxt = NULL;
static bool jwt_hmac_exit_registered = false;

static void
jwt_hmac_entry_free(JwtHmacEntry *e)
{
	if (e->ctx == NULL)
		return;
	EVP_MAC_CTX_free(e->ctx);	/* cleanses its key schedule */
	explicit_bzero(e->key, e->keylen);
	pfree(e->key);
	memset(e, 0, sizeof(*e));
}

/* jwt_hmac_cache_reset: see jwt.h. */
void
jwt_hmac_cache_reset(void)
{
	int			i;

	for (i = 0; i < JWT_HMAC_CACHE_SIZE; i++)
		jwt_hmac_entry_free(&jwt_hmac_cache[i]);
}

/* Backend exit: wipe and free every cached key. */
static void
jwt_hmac_cache_cleanup(int code, Datum arg)
{
	jwt_hmac_cache_reset();
}

/*
 * Make sure the keyless template for desc exists, and the cache's memory.
 * May raise; holds no key.
 */
static void
jwt_hmac_prepare(const JwtAlgDesc *desc)
{
	EVP_MAC_CTX *ctx;
	OSSL_PARAM	params[2];

	if (jwt_hmac_templates[desc->alg] != NULL)
		return;

	if (jwt_hmac_cxt == NULL)
		jwt_hmac_cxt = AllocSetContextCreate(TopMemoryContext,
											 "medpro JWT HMAC keys",
											 ALLOCSET_SMALL_SIZES);
	if (!jwt_hmac_exit_registered)
	{
		on_proc_exit(jwt_hmac_cache_cleanup, (Datum) 0);
		jwt_hmac_exit_registered = true;
	}
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
 * The cached keyed context for (desc, key), made (evicting the least
 * recently used entry) on a miss.  Returns NULL when the crypto library or
 * memory fails; never raises.  jwt_hmac_prepare must have been called.
 */
static EVP_MAC_CTX *
jwt_hmac_context(const JwtAlgDesc *desc, const uint8 *key, size_t keylen)
{
	JwtHmacEntry *victim = &jwt_hmac_cache[0];
	JwtHmacEntry *e;
	EVP_MAC_CTX *ctx;
	uint8	   *copy;
	int			i;

	for (i = 0; i < JWT_HMAC_CACHE_SIZE; i++)
	{
		e = &jwt_hmac_cache[i];
		if (e->ctx != NULL && e->alg == desc->alg && e->keylen == keylen &&
			CRYPTO_memcmp(e->key, key, keylen) == 0)
		{
			e->last_used = ++jwt_hmac_clock;
			return e->ctx;
		}
		if (victim->ctx != NULL &&
			(e->ctx == NULL || e->last_used < victim->last_used))
			victim = e;
	}

	copy = MemoryContextAllocExtended(jwt_hmac_cxt, Max(keylen, 1),
									  MCXT_ALLOC_NO_OOM);
	if (copy == NULL)
		return NULL;
	ctx = EVP_MAC_CTX_dup(jwt_hmac_templates[desc->alg]);
	if (ctx == NULL || EVP_MAC_init(ctx, key, keylen, NULL) != 1)
	{
		EVP_MAC_CTX_free(ctx);
		pfree(copy);
		ERR_clear_error();
		return NULL;
	}
	memcpy(copy, key, keylen);
	jwt_hmac_entry_free(victim);
	victim->ctx = ctx;
	victim->alg = desc->alg;
	victim->keylen = keylen;
	victim->key = copy;
	victim->last_used = ++jwt_hmac_clock;
	return ctx;
}

/*
 * HMAC of data under key into sig; see jwt_sign_fn.  jwt_hmac_prepare must
 * have been called for desc.  Never raises.
 */
static bool
jwt_hmac_sign(const JwtAlgDesc *desc, const uint8 *key, size_t keylen,
			  const char *data, size_t len, uint8 *sig, size_t *siglen)
{
	EVP_MAC_CTX *ctx = jwt_hmac_context(desc, key, keylen);
	size_t		outlen = 0;
	bool		ok;

	/* a NULL key restarts the keyed context without re-keying it */
	ok = (ctx != NULL &&
		  EVP_MAC_init(ctx, NULL, 0, NULL) == 1 &&
		  EVP_MAC_update(ctx, (const unsigned char *) data, len) == 1 &&
		  EVP_MAC_final(ctx, sig, &outlen, EVP_MAX_MD_SIZE) == 1 &&
		  outlen == desc->siglen);
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
 * Intermediate data of one call (the jsonb tree before it is flattened,
 * numbers, signing buffers) lives in a context of our own that is reset at
 * the start of every call (and at the end of signing), so that a query
 * verifying many tokens does not pile them up.  Results are always
 * allocated in the caller's context.  Decoded segments and parser state
 * are not palloc'd at all: they live in jwt_tok (fixed size, jose.h).
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
 * base64url (encoding; jose.c decodes)
 * ----------------------------------------------------------------------
 */

/* Append the unpadded base64url encoding of src[0..len) to buf. */
static void
b64url_encode(StringInfo buf, const uint8 *src, size_t len)
{
	int			n = (int) JOSE_B64URL_LEN(len);

	enlargeStringInfo(buf, n);
	jose_b64url_encode(src, len, buf->data + buf->len);
	buf->len += n;
	buf->data[buf->len] = '\0';
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

/* Outcomes of jwt_jsonb_compact. */
typedef enum JwtCompact
{
	JWT_COMPACT_OK,
	JWT_COMPACT_TOO_LARGE,
	JWT_COMPACT_TOO_DEEP
} JwtCompact;

/*
 * Append the compact JSON text of root (no whitespace, jsonb's own member
 * order) to buf.  Stops as soon as buf grows past limit, or the nesting
 * past JOSE_MAX_DEPTH (verification would refuse the token).
 */
static JwtCompact
jwt_jsonb_compact(StringInfo buf, JsonbContainer *root, int limit)
{
	JsonbIterator *it = JsonbIteratorInit(root);
	JsonbIteratorToken tok;
	JsonbValue	v;
	bool		need_comma = false;
	int			depth = 0;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
			case WJB_BEGIN_ARRAY:
				if (++depth > JOSE_MAX_DEPTH)
					return JWT_COMPACT_TOO_DEEP;
				if (need_comma)
					appendStringInfoChar(buf, ',');
				appendStringInfoChar(buf, tok == WJB_BEGIN_OBJECT ? '{' : '[');
				need_comma = false;
				break;
			case WJB_END_OBJECT:
			case WJB_END_ARRAY:
				depth--;
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
			return JWT_COMPACT_TOO_LARGE;
	}
	return JWT_COMPACT_OK;
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
	JwtCompact	compact;

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
	compact = jwt_jsonb_compact(&json, &payload->root, JWT_MAX_TOKEN_LEN);
	if (compact == JWT_COMPACT_TOO_DEEP)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload is nested too deeply for a token"),
				 errdetail("Tokens with more than %d levels of nested objects and arrays are not accepted.",
						   JOSE_MAX_DEPTH)));
	if (compact != JWT_COMPACT_OK ||
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
 * jsonb from a parsed JSON document (verification)
 * ----------------------------------------------------------------------
 */

/*
 * jose.c parses and checks; these callbacks build the jsonb tree from its
 * events as it goes, so a document is read once.  The strings pushed point
 * into the JoseToken, which outlives JsonbValueToJsonb().
 */
typedef struct JwtBuild
{
	JsonbParseState *pstate;
	JsonbValue *result;			/* the root object, once closed */
	int			depth;
} JwtBuild;

static void
jwt_build_begin(void *arg, JoseType container, bool in_array)
{
	JwtBuild   *b = (JwtBuild *) arg;

	(void) pushJsonbValue(&b->pstate, container == JOSE_OBJECT ?
						  WJB_BEGIN_OBJECT : WJB_BEGIN_ARRAY, NULL);
	b->depth++;
}

static void
jwt_build_end(void *arg, JoseType container)
{
	JwtBuild   *b = (JwtBuild *) arg;
	JsonbValue *res;

	res = pushJsonbValue(&b->pstate, container == JOSE_OBJECT ?
						 WJB_END_OBJECT : WJB_END_ARRAY, NULL);
	if (--b->depth == 0)
		b->result = res;
}

static void
jwt_build_key(void *arg, const char *s, size_t len)
{
	JwtBuild   *b = (JwtBuild *) arg;
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = (int) len;
	(void) pushJsonbValue(&b->pstate, WJB_KEY, &v);
}

/*
 * A JSON number (known to be in range, jose.c checked) as numeric: plain
 * integers of up to 18 digits directly, others through numeric_in().
 */
static Numeric
jwt_number(const char *s, size_t len)
{
	char		buf[64];
	char	   *txt;
	size_t		i = (len > 0 && s[0] == '-') ? 1 : 0;

	if (len - i >= 1 && len - i <= 18)
	{
		int64		v = 0;
		size_t		j;

		for (j = i; j < len && s[j] >= '0' && s[j] <= '9'; j++)
			v = v * 10 + (s[j] - '0');
		if (j == len)
			return int64_to_numeric(i ? -v : v);
	}
	txt = (len < sizeof(buf)) ? buf : palloc(len + 1);
	memcpy(txt, s, len);
	txt[len] = '\0';
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(txt),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

static void
jwt_build_scalar(void *arg, JoseType type, const char *s, size_t len,
				 bool in_array)
{
	JwtBuild   *b = (JwtBuild *) arg;
	JsonbValue	v;

	switch (type)
	{
		case JOSE_STRING:
			v.type = jbvString;
			v.val.string.val = (char *) s;
			v.val.string.len = (int) len;
			break;
		case JOSE_NUMBER:
			v.type = jbvNumeric;
			v.val.numeric = jwt_number(s, len);
			break;
		case JOSE_TRUE:
		case JOSE_FALSE:
			v.type = jbvBool;
			v.val.boolean = (type == JOSE_TRUE);
			break;
		default:
			v.type = jbvNull;
			break;
	}
	(void) pushJsonbValue(&b->pstate, in_array ? WJB_ELEM : WJB_VALUE, &v);
}

static const JoseEvents jwt_build_events = {
	jwt_build_begin, jwt_build_end, jwt_build_key, jwt_build_scalar
};

/* Turn a finished build into a Jsonb in context cxt. */
static Jsonb *
jwt_build_finish(JwtBuild *b, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Jsonb	   *j = JsonbValueToJsonb(b->result);

	MemoryContextSwitchTo(old);
	return j;
}

/* ----------------------------------------------------------------------
 * Verification
 * ----------------------------------------------------------------------
 */

/* Microseconds between the Unix epoch and the PostgreSQL epoch. */
#define JWT_EPOCH_DIFF_USECS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/*
 * The token being checked: decoded segments, parser state and arenas, of
 * fixed size (jose.h).  One per backend: verification never nests.
 */
static JoseToken jwt_tok;

static unsigned
jwt_parse_flags(void)
{
	return GetDatabaseEncoding() != PG_UTF8 ? JOSE_ASCII_ONLY : 0;
}

/*
 * The time checks on parsed claims, shared by the full pipeline and a
 * verified-token cache hit.  Returns NULL or the reason.
 */
static const char *
jwt_check_times(const JwtTimes *t, TimestampTz now, int leeway)
{
	JoseTimes	jt;
	int64		unix_now;

	/* the last instants of timestamptz are past the end of int64 as Unix time */
	if (now > PG_INT64_MAX - JWT_EPOCH_DIFF_USECS)
		unix_now = PG_INT64_MAX;
	else
		unix_now = now + JWT_EPOCH_DIFF_USECS;
	jt.exp = t->exp_us + JWT_EPOCH_DIFF_USECS;
	jt.has_nbf = t->has_nbf;
	jt.nbf = t->nbf_us + JWT_EPOCH_DIFF_USECS;
	jt.has_iat = t->has_iat;
	jt.iat = t->iat_us + JWT_EPOCH_DIFF_USECS;
	return jose_times_hold(&jt, unix_now, (int64) leeway * USECS_PER_SEC);
}

/*
 * The body of jwt_verify_opts, in scratch memory.  Returns NULL when the
 * token is valid, else the reason.  times->valid is set once the signature
 * verified and the payload and its time claims parsed.
 */
static const char *
jwt_verify_internal(const char *token, size_t len,
					const uint8 *key, size_t keylen, const JwtAlgDesc *desc,
					TimestampTz now, int leeway, int flags,
					MemoryContext caller, JwtResult *res, JwtTimes *times)
{
	JoseToken  *t = &jwt_tok;
	unsigned	pflags = jwt_parse_flags();
	JwtBuild	hb;
	JwtBuild	pb;
	const char *reason;
	bool		match;

	memset(&hb, 0, sizeof(hb));
	memset(&pb, 0, sizeof(pb));

	/* structure, base64url, header JSON; the header policy comes after */
	reason = jose_token_open(t, token, len, NULL, pflags,
							 (flags & JWT_VERIFY_HEADER) ? &jwt_build_events : NULL,
							 &hb);
	if (reason != NULL)
		return reason;
	if (flags & JWT_VERIFY_HEADER)
		res->header = jwt_build_finish(&hb, caller);
	/* the algorithm is pinned by the caller, never chosen by the token */
	reason = jose_check_header(&t->hp, desc->name);
	if (reason != NULL)
		return reason;

	if (!desc->check(desc, key, keylen, token, t->seg.signed_len,
					 t->sig, t->sig_len, &match))
		jwt_crypto_failed(desc);
	if (!match)
		return "signature mismatch";

	/* authenticated: now the payload may be parsed */
	reason = jose_json_parse(&t->pp, (const char *) t->payload, t->payload_len,
							 JOSE_DOC_PAYLOAD, pflags,
							 (flags & JWT_VERIFY_PAYLOAD) ? &jwt_build_events : NULL,
							 &pb);
	if (reason != NULL)
		return reason;
	if (flags & JWT_VERIFY_PAYLOAD)
		res->payload = jwt_build_finish(&pb, caller);

	/* the claims are well-formed from here on; only the clock decides */
	reason = jose_read_times(&t->pp, &t->times);
	if (reason != NULL)
		return reason;
	/* to the PostgreSQL epoch, like TimestampTz */
	times->exp_us = t->times.exp - JWT_EPOCH_DIFF_USECS;
	times->has_nbf = t->times.has_nbf;
	times->nbf_us = t->times.nbf - JWT_EPOCH_DIFF_USECS;
	times->has_iat = t->times.has_iat;
	times->iat_us = t->times.iat - JWT_EPOCH_DIFF_USECS;
	times->valid = true;
	return jwt_check_times(times, now, leeway);
}

/*
 * jwt_verify_opts: see jwt.h.  res->header and res->payload are allocated
 * in the caller's context; the payload is only ever built once the
 * signature has been found valid.
 */
void
jwt_verify_opts(const char *token, size_t len,
				const uint8 *key, size_t keylen, JwtAlg alg,
				TimestampTz now, int leeway, int flags, JwtResult *res)
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
	else
	{
		/* the verified-token cache keeps both jsonb values */
		flags = JWT_VERIFY_HEADER | JWT_VERIFY_PAYLOAD;
		if (jwt_token_cache_get(alg, key, keylen, token, len, &times,
								&res->header, &res->payload))
		{
			/* verified before: only the clock can have changed the outcome */
			reason = jwt_check_times(&times, now, leeway);
			res->valid = (reason == NULL);
			res->reason = reason;
			return;
		}
	}

	caller = jwt_scratch_begin();
	reason = jwt_verify_internal(token, len, key, keylen, desc, now, leeway,
								 flags, caller, res, &times);
	/* the scratch memory is reset by the next call's jwt_scratch_begin */
	MemoryContextSwitchTo(caller);

	if (desc->keykind == JWT_KEY_PEM && times.valid)
		jwt_token_cache_put(alg, key, keylen, token, len, &times,
							res->header, res->payload);

	res->valid = (reason == NULL);
	res->reason = reason;
}

/* jwt_verify: see jwt.h. */
void
jwt_verify(const char *token, size_t len,
		   const uint8 *key, size_t keylen, JwtAlg alg,
		   TimestampTz now, int leeway, JwtResult *res)
{
	jwt_verify_opts(token, len, key, keylen, alg, now, leeway,
					JWT_VERIFY_HEADER | JWT_VERIFY_PAYLOAD, res);
}

/*
 * jwt_peek_header: see jwt.h.  The result is in the caller's context.
 */
Jsonb *
jwt_peek_header(const char *token, size_t len, const char **reason)
{
	MemoryContext caller;
	JwtBuild	hb;
	Jsonb	   *header = NULL;

	memset(&hb, 0, sizeof(hb));
	caller = jwt_scratch_begin();
	*reason = jose_token_header(&jwt_tok, token, len, jwt_parse_flags(),
								&jwt_build_events, &hb);
	if (*reason == NULL)
		header = jwt_build_finish(&hb, caller);
	jwt_scratch_end(caller);
	return header;
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
				   int flags, JwtResult *res)
{
	PG_TRY();
	{
		jwt_verify_opts(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token),
						key->data, key->len, alg, now, medpro_jwt_leeway,
						flags, res);
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
	jwt_sql_run_verify(token, &key, alg, now, JWT_VERIFY_PAYLOAD, &res);

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
			jwt_sql_run_verify(token, &key, alg, now,
							   JWT_VERIFY_HEADER | JWT_VERIFY_PAYLOAD, &res);
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
