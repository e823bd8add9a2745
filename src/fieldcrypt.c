/*
 * fieldcrypt.c
 *	  Encrypted columns of clinic tables (patients.social_security_number):
 *	  the per-clinic data keys, encryption before the first write, decryption
 *	  on fetch, the blind index that equality quals are translated to, and
 *	  medpro_rotate_clinic_key().
 *
 * Each clinic has data keys in medpro.clinic_keys (sql/ext/75_fieldcrypt.sql):
 * 64 random bytes sealed under the master key (context
 * "medpro.clinic_keys:<clinic>:<version>"), of which the first 32 are the
 * AES-256-GCM key of that version and the last 32 the HMAC key of the blind
 * index.  A rotation makes a new version with a new encryption key and the
 * same index key, so blind indexes stay valid while rows are re-encrypted.
 * The clinic database only ever sees ciphertext, the blind index and the key
 * version; the plaintext exists in this backend's memory only.  See
 * fieldcrypt.h for the hooks fdw.c calls and docs/security.md.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "audit.h"
#include "auth.h"
#include "crypto.h"
#include "fieldcrypt.h"
#include "remote.h"

#define KEY_MATERIAL_LEN	64	/* encryption key | index key */
#define MAX_KEY_VERSIONS	8
#define MAX_VALUE_LEN		64	/* normalised identifier */

typedef struct ClinicKey
{
	int			version;
	bool		active;
	uint8		enc[32];
	uint8		idx[32];
} ClinicKey;

struct FieldCrypt
{
	pg_uuid_t	clinic;
	char	   *clinic_text;
	char	   *table;			/* clinic table name */
	char	   *flags;			/* encrypted? by attnum - 1 */
	char	  **colnames;		/* by attnum - 1 */
	int			natts;
	bool		loaded;
	int			nkeys;
	ClinicKey	keys[MAX_KEY_VERSIONS];
};

/* ---------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------
 */

static char *
uuid_text(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum((pg_uuid_t *) u)));
}

static const char *
clinic_table_name(Relation rel)
{
	ForeignTable *ft = GetForeignTable(RelationGetRelid(rel));
	ListCell   *lc;

	foreach(lc, ft->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "table_name") == 0)
			return defGetString(def);
	}
	return RelationGetRelationName(rel);
}

static void
append_hex(StringInfo buf, const uint8 *p, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
		appendStringInfo(buf, "%02x", p[i]);
}

/* The remote name <col><suffix>, quoted. */
static const char *
storage_column(const char *col, const char *suffix)
{
	return quote_identifier(psprintf("%s%s", col, suffix));
}

/*
 * The normalised form of an identifier: spaces, dots, dashes and slashes
 * removed, ASCII letters in upper case (as identifiers.c normalises before
 * checking).  22023 when longer than MAX_VALUE_LEN.
 */
static char *
normalise(const char *col, const char *v)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	for (p = v; *p; p++)
	{
		if (*p == ' ' || *p == '.' || *p == '-' || *p == '/')
			continue;
		appendStringInfoChar(&buf, (*p >= 'a' && *p <= 'z') ? *p - 'a' + 'A' : *p);
	}
	if (buf.len > MAX_VALUE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", col),
				 errdetail("It has at most %d characters besides spaces, dots and dashes.",
						   MAX_VALUE_LEN)));
	return buf.data;
}

/* Wipe the unsealed keys when the scan's or modify's memory goes away. */
static void
wipe_keys(void *arg)
{
	FieldCrypt *fc = (FieldCrypt *) arg;

	crypto_wipe(fc->keys, sizeof(fc->keys));
	fc->nkeys = 0;
	fc->loaded = false;
}

/*
 * Run SPI work as the extension owner, in a restricted security context,
 * with search_path pinned; the caller's identity is restored on every path
 * by the (sub)transaction abort or here.
 */
typedef struct OwnerState
{
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;
} OwnerState;

