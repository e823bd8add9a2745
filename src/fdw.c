/*
 * fdw.c
 *	  medpro_fdw: the routing foreign-data wrapper behind clinic.*.
 *
 * This file owns the FDW handler and validator, the deparsing of remote
 * SQL, scans (a cursor fetching medpro.fetch_size rows per round trip),
 * INSERT / UPDATE / DELETE with RETURNING (row identity: the id column),
 * masking of columns by application role, the checks of validated
 * columns before a write (validate 'ssn', with the clinic's country), and
 * the audit rows of writes.
 *
 * Nothing in a plan depends on the clinic or the role: the clinic
 * connection is chosen from the tenant context when a scan or modify
 * begins (remote_clinic_begin), and masked values are produced while rows
 * are converted.  A plan cached under clinic A therefore runs against
 * clinic B in a later transaction, and a plan made for a doctor masks for
 * a secretary.  A qual on a masked column is never sent to the clinic
 * database: it would filter on the clear value.  See docs/routing.md.
 *
 * Encrypted columns (option encrypted, fieldcrypt.h) are handled by
 * fieldcrypt.c through five small hooks here: deparse_column (the fetch
 * expression), the INSERT / UPDATE targets (fieldcrypt_deparse_target),
 * modify_params (fieldcrypt_encode), make_tuple (fieldcrypt_decode) and the
 * blind-index quals (fieldcrypt_qual_column / _deparse_qual in planning,
 * fieldcrypt_translate_params in create_cursor).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/appendinfo.h"
#include "optimizer/cost.h"
#include "optimizer/inherit.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "audit.h"
#include "fdw.h"
#include "fieldcrypt.h"
#include "identifiers.h"
#include "medpro.h"
#include "remote.h"
#include "tenant.h"

/* Rows a clinic table is assumed to hold (no remote statistics yet). */
#define FDW_ROWS_GUESS		1000.0
/* Cost of a round trip to the clinic database, and of a row. */
#define FDW_STARTUP_COST	100.0
#define FDW_ROW_COST		(10 * cpu_tuple_cost)

/* The junk column carrying the row identity (id) to UPDATE and DELETE. */
#define FDW_ROWID_NAME		"medpro_row_id"

/* Column masks (option mask). */
#define MASK_NONE	0
#define MASK_HIDE	1			/* NULL */
#define MASK_LAST2	2			/* '*' for every character but the last two */

/* Column checks made here before a write (option validate). */
#define VALIDATE_NONE	0
#define VALIDATE_SSN	1		/* medpro_valid_ssn(clinic country, value) */

/* Planner state of a foreign table (baserel->fdw_private). */
typedef struct FdwRelInfo
{
	List	   *remote_conds;	/* RestrictInfos sent to the clinic */
	List	   *local_conds;	/* RestrictInfos evaluated here */
	Bitmapset  *attrs_used;		/* columns to fetch */
	char	   *masks;			/* MASK_* per attnum - 1 */
	char	   *crypt;			/* encrypted columns (fieldcrypt.h) */
	List	   *bidx_conds;		/* local conds also sent as blind-index quals */
} FdwRelInfo;

/* Executor state of a scan. */
typedef struct FdwScanState
{
	char	   *query;			/* the remote SELECT */
	List	   *retrieved_attrs;	/* attnums of its columns */
	Relation	rel;
	AttInMetadata *attinmeta;
	char	   *masks;
	bool		apply_masks;
	FieldCrypt *fc;				/* encrypted columns, or NULL */
	List	   *bidx_params;	/* (param number, attnum) pairs to translate */
	PGconn	   *conn;
	unsigned int cursor_number;
	bool		cursor_exists;
	bool		eof_reached;
	/* remote parameters */
	int			num_params;
	List	   *param_exprs;	/* ExprStates */
	FmgrInfo   *param_flinfo;	/* their output functions */
	const char **param_values;
	/* the current batch */
	MemoryContext batch_cxt;
	HeapTuple  *tuples;
	int			num_tuples;
	int			next_tuple;
} FdwScanState;

/* Executor state of a modify. */
typedef struct FdwModifyState
{
	char	   *query;			/* the remote INSERT / UPDATE / DELETE */
	List	   *target_attrs;	/* attnums sent as parameters */
	List	   *retrieved_attrs;	/* attnums of RETURNING (every column) */
	List	   *old_attrs;		/* attnums of the old row's columns after them */
	CmdType		operation;
	bool		soft_delete;	/* DELETE is an UPDATE of deleted_at */
	Relation	rel;
	AttInMetadata *attinmeta;
	char	   *masks;
	bool		apply_masks;
	FieldCrypt *fc;				/* encrypted columns, or NULL */
	AttrNumber	id_attno;		/* the id column */
	char	   *validators;		/* VALIDATE_* per attnum - 1 */
	char		country[3];		/* the clinic's, when a column is validated */
	PGconn	   *conn;
	AttrNumber	rowid_attno;	/* junk id in the subplan's output */
	FmgrInfo	rowid_flinfo;
	FmgrInfo   *param_flinfo;	/* output functions of target_attrs */
	char	   *entity;			/* clinic table name, for the audit */
	Oid			owner;
	pg_uuid_t	clinic_id;
	pg_uuid_t	user_id;
} FdwModifyState;

/* Deparsing context. */
typedef struct DeparseCtx
{
	StringInfo	buf;
	Oid			relid;
	List	  **params;			/* Param nodes, in $n order */
} DeparseCtx;

/* Arguments of an audit write made as the owner. */
typedef struct AuditArgs
{
	const pg_uuid_t *clinic;
	const pg_uuid_t *user;
	const char *action;
	const char *entity;
	const char *entity_id;
	const char *old_data;
	const char *new_data;
} AuditArgs;

static unsigned int cursor_counter = 0;

/* The latest schema version, cached for one local transaction. */
static LocalTransactionId latest_version_lxid = InvalidLocalTransactionId;
static int	latest_version = 0;

PG_FUNCTION_INFO_V1(medpro_fdw_handler);
PG_FUNCTION_INFO_V1(medpro_fdw_validator);

/* ---------------------------------------------------------------------
 * Helpers: options, masks, running as the owner, transmission modes
 * ---------------------------------------------------------------------
 */

/* The clinic table and soft-delete flag of a foreign table. */
static void
table_options(Oid relid, char **table_name, bool *soft_delete)
{
	ForeignTable *ft = GetForeignTable(relid);
	ListCell   *lc;

	*table_name = get_rel_name(relid);
	*soft_delete = false;
	foreach(lc, ft->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "table_name") == 0)
			*table_name = defGetString(def);
		else if (strcmp(def->defname, "soft_delete") == 0)
			*soft_delete = defGetBoolean(def);
	}
}

/* Whether the foreign table says only admins may write it (writers 'admin'). */
static bool
admin_writes_only(Oid relid)
{
	ForeignTable *ft = GetForeignTable(relid);
	ListCell   *lc;

	foreach(lc, ft->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "writers") == 0)
			return strcmp(defGetString(def), "admin") == 0;
	}
	return false;
}

/* MASK_* for each column of rel (indexed by attnum - 1), palloc'd. */
static char *
column_masks(Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	char	   *masks = palloc0(Max(tupdesc->natts, 1));
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		ListCell   *lc;

		if (TupleDescAttr(tupdesc, i)->attisdropped)
			continue;
		foreach(lc, GetForeignColumnOptions(RelationGetRelid(rel), i + 1))
		{
			DefElem    *def = lfirst_node(DefElem, lc);
			char	   *v;

			if (strcmp(def->defname, "mask") != 0)
				continue;
			v = defGetString(def);
			masks[i] = strcmp(v, "last2") == 0 ? MASK_LAST2 : MASK_HIDE;
		}
	}
	return masks;
}

