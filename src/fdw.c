/*
 * fdw.c
 *	  medpro_fdw: the routing foreign-data wrapper behind clinic.*.
 *
 * This file owns the FDW callbacks: planning (which clauses, sort keys,
 * LIMIT/OFFSET, aggregates and two-table joins run in the clinic database,
 * as decided and written by deparse.c; estimates), scans (one round trip:
 * a prepared statement for bounded scans, else a cursor fetching
 * medpro.fetch_size rows per round trip), INSERT (batched) / UPDATE /
 * DELETE with RETURNING (row identity: the id column), masking of columns
 * by application role, the checks of validated columns before a write
 * (validate 'ssn', with the clinic's country), and the audit rows of writes.
 *
 * Nothing in a plan depends on the clinic or the role: the clinic
 * connection is chosen from the tenant context when a scan or modify
 * begins (remote_clinic_begin), and masked values are produced while rows
 * are converted.  A plan cached under clinic A therefore runs against
 * clinic B in a later transaction, and a plan made for a doctor masks for
 * a secretary (only estimates may come from the clinic of the planning
 * context).  A qual or sort key on a masked column is never sent to the
 * clinic database: it would see the clear value.  See docs/routing.md.
 *
 * Encrypted columns (option encrypted, fieldcrypt.h) are handled by
 * fieldcrypt.c through small hooks: deparse.c never ships an expression on
 * them and writes their fetch expression in a base scan's SELECT list
 * (deparse_select, and deparse_all_columns here for RETURNING); here, the
 * INSERT / UPDATE targets (fieldcrypt_deparse_target), modify_params
 * (fieldcrypt_encode, after the validate check on the clear value),
 * make_tuple (fieldcrypt_decode), and the blind-index quals
 * (fieldcrypt_qual_column / _deparse_qual in planning,
 * fieldcrypt_translate_params when a scan starts).
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
#include "optimizer/tlist.h"
#include "parser/parsetree.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/selfuncs.h"
#include "utils/uuid.h"

#include "audit.h"
#include "deparse.h"
#include "fdw.h"
#include "fieldcrypt.h"
#include "identifiers.h"
#include "medpro.h"
#include "remote.h"
#include "routecache.h"
#include "tenant.h"

/* Rows a clinic table is assumed to hold (no remote statistics yet). */
#define FDW_ROWS_GUESS		1000.0
/* Cost of a round trip to the clinic database, and of a row. */
#define FDW_STARTUP_COST	100.0
#define FDW_ROW_COST		(10 * cpu_tuple_cost)

/* The junk column carrying the row identity (id) to UPDATE and DELETE. */
#define FDW_ROWID_NAME		"medpro_row_id"

/* Column checks made here before a write (option validate). */
#define VALIDATE_NONE	0
#define VALIDATE_SSN	1		/* medpro_valid_ssn(clinic country, value) */

/* Planner state of a foreign table (baserel->fdw_private). */
typedef struct FdwRelInfo
{
	Oid			relid;			/* the foreign table */
	List	   *remote_conds;	/* RestrictInfos sent to the clinic */
	List	   *local_conds;	/* RestrictInfos evaluated here */
	Bitmapset  *attrs_used;		/* columns to fetch */
	DeparseColumns *cols;		/* column masks, for the deparser */
	bool		soft_delete;	/* scans read live rows only (see GetForeignRelSize) */
	bool		id_lookup;		/* a remote clause id = value */
	List	   *bidx_conds;		/* local conds also sent as blind-index quals */
} FdwRelInfo;

/*
 * Planner state of a grouped relation whose aggregation the clinic does
 * (grouped_rel->fdw_private): the scanned base relation or pushed-down
 * join, and the remote
 * SELECT list (grouping expressions and aggregates) as fdw_scan_tlist.
 */
typedef struct FdwGroupInfo
{
	RelOptInfo *baserel;
	List	   *tlist;
} FdwGroupInfo;

/*
 * Planner state of a join of two clinic tables done by the clinic
 * (joinrel->fdw_private): the sides, the join type, the clauses of the ON
 * (join clauses) and of the WHERE (clauses pushed down to the join level),
 * and the columns of both sides for the deparser.
 */
typedef struct FdwJoinInfo
{
	RelOptInfo *outerrel;
	RelOptInfo *innerrel;
	JoinType	jointype;
	List	   *joinclauses;	/* Exprs */
	List	   *otherclauses;	/* Exprs */
	DeparseColumns *cols;
} FdwJoinInfo;

/* Executor state of a scan. */
typedef struct FdwScanState
{
	char	   *query;			/* the remote SELECT */
	List	   *retrieved_attrs;	/* attnums of its columns */
	int			bound;			/* most rows it returns, -1 unknown */
	bool		for_update;		/* it locks rows (SELECT ... FOR UPDATE) */
	bool		runs_alone;		/* the statement's only remote scan (scan_runs_alone) */
	Relation	rel;
	TupleDesc	tupdesc;		/* of the scan tuples */
	AttInMetadata *attinmeta;
	int		   *slot_pos;		/* scan tuple column of each retrieved column */
	char	   *masks;
	bool		apply_masks;
	FieldCrypt *fc;				/* encrypted columns to decrypt, or NULL */
	List	   *bidx_params;	/* (param number, attnum) pairs to translate */
	PGconn	   *conn;
	unsigned int cursor_number;
	char	   *declare;		/* DECLARE statement of the cursor */
	bool		started;
	bool		cursor_exists;
	bool		eof_reached;
	int64		rows_fetched;	/* rows received (EXPLAIN ANALYZE) */
	/* remote parameters */
	int			num_params;
	int			send_params;	/* of them, sent with query (the first ones) */
	List	   *param_exprs;	/* ExprStates */
	FmgrInfo   *param_flinfo;	/* their output functions */
	const char **param_values;
	bool		params_need_modes;	/* set_transmission_modes needed */
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
	char	   *insert_prefix;	/* INSERT INTO t (<columns>), for batches */
	char	   *insert_returning;	/* " RETURNING <every column>" */
	bool		soft_delete;	/* DELETE is an UPDATE of deleted_at */
	Relation	rel;
	AttInMetadata *attinmeta;
	char	   *masks;
	bool		apply_masks;
	FieldCrypt *fc;				/* encrypted columns, or NULL */
	AttrNumber	id_attno;		/* the id column */
	int			row_nparams;	/* parameters of one row's target_attrs */
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

static void fdwGetForeignUpperPaths(PlannerInfo *root, UpperRelationKind stage,
									RelOptInfo *input_rel, RelOptInfo *output_rel,
									void *extra);
static void add_grouped_path(PlannerInfo *root, RelOptInfo *input_rel,
							 RelOptInfo *output_rel, GroupPathExtraData *gextra);
static void deparse_join_from_where(StringInfo buf, FdwJoinInfo *jinfo, List **params);
static ForeignScan *join_plan(PlannerInfo *root, RelOptInfo *joinrel, List *tlist,
							  Plan *outer_plan, List *pathkeys, bool is_final);
static int	append_limit(StringInfo buf, PlannerInfo *root, const DeparseColumns *cols,
						 List **params, int bound);

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
	return deparse_columns(rel)->masks;
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
 * version in medpro.migrations (kept in the routing cache until
 * medpro.migrations changes), and 0 means no check.
 */
static int
expected_version(Relation rel)
{
	ForeignTable *ft = GetForeignTable(RelationGetRelid(rel));
	ForeignServer *server = GetForeignServer(ft->serverid);
	const char *setting = "latest";
	int			version = 0;
	ListCell   *lc;

	foreach(lc, server->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "schema_version") == 0)
			setting = defGetString(def);
	}
	if (strcmp(setting, "latest") != 0)
		return pg_strtoint32(setting);

	if (!routecache_get_latest_version(&version))
	{
		run_as_owner(rel->rd_rel->relowner, read_latest_version, &version);
		routecache_put_latest_version(version);
	}
	return version;
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
	if (nestlevel >= 0)
		AtEOXact_GUC(true, nestlevel);
}


/*
 * A tuple of tupdesc from row of res, whose first columns are
 * retrieved_attrs (attnums of relation relname) and whose nextra further
 * columns are not part of it.  Retrieved column i goes to tuple column
 * slot_pos[i] (attnum - 1 when slot_pos is NULL); the others are NULL.
 * Encrypted columns (fc, by attnum) are decrypted; with apply_masks, masked
 * columns (masks by attnum) then get their masked value.  Allocated in the
 * current memory context.
 */