static void
as_owner_begin(OwnerState *st)
{
	GetUserIdAndSecContext(&st->save_userid, &st->save_sec);
	SetUserIdAndSecContext(remote_extension_owner(),
						   st->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	st->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

static void
as_owner_end(OwnerState *st)
{
	AtEOXact_GUC(true, st->nestlevel);
	SetUserIdAndSecContext(st->save_userid, st->save_sec);
}

static char *
sealing_context(const char *clinic, int version)
{
	return psprintf("medpro.clinic_keys:%s:%d", clinic, version);
}

/* Insert version of the clinic's key with material (64 bytes); SPI connected. */
static void
insert_key(const char *clinic, int version, const uint8 *material, bool active)
{
	bytea	   *sealed = crypto_seal(material, KEY_MATERIAL_LEN, sealing_context(clinic, version));

	if (SPI_execute_with_args("INSERT INTO medpro.clinic_keys (clinic_id, version, key_sealed, status) "
							  "VALUES ($1::pg_catalog.uuid, $2, $3, $4) ON CONFLICT DO NOTHING",
							  4, (Oid[]) {TEXTOID, INT4OID, BYTEAOID, TEXTOID},
							  (Datum[]) {CStringGetTextDatum(clinic), Int32GetDatum(version),
								  PointerGetDatum(sealed),
							  CStringGetTextDatum(active ? "active" : "retiring")},
							  NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store a clinic key");
}

/* Read the clinic's usable keys into keys[]; SPI connected.  Returns their number. */
static int
read_keys(const char *clinic, ClinicKey *keys)
{
	int			n = 0;
	uint64		i;

	if (SPI_execute_with_args("SELECT version, key_sealed, status = 'active' FROM medpro.clinic_keys "
							  " WHERE clinic_id = $1::pg_catalog.uuid AND key_sealed IS NOT NULL "
							  " ORDER BY version DESC",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(clinic)},
							  NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the clinic keys");
	for (i = 0; i < SPI_processed && n < MAX_KEY_VERSIONS; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		bytea	   *sealed = DatumGetByteaPP(SPI_getbinval(tup, desc, 2, &isnull));
		size_t		len;
		uint8	   *material = crypto_unseal(sealed, sealing_context(clinic, version), &len);

		if (len != KEY_MATERIAL_LEN)
		{
			crypto_wipe(material, len);
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("clinic key %d has the wrong length", version)));
		}
		keys[n].version = version;
		keys[n].active = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		memcpy(keys[n].enc, material, 32);
		memcpy(keys[n].idx, material + 32, 32);
		crypto_wipe(material, len);
		n++;
	}
	return n;
}

/* Load the clinic's keys (creating the first one if create and none exists). */
static void
load_keys(FieldCrypt *fc, bool create)
{
	OwnerState	st;

	if (fc->loaded && (fc->nkeys > 0 || !create))
		return;
	as_owner_begin(&st);
	SPI_connect();
	fc->nkeys = read_keys(fc->clinic_text, fc->keys);
	if (fc->nkeys == 0 && create)
	{
		uint8		material[KEY_MATERIAL_LEN];

		crypto_random_bytes(material, sizeof(material));
		PG_TRY();
		{
			insert_key(fc->clinic_text, 1, material, true);
		}
		PG_FINALLY();
		{
			crypto_wipe(material, sizeof(material));
		}
		PG_END_TRY();
		/* a concurrent first writer may have won: read what is there */
		fc->nkeys = read_keys(fc->clinic_text, fc->keys);
	}
	SPI_finish();
	as_owner_end(&st);
	fc->loaded = true;
}

static ClinicKey *
active_key(FieldCrypt *fc)
{
	int			i;

	load_keys(fc, true);
	for (i = 0; i < fc->nkeys; i++)
		if (fc->keys[i].active)
			return &fc->keys[i];
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("clinic has no active data key")));
	return NULL;				/* keep compiler quiet */
}

static ClinicKey *
key_version(FieldCrypt *fc, int version)
{
	int			i;

	load_keys(fc, false);
	for (i = 0; i < fc->nkeys; i++)
		if (fc->keys[i].version == version)
			return &fc->keys[i];
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("could not decrypt value"),
			 errdetail("The value names a key version the clinic does not have.")));
	return NULL;				/* keep compiler quiet */
}

