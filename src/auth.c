/*
 * auth.c
 *	  Password hashing policy, medpro_login and medpro_authenticate (which
 *	  read the keyring that keyring.c writes).
 *
 * These functions run as SECURITY DEFINER (the extension owner) with a
 * pinned search_path; every catalog access is schema-qualified SPI.  Key
 * material and unsealed secrets exist only in C memory and are wiped as soon
 * as they have been used.  medpro_authenticate is the only caller of
 * tenant_set(): the tenant context is written after, and only after, a
 * token verified against the keyring, the user and the clinic.
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "auth.h"
#include "crypto.h"
#include "jwt.h"
#include "keyring.h"
#include "medpro.h"
#include "remote.h"
#include "tenant.h"

#define PASSWORD_MIN_LEN	12
#define PASSWORD_MAX_LEN	CRYPTO_PASSWORD_MAX_LEN
#define EMAIL_MAX_LEN		254

/* One row of medpro.keys, as the verifier needs it. */
typedef struct KeyRow
{
	char	   *kid;
	char	   *algorithm;
	bytea	   *secret_sealed;	/* HS*: the sealed secret */
	char	   *public_pem;		/* RS*, PS*, ES*, EdDSA: the public key */
	char	   *issuer;
	bool		imported;
	bool		retired;
} KeyRow;

bool
auth_caller_is_operator(void)
{
	Oid			outer = GetOuterUserId();
	Oid			op = get_role_oid("medpro_operator", true);

	if (superuser_arg(outer))
		return true;
	return OidIsValid(op) && has_privs_of_role(outer, op);
}

char *
auth_text_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

static char *
uuid_to_cstring(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

/* Random version-4 UUID text, for jti. */
static char *
random_uuid_text(void)
{
	pg_uuid_t	u;

	crypto_random_bytes(u.data, UUID_LEN);
	u.data[6] = (u.data[6] & 0x0f) | 0x40;
	u.data[8] = (u.data[8] & 0x3f) | 0x80;
	return uuid_to_cstring(&u);
}

static char *
sealing_context(const char *kid)
{
	return psprintf("medpro.keys:%s", kid);
}

/*
 * Saved plans of the catalog queries below, keyed by the address of their
 * SQL text (always a string literal), so that login and authentication do
 * not parse and plan their lookups on every call.  The plan cache
 * invalidates them when the catalog changes.
 */
#define MAX_SAVED_PLANS 16

typedef struct SavedPlan
{
	const char *sql;
	SPIPlanPtr	plan;
} SavedPlan;

static SavedPlan saved_plans[MAX_SAVED_PLANS];

/* Run a query (a string literal) with text parameters; returns SPI_processed. */
static uint64
spi_exec(const char *sql, int nargs, const char *const *values, bool read_only)
{
	Oid			types[8];
	Datum		args[8];
	char		nulls[8];
	SPIPlanPtr	plan = NULL;
	int			i;
	int			rc;

	Assert(nargs <= 8);
	for (i = 0; i < nargs; i++)
	{
		types[i] = TEXTOID;
		args[i] = values[i] ? CStringGetTextDatum(values[i]) : (Datum) 0;
		nulls[i] = values[i] ? ' ' : 'n';
	}
	for (i = 0; i < MAX_SAVED_PLANS && saved_plans[i].sql != NULL; i++)
	{
		if (saved_plans[i].sql == sql)
		{
			plan = saved_plans[i].plan;
			break;
		}
	}
	if (plan == NULL)
	{
		plan = SPI_prepare(sql, nargs, types);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (i < MAX_SAVED_PLANS && SPI_keepplan(plan) == 0)
		{
			saved_plans[i].sql = sql;
			saved_plans[i].plan = plan;
		}
	}
	rc = SPI_execute_plan(plan, args, nargs ? nulls : NULL, read_only, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* Column of the current SPI result row as a palloc'd C string, or NULL. */
static char *
spi_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

static bytea *
spi_bytea(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
								  col, &isnull);

	if (isnull)
		return NULL;
	return DatumGetByteaPCopy(d);
}

static bool
spi_bool(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
								  col, &isnull);

	return !isnull && DatumGetBool(d);
}

/* SQL: medpro.password_hash(password text, email text) RETURNS text */
PG_FUNCTION_INFO_V1(medpro_password_hash);
Datum
medpro_password_hash(PG_FUNCTION_ARGS)
{
	text	   *pw;
	char	   *pwstr;
	size_t		len;
	char	   *phc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must not be null")));
	pw = PG_GETARG_TEXT_PP(0);
	len = VARSIZE_ANY_EXHDR(pw);
	if (len > PASSWORD_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password is too long"),
				 errdetail("Passwords have at most %d bytes.", PASSWORD_MAX_LEN)));
	pwstr = text_to_cstring(pw);
	if (pg_mbstrlen_with_len(pwstr, len) < PASSWORD_MIN_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password is too short"),
				 errdetail("Passwords have at least %d characters.", PASSWORD_MIN_LEN)));
	if (!PG_ARGISNULL(1))
	{
		char	   *email = text_to_cstring(PG_GETARG_TEXT_PP(1));
		char	   *lower_pw = str_tolower(pwstr, len, DEFAULT_COLLATION_OID);
		char	   *lower_email = str_tolower(email, strlen(email), DEFAULT_COLLATION_OID);
		char	   *at = strchr(lower_email, '@');

		if (at)
			*at = '\0';
		if (strlen(lower_email) >= 4 && strstr(lower_pw, lower_email) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("password must not contain the account's email address")));
		crypto_wipe(lower_pw, strlen(lower_pw));
	}
	phc = crypto_password_hash(pwstr, len);
	crypto_wipe(pwstr, len);
	PG_RETURN_TEXT_P(cstring_to_text(phc));
}