static HeapTuple
make_tuple(PGresult *res, int row, TupleDesc tupdesc, const char *relname,
		   AttInMetadata *attinmeta, List *retrieved_attrs, const int *slot_pos,
		   int nextra, const char *masks, bool apply_masks, FieldCrypt *fc)
{
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
						PQnfields(res), relname,
						Max(list_length(retrieved_attrs), 1) + nextra)));
	foreach(lc, retrieved_attrs)
	{
		int			attnum = lfirst_int(lc);
		int			pos = slot_pos ? slot_pos[i] : attnum - 1;
		char	   *v = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);

		if (fieldcrypt_is_encrypted(fc, attnum))
			v = fieldcrypt_decode(fc, attnum, v);
		if (apply_masks && masks[attnum - 1] != MASK_NONE)
			v = mask_value(v, masks[attnum - 1]);
		values[pos] = InputFunctionCall(&attinmeta->attinfuncs[pos], v,
										attinmeta->attioparams[pos],
										attinmeta->atttypmods[pos]);
		nulls[pos] = (v == NULL);
		i++;
	}
	return heap_form_tuple(tupdesc, values, nulls);
}

/* ---------------------------------------------------------------------
 * Deparsing of the modify statements (scans: deparse.c)
 * ---------------------------------------------------------------------
 */

/*
 * The column list of every column of rel, each qualified by alias unless it
 * is NULL (an encrypted column as fieldcrypt's fetch expression); with
 * unmasked_only, masked columns are left out.  *attrs gets their attnums.
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

	(void) fieldcrypt_columns(rel, &crypt);
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
		if (crypt[i])
			fieldcrypt_deparse_fetch(buf, rel, i + 1, alias);
		else
		{
			if (alias != NULL)
				appendStringInfo(buf, "%s.", alias);
			appendStringInfoString(buf, quote_identifier(NameStr(att->attname)));
		}
		*attrs = lappend_int(*attrs, i + 1);
	}
}

/* ---------------------------------------------------------------------
 * Planning
 * ---------------------------------------------------------------------
 */

/*
 * Whether a restriction clause may run in the clinic database.  On a
 * soft-deleting table (and above a caller's own security barrier) it must
 * also be unable to fail or leak on a row it should not see: the clinic may
 * evaluate it before (deleted_at IS NULL).
 */
static bool
restriction_is_shippable(RestrictInfo *ri, RelOptInfo *baserel,
						 FdwRelInfo *fpinfo)
{
	bool		leak_check = fpinfo->soft_delete ||
		(ri->security_level > baserel->baserestrict_min_security && !ri->leakproof);

	return deparse_is_shippable(ri->clause, baserel, fpinfo->cols, leak_check);
}

/*
 * Whether a remote clause is "id = value": the scan returns at most one row
 * (id is the primary key of every clinic table), so it needs no cursor.
 */
static bool
clause_is_id_lookup(Expr *clause, Index varno, Oid relid)
{
	OpExpr	   *op = (OpExpr *) clause;
	char	   *name;
	int			i;

	if (!IsA(clause, OpExpr) || list_length(op->args) != 2)
		return false;
	name = get_opname(op->opno);
	if (name == NULL || strcmp(name, "=") != 0)
		return false;
	for (i = 0; i < 2; i++)
	{
		Node	   *a = list_nth(op->args, i);
		Node	   *b = list_nth(op->args, 1 - i);

		if (IsA(a, Var) && ((Var *) a)->varno == varno &&
			((Var *) a)->varattno > 0 &&
			strcmp(get_attname(relid, ((Var *) a)->varattno, false), "id") == 0 &&
			!contain_var_clause(b))
			return true;
	}
	return false;
}

/*
 * The rows of the clinic table behind foreigntableid: the count last read
 * from the current clinic (pg_class.reltuples there, see note_table_rows),
 * or FDW_ROWS_GUESS without a context, a reading, or statistics.  Only an
 * estimate: a plan made under one clinic stays correct for any other.
 */
static double
table_rows_estimate(Oid foreigntableid)
{
	const TenantContext *ctx = tenant_get();
	double		rows;

	if (ctx != NULL && ctx->has_clinic &&
		routecache_get_rows(&ctx->clinic_id, foreigntableid, &rows) && rows >= 1)
		return rows;
	return FDW_ROWS_GUESS;
}

/*
 * Read the row count of the scanned clinic table once in a while (one
 * extra statement, at most every few minutes per backend, clinic and
 * table), for table_rows_estimate.
 */
static void
note_table_rows(FdwScanState *fsstate, Oid relid)
{
	const TenantContext *ctx = tenant_get();
	StringInfoData sql;
	RemoteStmt	stmt;
	PGresult   *res;
	double		rows;
	char	   *table;

	if (ctx == NULL || !ctx->has_clinic ||
		routecache_get_rows(&ctx->clinic_id, relid, &rows))
		return;
	initStringInfo(&sql);
	deparse_table(&sql, relid);
	table = pstrdup(sql.data);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "SELECT pg_catalog.max(reltuples)::pg_catalog.float8 FROM pg_catalog.pg_class "
					 "WHERE oid = pg_catalog.to_regclass(%s)", quote_literal_cstr(table));
	stmt.sql = sql.data;
	stmt.nparams = 0;
	stmt.values = NULL;
	stmt.prepare = true;
	res = remote_clinic_run(fsstate->conn, &stmt, 1, true);
	rows = (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) ?
		strtod(PQgetvalue(res, 0, 0), NULL) : -1;
	PQclear(res);
	routecache_put_rows(&ctx->clinic_id, relid, rows);
}

/*
 * Whether the clinic's planner is asked for estimates: for a query that
 * joins relations (the join order and methods depend on the sizes), under
 * the tenant context of a clinic, unless medpro.remote_estimates is off.
 * A one-table query has the same plan whatever its estimate and does not
 * wait for an extra round trip.
 */
static bool
want_remote_estimate(PlannerInfo *root)
{
	const TenantContext *ctx;

	if (!medpro_remote_estimates || bms_membership(root->all_baserels) != BMS_MULTIPLE)
		return false;
	ctx = tenant_get();
	return ctx != NULL && ctx->has_clinic;
}

/*
 * The rows the clinic's planner expects from SELECT NULL <from_where>
 * (EXPLAIN in the current clinic database, with its statistics; relid is a
 * foreign table of the statement, for the schema check), cached per
 * backend, clinic and statement for five minutes.  Parameters are printed
 * as values unknown to the clinic (deparse_expr with params NULL).  The
 * statement leaves out the soft-delete filter: nearly every row is live,
 * and a clinic table not yet analysed would estimate deleted_at IS NULL at
 * 0.5 %, so that a join would be planned as if the table were empty.
 * False when the clinic's answer has no estimate.
 */
static bool
remote_estimate(Oid relid, const char *from_where, double *rows)
{
	const TenantContext *ctx = tenant_get();
	StringInfoData sql;
	Relation	rel;
	PGconn	   *conn;
	RemoteStmt	stmt;
	PGresult   *res;
	const char *p;
	bool		ok = false;

	initStringInfo(&sql);
	appendStringInfo(&sql, "EXPLAIN SELECT NULL%s", from_where);
	if (routecache_get_estimate(&ctx->clinic_id, sql.data, rows))
		return true;
	rel = table_open(relid, NoLock);
	conn = clinic_connect(rel, &ctx);
	table_close(rel, NoLock);
	stmt.sql = sql.data;
	stmt.nparams = 0;
	stmt.values = NULL;
	stmt.prepare = false;
	res = remote_clinic_run(conn, &stmt, 1, true);
	/* the top plan node: "... (cost=0.00..1.23 rows=45 width=4)" */
	if (PQntuples(res) > 0 && PQnfields(res) == 1 &&
		(p = strstr(PQgetvalue(res, 0, 0), " rows=")) != NULL)
	{
		char	   *end;

		*rows = strtod(p + 6, &end);
		ok = end != p + 6 && *rows >= 0;
	}
	PQclear(res);
	if (ok)
		routecache_put_estimate(&ctx->clinic_id, sql.data, *rows);
	pfree(sql.data);
	return ok;
}