/* "medpro-field-v1" NUL clinic NUL table NUL column NUL row id NUL version */
static StringInfo
field_aad(FieldCrypt *fc, int attnum, const char *row_id, int version)
{
	StringInfo	aad = makeStringInfo();

	appendStringInfoString(aad, "medpro-field-v1");
	appendStringInfoChar(aad, '\0');
	appendStringInfoString(aad, fc->clinic_text);
	appendStringInfoChar(aad, '\0');
	appendStringInfoString(aad, fc->table);
	appendStringInfoChar(aad, '\0');
	appendStringInfoString(aad, fc->colnames[attnum - 1]);
	appendStringInfoChar(aad, '\0');
	appendStringInfoString(aad, row_id);
	appendStringInfoChar(aad, '\0');
	appendStringInfo(aad, "%d", version);
	return aad;
}

static char *
blind_index(FieldCrypt *fc, int attnum, const char *normalised)
{
	ClinicKey  *k = active_key(fc);
	StringInfoData msg;
	StringInfoData out;
	uint8		mac[CRYPTO_HMAC_LEN];

	initStringInfo(&msg);
	appendStringInfoString(&msg, "medpro-bidx-v1");
	appendStringInfoChar(&msg, '\0');
	appendStringInfoString(&msg, fc->table);
	appendStringInfoChar(&msg, '\0');
	appendStringInfoString(&msg, fc->colnames[attnum - 1]);
	appendStringInfoChar(&msg, '\0');
	appendStringInfoString(&msg, normalised);
	crypto_hmac_sha256(k->idx, sizeof(k->idx), (uint8 *) msg.data, msg.len, mac);
	crypto_wipe(msg.data, msg.len);
	initStringInfo(&out);
	append_hex(&out, mac, sizeof(mac));
	return out.data;
}

/* ---------------------------------------------------------------------
 * Planning hooks
 * ---------------------------------------------------------------------
 */

bool
fieldcrypt_columns(Relation rel, char **flags)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	bool		any = false;
	int			i;

	*flags = palloc0(Max(tupdesc->natts, 1));
	for (i = 0; i < tupdesc->natts; i++)
	{
		ListCell   *lc;

		if (TupleDescAttr(tupdesc, i)->attisdropped)
			continue;
		foreach(lc, GetForeignColumnOptions(RelationGetRelid(rel), i + 1))
		{
			DefElem    *def = lfirst_node(DefElem, lc);

			if (strcmp(def->defname, "encrypted") == 0 && defGetBoolean(def))
			{
				(*flags)[i] = 1;
				any = true;
			}
		}
	}
	return any;
}

void
fieldcrypt_deparse_fetch(StringInfo buf, Relation rel, int attnum, const char *alias)
{
	const char *col = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);
	const char *a = alias ? psprintf("%s.", alias) : "";

	appendStringInfo(buf,
					 "CASE WHEN %s%s IS NOT NULL THEN 'e:' OPERATOR(pg_catalog.||) %s\"id\"::pg_catalog.text"
					 " OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) %s%s::pg_catalog.text"
					 " OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pg_catalog.encode(%s%s, 'hex')"
					 " WHEN %s%s IS NOT NULL THEN 'p:' OPERATOR(pg_catalog.||) %s%s END",
					 a, storage_column(col, "_enc"), a,
					 a, storage_column(col, "_key_version"),
					 a, storage_column(col, "_enc"),
					 a, quote_identifier(col), a, quote_identifier(col));
}

void
fieldcrypt_deparse_target(StringInfo buf, Relation rel, int attnum, bool set, int *paramno)
{
	const char *col = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);

	if (set)
	{
		appendStringInfo(buf, "%s = $%d, %s = $%d, %s = $%d",
						 storage_column(col, "_enc"), *paramno,
						 storage_column(col, "_bidx"), *paramno + 1,
						 storage_column(col, "_key_version"), *paramno + 2);
	}
	else
		appendStringInfo(buf, "%s, %s, %s", storage_column(col, "_enc"),
						 storage_column(col, "_bidx"), storage_column(col, "_key_version"));
	*paramno += FIELDCRYPT_WIDTH;
}

