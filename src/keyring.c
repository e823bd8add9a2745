/*
 * keyring.c
 *	  The JWT keyring: its SQL functions (medpro_key_rotate,
 *	  medpro_key_import, medpro_key_retire, medpro_jwks) over medpro.keys,
 *	  key pair generation, PEM key import and JWK (RFC 7517) export.
 *
 * A row of medpro.keys holds, for HS* keys, the secret sealed under the
 * master key (context 'medpro.keys:<kid>'); for generated asymmetric keys,
 * the PKCS#8 PEM private key sealed the same way and the public key's PEM
 * in public_pem; for imported asymmetric keys only public_pem.  Private
 * and secret material lives in C memory only while it is being sealed and
 * is wiped then; OpenSSL objects are freed on every path, errors included
 * (PG_FINALLY).  medpro_login and medpro_authenticate (auth.c) read the
 * rows; this file writes them.
 */
#include "postgres.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "audit.h"
#include "auth.h"
#include "crypto.h"
#include "jwt.h"
#include "keyring.h"

static const KeyringAlg keyring_algs[] = {
	{"HS256", KEYRING_HMAC, 32, NULL, NULL, 0},
	{"HS384", KEYRING_HMAC, 48, NULL, NULL, 0},
	{"HS512", KEYRING_HMAC, 64, NULL, NULL, 0},
	{"RS256", KEYRING_RSA, 0, NULL, NULL, 0},
	{"RS384", KEYRING_RSA, 0, NULL, NULL, 0},
	{"RS512", KEYRING_RSA, 0, NULL, NULL, 0},
	{"PS256", KEYRING_RSA, 0, NULL, NULL, 0},
	{"PS384", KEYRING_RSA, 0, NULL, NULL, 0},
	{"PS512", KEYRING_RSA, 0, NULL, NULL, 0},
	{"ES256", KEYRING_EC, 0, "prime256v1", "P-256", 32},
	{"ES384", KEYRING_EC, 0, "secp384r1", "P-384", 48},
	{"ES512", KEYRING_EC, 0, "secp521r1", "P-521", 66},
	{"EdDSA", KEYRING_OKP, 0, NULL, "Ed25519", 32},
};

/* Longest kid and issuer accepted by medpro_key_import. */
#define KID_MAX_LEN		64
#define ISSUER_MAX_LEN	256

const KeyringAlg *
keyring_alg(const char *name)
{
	int			i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < lengthof(keyring_algs); i++)
		if (strcmp(keyring_algs[i].name, name) == 0)
			return &keyring_algs[i];
	return NULL;
}

/*
 * The name is repeated in the message only when it looks like an algorithm
 * name, so that a key passed in the wrong argument position is not echoed.
 */
static bool
printable_alg_name(const char *name)
{
	const char *p;

	if (strlen(name) > 16)
		return false;
	for (p = name; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '-' || *p == '_'))
			return false;
	return true;
}

const KeyringAlg *
keyring_alg_from_name(const char *name)
{
	const KeyringAlg *alg = keyring_alg(name);

	if (alg != NULL)
		return alg;
	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("algorithm must not be null")));
	if (printable_alg_name(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported JWT algorithm \"%s\"", name),
				 errhint("Use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unsupported JWT algorithm"),
			 errhint("Use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * OpenSSL helpers. -----------------------------------------------------------
 */

/* Raise an internal error for a failed OpenSSL call, with its error text. */
static void
keyring_openssl_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char		buf[256];

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		strlcpy(buf, "no OpenSSL error reported", sizeof(buf));
	ERR_clear_error();
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("%s", what),
			 errdetail_internal("%s", buf)));
}

/* The contents of a memory BIO as a palloc'd NUL-terminated string. */
static char *
bio_to_cstring(BIO *bio, size_t *len)
{
	char	   *data;
	long		n = BIO_get_mem_data(bio, &data);
	char	   *out;

	if (n <= 0)
		keyring_openssl_error("could not encode a key");
	out = palloc(n + 1);
	memcpy(out, data, n);
	out[n] = '\0';
	if (len)
		*len = (size_t) n;
	return out;
}