static void
fdwGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	FdwRelInfo *fpinfo = palloc0(sizeof(FdwRelInfo));
	Relation	rel;
	ListCell   *lc;
	Selectivity sel;
	char	   *table_name;

	baserel->fdw_private = fpinfo;
	fpinfo->relid = foreigntableid;
	table_options(foreigntableid, &table_name, &fpinfo->soft_delete);

	/*
	 * Soft-deleted rows are hidden from every scan reached through a view:
	 * clinic.* (whose relations check permissions as the view owner, so
	 * checkAsUser is set).  Only a direct reference to medpro.ft_*, which no
	 * client may make (no privilege), reads every row: the extension's own
	 * SECURITY DEFINER functions use it where deleted rows are part of the
	 * answer (medpro_patient_export, medpro_patient_erase).
	 */
	if (!OidIsValid(planner_rt_fetch(baserel->relid, root)->checkAsUser))
		fpinfo->soft_delete = false;
	rel = table_open(foreigntableid, NoLock);
	fpinfo->cols = deparse_columns(rel);
	table_close(rel, NoLock);

	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (restriction_is_shippable(ri, baserel, fpinfo))
		{
			fpinfo->remote_conds = lappend(fpinfo->remote_conds, ri);
			if (clause_is_id_lookup(ri->clause, baserel->relid, foreigntableid))
				fpinfo->id_lookup = true;
		}
		else
			fpinfo->local_conds = lappend(fpinfo->local_conds, ri);
		/* equality on an encrypted column: also sent as a blind-index qual */
		if (fieldcrypt_qual_column(ri->clause, baserel, fpinfo->cols->crypt))
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
	baserel->tuples = table_rows_estimate(foreigntableid);
	baserel->rows = fpinfo->id_lookup ? 1 : clamp_row_est(baserel->tuples * sel);

	/*
	 * In a join, the clinic estimates what its part of the scan returns;
	 * the local clauses scale it by their (default) selectivity.
	 */
	if (!fpinfo->id_lookup && want_remote_estimate(root))
	{
		StringInfoData from_where;
		List	   *exprs = NIL;
		double		rows;

		foreach(lc, fpinfo->remote_conds)
			exprs = lappend(exprs, lfirst_node(RestrictInfo, lc)->clause);
		initStringInfo(&from_where);
		deparse_from_where(&from_where, foreigntableid, exprs, false, fpinfo->cols, NULL);
		if (remote_estimate(foreigntableid, from_where.data, &rows))
			baserel->rows = clamp_row_est(rows *
										  clauselist_selectivity(root, fpinfo->local_conds, 0,
																 JOIN_INNER, NULL));
	}
}

static void
fdwGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	FdwRelInfo *fpinfo = (FdwRelInfo *) baserel->fdw_private;
	Cost		startup = FDW_STARTUP_COST;
	Cost		total = startup + baserel->rows * FDW_ROW_COST;

	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, baserel->rows,
									 startup, total, NIL,
									 baserel->lateral_relids, NULL, NIL));

	/*
	 * The same scan sorted by the clinic, when the query wants an order (not
	 * with blind-index quals: their parameters are numbered last).
	 */
	if (root->query_pathkeys != NIL && fpinfo->bidx_conds == NIL &&
		deparse_order_by(NULL, root->query_pathkeys, baserel, fpinfo->cols, NULL))
	{
		Cost		sorted = total + baserel->rows * FDW_ROW_COST * 0.2;

		add_path(baserel, (Path *)
				 create_foreignscan_path(root, baserel, NULL, baserel->rows,
										 startup, sorted, root->query_pathkeys,
										 baserel->lateral_relids, NULL, NIL));
	}
}

/*
 * The relation a final upper path may be pushed onto: the query's only
 * relation, one of ours, or the join of its two relations when the clinic
 * does that join; with no grouping, aggregate, window, DISTINCT, set
 * operation, row lock or set-returning target; NULL if none.
 */
static RelOptInfo *
final_scan_rel(PlannerInfo *root)
{
	Query	   *parse = root->parse;
	RelOptInfo *baserel;
	int			relid;

	if (parse->commandType != CMD_SELECT || parse->rowMarks != NIL ||
		parse->hasTargetSRFs || parse->hasAggs || parse->hasWindowFuncs ||
		parse->groupClause != NIL || parse->groupingSets != NIL ||
		parse->havingQual != NULL || parse->distinctClause != NIL ||
		parse->setOperations != NULL || parse->limitOption == LIMIT_OPTION_WITH_TIES)
		return NULL;
	if (bms_membership(root->all_baserels) == BMS_MULTIPLE)
	{
		RelOptInfo *joinrel = find_join_rel(root, root->all_baserels);

		if (joinrel == NULL || joinrel->fdw_private == NULL ||
			joinrel->fdwroutine == NULL ||
			joinrel->fdwroutine->GetForeignUpperPaths != fdwGetForeignUpperPaths ||
			joinrel->lateral_relids != NULL)
			return NULL;
		return joinrel;
	}
	if (bms_membership(root->all_baserels) != BMS_SINGLETON)
		return NULL;
	relid = bms_singleton_member(root->all_baserels);
	baserel = find_base_rel(root, relid);
	if (baserel->reloptkind != RELOPT_BASEREL || baserel->fdw_private == NULL ||
		baserel->fdwroutine == NULL ||
		baserel->fdwroutine->GetForeignUpperPaths != fdwGetForeignUpperPaths)
		return NULL;
	return baserel;
}

/*
 * Aggregate pushdown: count(*), count, sum, min, max with GROUP BY on one
 * clinic table, or on a join of two that the clinic does (which has no
 * local clause), when every clause is shipped, there is no HAVING or
 * grouping set, and every output of the grouping step is a shippable
 * grouping expression or aggregate.  The clinic then returns one row per
 * group.
 */
static void
add_grouped_path(PlannerInfo *root, RelOptInfo *input_rel, RelOptInfo *output_rel,
				 GroupPathExtraData *gextra)
{
	Query	   *parse = root->parse;
	PathTarget *target = root->upper_targets[UPPERREL_GROUP_AGG];
	const DeparseColumns *cols;
	FdwGroupInfo *ginfo;
	List	   *tlist = NIL;
	ListCell   *lc;
	int			i = 0;
	double		rows;
	Cost		startup = FDW_STARTUP_COST;
	Cost		total;

	if ((input_rel->reloptkind != RELOPT_BASEREL && input_rel->reloptkind != RELOPT_JOINREL) ||
		input_rel->fdw_private == NULL || input_rel->fdwroutine == NULL ||
		input_rel->fdwroutine->GetForeignUpperPaths != fdwGetForeignUpperPaths ||
		output_rel->fdw_private != NULL || input_rel->lateral_relids != NULL)
		return;
	if (gextra->patype != PARTITIONWISE_AGGREGATE_NONE || parse->groupingSets != NIL ||
		parse->havingQual != NULL || parse->hasTargetSRFs)
		return;
	if (input_rel->reloptkind == RELOPT_JOINREL)
		/* a join the clinic does has no local clause */
		cols = ((FdwJoinInfo *) input_rel->fdw_private)->cols;
	else
	{
		FdwRelInfo *fpinfo = (FdwRelInfo *) input_rel->fdw_private;

		if (fpinfo->local_conds != NIL)
			return;
		cols = fpinfo->cols;
	}

	foreach(lc, target->exprs)
	{
		Expr	   *expr = (Expr *) lfirst(lc);
		Index		sgref = get_pathtarget_sortgroupref(target, i);
		SortGroupClause *sgc = sgref ? get_sortgroupref_clause_noerr(sgref, parse->groupClause) : NULL;
		TargetEntry *tle;

		if (sgc != NULL)
		{
			/* grouped on the rows the WHERE kept: no leak check */
			if (!OidIsValid(sgc->eqop) || sgc->eqop >= FirstGenbkiObjectId ||
				!deparse_is_shippable(expr, input_rel, cols, false))
				return;
		}
		else if (!IsA(expr, Aggref) ||
				 !deparse_aggregate_is_shippable((Aggref *) expr, input_rel, cols))
			return;
		tle = makeTargetEntry(copyObject(expr), i + 1, NULL, false);
		tle->ressortgroupref = sgc != NULL ? sgref : 0;
		tlist = lappend(tlist, tle);
		i++;
	}

	if (parse->groupClause == NIL)
		rows = 1;
	else
		rows = estimate_num_groups(root,
								   get_sortgrouplist_exprs(parse->groupClause,
														   parse->targetList),
								   input_rel->rows, NULL, NULL);
	rows = clamp_row_est(rows);
	/* the clinic reads the rows; only the groups cross the connection */
	total = startup + input_rel->rows * cpu_operator_cost + rows * FDW_ROW_COST;

	ginfo = palloc0(sizeof(FdwGroupInfo));
	ginfo->baserel = input_rel;
	ginfo->tlist = tlist;
	output_rel->fdw_private = ginfo;
	add_path(output_rel, (Path *)
			 create_foreign_upper_path(root, output_rel, target, rows, startup,
									   total, NIL, NULL, NIL));
}

/*
 * A foreign scan's fdw_private, read by fdwBeginForeignScan (and
 * explain_remote_params) by position: the remote SQL, the retrieved
 * attributes (or tlist positions), the bound on its rows (-1: none), whether
 * it locks rows, the column masks, the blind-index parameter pairs, whether
 * it decrypts encrypted columns, and the statement for masked roles ("" when
 * the same).
 */
static List *
scan_private(const char *sql, List *retrieved, int bound, bool for_update,
			 const char *masks, List *bidx_params, bool decrypt, const char *masked_sql)
{
	List	   *l = list_make5(makeString(pstrdup(sql)), retrieved, makeInteger(bound),
								   makeInteger(for_update), makeString(pstrdup(masks)));

	l = lappend(l, bidx_params);
	l = lappend(l, makeInteger(decrypt));
	return lappend(l, makeString(pstrdup(masked_sql)));
}