int
fieldcrypt_qual_column(Expr *clause, RelOptInfo *baserel, const char *flags)
{
	OpExpr	   *op;
	Node	   *l;
	Node	   *r;
	Var		   *var = NULL;
	Node	   *val = NULL;

	if (flags == NULL || !IsA(clause, OpExpr))
		return 0;
	op = (OpExpr *) clause;
	if (op->opno != TextEqualOperator || list_length(op->args) != 2)
		return 0;
	l = linitial(op->args);
	r = lsecond(op->args);
	if (IsA(l, Var))
	{
		var = (Var *) l;
		val = r;
	}
	else if (IsA(r, Var))
	{
		var = (Var *) r;
		val = l;
	}
	if (var == NULL || var->varno != baserel->relid || var->varlevelsup != 0 ||
		var->varattno <= 0 || !flags[var->varattno - 1])
		return 0;
	if (IsA(val, Const) && !((Const *) val)->constisnull &&
		((Const *) val)->consttype == TEXTOID)
		return var->varattno;
	if (IsA(val, Param) && ((Param *) val)->paramtype == TEXTOID)
		return var->varattno;
	return 0;
}

void
fieldcrypt_deparse_qual(StringInfo buf, Relation rel, Expr *clause, int attnum,
						List **params, List **bidx_params)
{
	OpExpr	   *op = (OpExpr *) clause;
	Node	   *val = IsA(linitial(op->args), Var) ? lsecond(op->args) : linitial(op->args);
	const char *col = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);
	int			n;

	*params = lappend(*params, val);
	n = list_length(*params);
	*bidx_params = lappend_int(lappend_int(*bidx_params, n), attnum);
	appendStringInfo(buf, "(%s OPERATOR(pg_catalog.=) $%d::pg_catalog.text)",
					 storage_column(col, "_bidx"), n);
}

/* ---------------------------------------------------------------------
 * Execution hooks
 * ---------------------------------------------------------------------
 */

FieldCrypt *
fieldcrypt_begin(Relation rel, const pg_uuid_t *clinic)
{
	FieldCrypt *fc;
	char	   *flags;
	TupleDesc	tupdesc = RelationGetDescr(rel);
	MemoryContextCallback *cb;
	int			i;

	if (!fieldcrypt_columns(rel, &flags))
		return NULL;
	fc = palloc0(sizeof(FieldCrypt));
	fc->clinic = *clinic;
	fc->clinic_text = uuid_text(clinic);
	fc->table = pstrdup(clinic_table_name(rel));
	fc->flags = flags;
	fc->natts = tupdesc->natts;
	fc->colnames = palloc0(sizeof(char *) * Max(tupdesc->natts, 1));
	for (i = 0; i < tupdesc->natts; i++)
		fc->colnames[i] = pstrdup(NameStr(TupleDescAttr(tupdesc, i)->attname));
	cb = palloc(sizeof(MemoryContextCallback));
	cb->func = wipe_keys;
	cb->arg = fc;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return fc;
}

bool
fieldcrypt_is_encrypted(FieldCrypt *fc, int attnum)
{
	return fc != NULL && attnum > 0 && attnum <= fc->natts && fc->flags[attnum - 1];
}

char *
fieldcrypt_decode(FieldCrypt *fc, int attnum, const char *fetched)
{
	const char *id;
	const char *ver;
	const char *hex;
	int			version;
	size_t		hexlen;
	bytea	   *ct;
	StringInfo	aad;
	size_t		len;
	ClinicKey  *k;

	if (fetched == NULL)
		return NULL;
	if (strncmp(fetched, "p:", 2) == 0)
		return pstrdup(fetched + 2);	/* written before encryption existed */
	if (strncmp(fetched, "e:", 2) != 0 ||
		(ver = strchr(fetched + 2, ':')) == NULL ||
		(hex = strchr(ver + 1, ':')) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not decrypt value"),
				 errdetail("The clinic database returned a malformed encrypted value.")));
	id = pnstrdup(fetched + 2, ver - fetched - 2);
	version = atoi(ver + 1);
	hex++;
	hexlen = strlen(hex);
	ct = palloc(VARHDRSZ + hexlen / 2);
	SET_VARSIZE(ct, VARHDRSZ + hex_decode(hex, hexlen, VARDATA(ct)));
	k = key_version(fc, version);
	aad = field_aad(fc, attnum, id, version);
	return (char *) crypto_aead_decrypt(k->enc, (uint8 *) VARDATA(ct), VARSIZE(ct) - VARHDRSZ,
										(uint8 *) aad->data, aad->len, &len);
}