/* VALIDATE_* for each column of rel (indexed by attnum - 1), palloc'd. */
static char *
column_validators(Relation rel, bool *any)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	char	   *validators = palloc0(Max(tupdesc->natts, 1));
	int			i;

	*any = false;
	for (i = 0; i < tupdesc->natts; i++)
	{
		ListCell   *lc;

		if (TupleDescAttr(tupdesc, i)->attisdropped)
			continue;
		foreach(lc, GetForeignColumnOptions(RelationGetRelid(rel), i + 1))
		{
			DefElem    *def = lfirst_node(DefElem, lc);

			if (strcmp(def->defname, "validate") == 0 &&
				strcmp(defGetString(def), "ssn") == 0)
			{
				validators[i] = VALIDATE_SSN;
				*any = true;
			}
		}
	}
	return validators;
}

/* Arguments of read_clinic_country. */
typedef struct CountryArgs
{
	const pg_uuid_t *clinic;
	char	   *country;		/* 3 bytes */
} CountryArgs;

/* The country of a clinic, read from medpro.clinics as the owner. */
static void
read_clinic_country(void *arg)
{
	CountryArgs *args = (CountryArgs *) arg;

	SPI_connect();
	if (SPI_execute_with_args("SELECT country FROM medpro.clinics WHERE id = $1",
							  1, (Oid[]) {UUIDOID}, (Datum[]) {UUIDPGetDatum(args->clinic)},
							  NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the clinic's country");
	strlcpy(args->country, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), 3);
	SPI_finish();
}

/*
 * Check the value of a validated column about to be written; raises 23514
 * naming the rule, never the value.
 */
static void
validate_value(FdwModifyState *fmstate, int attnum, const char *value)
{
	if (fmstate->validators[attnum - 1] == VALIDATE_SSN &&
		!ident_valid_ssn(fmstate->country, value))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("invalid social security number"),
				 errdetail("Column \"%s\" must hold a valid %s (check digits).",
						   NameStr(TupleDescAttr(RelationGetDescr(fmstate->rel), attnum - 1)->attname),
						   strcmp(fmstate->country, "FR") == 0 ? "French NIR" : "Spanish NUSS"),
				 err_generic_string(PG_DIAG_CONSTRAINT_NAME, "patients_social_security_number_check")));
}

/* Whether an application role sees masked columns masked (fail closed). */
static bool
role_is_masked(const char *role)
{
	return strcmp(role, "admin") != 0 && strcmp(role, "doctor") != 0;
}

/* The masked form of a column value (NULL stays NULL). */
static char *
mask_value(const char *value, char mask)
{
	StringInfoData buf;
	const char *p;
	int			nchars;
	int			i;

	if (value == NULL || mask == MASK_HIDE)
		return NULL;
	nchars = pg_mbstrlen(value);
	initStringInfo(&buf);
	for (i = 0, p = value; i < nchars; i++)
	{
		int			len = pg_mblen(p);

		if (nchars > 2 && i >= nchars - 2)
			appendBinaryStringInfo(&buf, p, len);
		else
			appendStringInfoChar(&buf, '*');
		p += len;
	}
	return buf.data;
}

/*
 * Run fn(arg) as owner (the foreign tables' owner, i.e. the extension
 * owner) with search_path pinned to pg_catalog, pg_temp.  On error the
 * ensuing (sub)transaction abort restores the user id and the settings, as
 * for a SECURITY DEFINER function; on success they are restored here.
 */
static void
run_as_owner(Oid owner, void (*fn) (void *), void *arg)
{
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	fn(arg);
	AtEOXact_GUC(true, nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec);
}

static void
read_latest_version(void *arg)
{
	int		   *version = (int *) arg;
	bool		isnull;
	Datum		d;

	SPI_connect();
	if (SPI_execute("SELECT pg_catalog.max(version)::pg_catalog.int4 FROM medpro.migrations",
					true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the latest schema version");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	*version = isnull ? 0 : DatumGetInt32(d);
	SPI_finish();
}

/*
 * The clinic schema version the central relations expect: the server
 * option schema_version, where 'latest' (the default) means the highest
 * version in medpro.migrations, read once per local transaction, and 0
 * means no check.
 */
static int
expected_version(Relation rel)
{
	ForeignTable *ft = GetForeignTable(RelationGetRelid(rel));
	ForeignServer *server = GetForeignServer(ft->serverid);
	const char *setting = "latest";
	ListCell   *lc;

	foreach(lc, server->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "schema_version") == 0)
			setting = defGetString(def);
	}
	if (strcmp(setting, "latest") != 0)
		return pg_strtoint32(setting);

	if (latest_version_lxid != MyProc->lxid)
	{
		int			version = 0;

		run_as_owner(rel->rd_rel->relowner, read_latest_version, &version);
		latest_version = version;
		latest_version_lxid = MyProc->lxid;
	}
	return latest_version;
}

/*
 * The clinic connection for a scan or modify beginning now, from the tenant
 * context.  Raises 42501 without a clinic (no context, or super_admin).
 */
static PGconn *
clinic_connect(Relation rel, const TenantContext **ctxp)
{
	const TenantContext *ctx = tenant_require();

	if (!ctx->has_clinic)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no clinic selected"),
				 errdetail("A super_admin token is not bound to a clinic.")));
	*ctxp = ctx;
	return remote_clinic_begin(&ctx->clinic_id, expected_version(rel));
}

/*
 * Make values print the same whatever the local settings are (ISO dates,
 * postgres intervals, exact floats).  Returns the GUC nest level to give to
 * reset_transmission_modes.
 */