/* SQL: medpro.caller_is_operator() RETURNS boolean */
PG_FUNCTION_INFO_V1(medpro_caller_is_operator);
Datum
medpro_caller_is_operator(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(auth_caller_is_operator());
}

/* SQL: medpro.context(OUT clinic_id uuid, OUT user_id uuid, OUT role text) */
PG_FUNCTION_INFO_V1(medpro_context);
Datum
medpro_context(PG_FUNCTION_ARGS)
{
	const TenantContext *ctx = tenant_get();
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {true, true, true};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (ctx)
	{
		if (ctx->has_clinic)
		{
			pg_uuid_t  *c = palloc(sizeof(pg_uuid_t));

			*c = ctx->clinic_id;
			values[0] = UUIDPGetDatum(c);
			nulls[0] = false;
		}
		values[1] = UUIDPGetDatum(&((TenantContext *) ctx)->user_id);
		nulls[1] = false;
		values[2] = CStringGetTextDatum(ctx->role);
		nulls[2] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * Login. -----------------------------------------------------------------
 */

/*
 * Whether an unknown login name looks like an email address, and so may be
 * recorded: anything else may be a password typed into the wrong field.
 */
static bool
email_shaped(const char *s)
{
	const char *at = strchr(s, '@');
	const char *p;

	if (at == NULL || at == s || strchr(at + 1, '@') || strchr(at + 1, '.') == NULL ||
		strlen(s) > EMAIL_MAX_LEN)
		return false;
	for (p = s; *p; p++)
		if ((unsigned char) *p <= ' ')
			return false;
	return true;
}

static void
login_refuse(const char *user_id, const char *email, const char *reason)
{
	const char *values[6];

	values[0] = user_id;
	values[1] = email_shaped(email) ? email : NULL;
	values[2] = reason;
	values[3] = audit_client_addr();
	values[4] = psprintf("%d", medpro_login_max_failures);
	values[5] = psprintf("%d", medpro_login_lockout);
	remote_autonomous_exec("SELECT medpro.login_failed($1::uuid, $2, $3, $4::inet, $5::int, $6::int)",
						   6, values);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PASSWORD),
			 errmsg("invalid email or password")));
}

/* Append "key": value (a JSON string, or null) to buf. */
static void
json_member(StringInfo buf, const char *key, const char *value)
{
	if (buf->len > 1)
		appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	if (value)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
}