void
fieldcrypt_encode(FieldCrypt *fc, int attnum, const char *plain, const char *row_id,
				  const char **out)
{
	ClinicKey  *k;
	char	   *norm;
	StringInfo	aad;
	bytea	   *ct;
	StringInfoData hex;

	if (plain == NULL)
	{
		out[0] = out[1] = out[2] = NULL;
		return;
	}
	if (row_id == NULL)
		elog(ERROR, "encrypted column without a row id");
	k = active_key(fc);
	norm = normalise(fc->colnames[attnum - 1], plain);
	aad = field_aad(fc, attnum, row_id, k->version);
	ct = crypto_aead_encrypt(k->enc, (uint8 *) norm, strlen(norm), (uint8 *) aad->data, aad->len);
	initStringInfo(&hex);
	appendStringInfoString(&hex, "\\x");
	append_hex(&hex, (uint8 *) VARDATA(ct), VARSIZE(ct) - VARHDRSZ);
	out[0] = hex.data;
	out[1] = blind_index(fc, attnum, norm);
	out[2] = psprintf("%d", k->version);
	crypto_wipe(norm, strlen(norm));
}

char *
fieldcrypt_new_row_id(void)
{
	pg_uuid_t	u;

	crypto_random_bytes(u.data, UUID_LEN);
	u.data[6] = (u.data[6] & 0x0f) | 0x40;
	u.data[8] = (u.data[8] & 0x3f) | 0x80;
	return uuid_text(&u);
}

void
fieldcrypt_translate_params(FieldCrypt *fc, List *bidx_params, const char **values)
{
	ListCell   *lc;

	if (bidx_params == NIL)
		return;
	if (fc == NULL)
		elog(ERROR, "blind index parameter without an encrypted column");
	/* a clinic without a key holds no encrypted value: match nothing */
	load_keys(fc, false);
	for (lc = list_head(bidx_params); lc != NULL; lc = lnext(bidx_params, lnext(bidx_params, lc)))
	{
		int			n = lfirst_int(lc);
		int			attnum = lfirst_int(lnext(bidx_params, lc));
		const char *v = values[n - 1];

		/* NULL = anything is never true: match no blind index */
		values[n - 1] = (v && fc->nkeys > 0) ?
			blind_index(fc, attnum, normalise(fc->colnames[attnum - 1], v)) : NULL;
	}
}