/* Public key of pkey as SubjectPublicKeyInfo PEM, palloc'd. */
static char *
public_pem_of(EVP_PKEY *pkey)
{
	BIO		   *volatile bio = NULL;
	char	   *volatile pem = NULL;

	PG_TRY();
	{
		bio = BIO_new(BIO_s_mem());
		if (bio == NULL || PEM_write_bio_PUBKEY(bio, pkey) != 1)
			keyring_openssl_error("could not encode a public key");
		pem = bio_to_cstring(bio, NULL);
	}
	PG_FINALLY();
	{
		BIO_free(bio);
	}
	PG_END_TRY();
	return pem;
}

static EVP_PKEY *
keygen(const KeyringAlg *alg)
{
	switch (alg->kind)
	{
		case KEYRING_RSA:
			return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) KEYRING_RSA_BITS);
		case KEYRING_EC:
			return EVP_PKEY_Q_keygen(NULL, NULL, "EC", alg->group);
		case KEYRING_OKP:
			return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		case KEYRING_HMAC:
			break;
	}
	elog(ERROR, "no key pair for algorithm %s", alg->name);
	return NULL;
}

void
keyring_generate(const KeyringAlg *alg, KeyringPair *out)
{
	EVP_PKEY   *volatile pkey = NULL;
	BIO		   *volatile priv = NULL;

	out->private_pem = NULL;
	out->public_pem = NULL;
	PG_TRY();
	{
		pkey = keygen(alg);
		if (pkey == NULL)
			keyring_openssl_error("could not generate a key pair");
		/* a secure-heap BIO: its buffer is cleared when freed */
		priv = BIO_new(BIO_s_secmem());
		if (priv == NULL ||
			PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) != 1)
			keyring_openssl_error("could not encode a private key");
		out->private_pem = bio_to_cstring(priv, &out->private_len);
		out->public_pem = public_pem_of(pkey);
	}
	PG_CATCH();
	{
		if (out->private_pem)
			crypto_wipe(out->private_pem, out->private_len);
		EVP_PKEY_free(pkey);
		BIO_free(priv);
		PG_RE_THROW();
	}
	PG_END_TRY();
	EVP_PKEY_free(pkey);
	BIO_free(priv);
}

/*
 * PEM import. ----------------------------------------------------------------
 */

static const char *
kind_needs(const KeyringAlg *alg)
{
	switch (alg->kind)
	{
		case KEYRING_RSA:
			return "an RSA key";
		case KEYRING_EC:
			return psprintf("an EC key on curve %s", alg->crv);
		case KEYRING_OKP:
			return "an Ed25519 key";
		case KEYRING_HMAC:
			break;
	}
	return "a secret";
}

/* What pkey is, in words, for error details. */
static const char *
pkey_description(EVP_PKEY *pkey)
{
	char		group[64];

	switch (EVP_PKEY_get_base_id(pkey))
	{
		case EVP_PKEY_RSA:
			return psprintf("an RSA key of %d bits", EVP_PKEY_get_bits(pkey));
		case EVP_PKEY_RSA_PSS:
			return "an RSA-PSS-restricted key";
		case EVP_PKEY_EC:
			if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
											   group, sizeof(group), NULL) == 1)
			{
				int			i;

				/* the JOSE name when the curve has one */
				for (i = 0; i < lengthof(keyring_algs); i++)
					if (keyring_algs[i].group && strcmp(keyring_algs[i].group, group) == 0)
						return psprintf("an EC key on curve %s", keyring_algs[i].crv);
				return psprintf("an EC key on curve %s", group);
			}
			return "an EC key";
		case EVP_PKEY_ED25519:
			return "an Ed25519 key";
		case EVP_PKEY_ED448:
			return "an Ed448 key";
	}
	return psprintf("a %s key", EVP_PKEY_get0_type_name(pkey));
}