static int
set_transmission_modes(void)
{
	int			nestlevel = NewGUCNestLevel();

	if (DateStyle != USE_ISO_DATES)
		(void) set_config_option("datestyle", "ISO", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (IntervalStyle != INTSTYLE_POSTGRES)
		(void) set_config_option("intervalstyle", "postgres", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (extra_float_digits < 3)
		(void) set_config_option("extra_float_digits", "3", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

static void
reset_transmission_modes(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

/*
 * A local tuple of rel from row of res, whose first columns are
 * retrieved_attrs and whose nextra further columns are not part of it;
 * columns not retrieved are NULL.  Encrypted columns are decrypted (fc);
 * with apply_masks, masked columns then get their masked value.  Allocated in the current memory context.
 */
static HeapTuple
make_tuple(PGresult *res, int row, Relation rel, AttInMetadata *attinmeta,
		   List *retrieved_attrs, int nextra, const char *masks,
		   bool apply_masks, FieldCrypt *fc)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	Datum	   *values = palloc0(sizeof(Datum) * Max(tupdesc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(tupdesc->natts, 1));
	ListCell   *lc;
	int			i = 0;

	memset(nulls, true, sizeof(bool) * Max(tupdesc->natts, 1));
	/* Without columns to fetch the remote query selects one NULL. */
	if (PQnfields(res) != Max(list_length(retrieved_attrs), 1) + nextra)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_COLUMN_NUMBER),
				 errmsg("clinic database returned %d columns for \"%s\", expected %d",
						PQnfields(res), RelationGetRelationName(rel),
						Max(list_length(retrieved_attrs), 1) + nextra)));
	foreach(lc, retrieved_attrs)
	{
		int			attnum = lfirst_int(lc);
		char	   *v = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);

		if (fieldcrypt_is_encrypted(fc, attnum))
			v = fieldcrypt_decode(fc, attnum, v);
		if (apply_masks && masks[attnum - 1] != MASK_NONE)
			v = mask_value(v, masks[attnum - 1]);
		values[attnum - 1] = InputFunctionCall(&attinmeta->attinfuncs[attnum - 1], v,
											   attinmeta->attioparams[attnum - 1],
											   attinmeta->atttypmods[attnum - 1]);
		nulls[attnum - 1] = (v == NULL);
		i++;
	}
	return heap_form_tuple(tupdesc, values, nulls);
}

/* ---------------------------------------------------------------------
 * Deparsing
 * ---------------------------------------------------------------------
 */

/* Built-in types whose comparisons may run in the clinic database. */
static bool
type_is_pushable(Oid type)
{
	switch (type)
	{
		case UUIDOID:
		case TEXTOID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case BOOLOID:
		case DATEOID:
		case TIMESTAMPTZOID:
			return true;
		default:
			return false;
	}
}

/* A plain unmasked column of the foreign table. */
static bool
var_is_pushable(Node *node, RelOptInfo *baserel, const char *masks)
{
	Var		   *var = (Var *) node;

	if (!IsA(node, Var))
		return false;
	return var->varno == baserel->relid && var->varlevelsup == 0 &&
		var->varattno > 0 && masks[var->varattno - 1] == MASK_NONE &&
		type_is_pushable(var->vartype) &&
		(!OidIsValid(var->varcollid) || var->varcollid == DEFAULT_COLLATION_OID);
}

/* A non-NULL constant or a parameter of a pushable type. */
static bool
value_is_pushable(Node *node)
{
	if (IsA(node, Const))
		return !((Const *) node)->constisnull &&
			type_is_pushable(((Const *) node)->consttype);
	if (IsA(node, Param))
		return type_is_pushable(((Param *) node)->paramtype);
	return false;
}

/*
 * Whether a restriction clause can run in the clinic database: Var op
 * Const|Param (either side) with a built-in immutable btree comparison,
 * Var IS [NOT] NULL, and a boolean Var or its negation, all on unmasked
 * columns of built-in types with the default collation.
 */
static bool
clause_is_pushable(Expr *clause, RelOptInfo *baserel, const char *masks)
{
	switch (nodeTag(clause))
	{
		case T_Var:
			return var_is_pushable((Node *) clause, baserel, masks) &&
				((Var *) clause)->vartype == BOOLOID;
		case T_BoolExpr:
			{
				BoolExpr   *b = (BoolExpr *) clause;

				return b->boolop == NOT_EXPR && list_length(b->args) == 1 &&
					var_is_pushable(linitial(b->args), baserel, masks) &&
					((Var *) linitial(b->args))->vartype == BOOLOID;
			}
		case T_NullTest:
			{
				NullTest   *nt = (NullTest *) clause;

				return !nt->argisrow &&
					var_is_pushable((Node *) nt->arg, baserel, masks);
			}
		case T_OpExpr:
			{
				OpExpr	   *op = (OpExpr *) clause;
				Node	   *l;
				Node	   *r;
				char	   *name;

				if (list_length(op->args) != 2 || op->opno >= FirstNormalObjectId)
					return false;
				if (OidIsValid(op->inputcollid) &&
					op->inputcollid != DEFAULT_COLLATION_OID)
					return false;
				if (func_volatile(op->opfuncid) != PROVOLATILE_IMMUTABLE)
					return false;
				name = get_opname(op->opno);
				if (name == NULL ||
					(strcmp(name, "=") != 0 && strcmp(name, "<>") != 0 &&
					 strcmp(name, "<") != 0 && strcmp(name, "<=") != 0 &&
					 strcmp(name, ">") != 0 && strcmp(name, ">=") != 0))
					return false;
				l = linitial(op->args);
				r = lsecond(op->args);
				return (var_is_pushable(l, baserel, masks) && value_is_pushable(r)) ||
					(value_is_pushable(l) && var_is_pushable(r, baserel, masks));
			}
		default:
			return false;
	}
}

static void
deparse_expr(Node *node, DeparseCtx *ctx)
{
	StringInfo	buf = ctx->buf;

	switch (nodeTag(node))
	{
		case T_Var:
			appendStringInfoString(buf,
								   quote_identifier(get_attname(ctx->relid,
																((Var *) node)->varattno,
																false)));
			break;
		case T_Const:
			{
				Const	   *c = (Const *) node;
				Oid			typout;
				bool		isvarlena;
				int			nestlevel;
				char	   *v;

				getTypeOutputInfo(c->consttype, &typout, &isvarlena);
				nestlevel = set_transmission_modes();
				v = OidOutputFunctionCall(typout, c->constvalue);
				reset_transmission_modes(nestlevel);
				appendStringInfo(buf, "%s::%s", quote_literal_cstr(v),
								 format_type_be_qualified(c->consttype));
			}
			break;
		case T_Param:
			{
				ListCell   *lc;
				int			n = 0;
				int			i = 1;

				foreach(lc, *ctx->params)
				{
					if (equal(node, lfirst(lc)))
					{
						n = i;
						break;
					}
					i++;
				}
				if (n == 0)
				{
					*ctx->params = lappend(*ctx->params, node);
					n = list_length(*ctx->params);
				}
				appendStringInfo(buf, "$%d::%s", n,
								 format_type_be_qualified(((Param *) node)->paramtype));
			}
			break;
		case T_OpExpr:
			{
				OpExpr	   *op = (OpExpr *) node;

				appendStringInfoChar(buf, '(');
				deparse_expr(linitial(op->args), ctx);
				appendStringInfo(buf, " %s ", get_opname(op->opno));
				deparse_expr(lsecond(op->args), ctx);
				appendStringInfoChar(buf, ')');
			}
			break;
		case T_NullTest:
			{
				NullTest   *nt = (NullTest *) node;

				appendStringInfoChar(buf, '(');
				deparse_expr((Node *) nt->arg, ctx);
				appendStringInfoString(buf, nt->nulltesttype == IS_NULL ?
									   " IS NULL)" : " IS NOT NULL)");
			}
			break;
		case T_BoolExpr:
			appendStringInfoString(buf, "(NOT ");
			deparse_expr(linitial(((BoolExpr *) node)->args), ctx);
			appendStringInfoChar(buf, ')');
			break;
		default:
			elog(ERROR, "unsupported expression type for deparse: %d",
				 (int) nodeTag(node));
	}
}

/*
 * Column attnum of rel as the remote SQL reads it, qualified by alias unless
 * NULL: its name, or for an encrypted column fieldcrypt's fetch expression.
 */
static void
deparse_column(StringInfo buf, Relation rel, int attnum, const char *crypt,
			   const char *alias)
{
	if (crypt != NULL && crypt[attnum - 1])
	{
		fieldcrypt_deparse_fetch(buf, rel, attnum, alias);
		return;
	}
	if (alias != NULL)
		appendStringInfo(buf, "%s.", alias);
	appendStringInfoString(buf, quote_identifier(NameStr(TupleDescAttr(RelationGetDescr(rel),
																		 attnum - 1)->attname)));
}

/* "public.<table>" */
static void
deparse_table(StringInfo buf, Oid relid)
{
	char	   *table_name;
	bool		soft_delete;

	table_options(relid, &table_name, &soft_delete);
	appendStringInfo(buf, "public.%s", quote_identifier(table_name));
}

/*
 * The column list of every column of rel, each qualified by alias unless it
 * is NULL; with unmasked_only, masked columns are left out.  *attrs gets
 * their attnums.
 */
static void
deparse_all_columns(StringInfo buf, Relation rel, const char *alias,
					bool unmasked_only, List **attrs)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	char	   *masks = unmasked_only ? column_masks(rel) : NULL;
	char	   *crypt;
	bool		first = true;
	int			i;

	if (!fieldcrypt_columns(rel, &crypt))
		crypt = NULL;
	*attrs = NIL;
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		if (masks != NULL && masks[i] != MASK_NONE)
			continue;
		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		deparse_column(buf, rel, i + 1, crypt, alias);
		*attrs = lappend_int(*attrs, i + 1);
	}
}