/* ---------------------------------------------------------------------
 * medpro_rotate_clinic_key(clinic uuid, batch_size integer DEFAULT 500)
 *	  RETURNS integer: the rows still to re-encrypt (0: the rotation is done)
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(medpro_rotate_clinic_key);
Datum
medpro_rotate_clinic_key(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *clinic;
	int			batch;
	char	   *clinic_text;
	bool		rotating;
	int			maxver = 0;
	FieldCrypt	fc;
	ClinicKey  *newk;
	PGconn	   *conn;
	PGresult   *res;
	const char *params[5];
	int64		remaining;
	int			done = 0;
	int			i;
	const char *pending_sql;
	uint8		material[KEY_MATERIAL_LEN];

	if (!auth_caller_is_operator())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to rotate clinic keys"),
				 errhint("Only members of medpro_operator may do this.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clinic must not be null")));
	clinic = PG_GETARG_UUID_P(0);
	batch = PG_ARGISNULL(1) ? 500 : PG_GETARG_INT32(1);
	if (batch < 1 || batch > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and 100000")));
	clinic_text = uuid_text(clinic);

	SPI_connect();
	if (SPI_execute_with_args("SELECT 1 FROM medpro.clinics WHERE id = $1::pg_catalog.uuid AND deleted_at IS NULL",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(clinic_text)},
							  NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clinic %s does not exist", clinic_text)));
	/* one rotation of a clinic at a time */
	if (SPI_execute_with_args("SELECT coalesce(max(version), 0), bool_or(status = 'retiring') "
							  "  FROM (SELECT version, status FROM medpro.clinic_keys "
							  "         WHERE clinic_id = $1::pg_catalog.uuid FOR UPDATE) k",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(clinic_text)},
							  NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the clinic keys");
	{
		bool		isnull;

		maxver = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		rotating = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) && !isnull;
	}

	memset(&fc, 0, sizeof(fc));
	fc.clinic = *clinic;
	fc.clinic_text = clinic_text;
	fc.table = "patients";
	fc.natts = 1;
	fc.flags = "\1";
	fc.colnames = (char *[]) {"social_security_number"};
	PG_TRY();
	{
		if (!rotating)
		{
			/* a new version: new encryption key, the same index key */
			fc.nkeys = read_keys(clinic_text, fc.keys);
			fc.loaded = true;
			crypto_random_bytes(material, 32);
			if (fc.nkeys > 0)
				memcpy(material + 32, active_key(&fc)->idx, 32);
			else
				crypto_random_bytes(material + 32, 32);
			if (maxver > 0)
				SPI_execute_with_args("UPDATE medpro.clinic_keys SET status = 'retiring' "
									  " WHERE clinic_id = $1::pg_catalog.uuid AND status = 'active'",
									  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(clinic_text)},
									  NULL, false, 0);
			insert_key(clinic_text, maxver + 1, material, true);
			crypto_wipe(material, sizeof(material));
			audit_write(clinic, NULL, "clinic_key_rotate", "clinic", clinic_text, NULL,
						psprintf("{\"version\": %d}", maxver + 1), false);
		}
		fc.nkeys = read_keys(clinic_text, fc.keys);
		fc.loaded = true;
		newk = active_key(&fc);

		/* rows under an older key, or written before encryption existed */
		conn = remote_clinic_begin(clinic, 0);
		pending_sql = "SELECT id::pg_catalog.text, "
			"CASE WHEN social_security_number_enc IS NOT NULL THEN 'e:' OPERATOR(pg_catalog.||) id::pg_catalog.text"
			" OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) social_security_number_key_version::pg_catalog.text"
			" OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) pg_catalog.encode(social_security_number_enc, 'hex')"
			" ELSE 'p:' OPERATOR(pg_catalog.||) social_security_number END"
			"  FROM public.patients"
			" WHERE social_security_number IS NOT NULL"
			"    OR (social_security_number_enc IS NOT NULL"
			"        AND social_security_number_key_version OPERATOR(pg_catalog.<>) $1::pg_catalog.int4)";
		params[0] = psprintf("%d", newk->version);
		params[1] = psprintf("%d", batch);
		res = remote_clinic_exec(conn, psprintf("%s LIMIT $2::pg_catalog.int4 FOR UPDATE", pending_sql),
								 2, params);
		PG_TRY();
		{
			for (i = 0; i < PQntuples(res); i++)
			{
				const char *id = PQgetvalue(res, i, 0);
				char	   *plain = fieldcrypt_decode(&fc, 1, PQgetvalue(res, i, 1));
				const char *enc[FIELDCRYPT_WIDTH];

				fieldcrypt_encode(&fc, 1, plain, id, enc);
				crypto_wipe(plain, strlen(plain));
				params[0] = id;
				params[1] = enc[0];
				params[2] = enc[1];
				params[3] = enc[2];
				PQclear(remote_clinic_exec(conn,
										   "UPDATE public.patients SET social_security_number = NULL, "
										   "social_security_number_enc = $2::pg_catalog.bytea, "
										   "social_security_number_bidx = $3, "
										   "social_security_number_key_version = $4::pg_catalog.int4 "
										   "WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid",
										   4, params));
				done++;
			}
		}
		PG_FINALLY();
		{
			PQclear(res);
		}
		PG_END_TRY();

		params[0] = psprintf("%d", newk->version);
		res = remote_clinic_exec(conn, psprintf("SELECT count(*) FROM (%s) p", pending_sql), 1, params);
		remaining = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		if (remaining == 0)
		{
			/* every row is under the new key: erase the old ones */
			SPI_execute_with_args("UPDATE medpro.clinic_keys SET status = 'retired', key_sealed = NULL "
								  " WHERE clinic_id = $1::pg_catalog.uuid AND status = 'retiring'",
								  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(clinic_text)},
								  NULL, false, 0);
			if (SPI_processed > 0 || done > 0)
				audit_write(clinic, NULL, "clinic_key_rotated", "clinic", clinic_text, NULL,
							psprintf("{\"version\": %d, \"rows\": %d}", newk->version, done), false);
		}
	}
	PG_FINALLY();
	{
		crypto_wipe(fc.keys, sizeof(fc.keys));
		crypto_wipe(material, sizeof(material));
	}
	PG_END_TRY();
	SPI_finish();
	PG_RETURN_INT64(remaining);
}