/* Whether pkey is the kind of key alg needs; else raise 22023. */
static void
check_fits(const KeyringAlg *alg, EVP_PKEY *pkey)
{
	int			id = EVP_PKEY_get_base_id(pkey);
	bool		fits = false;
	char		group[64];

	switch (alg->kind)
	{
		case KEYRING_RSA:
			fits = id == EVP_PKEY_RSA;
			break;
		case KEYRING_EC:
			fits = id == EVP_PKEY_EC &&
				EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
											   group, sizeof(group), NULL) == 1 &&
				strcmp(group, alg->group) == 0;
			break;
		case KEYRING_OKP:
			fits = id == EVP_PKEY_ED25519;
			break;
		case KEYRING_HMAC:
			break;
	}
	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key type does not fit %s", alg->name),
				 errdetail("The key is %s; %s needs %s.", pkey_description(pkey),
						   alg->name, kind_needs(alg))));
	if (alg->kind == KEYRING_RSA && EVP_PKEY_get_bits(pkey) < KEYRING_RSA_MIN_BITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("RSA key too short for %s", alg->name),
				 errdetail("The key has %d bits; at least %d are required.",
						   EVP_PKEY_get_bits(pkey), KEYRING_RSA_MIN_BITS)));
}

static void
not_pem(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("key is not a PEM key"),
			 errdetail("The key must be exactly one PEM block, such as -----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----."),
			 errhint("Export the issuer's public key with \"openssl pkey -pubout\".")));
}

/*
 * Find the one PEM block of text, which only whitespace may surround: its
 * label (palloc'd) and, in *start, the offset of its BEGIN line.  Raises
 * 22023 for anything else.
 */
static char *
pem_label(const char *text, size_t len, size_t *start)
{
	const char *p = text;
	const char *end = text + len;
	const char *lab;
	const char *lab_end;
	char	   *label;
	char	   *trailer;
	const char *t;

	while (p < end && isspace((unsigned char) *p))
		p++;
	if ((size_t) (end - p) < 11 || memcmp(p, "-----BEGIN ", 11) != 0)
		not_pem();
	*start = p - text;
	lab = p + 11;
	for (lab_end = lab; lab_end < end && *lab_end != '-' && *lab_end != '\n'; lab_end++)
		if (!(isupper((unsigned char) *lab_end) || isdigit((unsigned char) *lab_end) ||
			  *lab_end == ' '))
			not_pem();
	if (lab_end == lab || lab_end - lab > 40 || (size_t) (end - lab_end) < 5 ||
		memcmp(lab_end, "-----", 5) != 0)
		not_pem();
	label = pnstrdup(lab, lab_end - lab);
	trailer = psprintf("-----END %s-----", label);
	/* the END line, then only whitespace */
	for (t = lab_end + 5; t + strlen(trailer) <= end; t++)
		if (memcmp(t, trailer, strlen(trailer)) == 0)
			break;
	if (t + strlen(trailer) > end)
		not_pem();
	for (t += strlen(trailer); t < end; t++)
		if (!isspace((unsigned char) *t))
			not_pem();
	return label;
}

static int
no_passphrase(char *buf, size_t size, size_t *len, const OSSL_PARAM *params, void *arg)
{
	return 0;
}

char *
keyring_import_pem(const KeyringAlg *alg, const char *text, size_t len, bool *had_private)
{
	size_t		start;
	char	   *label = pem_label(text, len, &start);
	int			selection;
	EVP_PKEY   *volatile pkey = NULL;
	OSSL_DECODER_CTX *volatile dctx = NULL;
	EVP_PKEY_CTX *volatile pctx = NULL;
	char	   *volatile pem = NULL;

	*had_private = strcmp(label, "PRIVATE KEY") == 0 || strcmp(label, "RSA PRIVATE KEY") == 0 ||
		strcmp(label, "EC PRIVATE KEY") == 0;
	selection = *had_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY;
	/* legacy PEM encryption keeps the label and adds headers */
	if (*had_private && memmem(text, len, "Proc-Type: 4,ENCRYPTED", 22) != NULL)
		label = "ENCRYPTED PRIVATE KEY";
	if (strcmp(label, "ENCRYPTED PRIVATE KEY") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("encrypted private keys are not accepted"),
				 errhint("Pass the issuer's public key (\"openssl pkey -pubout\").")));
	if (!*had_private && strcmp(label, "PUBLIC KEY") != 0 && strcmp(label, "RSA PUBLIC KEY") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported PEM type \"%s\"", label),
				 errhint("Pass a PUBLIC KEY block; for a certificate, extract it with \"openssl x509 -pubkey -noout\".")));

	PG_TRY();
	{
		const unsigned char *data = (const unsigned char *) text + start;
		size_t		datalen = len - start;

		dctx = OSSL_DECODER_CTX_new_for_pkey((EVP_PKEY **) &pkey, "PEM", NULL, NULL,
											 selection, NULL, NULL);
		/* never ask for a passphrase: a callback that always fails */
		if (dctx == NULL ||
			OSSL_DECODER_CTX_set_passphrase_cb(dctx, no_passphrase, NULL) != 1)
			keyring_openssl_error("could not set up a PEM decoder");
		if (OSSL_DECODER_from_data(dctx, &data, &datalen) != 1 || pkey == NULL)
		{
			ERR_clear_error();
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key is not a valid PEM %s", *had_private ? "private key" : "public key"),
					 errdetail("OpenSSL could not decode the %s block.", label)));
		}
		check_fits(alg, pkey);
		pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		if (pctx == NULL || EVP_PKEY_public_check(pctx) != 1)
		{
			ERR_clear_error();
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key is not a valid %s public key", alg->name)));
		}
		pem = public_pem_of(pkey);
	}
	PG_FINALLY();
	{
		EVP_PKEY_CTX_free(pctx);
		OSSL_DECODER_CTX_free(dctx);
		EVP_PKEY_free(pkey);
	}
	PG_END_TRY();
	return pem;
}