/*
 * The plan of a grouped path: SELECT <grouping expressions and aggregates>
 * FROM public.<table> [WHERE ...] [GROUP BY <positions>].
 */
static ForeignScan *
grouped_plan(PlannerInfo *root, RelOptInfo *grouped_rel, List *tlist,
			 Plan *outer_plan)
{
	FdwGroupInfo *ginfo = (FdwGroupInfo *) grouped_rel->fdw_private;
	bool		is_join = ginfo->baserel->reloptkind == RELOPT_JOINREL;
	FdwRelInfo *fpinfo = is_join ? NULL : (FdwRelInfo *) ginfo->baserel->fdw_private;
	FdwJoinInfo *jinfo = is_join ? (FdwJoinInfo *) ginfo->baserel->fdw_private : NULL;
	const DeparseColumns *cols = is_join ? jinfo->cols : fpinfo->cols;
	List	   *remote_exprs = NIL;
	List	   *params = NIL;
	List	   *retrieved = NIL;
	StringInfoData buf;
	StringInfoData masks;
	ListCell   *lc;
	bool		first = true;

	if (!is_join)
		foreach(lc, fpinfo->remote_conds)
			remote_exprs = lappend(remote_exprs, lfirst_node(RestrictInfo, lc)->clause);

	initStringInfo(&buf);
	initStringInfo(&masks);
	appendStringInfoString(&buf, "SELECT ");
	foreach(lc, ginfo->tlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		deparse_expr(&buf, tle->expr, cols, &params);
		retrieved = lappend_int(retrieved, tle->resno);
		appendStringInfoChar(&masks, '0');
	}
	if (is_join)
		deparse_join_from_where(&buf, jinfo, &params);
	else
		deparse_from_where(&buf, fpinfo->relid, remote_exprs, fpinfo->soft_delete,
						   cols, &params);
	first = true;
	foreach(lc, ginfo->tlist)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (tle->ressortgroupref == 0)
			continue;
		appendStringInfo(&buf, "%s%d", first ? " GROUP BY " : ", ", tle->resno);
		first = false;
	}

	return make_foreignscan(tlist, NIL, 0, params,
							scan_private(buf.data, retrieved, -1, false, masks.data,
										 NIL, false, ""),
							ginfo->tlist, NIL, outer_plan);
}

/* Whether rel is a base relation of medpro_fdw scanned with no local clause. */
static bool
is_shippable_side(RelOptInfo *rel)
{
	return rel->reloptkind == RELOPT_BASEREL && rel->fdw_private != NULL &&
		rel->fdwroutine != NULL &&
		rel->fdwroutine->GetForeignUpperPaths == fdwGetForeignUpperPaths &&
		((FdwRelInfo *) rel->fdw_private)->local_conds == NIL &&
		rel->lateral_relids == NULL;
}

/*
 * Join pushdown: an inner or left join of two clinic tables (of the one
 * clinic the transaction uses) whose every clause is shipped, in a SELECT
 * without row locks, runs as one remote join.
 */
static void
fdwGetForeignJoinPaths(PlannerInfo *root, RelOptInfo *joinrel,
					   RelOptInfo *outerrel, RelOptInfo *innerrel,
					   JoinType jointype, JoinPathExtraData *extra)
{
	FdwRelInfo *fo;
	FdwRelInfo *fi;
	FdwJoinInfo *jinfo;
	List	   *joinclauses = NIL;
	List	   *otherclauses = NIL;
	DeparseColumns *cols;
	bool		leak_check;
	ListCell   *lc;
	Cost		startup = FDW_STARTUP_COST;
	ForeignPath *path;

	if (joinrel->fdw_private != NULL)
		return;					/* already considered, in the other order */
	if (jointype != JOIN_INNER && jointype != JOIN_LEFT)
		return;
	if (root->parse->commandType != CMD_SELECT || root->parse->rowMarks != NIL)
		return;
	if (!is_shippable_side(outerrel) || !is_shippable_side(innerrel) ||
		joinrel->lateral_relids != NULL)
		return;
	fo = (FdwRelInfo *) outerrel->fdw_private;
	fi = (FdwRelInfo *) innerrel->fdw_private;
	cols = deparse_join_columns(fo->cols, outerrel->relid, fi->cols, innerrel->relid);
	/* the clinic may evaluate a join clause before either side's soft-delete filter */
	leak_check = fo->soft_delete || fi->soft_delete;

	foreach(lc, extra->restrictlist)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (!deparse_is_shippable(ri->clause, joinrel, cols, leak_check))
			return;
		if (IS_OUTER_JOIN(jointype) && !RINFO_IS_PUSHED_DOWN(ri, joinrel->relids))
			joinclauses = lappend(joinclauses, ri->clause);
		else if (IS_OUTER_JOIN(jointype))
			otherclauses = lappend(otherclauses, ri->clause);
		else
			joinclauses = lappend(joinclauses, ri->clause);
	}
	/*
	 * No PlaceHolderVars, whole-row references or encrypted columns (read
	 * only by a base scan, which decrypts them) in what the join returns.
	 */
	foreach(lc, pull_var_clause((Node *) joinrel->reltarget->exprs,
								PVC_INCLUDE_PLACEHOLDERS))
	{
		Var		   *var = (Var *) lfirst(lc);
		const DeparseColumns *c;

		if (!IsA(var, Var) || var->varattno <= 0)
			return;
		c = deparse_columns_of(cols, var->varno);
		if (c == NULL || var->varattno > c->natts || c->crypt[var->varattno - 1])
			return;
	}

	jinfo = palloc0(sizeof(FdwJoinInfo));
	jinfo->outerrel = outerrel;
	jinfo->innerrel = innerrel;
	jinfo->jointype = jointype;
	jinfo->joinclauses = joinclauses;
	jinfo->otherclauses = otherclauses;
	jinfo->cols = cols;
	joinrel->fdw_private = jinfo;

	/* the clinic's estimate of the join, when it is asked (as for its sides) */
	if (want_remote_estimate(root))
	{
		StringInfoData from_where;
		double		rows;

		initStringInfo(&from_where);
		deparse_join_from_where(&from_where, jinfo, NULL);
		if (remote_estimate(fo->relid, from_where.data, &rows))
			joinrel->rows = clamp_row_est(rows);
	}

	/* only the joined rows cross the connection */
	path = create_foreign_join_path(root, joinrel, NULL, joinrel->rows, startup,
									startup + joinrel->rows * FDW_ROW_COST,
									NIL, joinrel->lateral_relids, NULL, NIL);
	add_path(joinrel, (Path *) path);

	/* the same join sorted by the clinic, when it is the query's whole FROM */
	if (root->query_pathkeys != NIL && bms_equal(joinrel->relids, root->all_baserels) &&
		deparse_order_by(NULL, root->query_pathkeys, joinrel, cols, NULL))
	{
		path = create_foreign_join_path(root, joinrel, NULL, joinrel->rows, startup,
										startup + joinrel->rows * FDW_ROW_COST * 1.2,
										root->query_pathkeys, joinrel->lateral_relids,
										NULL, NIL);
		add_path(joinrel, (Path *) path);
	}
}

/*
 * Append side's soft-delete filter and shipped clauses, each after sep
 * (params NULL: for an estimate, without the soft-delete filter).
 */
static void
append_side_conds(StringInfo buf, RelOptInfo *side, const DeparseColumns *cols,
				  List **params, bool *first, const char *first_sep, const char *sep)
{
	FdwRelInfo *f = (FdwRelInfo *) side->fdw_private;
	ListCell   *lc;

	/* an estimate leaves the soft-delete filter out: see remote_estimate */
	if (f->soft_delete && params != NULL)
	{
		appendStringInfo(buf, "%s(r%u.deleted_at IS NULL)", *first ? first_sep : sep,
						 side->relid);
		*first = false;
	}
	foreach(lc, f->remote_conds)
	{
		appendStringInfoString(buf, *first ? first_sep : sep);
		*first = false;
		deparse_expr(buf, lfirst_node(RestrictInfo, lc)->clause, cols, params);
	}
}

/*
 * The FROM and WHERE of a pushed-down join:
 *	 FROM public.a r<i> {INNER|LEFT} JOIN public.b r<j>
 *	  ON (<join clauses> [AND <inner side's filters>, for LEFT])
 *	 [WHERE <filters of the sides> AND <clauses above the join>]
 */