/* ---------------------------------------------------------------------
 * Planning
 * ---------------------------------------------------------------------
 */

static void
fdwGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	FdwRelInfo *fpinfo = palloc0(sizeof(FdwRelInfo));
	Relation	rel;
	ListCell   *lc;
	Selectivity sel;

	baserel->fdw_private = fpinfo;
	rel = table_open(foreigntableid, NoLock);
	fpinfo->masks = column_masks(rel);
	if (!fieldcrypt_columns(rel, &fpinfo->crypt))
		fpinfo->crypt = NULL;
	table_close(rel, NoLock);

	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (clause_is_pushable(ri->clause, baserel, fpinfo->masks))
			fpinfo->remote_conds = lappend(fpinfo->remote_conds, ri);
		else
			fpinfo->local_conds = lappend(fpinfo->local_conds, ri);
		/* equality on an encrypted column: also sent as a blind-index qual */
		if (fieldcrypt_qual_column(ri->clause, baserel, fpinfo->crypt))
			fpinfo->bidx_conds = lappend(fpinfo->bidx_conds, ri);
	}

	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid,
				   &fpinfo->attrs_used);
	foreach(lc, fpinfo->local_conds)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		pull_varattnos((Node *) ri->clause, baserel->relid, &fpinfo->attrs_used);
	}

	sel = clauselist_selectivity(root, baserel->baserestrictinfo, 0,
								 JOIN_INNER, NULL);
	baserel->tuples = FDW_ROWS_GUESS;
	baserel->rows = clamp_row_est(FDW_ROWS_GUESS * sel);
}

static void
fdwGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	Cost		startup = FDW_STARTUP_COST;
	Cost		total = startup + baserel->rows * FDW_ROW_COST;

	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, baserel->rows,
									 startup, total, NIL,
									 baserel->lateral_relids, NULL, NIL));
}

static ForeignScan *
fdwGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				  ForeignPath *best_path, List *tlist, List *scan_clauses,
				  Plan *outer_plan)
{
	FdwRelInfo *fpinfo = (FdwRelInfo *) baserel->fdw_private;
	List	   *remote_exprs = NIL;
	List	   *local_exprs = NIL;
	List	   *params = NIL;
	List	   *retrieved_attrs = NIL;
	List	   *bidx_params = NIL;
	StringInfoData buf;
	DeparseCtx	ctx;
	Relation	rel;
	TupleDesc	tupdesc;
	bool		wholerow;
	bool		first = true;
	ListCell   *lc;
	int			i;

	foreach(lc, scan_clauses)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (ri->pseudoconstant)
			continue;
		if (list_member_ptr(fpinfo->remote_conds, ri))
			remote_exprs = lappend(remote_exprs, ri->clause);
		else if (list_member_ptr(fpinfo->local_conds, ri))
			local_exprs = lappend(local_exprs, ri->clause);
		else if (clause_is_pushable(ri->clause, baserel, fpinfo->masks))
			remote_exprs = lappend(remote_exprs, ri->clause);
		else
		{
			local_exprs = lappend(local_exprs, ri->clause);
			pull_varattnos((Node *) ri->clause, baserel->relid,
						   &fpinfo->attrs_used);
		}
	}

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	rel = table_open(foreigntableid, NoLock);
	tupdesc = RelationGetDescr(rel);
	wholerow = bms_is_member(0 - FirstLowInvalidHeapAttributeNumber,
							 fpinfo->attrs_used);
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		if (!wholerow &&
			!bms_is_member(i + 1 - FirstLowInvalidHeapAttributeNumber,
						   fpinfo->attrs_used))
			continue;
		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		deparse_column(&buf, rel, i + 1, fpinfo->crypt, NULL);
		retrieved_attrs = lappend_int(retrieved_attrs, i + 1);
	}
	if (first)
		appendStringInfoString(&buf, "NULL");

	appendStringInfoString(&buf, " FROM ");
	deparse_table(&buf, foreigntableid);

	ctx.buf = &buf;
	ctx.relid = foreigntableid;
	ctx.params = &params;
	first = true;
	foreach(lc, remote_exprs)
	{
		appendStringInfoString(&buf, first ? " WHERE " : " AND ");
		first = false;
		deparse_expr((Node *) lfirst(lc), &ctx);
	}
	/* Last: their parameters must not be shared with deparse_expr's. */
	foreach(lc, fpinfo->bidx_conds)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		appendStringInfoString(&buf, first ? " WHERE " : " AND ");
		first = false;
		fieldcrypt_deparse_qual(&buf, rel, ri->clause,
								fieldcrypt_qual_column(ri->clause, baserel, fpinfo->crypt),
								&params, &bidx_params);
	}
	table_close(rel, NoLock);

	/* Lock the rows an UPDATE or DELETE is going to change. */
	if (baserel->relid == root->parse->resultRelation &&
		(root->parse->commandType == CMD_UPDATE ||
		 root->parse->commandType == CMD_DELETE))
		appendStringInfoString(&buf, " FOR UPDATE");

	return make_foreignscan(tlist, local_exprs, baserel->relid, params,
							list_make3(makeString(buf.data), retrieved_attrs, bidx_params),
							NIL, remote_exprs, outer_plan);
}

/* ---------------------------------------------------------------------
 * Scanning
 * ---------------------------------------------------------------------
 */

static void
fdwBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	FdwScanState *fsstate = palloc0(sizeof(FdwScanState));
	const TenantContext *ctx;
	ListCell   *lc;
	int			i;

	node->fdw_state = fsstate;
	fsstate->query = strVal(linitial(fsplan->fdw_private));
	fsstate->retrieved_attrs = lsecond(fsplan->fdw_private);
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	fsstate->rel = node->ss.ss_currentRelation;
	fsstate->conn = clinic_connect(fsstate->rel, &ctx);
	fsstate->apply_masks = role_is_masked(ctx->role);
	fsstate->masks = column_masks(fsstate->rel);
	fsstate->fc = fieldcrypt_begin(fsstate->rel, &ctx->clinic_id);
	fsstate->bidx_params = lthird(fsplan->fdw_private);
	fsstate->attinmeta = TupleDescGetAttInMetadata(RelationGetDescr(fsstate->rel));
	fsstate->cursor_number = ++cursor_counter;
	fsstate->batch_cxt = AllocSetContextCreate(estate->es_query_cxt,
											   "medpro_fdw batch",
											   ALLOCSET_DEFAULT_SIZES);

	fsstate->num_params = list_length(fsplan->fdw_exprs);
	if (fsstate->num_params > 0)
	{
		fsstate->param_exprs = ExecInitExprList(fsplan->fdw_exprs,
												(PlanState *) node);
		fsstate->param_flinfo = palloc0(sizeof(FmgrInfo) * fsstate->num_params);
		fsstate->param_values = palloc0(sizeof(char *) * fsstate->num_params);
		i = 0;
		foreach(lc, fsplan->fdw_exprs)
		{
			Oid			typout;
			bool		isvarlena;

			getTypeOutputInfo(exprType((Node *) lfirst(lc)), &typout, &isvarlena);
			fmgr_info(typout, &fsstate->param_flinfo[i]);
			i++;
		}
	}
}