/*
 * JWK export. ---------------------------------------------------------------
 */

static const char b64url_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Append "name":"<unpadded base64url of src>" to buf. */
static void
append_b64url_member(StringInfo buf, const char *name, const uint8 *src, size_t len)
{
	size_t		i;

	appendStringInfo(buf, ",\"%s\":\"", name);
	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = (src[i] << 16) | (src[i + 1] << 8) | src[i + 2];

		appendStringInfoChar(buf, b64url_alphabet[(v >> 18) & 63]);
		appendStringInfoChar(buf, b64url_alphabet[(v >> 12) & 63]);
		appendStringInfoChar(buf, b64url_alphabet[(v >> 6) & 63]);
		appendStringInfoChar(buf, b64url_alphabet[v & 63]);
	}
	if (len - i == 1)
	{
		uint32		v = src[i] << 16;

		appendStringInfoChar(buf, b64url_alphabet[(v >> 18) & 63]);
		appendStringInfoChar(buf, b64url_alphabet[(v >> 12) & 63]);
	}
	else if (len - i == 2)
	{
		uint32		v = (src[i] << 16) | (src[i + 1] << 8);

		appendStringInfoChar(buf, b64url_alphabet[(v >> 18) & 63]);
		appendStringInfoChar(buf, b64url_alphabet[(v >> 12) & 63]);
		appendStringInfoChar(buf, b64url_alphabet[(v >> 6) & 63]);
	}
	appendStringInfoChar(buf, '"');
}

/*
 * Append a big-endian unsigned parameter of pkey: its minimal bytes
 * (pad = 0: RSA n and e, no leading zero byte) or exactly pad bytes (EC
 * coordinates, zero-padded to the field size).
 */
static void
append_bn_member(StringInfo buf, const char *name, EVP_PKEY *pkey,
				 const char *param, int pad)
{
	BIGNUM	   *volatile bn = NULL;

	PG_TRY();
	{
		uint8	   *bytes;
		int			n;

		if (EVP_PKEY_get_bn_param(pkey, param, (BIGNUM **) &bn) != 1)
			keyring_openssl_error("could not read a public key parameter");
		n = pad > 0 ? pad : BN_num_bytes(bn);
		bytes = palloc(n > 0 ? n : 1);
		if ((pad > 0 ? BN_bn2binpad(bn, bytes, pad) : BN_bn2bin(bn, bytes)) != n)
			keyring_openssl_error("could not encode a public key parameter");
		append_b64url_member(buf, name, bytes, n);
	}
	PG_FINALLY();
	{
		BN_free(bn);
	}
	PG_END_TRY();
}