static void
deparse_join_from_where(StringInfo buf, FdwJoinInfo *jinfo, List **params)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfoString(buf, " FROM ");
	deparse_table(buf, ((FdwRelInfo *) jinfo->outerrel->fdw_private)->relid);
	appendStringInfo(buf, " r%u %s JOIN ", jinfo->outerrel->relid,
					 jinfo->jointype == JOIN_LEFT ? "LEFT" : "INNER");
	deparse_table(buf, ((FdwRelInfo *) jinfo->innerrel->fdw_private)->relid);
	appendStringInfo(buf, " r%u ON (", jinfo->innerrel->relid);
	foreach(lc, jinfo->joinclauses)
	{
		appendStringInfoString(buf, first ? "" : " AND ");
		first = false;
		deparse_expr(buf, (Expr *) lfirst(lc), jinfo->cols, params);
	}
	/* for LEFT, the inner side is filtered before it is joined */
	if (jinfo->jointype == JOIN_LEFT)
		append_side_conds(buf, jinfo->innerrel, jinfo->cols, params, &first, "", " AND ");
	if (first)
		appendStringInfoString(buf, "true");
	appendStringInfoChar(buf, ')');

	first = true;
	append_side_conds(buf, jinfo->outerrel, jinfo->cols, params, &first, " WHERE ", " AND ");
	if (jinfo->jointype != JOIN_LEFT)
		append_side_conds(buf, jinfo->innerrel, jinfo->cols, params, &first, " WHERE ", " AND ");
	foreach(lc, jinfo->otherclauses)
	{
		appendStringInfoString(buf, first ? " WHERE " : " AND ");
		first = false;
		deparse_expr(buf, (Expr *) lfirst(lc), jinfo->cols, params);
	}
}

/*
 * The plan of a pushed-down join: SELECT <columns> <deparse_join_from_where>
 * [ORDER BY <pathkeys>] [LIMIT/OFFSET, for a final path].  Its
 * fdw_scan_tlist lists the fetched columns as Vars of both sides.
 */
static ForeignScan *
join_plan(PlannerInfo *root, RelOptInfo *joinrel, List *tlist, Plan *outer_plan,
		  List *pathkeys, bool is_final)
{
	FdwJoinInfo *jinfo = (FdwJoinInfo *) joinrel->fdw_private;
	List	   *vars = pull_var_clause((Node *) joinrel->reltarget->exprs,
									   PVC_RECURSE_PLACEHOLDERS);
	List	   *scan_tlist = NIL;
	List	   *retrieved = NIL;
	List	   *params = NIL;
	StringInfoData buf;
	StringInfoData masks;
	ListCell   *lc;
	bool		first = true;
	int			resno = 1;
	int			bound = -1;

	initStringInfo(&buf);
	initStringInfo(&masks);
	appendStringInfoString(&buf, "SELECT ");
	foreach(lc, vars)
	{
		Var		   *var = lfirst_node(Var, lc);
		const DeparseColumns *c = deparse_columns_of(jinfo->cols, var->varno);

		if (tlist_member((Expr *) var, scan_tlist) != NULL)
			continue;
		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		deparse_expr(&buf, (Expr *) var, jinfo->cols, &params);
		scan_tlist = lappend(scan_tlist, makeTargetEntry((Expr *) var, resno, NULL, false));
		retrieved = lappend_int(retrieved, resno);
		/* masked while converted, as in a base scan */
		appendStringInfoChar(&masks, '0' + c->masks[var->varattno - 1]);
		resno++;
	}
	if (first)
		appendStringInfoString(&buf, "NULL");

	deparse_join_from_where(&buf, jinfo, &params);
	if (pathkeys != NIL &&
		!deparse_order_by(&buf, pathkeys, joinrel, jinfo->cols, &params))
		elog(ERROR, "could not deparse the sort keys of a foreign join");
	if (is_final)
		bound = append_limit(&buf, root, jinfo->cols, &params, -1);

	return make_foreignscan(tlist, NIL, 0, params,
							scan_private(buf.data, retrieved, bound, false, masks.data,
										 NIL, false, ""),
							scan_tlist, NIL, outer_plan);
}

/* A LIMIT or OFFSET the clinic computes the same: a constant or a parameter. */
static bool
limit_is_shippable(Node *node)
{
	if (node == NULL)
		return true;
	if (IsA(node, Const))
		return ((Const *) node)->consttype == INT8OID;
	if (IsA(node, Param))
		return ((Param *) node)->paramtype == INT8OID &&
			(((Param *) node)->paramkind == PARAM_EXTERN ||
			 ((Param *) node)->paramkind == PARAM_EXEC);
	return false;
}

/* A LIMIT or OFFSET value: a bare number, NULL (ALL) or a parameter. */
static void
deparse_limit(StringInfo buf, Node *node, const DeparseColumns *cols, List **params)
{
	if (IsA(node, Const) && ((Const *) node)->constisnull)
		appendStringInfoString(buf, "NULL");
	else if (IsA(node, Const))
		appendStringInfo(buf, INT64_FORMAT, DatumGetInt64(((Const *) node)->constvalue));
	else
		deparse_expr(buf, (Expr *) node, cols, params);
}

/*
 * Append the query's LIMIT and OFFSET to a final path's remote SQL; return
 * the rows the scan can return at most (count plus offset, when both are
 * constants), or bound when that is not known.
 */
static int
append_limit(StringInfo buf, PlannerInfo *root, const DeparseColumns *cols,
			 List **params, int bound)
{
	Query	   *parse = root->parse;

	if (parse->limitCount != NULL)
	{
		appendStringInfoString(buf, " LIMIT ");
		deparse_limit(buf, parse->limitCount, cols, params);
	}
	if (parse->limitOffset != NULL)
	{
		appendStringInfoString(buf, " OFFSET ");
		deparse_limit(buf, parse->limitOffset, cols, params);
	}
	if (bound < 0 && parse->limitCount != NULL && IsA(parse->limitCount, Const) &&
		!((Const *) parse->limitCount)->constisnull &&
		(parse->limitOffset == NULL ||
		 (IsA(parse->limitOffset, Const) && !((Const *) parse->limitOffset)->constisnull)))
	{
		int64		n = DatumGetInt64(((Const *) parse->limitCount)->constvalue);

		if (parse->limitOffset != NULL)
			n += DatumGetInt64(((Const *) parse->limitOffset)->constvalue);
		bound = (n >= 0 && n < PG_INT32_MAX) ? (int) n : -1;
	}
	return bound;
}

/*
 * LIMIT / OFFSET pushdown: a final path doing the scan (or the join), its
 * order and its limit in the clinic database, when every clause and sort
 * key is shipped.
 */
static void
fdwGetForeignUpperPaths(PlannerInfo *root, UpperRelationKind stage,
						RelOptInfo *input_rel, RelOptInfo *output_rel,
						void *extra)
{
	FinalPathExtraData *fextra = (FinalPathExtraData *) extra;
	RelOptInfo *baserel;
	FdwRelInfo *fpinfo;
	const DeparseColumns *cols;
	Query	   *parse = root->parse;
	double		rows;
	Cost		startup = FDW_STARTUP_COST;
	ForeignPath *path;

	if (stage == UPPERREL_GROUP_AGG)
	{
		add_grouped_path(root, input_rel, output_rel, (GroupPathExtraData *) extra);
		return;
	}
	if (stage != UPPERREL_FINAL || !fextra->limit_needed)
		return;
	baserel = final_scan_rel(root);
	if (baserel == NULL)
		return;
	if (baserel->reloptkind == RELOPT_JOINREL)
		cols = ((FdwJoinInfo *) baserel->fdw_private)->cols;
	else
	{
		fpinfo = (FdwRelInfo *) baserel->fdw_private;
		if (fpinfo->local_conds != NIL || baserel->lateral_relids != NULL ||
			bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, fpinfo->attrs_used))
			return;
		cols = fpinfo->cols;
	}
	if (!limit_is_shippable(parse->limitCount) || !limit_is_shippable(parse->limitOffset))
		return;
	if (root->sort_pathkeys != NIL &&
		!deparse_order_by(NULL, root->sort_pathkeys, baserel, cols, NULL))
		return;
	if (parse->sortClause != NIL && root->sort_pathkeys == NIL)
		return;

	/* as the local Limit would estimate it: 10% when the count is unknown */
	rows = baserel->rows;
	if (fextra->count_est > 0)
		rows = Min(rows, (double) fextra->count_est);
	else
		rows = rows * 0.1;
	rows = clamp_row_est(rows);

	/* fewer rows cross the connection than under a local Limit */
	path = create_foreign_upper_path(root, output_rel,
									 root->upper_targets[UPPERREL_FINAL],
									 rows, startup,
									 startup + rows * FDW_ROW_COST * 0.9,
									 root->sort_pathkeys, NULL,
									 list_make1(makeInteger(1)));
	add_path(output_rel, (Path *) path);
}

/*
 * The masks of cols as a string, one MASK_* character per column (the
 * plan keeps it: options change only with ALTER, which invalidates plans).
 */