/* DECLARE the cursor, with the parameters' current values. */
static void
create_cursor(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	StringInfoData sql;
	PGresult   *res;

	if (fsstate->num_params > 0)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
		int			nestlevel = set_transmission_modes();
		ListCell   *lc;
		int			i = 0;

		foreach(lc, fsstate->param_exprs)
		{
			bool		isnull;
			Datum		v = ExecEvalExpr((ExprState *) lfirst(lc), econtext, &isnull);

			fsstate->param_values[i] = isnull ? NULL :
				OutputFunctionCall(&fsstate->param_flinfo[i], v);
			i++;
		}
		reset_transmission_modes(nestlevel);
		fieldcrypt_translate_params(fsstate->fc, fsstate->bidx_params,
									fsstate->param_values);
		MemoryContextSwitchTo(oldcxt);
	}

	initStringInfo(&sql);
	appendStringInfo(&sql, "DECLARE medpro_c%u NO SCROLL CURSOR FOR %s",
					 fsstate->cursor_number, fsstate->query);
	res = remote_clinic_exec(fsstate->conn, sql.data, fsstate->num_params,
							 fsstate->param_values);
	PQclear(res);
	pfree(sql.data);

	fsstate->cursor_exists = true;
	fsstate->eof_reached = false;
	fsstate->num_tuples = 0;
	fsstate->next_tuple = 0;
}

/* FETCH the next batch into fsstate->tuples. */
static void
fetch_more(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;
	PGresult   *volatile res = NULL;
	MemoryContext oldcxt;
	char		sql[64];

	MemoryContextReset(fsstate->batch_cxt);
	oldcxt = MemoryContextSwitchTo(fsstate->batch_cxt);
	fsstate->tuples = NULL;
	fsstate->num_tuples = 0;
	fsstate->next_tuple = 0;

	snprintf(sql, sizeof(sql), "FETCH %d FROM medpro_c%u",
			 medpro_fetch_size, fsstate->cursor_number);
	res = remote_clinic_exec(fsstate->conn, sql, 0, NULL);
	PG_TRY();
	{
		int			n = PQntuples(res);
		int			i;

		fsstate->tuples = palloc0(sizeof(HeapTuple) * Max(n, 1));
		for (i = 0; i < n; i++)
			fsstate->tuples[i] = make_tuple(res, i, fsstate->rel,
											fsstate->attinmeta,
											fsstate->retrieved_attrs, 0,
											fsstate->masks,
											fsstate->apply_masks,
											fsstate->fc);
		fsstate->num_tuples = n;
		fsstate->eof_reached = (n < medpro_fetch_size);
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
}

static void
close_cursor(FdwScanState *fsstate)
{
	char		sql[64];

	snprintf(sql, sizeof(sql), "CLOSE medpro_c%u", fsstate->cursor_number);
	PQclear(remote_clinic_exec(fsstate->conn, sql, 0, NULL));
	fsstate->cursor_exists = false;
}

static TupleTableSlot *
fdwIterateForeignScan(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	if (!fsstate->cursor_exists)
		create_cursor(node);
	if (fsstate->next_tuple >= fsstate->num_tuples)
	{
		if (!fsstate->eof_reached)
			fetch_more(node);
		if (fsstate->next_tuple >= fsstate->num_tuples)
			return ExecClearTuple(slot);
	}
	ExecStoreHeapTuple(fsstate->tuples[fsstate->next_tuple++], slot, false);
	return slot;
}

/*
 * A rescan closes the cursor; the next fetch declares it again with the
 * parameters' new values.  (The cursor is NO SCROLL, so it cannot rewind.)
 */
static void
fdwReScanForeignScan(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;

	if (fsstate->cursor_exists)
		close_cursor(fsstate);
	fsstate->num_tuples = 0;
	fsstate->next_tuple = 0;
	fsstate->eof_reached = false;
}

static void
fdwEndForeignScan(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;

	if (fsstate != NULL && fsstate->cursor_exists)
		close_cursor(fsstate);
}

static void
fdwExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;

	if (es->verbose)
		ExplainPropertyText("Remote SQL",
							strVal(linitial(fsplan->fdw_private)), es);
}

/* ---------------------------------------------------------------------
 * Modifying
 * ---------------------------------------------------------------------
 */

/* The id column of rel: its attnum, or an error. */
static AttrNumber
id_attnum(Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), "id") == 0)
			return i + 1;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
			 errmsg("foreign table \"%s\" has no \"id\" column",
					RelationGetRelationName(rel))));
	return InvalidAttrNumber;	/* keep compiler quiet */
}

static void
fdwAddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
						   RangeTblEntry *target_rte, Relation target_relation)
{
	AttrNumber	attno = id_attnum(target_relation);
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(target_relation),
										  attno - 1);
	Var		   *var;

	var = makeVar(rtindex, attno, att->atttypid, att->atttypmod,
				  att->attcollation, 0);
	add_row_identity_var(root, var, rtindex, FDW_ROWID_NAME);
}

/*
 * The remote UPDATE of one row, returning the row before it too:
 *
 *	UPDATE public.t AS n SET <set>
 *	  FROM (SELECT * FROM public.t WHERE id = $1 [AND deleted_at IS NULL]
 *			FOR UPDATE) AS o
 *	 WHERE n.id = o.id [AND n.deleted_at IS NULL]
 *	RETURNING n.<every column>, o.<every unmasked column>
 *
 * The subquery locks the row (under READ COMMITTED, waiting for a concurrent
 * writer and then rechecking its quals on the newest version), so o is the
 * version the UPDATE replaces: nobody can change it between the lock and the
 * update, and if n was read from an older snapshot, the UPDATE rechecks
 * n.id = o.id on the newest version of n.  The old columns are named one by
 * one rather than as to_jsonb(o), so masked columns and clinic columns that
 * the foreign table does not declare never leave the clinic database.
 */
static void
deparse_update_returning_old(StringInfo sql, Relation rel, const char *set,
							 const char *id_name, bool soft_delete,
							 List **retrieved_attrs, List **old_attrs)
{
	StringInfoData old_cols;
	Oid			relid = RelationGetRelid(rel);

	appendStringInfoString(sql, "UPDATE ");
	deparse_table(sql, relid);
	appendStringInfo(sql, " AS n SET %s FROM (SELECT * FROM ", set);
	deparse_table(sql, relid);
	appendStringInfo(sql, " WHERE %s = $1", id_name);
	if (soft_delete)
		appendStringInfoString(sql, " AND deleted_at IS NULL");
	appendStringInfo(sql, " FOR UPDATE) AS o WHERE n.%s = o.%s",
					 id_name, id_name);
	if (soft_delete)
		appendStringInfoString(sql, " AND n.deleted_at IS NULL");
	appendStringInfoString(sql, " RETURNING ");
	deparse_all_columns(sql, rel, "n", false, retrieved_attrs);
	initStringInfo(&old_cols);
	deparse_all_columns(&old_cols, rel, "o", true, old_attrs);
	if (*old_attrs != NIL)
		appendStringInfo(sql, ", %s", old_cols.data);
	pfree(old_cols.data);
}