/* SQL: medpro_login(email text, password text) RETURNS text */
PG_FUNCTION_INFO_V1(medpro_login);
Datum
medpro_login(PG_FUNCTION_ARGS)
{
	char	   *email = auth_text_arg(fcinfo, 0, "email");
	text	   *pw;
	char	   *pwstr;
	size_t		pwlen;
	const char *v[1];
	char	   *user_id = NULL;
	char	   *clinic_id = NULL;
	char	   *role = NULL;
	char	   *db_email = NULL;
	char	   *phc = NULL;
	char	   *token_version = NULL;
	char	   *clinic_status = NULL;
	bool		found;
	bool		active = false;
	bool		locked = false;
	bool		ok;
	StringInfoData claims;
	int64		now;
	char	   *kid;
	JwtAlg		alg;
	bytea	   *sealed;
	uint8	   *secret;
	size_t		secret_len;
	char	   *token;
	text	   *result;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must not be null")));
	pw = PG_GETARG_TEXT_PP(1);
	pwlen = VARSIZE_ANY_EXHDR(pw);
	pwstr = text_to_cstring(pw);

	SPI_connect();
	v[0] = email;
	found = strlen(email) <= EMAIL_MAX_LEN &&
		spi_exec("SELECT u.id, u.clinic_id, u.role, u.email, u.password_hash, "
				 "       u.is_active, u.token_version, "
				 "       coalesce(u.locked_until > clock_timestamp(), false), c.status "
				 "  FROM medpro.users u LEFT JOIN medpro.clinics c ON c.id = u.clinic_id "
				 " WHERE lower(u.email) = lower($1) AND u.deleted_at IS NULL",
				 1, v, true) == 1;
	if (found)
	{
		user_id = spi_text(0, 1);
		clinic_id = spi_text(0, 2);
		role = spi_text(0, 3);
		db_email = spi_text(0, 4);
		phc = spi_text(0, 5);
		active = spi_bool(0, 6);
		token_version = spi_text(0, 7);
		locked = spi_bool(0, 8);
		clinic_status = spi_text(0, 9);
	}

	/* The same Argon2 work is done whether or not the user exists. */
	if (found && pwlen <= PASSWORD_MAX_LEN)
		ok = crypto_password_verify(phc, pwstr, pwlen);
	else
	{
		crypto_password_verify_dummy(pwstr, pwlen <= PASSWORD_MAX_LEN ? pwlen : 0);
		ok = false;
	}
	crypto_wipe(pwstr, pwlen);

	if (!found)
		login_refuse(NULL, email, "unknown email");
	if (locked)
		login_refuse(user_id, db_email, "account locked");
	if (!ok)
		login_refuse(user_id, db_email, "wrong password");
	if (!active)
		login_refuse(user_id, db_email, "user inactive");
	if (clinic_id && (clinic_status == NULL || strcmp(clinic_status, "active") != 0))
	{
		if (clinic_status && strcmp(clinic_status, "suspended") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("clinic is suspended")));
		login_refuse(user_id, db_email, "clinic not active");
	}

	/* The signing key. */
	if (spi_exec("SELECT kid, algorithm, secret_sealed FROM medpro.keys WHERE status = 'active'",
				 0, NULL, true) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no active signing key"),
				 errhint("An operator must call medpro_key_rotate() first.")));
	kid = spi_text(0, 1);
	alg = jwt_alg_from_name(spi_text(0, 2));
	sealed = spi_bytea(0, 3);

	now = (int64) timestamptz_to_time_t(GetCurrentTimestamp());
	initStringInfo(&claims);
	appendStringInfoChar(&claims, '{');
	json_member(&claims, "iss", medpro_jwt_issuer ? medpro_jwt_issuer : "medpro");
	if (medpro_jwt_audience && medpro_jwt_audience[0])
		json_member(&claims, "aud", medpro_jwt_audience);
	json_member(&claims, "sub", user_id);
	json_member(&claims, "clinic_id", clinic_id);
	json_member(&claims, "role", role);
	json_member(&claims, "email", db_email);
	json_member(&claims, "jti", random_uuid_text());
	appendStringInfo(&claims, ",\"iat\":" INT64_FORMAT ",\"exp\":" INT64_FORMAT ",\"ver\":%s}",
					 now, now + medpro_token_lifetime, token_version);

	secret = crypto_unseal(sealed, sealing_context(kid), &secret_len);
	PG_TRY();
	{
		token = jwt_sign(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(claims.data))),
						 secret, secret_len, alg, kid);
	}
	PG_FINALLY();
	{
		crypto_wipe(secret, secret_len);
	}
	PG_END_TRY();

	/*
	 * Reset the failure counter and audit the login in their own transaction,
	 * like failures: the caller's transaction then never holds a lock on the
	 * user's row that a later autonomous write would wait for.
	 */
	{
		const char *values[5];

		values[0] = user_id;
		values[1] = clinic_id;
		values[2] = db_email;
		values[3] = kid;
		values[4] = audit_client_addr();
		remote_autonomous_exec("SELECT medpro.login_succeeded($1::uuid, $2::uuid, $3, $4, $5::inet)",
							   5, values);
	}

	/*
	 * token lives in the SPI procedure context, which SPI_finish frees:
	 * build the result in the caller's context first.
	 */
	result = (text *) DatumGetPointer(SPI_datumTransfer(PointerGetDatum(cstring_to_text(token)),
														false, -1));
	SPI_finish();

	PG_RETURN_TEXT_P(result);
}