static char *
masks_string(const DeparseColumns *cols)
{
	char	   *s = palloc(cols->natts + 1);
	int			i;

	for (i = 0; i < cols->natts; i++)
		s[i] = '0' + cols->masks[i];
	s[cols->natts] = '\0';
	return s;
}

/*
 * fdw_private of a scan: the remote SELECT, the attnums of its columns, and
 * the most rows it can return (the LIMIT plus OFFSET, 1 for a lookup by
 * id, -1 when unknown): a scan that fits in one batch runs without cursor;
 * whether it locks rows; the column masks (masks_string); the blind-index
 * parameters, (param number, attnum) pairs (fieldcrypt_deparse_qual);
 * whether the retrieved columns are attnums of the relation whose
 * encrypted columns are decrypted (1: base scan or final path; 0: a join or
 * aggregate, which never fetches an encrypted column); and, with
 * blind-index quals, the same SELECT without them, run for a role that
 * sees one of their columns masked (its clause is evaluated here on the
 * masked value, and the clinic must not filter on the clear one), which
 * sends only the parameters before the blind-index ones.
 *
 * A final upper path (LIMIT pushed down) has no scan relation of its own:
 * its fdw_scan_tlist lists the fetched columns as Vars of the base relation,
 * in the order of the remote SELECT.
 */
static ForeignScan *
fdwGetForeignPlan(PlannerInfo *root, RelOptInfo *foreignrel, Oid foreigntableid,
				  ForeignPath *best_path, List *tlist, List *scan_clauses,
				  Plan *outer_plan)
{
	bool		is_final;
	RelOptInfo *baserel;
	FdwRelInfo *fpinfo;
	List	   *remote_exprs = NIL;
	List	   *local_exprs = NIL;
	List	   *params = NIL;
	List	   *retrieved_attrs = NIL;
	List	   *scan_tlist = NIL;
	List	   *bidx_params = NIL;
	StringInfoData masked_sql;
	List	   *pathkeys = best_path->path.pathkeys;
	StringInfoData buf;
	Relation	rel;
	ListCell   *lc;
	int			bound;
	Index		scan_relid;

	if (foreignrel->reloptkind == RELOPT_JOINREL)
		return join_plan(root, foreignrel, tlist, outer_plan, pathkeys, false);
	/* a grouped relation keeps its FdwGroupInfo; a final one has none */
	if (foreignrel->reloptkind == RELOPT_UPPER_REL && foreignrel->fdw_private != NULL)
		return grouped_plan(root, foreignrel, tlist, outer_plan);
	is_final = foreignrel->reloptkind == RELOPT_UPPER_REL;
	baserel = is_final ? final_scan_rel(root) : foreignrel;
	if (baserel->reloptkind == RELOPT_JOINREL)
		return join_plan(root, baserel, tlist, outer_plan, pathkeys, true);
	fpinfo = (FdwRelInfo *) baserel->fdw_private;
	bound = fpinfo->id_lookup ? 1 : -1;
	scan_relid = is_final ? 0 : baserel->relid;

	if (is_final)
	{
		/* every clause was shipped: checked by fdwGetForeignUpperPaths */
		foreach(lc, fpinfo->remote_conds)
			remote_exprs = lappend(remote_exprs, lfirst_node(RestrictInfo, lc)->clause);
	}
	else
	{
		foreach(lc, scan_clauses)
		{
			RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

			if (ri->pseudoconstant)
				continue;
			if (list_member_ptr(fpinfo->remote_conds, ri))
				remote_exprs = lappend(remote_exprs, ri->clause);
			else if (list_member_ptr(fpinfo->local_conds, ri))
				local_exprs = lappend(local_exprs, ri->clause);
			else if (restriction_is_shippable(ri, baserel, fpinfo))
				remote_exprs = lappend(remote_exprs, ri->clause);
			else
			{
				local_exprs = lappend(local_exprs, ri->clause);
				pull_varattnos((Node *) ri->clause, baserel->relid,
							   &fpinfo->attrs_used);
			}
		}
	}

	initStringInfo(&buf);
	rel = table_open(fpinfo->relid, NoLock);

	/*
	 * A scan that will run as a prepared statement (a lookup by id, or a
	 * constant LIMIT) sends its constants as parameters: one statement
	 * text, prepared once per connection, serves every value.
	 */
	deparse_lift_constants(fpinfo->id_lookup ||
						   (is_final && root->parse->limitCount != NULL &&
							IsA(root->parse->limitCount, Const) &&
							!((Const *) root->parse->limitCount)->constisnull));
	PG_TRY();
	{
		deparse_select(&buf, rel, fpinfo->attrs_used, remote_exprs,
					   fpinfo->soft_delete, fpinfo->cols, &retrieved_attrs, &params);
	}
	PG_FINALLY();
	{
		deparse_lift_constants(false);
	}
	PG_END_TRY();

	/*
	 * Equalities on an encrypted column, as blind-index quals (they stay
	 * local too).  Last in the remote SQL: their parameters are new ones,
	 * translated when the scan starts, and no ORDER BY or LIMIT follows
	 * (both need every clause shipped, or no blind-index qual).
	 */
	initStringInfo(&masked_sql);
	if (!is_final && fpinfo->bidx_conds != NIL)
	{
		bool		has_where = fpinfo->soft_delete || remote_exprs != NIL;

		/* the statement for a role that sees the column masked: no blind index */
		appendStringInfoString(&masked_sql, buf.data);

		foreach(lc, fpinfo->bidx_conds)
		{
			RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

			if (!list_member_ptr(scan_clauses, ri))
				continue;
			appendStringInfoString(&buf, has_where ? " AND " : " WHERE ");
			has_where = true;
			fieldcrypt_deparse_qual(&buf, rel, ri->clause,
									fieldcrypt_qual_column(ri->clause, baserel,
														   fpinfo->cols->crypt),
									&params, &bidx_params);
		}
	}
	if (is_final)
	{
		TupleDesc	tupdesc = RelationGetDescr(rel);
		int			resno = 1;

		foreach(lc, retrieved_attrs)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, lfirst_int(lc) - 1);

			scan_tlist = lappend(scan_tlist,
								 makeTargetEntry((Expr *) makeVar(baserel->relid,
																  lfirst_int(lc),
																  att->atttypid,
																  att->atttypmod,
																  att->attcollation, 0),
												 resno++, NULL, false));
		}
	}
	table_close(rel, NoLock);

	if (pathkeys != NIL &&
		(bidx_params != NIL ||
		 !deparse_order_by(&buf, pathkeys, baserel, fpinfo->cols, &params)))
		elog(ERROR, "could not deparse the sort keys of a foreign scan");

	if (is_final)
		bound = append_limit(&buf, root, fpinfo->cols, &params, bound);

	/* Lock the rows an UPDATE or DELETE is going to change. */
	if (!is_final && baserel->relid == root->parse->resultRelation &&
		(root->parse->commandType == CMD_UPDATE ||
		 root->parse->commandType == CMD_DELETE))
	{
		appendStringInfoString(&buf, " FOR UPDATE");
		if (masked_sql.len > 0)
			appendStringInfoString(&masked_sql, " FOR UPDATE");
	}

	return make_foreignscan(tlist, local_exprs, scan_relid, params,
							scan_private(buf.data, retrieved_attrs, bound,
										 strstr(buf.data, " FOR UPDATE") != NULL,
										 masks_string(fpinfo->cols), bidx_params, true,
										 masked_sql.data),
							scan_tlist, is_final ? NIL : remote_exprs, outer_plan);
}

/* ---------------------------------------------------------------------
 * Scanning
 * ---------------------------------------------------------------------
 */

/*
 * Whether this scan is its statement's only contact with the clinic, run
 * once: a SELECT without row locks, subplans or modifying CTEs whose plan
 * is the scan under nodes of one input that never rescan it (Limit, Sort,
 * Agg, Result, Unique).  Such a scan's bounded statement may run in the
 * clinic's autocommit (remote_clinic_autocommit).
 */
static bool
scan_runs_alone(ForeignScanState *node)
{
	PlannedStmt *stmt = node->ss.ps.state->es_plannedstmt;
	Plan	   *plan;

	if (stmt == NULL || stmt->commandType != CMD_SELECT || stmt->rowMarks != NIL ||
		stmt->hasModifyingCTE || stmt->subplans != NIL)
		return false;
	for (plan = stmt->planTree; plan != NULL; plan = plan->lefttree)
	{
		if (plan == node->ss.ps.plan)
			return true;
		if (plan->righttree != NULL || plan->initPlan != NIL)
			return false;
		switch (nodeTag(plan))
		{
			case T_Limit:
			case T_Sort:
			case T_IncrementalSort:
			case T_Agg:
			case T_Result:
			case T_Unique:
				break;
			default:
				return false;
		}
	}
	return false;
}