/*
 * fdw_private of a modify: the remote statement, the attnums sent as
 * parameters (after the id for UPDATE and DELETE), the attnums of
 * RETURNING, which lists every column (the audit row needs them), and the
 * attnums of the old row's unmasked columns that UPDATE and soft DELETE
 * return after them (the audit row's old_data).
 */
static List *
fdwPlanForeignModify(PlannerInfo *root, ModifyTable *plan,
					 Index resultRelation, int subplan_index)
{
	CmdType		operation = plan->operation;
	RangeTblEntry *rte = planner_rt_fetch(resultRelation, root);
	Relation	rel;
	TupleDesc	tupdesc;
	StringInfoData sql;
	List	   *target_attrs = NIL;
	List	   *retrieved_attrs = NIL;
	List	   *old_attrs = NIL;
	char	   *table_name;
	bool		soft_delete;
	const char *id_name;
	char	   *crypt;
	ListCell   *lc;
	int			col;
	int			n;

	if (plan->onConflictAction != ONCONFLICT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ON CONFLICT is not supported on clinic relations")));

	rel = table_open(rte->relid, NoLock);
	tupdesc = RelationGetDescr(rel);
	table_options(rte->relid, &table_name, &soft_delete);
	id_name = quote_identifier(NameStr(TupleDescAttr(tupdesc, id_attnum(rel) - 1)->attname));

	if (operation == CMD_INSERT)
	{
		/* Only the columns the statement names: the others get remote defaults. */
		col = -1;
		while ((col = bms_next_member(rte->insertedCols, col)) >= 0)
		{
			AttrNumber	attno = col + FirstLowInvalidHeapAttributeNumber;

			if (attno > 0 && !TupleDescAttr(tupdesc, attno - 1)->attisdropped)
				target_attrs = lappend_int(target_attrs, attno);
		}
		/* an encrypted value is bound to its row id: always send the id */
		if (fieldcrypt_columns(rel, &crypt) && !list_member_int(target_attrs, id_attnum(rel)))
			target_attrs = lappend_int(target_attrs, id_attnum(rel));
	}
	else if (operation == CMD_UPDATE)
	{
		RelOptInfo *baserel = find_base_rel(root, resultRelation);
		Bitmapset  *updated = get_rel_all_updated_cols(root, baserel);

		col = -1;
		while ((col = bms_next_member(updated, col)) >= 0)
		{
			AttrNumber	attno = col + FirstLowInvalidHeapAttributeNumber;

			if (attno <= InvalidAttrNumber)
				elog(ERROR, "system-column update is not supported");
			target_attrs = lappend_int(target_attrs, attno);
		}
	}
	if (!fieldcrypt_columns(rel, &crypt))
		crypt = NULL;

	initStringInfo(&sql);
	switch (operation)
	{
		case CMD_INSERT:
			appendStringInfoString(&sql, "INSERT INTO ");
			deparse_table(&sql, rte->relid);
			if (target_attrs == NIL)
				appendStringInfoString(&sql, " DEFAULT VALUES");
			else
			{
				int			nparams = 1;

				appendStringInfoString(&sql, " (");
				foreach(lc, target_attrs)
				{
					Form_pg_attribute att = TupleDescAttr(tupdesc, lfirst_int(lc) - 1);

					if (nparams > 1)
						appendStringInfoString(&sql, ", ");
					if (crypt && crypt[lfirst_int(lc) - 1])
						fieldcrypt_deparse_target(&sql, rel, lfirst_int(lc), false, &nparams);
					else
					{
						appendStringInfoString(&sql, quote_identifier(NameStr(att->attname)));
						nparams++;
					}
				}
				appendStringInfoString(&sql, ") VALUES (");
				for (n = 1; n < nparams; n++)
					appendStringInfo(&sql, "%s$%d", n > 1 ? ", " : "", n);
				appendStringInfoChar(&sql, ')');
			}
			break;
		case CMD_UPDATE:
			{
				StringInfoData set;

				initStringInfo(&set);
				n = 2;
				foreach(lc, target_attrs)
				{
					Form_pg_attribute att = TupleDescAttr(tupdesc, lfirst_int(lc) - 1);

					if (n > 2)
						appendStringInfoString(&set, ", ");
					if (crypt && crypt[lfirst_int(lc) - 1])
						fieldcrypt_deparse_target(&set, rel, lfirst_int(lc), true, &n);
					else
					{
						appendStringInfo(&set, "%s = $%d",
										 quote_identifier(NameStr(att->attname)), n);
						n++;
					}
				}
				deparse_update_returning_old(&sql, rel, set.data, id_name,
											 soft_delete, &retrieved_attrs,
											 &old_attrs);
			}
			break;
		case CMD_DELETE:
			if (soft_delete)
				deparse_update_returning_old(&sql, rel, "deleted_at = now()",
											 id_name, true, &retrieved_attrs,
											 &old_attrs);
			else
			{
				appendStringInfoString(&sql, "DELETE FROM ");
				deparse_table(&sql, rte->relid);
				appendStringInfo(&sql, " WHERE %s = $1 RETURNING ", id_name);
				deparse_all_columns(&sql, rel, NULL, false, &retrieved_attrs);
			}
			break;
		default:
			elog(ERROR, "unexpected operation: %d", (int) operation);
	}
	if (operation == CMD_INSERT)
	{
		appendStringInfoString(&sql, " RETURNING ");
		deparse_all_columns(&sql, rel, NULL, false, &retrieved_attrs);
	}
	table_close(rel, NoLock);

	return list_make4(makeString(sql.data), target_attrs, retrieved_attrs,
					  old_attrs);
}

static void
fdwBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
					  List *fdw_private, int subplan_index, int eflags)
{
	FdwModifyState *fmstate = palloc0(sizeof(FdwModifyState));
	const TenantContext *ctx;
	TupleDesc	tupdesc;
	ListCell   *lc;
	int			i;

	rinfo->ri_FdwState = fmstate;
	fmstate->query = strVal(linitial(fdw_private));
	fmstate->target_attrs = lsecond(fdw_private);
	fmstate->retrieved_attrs = lthird(fdw_private);
	fmstate->old_attrs = lfourth(fdw_private);
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	fmstate->operation = mtstate->operation;
	fmstate->rel = rinfo->ri_RelationDesc;
	tupdesc = RelationGetDescr(fmstate->rel);
	fmstate->conn = clinic_connect(fmstate->rel, &ctx);
	fmstate->clinic_id = ctx->clinic_id;
	fmstate->user_id = ctx->user_id;
	fmstate->apply_masks = role_is_masked(ctx->role);
	fmstate->masks = column_masks(fmstate->rel);
	fmstate->fc = fieldcrypt_begin(fmstate->rel, &ctx->clinic_id);
	fmstate->id_attno = id_attnum(fmstate->rel);
	if (fmstate->fc && fmstate->operation == CMD_UPDATE &&
		list_member_int(fmstate->target_attrs, fmstate->id_attno))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the id of a row with encrypted columns cannot change")));
	fmstate->attinmeta = TupleDescGetAttInMetadata(tupdesc);
	fmstate->owner = fmstate->rel->rd_rel->relowner;
	{
		bool		any;

		fmstate->validators = column_validators(fmstate->rel, &any);
		if (any)
		{
			CountryArgs args = {&fmstate->clinic_id, fmstate->country};

			run_as_owner(fmstate->owner, read_clinic_country, &args);
		}
	}
	table_options(RelationGetRelid(fmstate->rel), &fmstate->entity,
				  &fmstate->soft_delete);

	/* Tables only clinic admins manage (DESIGN 4): writers 'admin'. */
	if (admin_writes_only(RelationGetRelid(fmstate->rel)) &&
		strcmp(ctx->role, "admin") != 0 && strcmp(ctx->role, "super_admin") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to change %s", fmstate->entity),
				 errdetail("Only clinic admins manage this table; role %s may read it.", ctx->role)));

	/* A role that sees a column masked may not overwrite it. */
	if (fmstate->apply_masks && fmstate->operation == CMD_UPDATE)
	{
		foreach(lc, fmstate->target_attrs)
		{
			int			attnum = lfirst_int(lc);

			if (fmstate->masks[attnum - 1] != MASK_NONE)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to write column \"%s\"",
								NameStr(TupleDescAttr(tupdesc, attnum - 1)->attname)),
						 errdetail("Role %s may not change this column.", ctx->role)));
		}
	}

	if (fmstate->operation == CMD_UPDATE || fmstate->operation == CMD_DELETE)
	{
		Plan	   *subplan = outerPlanState(mtstate)->plan;
		Oid			typout;
		bool		isvarlena;

		fmstate->rowid_attno = ExecFindJunkAttributeInTlist(subplan->targetlist,
															FDW_ROWID_NAME);
		if (!AttributeNumberIsValid(fmstate->rowid_attno))
			elog(ERROR, "could not find junk %s column", FDW_ROWID_NAME);
		getTypeOutputInfo(TupleDescAttr(tupdesc, id_attnum(fmstate->rel) - 1)->atttypid,
						  &typout, &isvarlena);
		fmgr_info(typout, &fmstate->rowid_flinfo);
	}

	fmstate->param_flinfo = palloc0(sizeof(FmgrInfo) *
									Max(list_length(fmstate->target_attrs), 1));
	i = 0;
	foreach(lc, fmstate->target_attrs)
	{
		Oid			typout;
		bool		isvarlena;

		getTypeOutputInfo(TupleDescAttr(tupdesc, lfirst_int(lc) - 1)->atttypid,
						  &typout, &isvarlena);
		fmgr_info(typout, &fmstate->param_flinfo[i]);
		i++;
	}
}