void
keyring_append_jwk(StringInfo buf, const KeyringAlg *alg, const char *kid,
				   const char *public_pem)
{
	BIO		   *volatile bio = NULL;
	EVP_PKEY   *volatile pkey = NULL;

	PG_TRY();
	{
		bio = BIO_new_mem_buf(public_pem, -1);
		if (bio == NULL)
			keyring_openssl_error("could not read a public key");
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		if (pkey == NULL)
			keyring_openssl_error("could not read a stored public key");
		check_fits(alg, pkey);

		appendStringInfoString(buf, "{\"kty\":");
		switch (alg->kind)
		{
			case KEYRING_RSA:
				appendStringInfoString(buf, "\"RSA\"");
				break;
			case KEYRING_EC:
				appendStringInfoString(buf, "\"EC\"");
				break;
			case KEYRING_OKP:
				appendStringInfoString(buf, "\"OKP\"");
				break;
			case KEYRING_HMAC:
				elog(ERROR, "an HMAC key has no public JWK");
		}
		appendStringInfoString(buf, ",\"kid\":");
		escape_json(buf, kid);
		appendStringInfo(buf, ",\"use\":\"sig\",\"alg\":\"%s\"", alg->name);
		switch (alg->kind)
		{
			case KEYRING_RSA:
				append_bn_member(buf, "n", pkey, OSSL_PKEY_PARAM_RSA_N, 0);
				append_bn_member(buf, "e", pkey, OSSL_PKEY_PARAM_RSA_E, 0);
				break;
			case KEYRING_EC:
				appendStringInfo(buf, ",\"crv\":\"%s\"", alg->crv);
				append_bn_member(buf, "x", pkey, OSSL_PKEY_PARAM_EC_PUB_X, alg->coord_len);
				append_bn_member(buf, "y", pkey, OSSL_PKEY_PARAM_EC_PUB_Y, alg->coord_len);
				break;
			case KEYRING_OKP:
				{
					uint8		raw[32];
					size_t		rawlen = sizeof(raw);

					if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 ||
						rawlen != (size_t) alg->coord_len)
						keyring_openssl_error("could not read an Ed25519 public key");
					appendStringInfo(buf, ",\"crv\":\"%s\"", alg->crv);
					append_b64url_member(buf, "x", raw, rawlen);
				}
				break;
			case KEYRING_HMAC:
				break;
		}
		appendStringInfoChar(buf, '}');
	}
	PG_FINALLY();
	{
		EVP_PKEY_free(pkey);
		BIO_free(bio);
	}
	PG_END_TRY();
}

/*
 * SQL functions. -------------------------------------------------------------
 */

static char *
sealing_context(const char *kid)
{
	return psprintf("medpro.keys:%s", kid);
}

/*
 * Something in the keyring changed: no cached verification in this backend
 * may outlive it, and no cached copy of a retired secret stays in memory.
 * (Other backends look a token's key up in medpro.keys on every call, so a
 * retired key is refused there as soon as this commits.)
 */
static void
keyring_changed(void)
{
	jwt_token_cache_reset();
	jwt_hmac_cache_reset();
}

/*
 * Insert a key row.  A generated key becomes the active signing key (the
 * previous one turns verify-only); an imported one is verify-only.
 */