static void
fdwBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	FdwScanState *fsstate = palloc0(sizeof(FdwScanState));
	const TenantContext *ctx;
	TupleDesc	tupdesc;
	ListCell   *lc;
	int			i;

	node->fdw_state = fsstate;
	fsstate->query = strVal(linitial(fsplan->fdw_private));
	fsstate->retrieved_attrs = lsecond(fsplan->fdw_private);
	fsstate->bound = intVal(lthird(fsplan->fdw_private));
	fsstate->for_update = intVal(lfourth(fsplan->fdw_private)) != 0;
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	if (fsplan->scan.scanrelid > 0)
		fsstate->rel = node->ss.ss_currentRelation;
	else
		fsstate->rel = ExecOpenScanRelation(estate,
											bms_next_member(fsplan->fs_relids, -1),
											eflags);
	fsstate->conn = clinic_connect(fsstate->rel, &ctx);
	fsstate->runs_alone = !fsstate->for_update && scan_runs_alone(node);
	fsstate->apply_masks = role_is_masked(ctx->role);
	fsstate->bidx_params = (List *) list_nth(fsplan->fdw_private, 5);
	if (intVal(list_nth(fsplan->fdw_private, 6)) != 0 || fsstate->bidx_params != NIL)
		fsstate->fc = fieldcrypt_begin(fsstate->rel, &ctx->clinic_id);
	{
		const char *m = strVal(list_nth(fsplan->fdw_private, 4));
		int			len = strlen(m);

		fsstate->masks = palloc0(Max(len, 1));
		for (i = 0; i < len; i++)
			fsstate->masks[i] = m[i] - '0';
	}
	fsstate->send_params = list_length(fsplan->fdw_exprs);
	if (fsstate->bidx_params != NIL && fsstate->apply_masks)
	{
		bool		masked = false;

		for (lc = list_head(fsstate->bidx_params); lc != NULL;
			 lc = lnext(fsstate->bidx_params, lnext(fsstate->bidx_params, lc)))
		{
			int			attnum = lfirst_int(lnext(fsstate->bidx_params, lc));

			if (fsstate->masks[attnum - 1] != MASK_NONE)
				masked = true;
		}
		/* the clause is checked here on the masked value: no blind index */
		if (masked)
		{
			fsstate->query = strVal(list_nth(fsplan->fdw_private, 7));
			fsstate->send_params -= list_length(fsstate->bidx_params) / 2;
			fsstate->bidx_params = NIL;
		}
	}

	/*
	 * The tuples built: of the relation for a base scan; of fdw_scan_tlist
	 * (the fetched columns in order) for a pushed-down final path.
	 */
	tupdesc = node->ss.ss_ScanTupleSlot->tts_tupleDescriptor;
	fsstate->tupdesc = tupdesc;
	fsstate->attinmeta = TupleDescGetAttInMetadata(tupdesc);
	fsstate->slot_pos = palloc0(sizeof(int) * Max(list_length(fsstate->retrieved_attrs), 1));
	i = 0;
	foreach(lc, fsstate->retrieved_attrs)
	{
		fsstate->slot_pos[i] = fsplan->scan.scanrelid > 0 ? lfirst_int(lc) - 1 : i;
		i++;
	}

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
			if (deparse_output_needs_modes(exprType((Node *) lfirst(lc))))
				fsstate->params_need_modes = true;
			i++;
		}
	}
}

/*
 * The text values of the remote parameters, from their current values; a
 * blind-index parameter becomes the blind index of its value under the
 * current clinic's key.
 */
static void
compute_params(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	MemoryContext oldcxt;
	int			nestlevel;
	ListCell   *lc;
	int			i = 0;

	if (fsstate->num_params == 0)
		return;
	oldcxt = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
	nestlevel = fsstate->params_need_modes ? set_transmission_modes() : -1;
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

/* Convert the rows of res into fsstate->tuples (in the batch context). */
static void
store_batch(FdwScanState *fsstate, PGresult *res)
{
	PG_TRY();
	{
		int			n = PQntuples(res);
		int			i;

		fsstate->tuples = palloc0(sizeof(HeapTuple) * Max(n, 1));
		for (i = 0; i < n; i++)
			fsstate->tuples[i] = make_tuple(res, i, fsstate->tupdesc,
											RelationGetRelationName(fsstate->rel),
											fsstate->attinmeta,
											fsstate->retrieved_attrs,
											fsstate->slot_pos, 0,
											fsstate->masks,
											fsstate->apply_masks,
											fsstate->fc);
		fsstate->num_tuples = n;
		fsstate->rows_fetched += n;
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
}

static void
reset_batch(FdwScanState *fsstate)
{
	MemoryContextReset(fsstate->batch_cxt);
	fsstate->tuples = NULL;
	fsstate->num_tuples = 0;
	fsstate->next_tuple = 0;
}

/*
 * Start the remote query.  A scan that returns at most one batch (a lookup
 * by id, a LIMIT within medpro.fetch_size) runs the SELECT itself, as a
 * statement prepared once per connection; any other declares a cursor and
 * fetches its first batch in the same round trip.
 */
static void
start_scan(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;
	MemoryContext oldcxt;
	PGresult   *res;

	note_table_rows(fsstate, RelationGetRelid(fsstate->rel));
	compute_params(node);
	reset_batch(fsstate);
	oldcxt = MemoryContextSwitchTo(fsstate->batch_cxt);
	if (fsstate->bound >= 0 && fsstate->bound <= medpro_fetch_size)
	{
		RemoteStmt	stmt = {fsstate->query, fsstate->send_params,
			fsstate->param_values, true};

		if (fsstate->runs_alone)
			remote_clinic_autocommit(fsstate->conn);
		res = remote_clinic_run(fsstate->conn, &stmt, 1, !fsstate->for_update);
		fsstate->eof_reached = true;
	}
	else
	{
		RemoteStmt	stmts[2];
		char		fetch[64];
		int			n;

		fsstate->declare = psprintf("DECLARE medpro_c%u NO SCROLL CURSOR FOR %s",
									fsstate->cursor_number, fsstate->query);
		snprintf(fetch, sizeof(fetch), "FETCH %d FROM medpro_c%u",
				 medpro_fetch_size, fsstate->cursor_number);
		stmts[0].sql = fsstate->declare;
		stmts[0].nparams = fsstate->send_params;
		stmts[0].values = fsstate->param_values;
		stmts[0].prepare = false;
		stmts[1].sql = fetch;
		stmts[1].nparams = 0;
		stmts[1].values = NULL;
		stmts[1].prepare = false;
		res = remote_clinic_run(fsstate->conn, stmts, 2, !fsstate->for_update);
		fsstate->cursor_exists = true;
		n = PQntuples(res);
		fsstate->eof_reached = (n < medpro_fetch_size);
	}
	store_batch(fsstate, res);
	MemoryContextSwitchTo(oldcxt);
	fsstate->started = true;
}

/* FETCH the next batch into fsstate->tuples. */
static void
fetch_more(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;
	MemoryContext oldcxt;
	PGresult   *res;
	char		sql[64];
	RemoteStmt	stmt = {sql, 0, NULL, false};

	reset_batch(fsstate);
	oldcxt = MemoryContextSwitchTo(fsstate->batch_cxt);
	snprintf(sql, sizeof(sql), "FETCH %d FROM medpro_c%u",
			 medpro_fetch_size, fsstate->cursor_number);
	res = remote_clinic_run(fsstate->conn, &stmt, 1, !fsstate->for_update);
	fsstate->eof_reached = (PQntuples(res) < medpro_fetch_size);
	store_batch(fsstate, res);
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Close the cursor: sent with the next statement on the connection (the
 * end of the remote transaction closes it anyway).
 */
static void
close_cursor(FdwScanState *fsstate)
{
	char		sql[64];

	snprintf(sql, sizeof(sql), "CLOSE medpro_c%u", fsstate->cursor_number);
	remote_clinic_defer(fsstate->conn, sql);
	fsstate->cursor_exists = false;
}

static TupleTableSlot *
fdwIterateForeignScan(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	if (!fsstate->started)
		start_scan(node);
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
 * A rescan closes the cursor and starts again with the parameters' new
 * values, under a new cursor name.  (The cursor is NO SCROLL.)
 */
static void
fdwReScanForeignScan(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;

	if (fsstate->cursor_exists)
		close_cursor(fsstate);
	fsstate->cursor_number = ++cursor_counter;
	fsstate->started = false;
	reset_batch(fsstate);
	fsstate->eof_reached = false;
}

static void
fdwEndForeignScan(ForeignScanState *node)
{
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;

	if (fsstate != NULL && fsstate->cursor_exists)
		close_cursor(fsstate);
}

/*
 * "Remote Parameters: $1 = 'Durand'::text, $2 = (now() - '1 day'::interval)":
 * the values computed here for the remote SQL's parameters, for those that
 * are constants or local values (the query's own parameters are left out;
 * so is the line for a scan with blind-index parameters, whose values are
 * replaced when the scan starts).
 */
static void
explain_remote_params(ForeignScan *fsplan, ExplainState *es)
{
	StringInfoData buf;
	ListCell   *lc;
	int			n = 0;

	if (list_length(fsplan->fdw_private) > 5 && list_nth(fsplan->fdw_private, 5) != NIL)
		return;
	initStringInfo(&buf);
	foreach(lc, fsplan->fdw_exprs)
	{
		Node	   *e = (Node *) lfirst(lc);

		n++;
		if (IsA(e, Param))
			continue;
		appendStringInfo(&buf, "%s$%d = %s", buf.len > 0 ? ", " : "", n,
						 deparse_expression(e, NIL, false, false));
	}
	if (buf.len > 0)
		ExplainPropertyText("Remote Parameters", buf.data, es);
	pfree(buf.data);
}

static void
fdwExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	FdwScanState *fsstate = (FdwScanState *) node->fdw_state;

	if (es->verbose)
	{
		ExplainPropertyText("Remote SQL",
							strVal(linitial(fsplan->fdw_private)), es);
		explain_remote_params(fsplan, es);
	}
	if (es->analyze && fsstate != NULL)
		ExplainPropertyInteger("Rows Fetched", NULL, fsstate->rows_fetched, es);
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
 * return after them (the audit row's old_data); for an INSERT naming
 * columns, "INSERT INTO public.t (<columns>)" and " RETURNING ..." from
 * which batches are built (else empty strings).
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
	char	   *insert_prefix = NULL;
	char	   *returning = NULL;
	char	   *crypt;
	bool		has_crypt;
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
	has_crypt = fieldcrypt_columns(rel, &crypt);

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
		if (has_crypt && !list_member_int(target_attrs, id_attnum(rel)))
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
					if (crypt[lfirst_int(lc) - 1])
						fieldcrypt_deparse_target(&sql, rel, lfirst_int(lc), false, &nparams);
					else
					{
						appendStringInfoString(&sql, quote_identifier(NameStr(att->attname)));
						nparams++;
					}
				}
				appendStringInfoChar(&sql, ')');
				insert_prefix = pstrdup(sql.data);
				appendStringInfoString(&sql, " VALUES (");
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
					if (crypt[lfirst_int(lc) - 1])
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
		int			len = sql.len;

		appendStringInfoString(&sql, " RETURNING ");
		deparse_all_columns(&sql, rel, NULL, false, &retrieved_attrs);
		returning = pstrdup(sql.data + len);
	}
	table_close(rel, NoLock);

	return lappend(list_make5(makeString(sql.data), target_attrs, retrieved_attrs,
							  old_attrs, makeString(insert_prefix ? insert_prefix : "")),
				   makeString(returning ? returning : ""));
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
	if (strVal(list_nth(fdw_private, 4))[0] != '\0')
	{
		fmstate->insert_prefix = strVal(list_nth(fdw_private, 4));
		fmstate->insert_returning = strVal(list_nth(fdw_private, 5));
	}
	/* an encrypted column is sent as FIELDCRYPT_WIDTH parameters */
	{
		char	   *crypt;

		(void) fieldcrypt_columns(rinfo->ri_RelationDesc, &crypt);
		foreach(lc, fmstate->target_attrs)
			fmstate->row_nparams += crypt[lfirst_int(lc) - 1] ? FIELDCRYPT_WIDTH : 1;
	}
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

	values = palloc0(sizeof(char *) * (fmstate->row_nparams + 1));
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
				int row, int first_field, List *attrs)
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
		char	   *v = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);

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
finish_modify_row(FdwModifyState *fmstate, PGresult *res, int row,
				  TupleTableSlot *slot)
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
	if (PQntuples(res) > row)
	{
		HeapTuple	tup;
		ListCell   *lc;
		int			i = 0;

		found = true;
		tup = make_tuple(res, row, tupdesc, RelationGetRelationName(fmstate->rel),
						 fmstate->attinmeta, fmstate->retrieved_attrs, NULL,
						 list_length(fmstate->old_attrs),
						 fmstate->masks, fmstate->apply_masks, fmstate->fc);
		ExecForceStoreHeapTuple(tup, slot, false);

		foreach(lc, fmstate->retrieved_attrs)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, lfirst_int(lc) - 1);

			if (strcmp(NameStr(att->attname), "id") == 0 &&
				!PQgetisnull(res, row, i))
				entity_id = pstrdup(PQgetvalue(res, row, i));
			i++;
		}
		append_row_json(&json, fmstate, res, row, 0, fmstate->retrieved_attrs);
		if (has_old)
			append_row_json(&old_json, fmstate, res, row,
							list_length(fmstate->retrieved_attrs),
							fmstate->old_attrs);
	}

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