/*
 * The text parameters of one row: the row identity first (UPDATE, DELETE),
 * then target_attrs from slot.  *nparams gets their number.
 */
static const char **
modify_params(FdwModifyState *fmstate, TupleTableSlot *slot,
			  TupleTableSlot *planSlot, int *nparams)
{
	const char **values;
	int			nestlevel;
	int			n = 0;
	ListCell   *lc;
	int			i = 0;
	const char *row_id = NULL;

	values = palloc0(sizeof(char *) *
					 (list_length(fmstate->target_attrs) * FIELDCRYPT_WIDTH + 1));
	nestlevel = set_transmission_modes();
	if (fmstate->operation != CMD_INSERT)
	{
		bool		isnull;
		Datum		id = ExecGetJunkAttribute(planSlot, fmstate->rowid_attno, &isnull);

		if (isnull)
			elog(ERROR, "row identity is null");
		values[n++] = OutputFunctionCall(&fmstate->rowid_flinfo, id);
		row_id = values[0];
	}
	if (slot != NULL && fmstate->fc && fmstate->operation == CMD_INSERT)
	{
		bool		isnull;
		Datum		id = slot_getattr(slot, fmstate->id_attno, &isnull);

		row_id = isnull ? fieldcrypt_new_row_id() :
			DatumGetCString(DirectFunctionCall1(uuid_out, id));
	}
	if (slot != NULL)
	{
		foreach(lc, fmstate->target_attrs)
		{
			int			attnum = lfirst_int(lc);
			bool		isnull;
			Datum		v = slot_getattr(slot, attnum, &isnull);

			if (!isnull && fmstate->apply_masks &&
				fmstate->masks[attnum - 1] != MASK_NONE)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to write column \"%s\"",
								NameStr(TupleDescAttr(RelationGetDescr(fmstate->rel),
													  attnum - 1)->attname))));
			if (fieldcrypt_is_encrypted(fmstate->fc, attnum))
			{
				/* checked in clear, then encrypted: the clinic never sees it */
				const char *plain = isnull ? NULL : OutputFunctionCall(&fmstate->param_flinfo[i], v);

				if (plain != NULL)
					validate_value(fmstate, attnum, plain);
				fieldcrypt_encode(fmstate->fc, attnum, plain, row_id, values + n);
				n += FIELDCRYPT_WIDTH;
			}
			else if (fmstate->fc && attnum == fmstate->id_attno)
				values[n++] = row_id;
			else
			{
				values[n] = isnull ? NULL : OutputFunctionCall(&fmstate->param_flinfo[i], v);
				if (values[n] != NULL)
					validate_value(fmstate, attnum, values[n]);
				n++;
			}
			i++;
		}
	}
	reset_transmission_modes(nestlevel);
	*nparams = n;
	return values;
}

/* A JSON value for a column value in text form. */
static void
append_json_value(StringInfo buf, Oid type, const char *v)
{
	if (v == NULL)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	switch (type)
	{
		case BOOLOID:
			appendStringInfoString(buf, v[0] == 't' ? "true" : "false");
			return;
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
			if (strspn(v, "0123456789.-+eE") == strlen(v) && strchr(v, 'N') == NULL)
			{
				appendStringInfoString(buf, v);
				return;
			}
			break;
		case JSONOID:
		case JSONBOID:
			appendStringInfoString(buf, v);
			return;
		default:
			break;
	}
	escape_json(buf, v);
}

static void
audit_as_owner(void *arg)
{
	AuditArgs  *a = (AuditArgs *) arg;

	audit_write(a->clinic, a->user, a->action, a->entity, a->entity_id,
				a->old_data, a->new_data, false);
}

/*
 * Append the JSON object of the columns attrs of row 0 of res, starting at
 * field first_field, to buf; masked columns are left out.
 */
static void
append_row_json(StringInfo buf, FdwModifyState *fmstate, PGresult *res,
				int first_field, List *attrs)
{
	TupleDesc	tupdesc = RelationGetDescr(fmstate->rel);
	ListCell   *lc;
	int			i = first_field;
	bool		first = true;

	appendStringInfoChar(buf, '{');
	foreach(lc, attrs)
	{
		int			attnum = lfirst_int(lc);
		Form_pg_attribute att = TupleDescAttr(tupdesc, attnum - 1);
		char	   *v = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);

		if (fmstate->masks[attnum - 1] == MASK_NONE)
		{
			if (!first)
				appendStringInfoString(buf, ", ");
			first = false;
			escape_json(buf, NameStr(att->attname));
			appendStringInfoString(buf, ": ");
			append_json_value(buf, att->atttypid, v);
		}
		i++;
	}
	appendStringInfoChar(buf, '}');
}

/*
 * Store the RETURNING row of res (if any) in slot and write its audit row.
 * The row's JSON, and that of the old row that UPDATE and soft DELETE
 * return after it (old_attrs), leave out masked columns.  Returns slot, or
 * NULL when the clinic changed no row.  Clears res.
 */