/*
 * Authentication. ----------------------------------------------------------
 */

/* Refuse a token: audit the reason autonomously, then raise 28000. */
static void
auth_refuse(const char *reason, const char *kid, const char *user_id)
{
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	json_member(&detail, "reason", reason);
	/* the kid comes from the token: bound what a refused token can store */
	if (kid)
		json_member(&detail, "kid", pnstrdup(kid, pg_mbcliplen(kid, strlen(kid), 64)));
	appendStringInfoChar(&detail, '}');
	audit_write(NULL, NULL, "auth_failed", "token", user_id, NULL, detail.data, true);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("invalid token: %s", reason)));
}

/* Look up a claim; NULL when absent. */
static JsonbValue *
claim(Jsonb *j, const char *name)
{
	JsonbValue *res = palloc(sizeof(JsonbValue));

	if (j == NULL || !JB_ROOT_IS_OBJECT(j))
		return NULL;
	return getKeyJsonValueFromContainer(&j->root, name, strlen(name), res);
}

/* A string claim as a C string; NULL when absent; *bad when not a string. */
static char *
claim_string(Jsonb *j, const char *name, bool *bad)
{
	JsonbValue *v = claim(j, name);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvString)
	{
		*bad = true;
		return NULL;
	}
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * Strict UUID parse: exactly the canonical 36-character lower-case form
 * (8-4-4-4-12 hex digits) that PostgreSQL prints and medpro_login issues.
 * Returns false for anything else (upper case, braces, no hyphens).
 */
static bool
parse_uuid_strict(const char *s, pg_uuid_t *out)
{
	int			i,
				j = 0;

	if (s == NULL || strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
			continue;
		}
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	for (i = 0; i < 36; i += 2)
	{
		char		hex[3];

		if (s[i] == '-')
			i++;
		hex[0] = s[i];
		hex[1] = s[i + 1];
		hex[2] = '\0';
		out->data[j++] = (uint8) strtol(hex, NULL, 16);
	}
	return j == UUID_LEN;
}

static bool
audience_matches(Jsonb *payload, const char *aud)
{
	JsonbValue *v = claim(payload, "aud");

	if (v == NULL)
		return false;
	if (v->type == jbvString)
		return (size_t) v->val.string.len == strlen(aud) &&
			memcmp(v->val.string.val, aud, v->val.string.len) == 0;
	if (v->type == jbvBinary)
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	elem;
		JsonbIteratorToken tok;
		bool		match = false;

		while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
		{
			if (tok == WJB_ELEM && elem.type == jbvString &&
				(size_t) elem.val.string.len == strlen(aud) &&
				memcmp(elem.val.string.val, aud, elem.val.string.len) == 0)
				match = true;
		}
		return match;
	}
	return false;
}

/*
 * Find the key a token names: by kid (retired keys too, so that the refusal
 * can say so), or for a token without kid the newest non-retired imported
 * key of the header's algorithm, and only that one.  NULL when none.
 */