static void
store_key(const char *kid, const KeyringAlg *alg, bytea *sealed,
		  const char *public_pem, const char *issuer, bool imported)
{
	Oid			types[6] = {TEXTOID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID, BOOLOID};
	Datum		args[6];
	char		nulls[6] = "      ";
	int			rc;

	args[0] = CStringGetTextDatum(kid);
	args[1] = CStringGetTextDatum(alg->name);
	args[2] = PointerGetDatum(sealed);
	if (sealed == NULL)
		nulls[2] = 'n';
	args[3] = public_pem ? CStringGetTextDatum(public_pem) : (Datum) 0;
	if (public_pem == NULL)
		nulls[3] = 'n';
	args[4] = issuer ? CStringGetTextDatum(issuer) : (Datum) 0;
	if (issuer == NULL)
		nulls[4] = 'n';
	args[5] = BoolGetDatum(imported);

	if (!imported)
	{
		rc = SPI_execute("UPDATE medpro.keys SET status = 'verify' WHERE status = 'active'",
						 false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "could not demote the active key: %s", SPI_result_code_string(rc));
	}
	/* clock_timestamp: keys made in one transaction still have an order */
	rc = SPI_execute_with_args("INSERT INTO medpro.keys (kid, algorithm, secret_sealed, public_pem, "
							   "                         issuer, status, source, created_at) "
							   "VALUES ($1, $2, $3, $4, $5, "
							   "        CASE WHEN $6 THEN 'verify' ELSE 'active' END, "
							   "        CASE WHEN $6 THEN 'imported' ELSE 'generated' END, "
							   "        clock_timestamp())",
							   6, types, args, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not store key: %s", SPI_result_code_string(rc));
}

static void
audit_key(const char *action, const char *kid, const KeyringAlg *alg)
{
	audit_write(NULL, NULL, action, "key", kid, NULL,
				alg ? psprintf("{\"algorithm\": \"%s\"}", alg->name) : NULL, false);
}

/* SQL: medpro_key_rotate(algorithm text DEFAULT 'HS256') RETURNS text */
PG_FUNCTION_INFO_V1(medpro_key_rotate);
Datum
medpro_key_rotate(PG_FUNCTION_ARGS)
{
	const KeyringAlg *alg;
	uint8		kidbytes[9];
	char		kid[32];
	int			i;

	if (!auth_caller_is_operator())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to rotate keys"),
				 errhint("Only members of medpro_operator may do this.")));
	alg = keyring_alg_from_name(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)));
	/* fail before the work of generating a key when sealing cannot work */
	crypto_check_master_key();

	crypto_random_bytes(kidbytes, sizeof(kidbytes));
	strcpy(kid, "mp");
	for (i = 0; i < (int) sizeof(kidbytes); i++)
		snprintf(kid + 2 + 2 * i, 3, "%02x", kidbytes[i]);

	SPI_connect();
	if (alg->kind == KEYRING_HMAC)
	{
		uint8		secret[64];
		bytea	   *volatile sealed = NULL;

		Assert(alg->secret_len <= (int) sizeof(secret));
		crypto_random_bytes(secret, alg->secret_len);
		PG_TRY();
		{
			sealed = crypto_seal(secret, alg->secret_len, sealing_context(kid));
		}
		PG_FINALLY();
		{
			crypto_wipe(secret, sizeof(secret));
		}
		PG_END_TRY();
		store_key(kid, alg, sealed, NULL, NULL, false);
	}
	else
	{
		KeyringPair pair;
		bytea	   *volatile sealed = NULL;

		keyring_generate(alg, &pair);
		PG_TRY();
		{
			sealed = crypto_seal((const uint8 *) pair.private_pem, pair.private_len,
								 sealing_context(kid));
		}
		PG_FINALLY();
		{
			crypto_wipe(pair.private_pem, pair.private_len);
		}
		PG_END_TRY();
		store_key(kid, alg, sealed, pair.public_pem, NULL, false);
	}
	audit_key("key_rotate", kid, alg);
	SPI_finish();
	keyring_changed();

	PG_RETURN_TEXT_P(cstring_to_text(kid));
}

/* Whether text, after leading whitespace, starts a PEM block. */
static bool
looks_like_pem(const char *text, size_t len)
{
	size_t		i = 0;

	while (i < len && isspace((unsigned char) text[i]))
		i++;
	return len - i >= 10 && memcmp(text + i, "-----BEGIN", 10) == 0;
}

/*
 * SQL: medpro_key_import(kid text, algorithm text, key text,
 *                        issuer text DEFAULT NULL) RETURNS void
 */