/* finish_modify_row for row 0, then PQclear(res) on every path. */
static TupleTableSlot *
finish_modify(FdwModifyState *fmstate, PGresult *res, TupleTableSlot *slot)
{
	TupleTableSlot *result;

	PG_TRY();
	{
		result = finish_modify_row(fmstate, res, 0, slot);
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	return result;
}

/*
 * Multi-row INSERT: up to medpro.fetch_size rows per remote statement,
 * INSERT ... VALUES (...), (...) RETURNING <every column>, each returned
 * row stored in its slot and audited.  Only when the local statement has
 * no RETURNING, WITH CHECK OPTION or row trigger (the executor then needs
 * no row before the batch is sent), and it names columns.
 */
static int
fdwGetForeignModifyBatchSize(ResultRelInfo *rinfo)
{
	FdwModifyState *fmstate = (FdwModifyState *) rinfo->ri_FdwState;
	int			n;

	if (fmstate == NULL || fmstate->insert_prefix == NULL ||
		fmstate->target_attrs == NIL || rinfo->ri_projectReturning != NULL ||
		rinfo->ri_WithCheckOptions != NIL ||
		(rinfo->ri_TrigDesc &&
		 (rinfo->ri_TrigDesc->trig_insert_before_row ||
		  rinfo->ri_TrigDesc->trig_insert_after_row)))
		return 1;
	/* at most 65535 parameters per statement */
	n = Min(medpro_fetch_size, 65535 / fmstate->row_nparams);
	return Max(n, 1);
}

static TupleTableSlot **
fdwExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo,
						  TupleTableSlot **slots, TupleTableSlot **planSlots,
						  int *numSlots)
{
	FdwModifyState *fmstate = (FdwModifyState *) rinfo->ri_FdwState;
	int			ncols = fmstate->row_nparams;
	const char **values = palloc(sizeof(char *) * Max(ncols * *numSlots, 1));
	StringInfoData sql;
	PGresult   *res;
	int			i;
	int			j;

	initStringInfo(&sql);
	appendStringInfo(&sql, "%s VALUES ", fmstate->insert_prefix);
	for (i = 0; i < *numSlots; i++)
	{
		int			nparams;
		const char **row = modify_params(fmstate, slots[i], planSlots[i], &nparams);

		Assert(nparams == ncols);
		appendStringInfoString(&sql, i > 0 ? ", (" : "(");
		for (j = 0; j < ncols; j++)
		{
			values[i * ncols + j] = row[j];
			appendStringInfo(&sql, "%s$%d", j > 0 ? ", " : "", i * ncols + j + 1);
		}
		appendStringInfoChar(&sql, ')');
	}
	appendStringInfoString(&sql, fmstate->insert_returning);

	res = remote_clinic_exec(fmstate->conn, sql.data, ncols * *numSlots, values);
	PG_TRY();
	{
		if (PQntuples(res) != *numSlots)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("clinic database returned %d rows for an INSERT of %d",
							PQntuples(res), *numSlots)));
		for (i = 0; i < *numSlots; i++)
			(void) finish_modify_row(fmstate, res, i, slots[i]);
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
	pfree(sql.data);
	return slots;
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
	if (es->verbose && rinfo->ri_BatchSize > 1)
		ExplainPropertyInteger("Batch Size", NULL, rinfo->ri_BatchSize, es);
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
	r->GetForeignUpperPaths = fdwGetForeignUpperPaths;
	r->GetForeignJoinPaths = fdwGetForeignJoinPaths;

	r->AddForeignUpdateTargets = fdwAddForeignUpdateTargets;
	r->PlanForeignModify = fdwPlanForeignModify;
	r->BeginForeignModify = fdwBeginForeignModify;
	r->ExecForeignInsert = fdwExecForeignInsert;
	r->ExecForeignBatchInsert = fdwExecForeignBatchInsert;
	r->GetForeignModifyBatchSize = fdwGetForeignModifyBatchSize;
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