static KeyRow *
find_key(const char *kid, const char *alg)
{
	const char *v[2];
	KeyRow	   *k;

	if (kid)
	{
		v[0] = kid;
		if (spi_exec("SELECT kid, algorithm, secret_sealed, public_pem, issuer, "
					 "       source = 'imported', status = 'retired' "
					 "  FROM medpro.keys WHERE kid = $1",
					 1, v, true) != 1)
			return NULL;
	}
	else
	{
		v[0] = alg;
		if (spi_exec("SELECT kid, algorithm, secret_sealed, public_pem, issuer, "
					 "       source = 'imported', status = 'retired' "
					 "  FROM medpro.keys "
					 " WHERE source = 'imported' AND status <> 'retired' AND algorithm = $1 "
					 " ORDER BY created_at DESC, kid LIMIT 1",
					 1, v, true) != 1)
			return NULL;
	}
	k = palloc0(sizeof(KeyRow));
	k->kid = spi_text(0, 1);
	k->algorithm = spi_text(0, 2);
	k->secret_sealed = spi_bytea(0, 3);
	k->public_pem = spi_text(0, 4);
	k->issuer = spi_text(0, 5);
	k->imported = spi_bool(0, 6);
	k->retired = spi_bool(0, 7);
	return k;
}

/*
 * A string claim under its name, or for tokens verified with an imported
 * key under its legacy name (userId, companyId) too.  NULL when absent or
 * JSON null; *bad when not a string; *both when both names are present.
 */
static char *
claim_string_or_legacy(Jsonb *payload, const char *name, const char *legacy,
					   bool imported, bool *bad, bool *both)
{
	char	   *v = claim_string(payload, name, bad);

	if (imported && claim(payload, legacy) != NULL)
	{
		if (claim(payload, name) != NULL)
			*both = true;
		else
			v = claim_string(payload, legacy, bad);
	}
	return v;
}