static TupleTableSlot *
finish_modify(FdwModifyState *fmstate, PGresult *res, TupleTableSlot *slot)
{
	TupleDesc	tupdesc = RelationGetDescr(fmstate->rel);
	StringInfoData json;
	StringInfoData old_json;
	char	   *entity_id = NULL;
	AuditArgs	a;
	bool		found = false;
	bool		has_old = (fmstate->operation == CMD_UPDATE ||
						   (fmstate->operation == CMD_DELETE &&
							fmstate->soft_delete));

	initStringInfo(&json);
	initStringInfo(&old_json);
	PG_TRY();
	{
		if (PQntuples(res) > 0)
		{
			HeapTuple	tup;
			ListCell   *lc;
			int			i = 0;

			found = true;
			tup = make_tuple(res, 0, fmstate->rel, fmstate->attinmeta,
							 fmstate->retrieved_attrs,
							 list_length(fmstate->old_attrs),
							 fmstate->masks, fmstate->apply_masks, fmstate->fc);
			ExecForceStoreHeapTuple(tup, slot, false);

			foreach(lc, fmstate->retrieved_attrs)
			{
				Form_pg_attribute att = TupleDescAttr(tupdesc, lfirst_int(lc) - 1);

				if (strcmp(NameStr(att->attname), "id") == 0 &&
					!PQgetisnull(res, 0, i))
					entity_id = pstrdup(PQgetvalue(res, 0, i));
				i++;
			}
			append_row_json(&json, fmstate, res, 0, fmstate->retrieved_attrs);
			if (has_old)
				append_row_json(&old_json, fmstate, res,
								list_length(fmstate->retrieved_attrs),
								fmstate->old_attrs);
		}
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();

	if (!found)
		return NULL;

	a.clinic = &fmstate->clinic_id;
	a.user = &fmstate->user_id;
	a.entity = fmstate->entity;
	a.entity_id = entity_id;
	a.old_data = NULL;
	a.new_data = NULL;
	switch (fmstate->operation)
	{
		case CMD_INSERT:
			a.action = "insert";
			a.new_data = json.data;
			break;
		case CMD_UPDATE:
			a.action = "update";
			a.old_data = old_json.data;
			a.new_data = json.data;
			break;
		default:
			/* a soft delete returns both rows; a hard delete the old one */
			a.action = "delete";
			if (has_old)
			{
				a.old_data = old_json.data;
				a.new_data = json.data;
			}
			else
				a.old_data = json.data;
			break;
	}
	run_as_owner(fmstate->owner, audit_as_owner, &a);
	return slot;
}

static TupleTableSlot *
modify_row(FdwModifyState *fmstate, TupleTableSlot *slot,
		   TupleTableSlot *planSlot)
{
	const char **values;
	int			nparams;
	PGresult   *res;

	values = modify_params(fmstate,
						   fmstate->operation == CMD_DELETE ? NULL : slot,
						   planSlot, &nparams);
	res = remote_clinic_exec(fmstate->conn, fmstate->query, nparams, values);
	return finish_modify(fmstate, res, slot);
}

static TupleTableSlot *
fdwExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
					 TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	return modify_row((FdwModifyState *) rinfo->ri_FdwState, slot, planSlot);
}

static TupleTableSlot *
fdwExecForeignUpdate(EState *estate, ResultRelInfo *rinfo,
					 TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	return modify_row((FdwModifyState *) rinfo->ri_FdwState, slot, planSlot);
}

static TupleTableSlot *
fdwExecForeignDelete(EState *estate, ResultRelInfo *rinfo,
					 TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	return modify_row((FdwModifyState *) rinfo->ri_FdwState, slot, planSlot);
}

/* Nothing to release: the state lives in the query's memory context. */
static void
fdwEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
}

static int
fdwIsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT) | (1 << CMD_UPDATE) | (1 << CMD_DELETE);
}

static void
fdwExplainForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
						List *fdw_private, int subplan_index, ExplainState *es)
{
	if (es->verbose)
		ExplainPropertyText("Remote SQL", strVal(linitial(fdw_private)), es);
}

/* ---------------------------------------------------------------------
 * SQL entry points
 * ---------------------------------------------------------------------
 */

/* SQL: medpro.fdw_handler() RETURNS fdw_handler */
Datum
medpro_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *r = makeNode(FdwRoutine);

	r->GetForeignRelSize = fdwGetForeignRelSize;
	r->GetForeignPaths = fdwGetForeignPaths;
	r->GetForeignPlan = fdwGetForeignPlan;
	r->BeginForeignScan = fdwBeginForeignScan;
	r->IterateForeignScan = fdwIterateForeignScan;
	r->ReScanForeignScan = fdwReScanForeignScan;
	r->EndForeignScan = fdwEndForeignScan;
	r->ExplainForeignScan = fdwExplainForeignScan;

	r->AddForeignUpdateTargets = fdwAddForeignUpdateTargets;
	r->PlanForeignModify = fdwPlanForeignModify;
	r->BeginForeignModify = fdwBeginForeignModify;
	r->ExecForeignInsert = fdwExecForeignInsert;
	r->ExecForeignUpdate = fdwExecForeignUpdate;
	r->ExecForeignDelete = fdwExecForeignDelete;
	r->EndForeignModify = fdwEndForeignModify;
	r->IsForeignRelUpdatable = fdwIsForeignRelUpdatable;
	r->ExplainForeignModify = fdwExplainForeignModify;

	PG_RETURN_POINTER(r);
}

/* SQL: medpro.fdw_validator(options text[], catalog oid) RETURNS void */
Datum
medpro_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		const char *valid;

		if (catalog == ForeignServerRelationId &&
			strcmp(def->defname, "schema_version") == 0)
		{
			char	   *v = defGetString(def);
			char	   *end;
			long		n;

			if (strcmp(v, "latest") == 0)
				continue;
			errno = 0;
			n = strtol(v, &end, 10);
			if (errno != 0 || *end != '\0' || end == v || n < 0 || n > PG_INT32_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"schema_version\": \"%s\"", v),
						 errhint("Use \"latest\", 0 (no check) or a schema version.")));
			continue;
		}
		if (catalog == ForeignTableRelationId &&
			strcmp(def->defname, "table_name") == 0)
		{
			if (defGetString(def)[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"table_name\" must not be empty")));
			continue;
		}
		if (catalog == ForeignTableRelationId &&
			strcmp(def->defname, "soft_delete") == 0)
		{
			(void) defGetBoolean(def);
			continue;
		}
		if (catalog == ForeignTableRelationId &&
			strcmp(def->defname, "writers") == 0)
		{
			char	   *v = defGetString(def);

			if (strcmp(v, "admin") != 0 && strcmp(v, "all") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"writers\": \"%s\"", v),
						 errhint("Valid values are \"admin\" and \"all\".")));
			continue;
		}
		if (catalog == AttributeRelationId && strcmp(def->defname, "encrypted") == 0)
		{
			(void) defGetBoolean(def);
			continue;
		}
		if (catalog == AttributeRelationId && strcmp(def->defname, "mask") == 0)
		{
			char	   *v = defGetString(def);

			if (strcmp(v, "hide") != 0 && strcmp(v, "last2") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"mask\": \"%s\"", v),
						 errhint("Valid values are \"hide\" and \"last2\".")));
			continue;
		}

		if (catalog == AttributeRelationId && strcmp(def->defname, "validate") == 0)
		{
			char	   *v = defGetString(def);

			if (strcmp(v, "ssn") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"validate\": \"%s\"", v),
						 errhint("The valid value is \"ssn\".")));
			continue;
		}

		if (catalog == ForeignServerRelationId)
			valid = "schema_version";
		else if (catalog == ForeignTableRelationId)
			valid = "table_name, soft_delete, writers";
		else if (catalog == AttributeRelationId)
			valid = "mask, validate, encrypted";
		else
			valid = NULL;
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\"", def->defname),
				 valid ? errhint("Valid options in this context are: %s.", valid) :
				 errhint("There are no valid options in this context.")));
	}
	PG_RETURN_VOID();
}