PG_FUNCTION_INFO_V1(medpro_key_import);
Datum
medpro_key_import(PG_FUNCTION_ARGS)
{
	char	   *kid;
	const KeyringAlg *alg;
	text	   *key;
	const char *keydata;
	size_t		keylen;
	char	   *issuer = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	int			i;

	/* whoever chooses an imported key can mint tokens: superusers only */
	if (!superuser_arg(GetOuterUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to import keys"),
				 errhint("Only superusers may import keys.")));
	kid = auth_text_arg(fcinfo, 0, "kid");
	alg = keyring_alg_from_name(PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must not be null")));
	key = PG_GETARG_TEXT_PP(2);
	keydata = VARDATA_ANY(key);
	keylen = VARSIZE_ANY_EXHDR(key);
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		issuer = text_to_cstring(PG_GETARG_TEXT_PP(3));
		if (strlen(issuer) == 0 || strlen(issuer) > ISSUER_MAX_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("issuer must have 1 to %d bytes", ISSUER_MAX_LEN)));
	}

	if (strlen(kid) == 0 || strlen(kid) > KID_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kid must have 1 to %d characters", KID_MAX_LEN)));
	for (i = 0; kid[i]; i++)
		if (!(isalnum((unsigned char) kid[i]) || kid[i] == '-' || kid[i] == '_' || kid[i] == '.'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("kid may only contain letters, digits, \".\", \"-\" and \"_\"")));

	SPI_connect();
	args[0] = CStringGetTextDatum(kid);
	if (SPI_execute_with_args("SELECT 1 FROM medpro.keys WHERE kid = $1", 1, types, args,
							  NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up key");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("key \"%s\" already exists", kid)));

	if (alg->kind == KEYRING_HMAC)
	{
		if (looks_like_pem(keydata, keylen))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key type does not fit %s", alg->name),
					 errdetail("The key is a PEM key; %s needs a secret.", alg->name),
					 errhint("Import a public key under RS*, PS*, ES* or EdDSA.")));
		if (keylen < (size_t) alg->secret_len)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("HMAC key too short for %s", alg->name),
					 errdetail("The key has %zu bytes; RFC 7518 section 3.2 requires at least %d.",
							   keylen, alg->secret_len)));
		store_key(kid, alg, crypto_seal((const uint8 *) keydata, keylen, sealing_context(kid)),
				  NULL, issuer, true);
	}
	else
	{
		bool		had_private;
		char	   *pem = keyring_import_pem(alg, keydata, keylen, &had_private);

		store_key(kid, alg, NULL, pem, issuer, true);
		/* a detoasted copy of a private key is ours: wipe it */
		if (had_private && (Pointer) key != DatumGetPointer(PG_GETARG_DATUM(2)))
			crypto_wipe(VARDATA_ANY(key), keylen);
		if (had_private)
			ereport(NOTICE,
					(errmsg("only the public part of the private key was kept"),
					 errdetail("Imported keys only verify; medpro does not store an imported private key.")));
	}
	audit_key("key_import", kid, alg);
	SPI_finish();
	keyring_changed();

	PG_RETURN_VOID();
}

/* SQL: medpro_key_retire(kid text) RETURNS void */
PG_FUNCTION_INFO_V1(medpro_key_retire);
Datum
medpro_key_retire(PG_FUNCTION_ARGS)
{
	char	   *kid;
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	char	   *status;

	if (!auth_caller_is_operator())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to retire keys"),
				 errhint("Only members of medpro_operator may do this.")));
	kid = auth_text_arg(fcinfo, 0, "kid");

	SPI_connect();
	args[0] = CStringGetTextDatum(kid);
	if (SPI_execute_with_args("SELECT status FROM medpro.keys WHERE kid = $1 FOR UPDATE",
							  1, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not look up key");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key \"%s\" does not exist", kid)));
	status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(status, "retired") != 0)
	{
		if (SPI_execute_with_args("UPDATE medpro.keys "
								  "   SET status = 'retired', retired_at = now(), secret_sealed = NULL "
								  " WHERE kid = $1",
								  1, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not retire key");
		audit_key("key_retire", kid, NULL);
	}
	SPI_finish();
	keyring_changed();

	PG_RETURN_VOID();
}

/* SQL: medpro_jwks() RETURNS jsonb */
PG_FUNCTION_INFO_V1(medpro_jwks);
Datum
medpro_jwks(PG_FUNCTION_ARGS)
{
	StringInfoData buf;
	uint64		i;
	Jsonb	   *result;

	SPI_connect();
	if (SPI_execute("SELECT kid, algorithm, public_pem FROM medpro.keys "
					" WHERE status <> 'retired' AND public_pem IS NOT NULL "
					" ORDER BY status = 'active' DESC, created_at DESC, kid",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the keyring");
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"keys\":[");
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *kid = SPI_getvalue(row, desc, 1);
		char	   *algname = SPI_getvalue(row, desc, 2);
		const KeyringAlg *alg = keyring_alg(algname);

		if (alg == NULL || alg->kind == KEYRING_HMAC)
			continue;
		if (buf.data[buf.len - 1] != '[')
			appendStringInfoChar(&buf, ',');
		keyring_append_jwk(&buf, alg, kid, SPI_getvalue(row, desc, 3));
	}
	appendStringInfoString(&buf, "]}");
	result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
	result = (Jsonb *) DatumGetPointer(SPI_datumTransfer(JsonbPGetDatum(result), false, -1));
	SPI_finish();

	PG_RETURN_JSONB_P(result);
}