/* SQL: medpro_authenticate(token text, session boolean DEFAULT false) RETURNS jsonb */
PG_FUNCTION_INFO_V1(medpro_authenticate);
Datum
medpro_authenticate(PG_FUNCTION_ARGS)
{
	bool		session = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	text	   *token;
	const char *tok;
	size_t		toklen;
	const char *reason = NULL;
	Jsonb	   *header;
	bool		bad = false;
	char	   *kid;
	char	   *hdr_alg;
	KeyRow	   *key;
	const KeyringAlg *kalg;
	JwtAlg		alg;
	const char *want_iss;
	bool		both = false;
	uint8	   *secret;
	size_t		secret_len;
	JwtResult	res;
	char	   *iss;
	char	   *sub;
	char	   *clinic_claim;
	pg_uuid_t	user_id;
	pg_uuid_t	clinic_id;
	bool		has_clinic;
	JsonbValue *ver;
	int64		token_ver = 1;
	const char *v[1];
	char	   *db_clinic;
	char	   *db_role;
	char	   *clinic_status;
	char	   *role;
	Jsonb	   *payload;

	SPI_connect();

	if (PG_ARGISNULL(0))
		auth_refuse("missing", NULL, NULL);
	token = PG_GETARG_TEXT_PP(0);
	tok = VARDATA_ANY(token);
	toklen = VARSIZE_ANY_EXHDR(token);
	if (toklen == 0)
		auth_refuse("missing", NULL, NULL);
	if (toklen > JWT_MAX_TOKEN_LEN)
		auth_refuse("token too large", NULL, NULL);

	header = jwt_peek_header(tok, toklen, &reason);
	if (header == NULL)
		auth_refuse(reason, NULL, NULL);
	kid = claim_string(header, "kid", &bad);
	hdr_alg = claim_string(header, "alg", &bad);
	if (bad)
		auth_refuse("malformed header", NULL, NULL);
	if (hdr_alg == NULL)
		auth_refuse("missing alg", kid, NULL);

	/* kid selects exactly one key; the header must name its algorithm */
	key = find_key(kid, hdr_alg);
	if (key == NULL)
		auth_refuse(kid ? "unknown key" : "missing kid", kid, NULL);
	if (key->retired)
		auth_refuse("key retired", kid, NULL);
	if (strcmp(hdr_alg, key->algorithm) != 0)
		auth_refuse("algorithm does not match key", kid, NULL);
	kalg = keyring_alg(key->algorithm);
	if (kalg == NULL || !jwt_alg_lookup(key->algorithm, &alg))
		auth_refuse("key algorithm not supported", kid, NULL);

	if (kalg->kind != KEYRING_HMAC)
	{
		/* public keys are not secret: verify with the stored PEM */
		if (key->public_pem == NULL)
			auth_refuse("unknown key", kid, NULL);
		jwt_verify(tok, toklen, (const uint8 *) key->public_pem, strlen(key->public_pem),
				   alg, GetCurrentTimestamp(), medpro_jwt_leeway, &res);
	}
	else
	{
		if (key->secret_sealed == NULL)
			auth_refuse("unknown key", kid, NULL);
		secret = crypto_unseal(key->secret_sealed, sealing_context(key->kid), &secret_len);
		PG_TRY();
		{
			jwt_verify(tok, toklen, secret, secret_len, alg, GetCurrentTimestamp(),
					   medpro_jwt_leeway, &res);
		}
		PG_FINALLY();
		{
			crypto_wipe(secret, secret_len);
		}
		PG_END_TRY();
	}
	if (!res.valid)
		auth_refuse(res.reason, key->kid, NULL);

	/*
	 * Claims policy.  iss: medpro's own keys require medpro.jwt_issuer, an
	 * imported key its issuer when one was given.
	 */
	want_iss = key->imported ? key->issuer :
		(medpro_jwt_issuer ? medpro_jwt_issuer : "medpro");
	if (want_iss)
	{
		iss = claim_string(res.payload, "iss", &bad);
		if (iss == NULL && !bad)
			auth_refuse("missing iss", key->kid, NULL);
		if (bad || strcmp(iss, want_iss) != 0)
			auth_refuse("wrong issuer", key->kid, NULL);
	}
	if (medpro_jwt_audience && medpro_jwt_audience[0])
	{
		JsonbValue *aud = claim(res.payload, "aud");

		if (aud == NULL || aud->type == jbvNull)
			auth_refuse("missing aud", key->kid, NULL);
		if (!audience_matches(res.payload, medpro_jwt_audience))
			auth_refuse("wrong audience", key->kid, NULL);
	}

	sub = claim_string_or_legacy(res.payload, "sub", "userId", key->imported, &bad, &both);
	if (both)
		auth_refuse("both sub and userId present", key->kid, NULL);
	if (sub == NULL && !bad)
		auth_refuse("missing sub", key->kid, NULL);
	if (bad || !parse_uuid_strict(sub, &user_id))
		auth_refuse("invalid subject", key->kid, NULL);

	clinic_claim = claim_string_or_legacy(res.payload, "clinic_id", "companyId",
										  key->imported, &bad, &both);
	if (both)
		auth_refuse("both clinic_id and companyId present", key->kid, sub);
	if (bad)
		auth_refuse("invalid clinic claim", key->kid, sub);
	has_clinic = clinic_claim != NULL;
	if (has_clinic && !parse_uuid_strict(clinic_claim, &clinic_id))
		auth_refuse("invalid clinic claim", key->kid, sub);

	ver = claim(res.payload, "ver");
	if (ver)
	{
		char	   *txt;
		char	   *end;

		if (ver->type != jbvNumeric)
			auth_refuse("invalid ver claim", key->kid, sub);
		/* a plain integer in int32 range: no rounding, no overflow */
		txt = DatumGetCString(DirectFunctionCall1(numeric_out,
												  NumericGetDatum(ver->val.numeric)));
		errno = 0;
		token_ver = strtoll(txt, &end, 10);
		if (*end != '\0' || errno != 0 || token_ver < 1 || token_ver > PG_INT32_MAX)
			auth_refuse("invalid ver claim", key->kid, sub);
	}

	/* The user and the clinic, as they are now. */
	v[0] = sub;
	if (spi_exec("SELECT u.clinic_id, u.role, u.is_active AND u.deleted_at IS NULL, "
				 "       u.token_version, c.status, c.deleted_at IS NULL "
				 "  FROM medpro.users u LEFT JOIN medpro.clinics c ON c.id = u.clinic_id "
				 " WHERE u.id = $1::uuid", 1, v, true) != 1)
		auth_refuse("unknown user", key->kid, sub);
	db_clinic = spi_text(0, 1);
	db_role = spi_text(0, 2);
	/* a foreign issuer's key never vouches for a super admin */
	if (key->imported && strcmp(db_role, "super_admin") == 0)
		auth_refuse("key not allowed for this user", key->kid, sub);
	if (!spi_bool(0, 3))
		auth_refuse("user inactive", key->kid, sub);
	if (strtoll(spi_text(0, 4), NULL, 10) != token_ver)
		auth_refuse("revoked", key->kid, sub);
	clinic_status = spi_text(0, 5);

	if ((db_clinic == NULL) != !has_clinic ||
		(has_clinic && strcmp(db_clinic, uuid_to_cstring(&clinic_id)) != 0))
		auth_refuse("clinic mismatch", key->kid, sub);
	if (has_clinic)
	{
		if (clinic_status && strcmp(clinic_status, "suspended") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("clinic is suspended")));
		if (clinic_status == NULL || strcmp(clinic_status, "active") != 0 || !spi_bool(0, 6))
			auth_refuse("clinic not available", key->kid, sub);
	}

	/* A transaction that worked on one clinic cannot switch to another. */
	{
		pg_uuid_t	used;

		if (remote_clinic_in_use(&used) &&
			(!has_clinic || memcmp(&used, &clinic_id, sizeof(pg_uuid_t)) != 0))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to switch clinics in a transaction"),
					 errdetail("This transaction already worked on another clinic's data."),
					 errhint("Authenticate in a new transaction.")));
	}

	/*
	 * db_role and the claims jwt_verify returned live in the SPI procedure
	 * context, which SPI_finish frees: copy them to the caller's context
	 * first.
	 */
	role = SPI_palloc(strlen(db_role) + 1);
	strcpy(role, db_role);
	payload = (Jsonb *) DatumGetPointer(SPI_datumTransfer(JsonbPGetDatum(res.payload),
														  false, -1));
	SPI_finish();

	{
		JsonbValue *exp = claim(payload, "exp");
		double		secs;

		/* jwt_verify guaranteed a numeric exp within the valid time range */
		secs = strtod(DatumGetCString(DirectFunctionCall1(numeric_out,
														  NumericGetDatum(exp->val.numeric))), NULL);
		tenant_set(has_clinic ? &clinic_id : NULL, &user_id, role, session,
				   TimestampTzPlusMilliseconds(time_t_to_timestamptz((pg_time_t) secs),
											   (int64) medpro_jwt_leeway * 1000),
				   (int32) token_ver);
	}
	PG_RETURN_JSONB_P(payload);
}

bool
auth_session_still_valid(const TenantContext *ctx)
{
	Oid			save_userid;
	int			save_sec;
	bool		ok = false;
	int			nestlevel;
	const char *v[2];

	v[0] = DatumGetCString(DirectFunctionCall1(uuid_out,
											   UUIDPGetDatum((pg_uuid_t *) &ctx->user_id)));
	v[1] = psprintf("%d", ctx->token_version);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(remote_extension_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	/*
	 * The caller's search_path must not resolve the query's types and
	 * operators: this runs as the extension owner (CVE-2018-1058).
	 */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	PG_TRY();
	{
		SPI_connect();
		ok = spi_exec("SELECT 1 FROM medpro.users u LEFT JOIN medpro.clinics c ON c.id = u.clinic_id "
					  " WHERE u.id = $1::uuid AND u.is_active AND u.deleted_at IS NULL "
					  "   AND u.token_version = $2::int "
					  "   AND (u.clinic_id IS NULL OR (c.status = 'active' AND c.deleted_at IS NULL))",
					  2, v, true) == 1;
		SPI_finish();
	}
	PG_FINALLY();
	{
		AtEOXact_GUC(true, nestlevel);
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	return ok;
}
