/*
 * audit.c
 *	  Writing rows to medpro.audit_log.
 *
 * All rows go through the SQL function medpro.audit_append(), which owns
 * the table's invariants.  A row for an event whose statement is about to
 * fail (a failed login, a refused token) is written autonomously over the
 * loopback connection (remote.c) so that the caller's rollback does not
 * erase it; every other row joins the caller's transaction.
 *
 * It links new audit rows into their clinic's hash chain when their
 * transaction commits: a row trigger remembers each new row's id, and the
 * pre-commit callback appends them to their chains (30_audit.sql documents
 * the hash), holding each chain's lock only for the rest of the commit.
 *
 * It also signs and checks the checkpoints that replace pruned prefixes of
 * the audit hash chains (sql/ext/30_audit.sql): HMAC-SHA256 under a key
 * derived from the master key, compared in constant time.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/fmgrprotos.h"
#include "utils/uuid.h"

#include "audit.h"
#include "crypto.h"
#include "remote.h"

#define AUDIT_NARGS 8

static const char *const audit_sql =
"SELECT medpro.audit_append($1::pg_catalog.uuid, $2::pg_catalog.uuid, $3, $4, $5, "
"$6::pg_catalog.jsonb, $7::pg_catalog.jsonb, $8::pg_catalog.inet)";

char *
audit_client_addr(void)
{
	LOCAL_FCINFO(fcinfo, 0);
	Datum		addr;

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	addr = inet_client_addr(fcinfo);
	if (fcinfo->isnull)
		return NULL;
	return DatumGetCString(DirectFunctionCall1(inet_out, addr));
}

static char *
uuid_text(const pg_uuid_t *u)
{
	if (u == NULL)
		return NULL;
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

void
audit_write(const pg_uuid_t *clinic, const pg_uuid_t *user,
			const char *action, const char *entity, const char *entity_id,
			const char *old_data, const char *new_data, bool autonomous)
{
	const char *values[AUDIT_NARGS];

	values[0] = uuid_text(clinic);
	values[1] = uuid_text(user);
	values[2] = action;
	values[3] = entity;
	values[4] = entity_id;
	values[5] = old_data;
	values[6] = new_data;
	values[7] = audit_client_addr();

	if (autonomous)
		remote_autonomous_exec(audit_sql, AUDIT_NARGS, values);
	else
	{
		Oid			types[AUDIT_NARGS];
		Datum		args[AUDIT_NARGS];
		char		nulls[AUDIT_NARGS];
		int			i;
		int			rc;

		for (i = 0; i < AUDIT_NARGS; i++)
		{
			types[i] = TEXTOID;
			args[i] = values[i] ? CStringGetTextDatum(values[i]) : (Datum) 0;
			nulls[i] = values[i] ? ' ' : 'n';
		}
		SPI_connect();
		rc = SPI_execute_with_args(audit_sql, AUDIT_NARGS, types, args, nulls,
								   false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "audit_append failed: %s", SPI_result_code_string(rc));
		SPI_finish();
	}
}

/*
 * The MAC of a checkpoint: HMAC-SHA256 under the derived key
 * "medpro.audit_checkpoint" of "v1|<chain>|<seq>|<row_hash hex>|<created_at
 * as microseconds since 2000>".
 */
static void
checkpoint_mac(FunctionCallInfo fcinfo, uint8 *out)
{
	char	   *chain = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0)));
	int64		seq = PG_GETARG_INT64(1);
	bytea	   *hash = PG_GETARG_BYTEA_PP(2);
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(3);
	StringInfoData msg;
	uint8		key[CRYPTO_HMAC_LEN];
	int			i;

	initStringInfo(&msg);
	appendStringInfo(&msg, "v1|%s|" INT64_FORMAT "|", chain, seq);
	for (i = 0; i < (int) VARSIZE_ANY_EXHDR(hash); i++)
		appendStringInfo(&msg, "%02x", ((uint8 *) VARDATA_ANY(hash))[i]);
	appendStringInfo(&msg, "|" INT64_FORMAT, (int64) at);

	crypto_derive_key("medpro.audit_checkpoint", key);
	PG_TRY();
	{
		crypto_hmac_sha256(key, sizeof(key), (uint8 *) msg.data, msg.len, out);
	}
	PG_FINALLY();
	{
		crypto_wipe(key, sizeof(key));
	}
	PG_END_TRY();
}

/* SQL: medpro.audit_checkpoint_mac(chain uuid, seq bigint, row_hash bytea, created_at timestamptz) RETURNS bytea */
PG_FUNCTION_INFO_V1(medpro_audit_checkpoint_mac);
Datum
medpro_audit_checkpoint_mac(PG_FUNCTION_ARGS)
{
	bytea	   *res = palloc(VARHDRSZ + CRYPTO_HMAC_LEN);

	SET_VARSIZE(res, VARHDRSZ + CRYPTO_HMAC_LEN);
	checkpoint_mac(fcinfo, (uint8 *) VARDATA(res));
	PG_RETURN_BYTEA_P(res);
}

/* SQL: medpro.audit_checkpoint_valid(chain, seq, row_hash, created_at, signature bytea) RETURNS boolean */
PG_FUNCTION_INFO_V1(medpro_audit_checkpoint_valid);
Datum
medpro_audit_checkpoint_valid(PG_FUNCTION_ARGS)
{
	bytea	   *sig = PG_GETARG_BYTEA_PP(4);
	uint8		mac[CRYPTO_HMAC_LEN];
	bool		ok;

	checkpoint_mac(fcinfo, mac);
	ok = VARSIZE_ANY_EXHDR(sig) == CRYPTO_HMAC_LEN &&
		crypto_ct_equal(mac, VARDATA_ANY(sig), CRYPTO_HMAC_LEN);
	PG_RETURN_BOOL(ok);
}

/*
 * Linking at commit. ---------------------------------------------------------
 */

/* Ids of the audit rows this transaction inserted, in TopTransactionContext. */
static int64 *pending_ids = NULL;
static int	pending_count = 0;
static int	pending_size = 0;

/* SQL trigger: medpro.audit_log_inserted() AFTER INSERT ON medpro.audit_log FOR EACH ROW */
PG_FUNCTION_INFO_V1(medpro_audit_log_inserted);
Datum
medpro_audit_log_inserted(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	int			attnum;
	bool		isnull;
	Datum		id;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_INSERT(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "medpro.audit_log_inserted must be an AFTER INSERT row trigger");
	/* a row that comes with its link (a restored dump) keeps it */
	attnum = SPI_fnumber(td->tg_relation->rd_att, "row_hash");
	if (attnum <= 0)
		elog(ERROR, "medpro.audit_log has no row_hash column");
	(void) heap_getattr(td->tg_trigtuple, attnum, td->tg_relation->rd_att, &isnull);
	if (!isnull)
		return PointerGetDatum(NULL);
	attnum = SPI_fnumber(td->tg_relation->rd_att, "id");
	if (attnum <= 0)
		elog(ERROR, "medpro.audit_log has no id column");
	id = heap_getattr(td->tg_trigtuple, attnum, td->tg_relation->rd_att, &isnull);
	if (isnull)
		elog(ERROR, "audit row without id");
	if (pending_count == pending_size)
	{
		int			size = pending_size ? pending_size * 2 : 16;

		pending_ids = pending_ids ?
			repalloc(pending_ids, sizeof(int64) * size) :
			MemoryContextAlloc(TopTransactionContext, sizeof(int64) * size);
		pending_size = size;
	}
	pending_ids[pending_count++] = DatumGetInt64(id);
	return PointerGetDatum(NULL);
}

/*
 * Run a prepared statement of the linking with the latest snapshot, as RI
 * triggers do: at REPEATABLE READ or SERIALIZABLE the transaction's own
 * snapshot would not see the chain head another transaction committed
 * since, and the head is serialised by the advisory lock instead.
 */
static void
exec_latest(SPIPlanPtr plan, Datum *args)
{
	int			rc = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(),
										  InvalidSnapshot, false, true, 0);

	if (rc < 0)
		elog(ERROR, "audit chain statement failed: %s", SPI_result_code_string(rc));
}

/*
 * Link the remembered rows now, as the extension owner with a pinned
 * search_path.  For each chain in turn (ordered, so that two committing
 * transactions cannot deadlock) it takes a transaction-level advisory lock
 * on the chain, then appends the transaction's rows of that chain, in id
 * order, after the head.  Rows rolled back by a subtransaction, and rows
 * that came with their link (a restored dump), are skipped.
 */
static void
link_pending(void)
{
	Datum	   *elems;
	ArrayType  *arr;
	Oid			save_userid;
	int			save_sec;
	int			nestlevel;
	int			i;
	int			n = pending_count;

	if (n == 0)
		return;
	elems = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		elems[i] = Int64GetDatum(pending_ids[i]);
	pending_count = 0;
	arr = construct_array(elems, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(remote_extension_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	PG_TRY();
	{
		SPIPlanPtr	lock_plan;
		SPIPlanPtr	head_plan;
		SPIPlanPtr	link_plan;
		uint64		nrows;
		int64	   *ids;
		char	  **chains;
		char	   *locked = NULL;

		/*
		 * At pre-commit no portal holds a snapshot any more; the rows the
		 * last command inserted must be visible to this one.
		 */
		CommandCounterIncrement();
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		if (SPI_execute_with_args("SELECT id, medpro.audit_chain_of(clinic_id)::pg_catalog.text "
								  "  FROM medpro.audit_log "
								  " WHERE id OPERATOR(pg_catalog.=) ANY ($1) AND row_hash IS NULL "
								  " ORDER BY 2, 1",
								  1, (Oid[]) {INT8ARRAYOID}, (Datum[]) {PointerGetDatum(arr)},
								  NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the audit rows to link");
		nrows = SPI_processed;
		ids = palloc(sizeof(int64) * Max(nrows, 1));
		chains = palloc(sizeof(char *) * Max(nrows, 1));
		for (i = 0; i < (int) nrows; i++)
		{
			bool		isnull;

			ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			chains[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		}

		lock_plan = SPI_prepare("SELECT pg_catalog.pg_advisory_xact_lock(1835361360, pg_catalog.hashtext($1))",
								1, (Oid[]) {TEXTOID});
		head_plan = SPI_prepare("INSERT INTO medpro.audit_heads (chain, seq, head_hash) "
								"VALUES ($1::pg_catalog.uuid, 0, medpro.audit_genesis($1::pg_catalog.uuid)) "
								"ON CONFLICT (chain) DO NOTHING", 1, (Oid[]) {TEXTOID});
		link_plan = SPI_prepare("WITH h AS (SELECT seq, head_hash FROM medpro.audit_heads "
								"            WHERE chain OPERATOR(pg_catalog.=) $2::pg_catalog.uuid), "
								"     l AS (UPDATE medpro.audit_log l "
								"              SET chain_seq = h.seq OPERATOR(pg_catalog.+) 1, prev_hash = h.head_hash, "
								"                  row_hash = medpro.audit_row_hash(h.head_hash, h.seq OPERATOR(pg_catalog.+) 1, l) "
								"             FROM h WHERE l.id OPERATOR(pg_catalog.=) $1 "
								"            RETURNING l.chain_seq, l.row_hash) "
								"UPDATE medpro.audit_heads a SET seq = l.chain_seq, head_hash = l.row_hash "
								"  FROM l WHERE a.chain OPERATOR(pg_catalog.=) $2::pg_catalog.uuid",
								2, (Oid[]) {INT8OID, TEXTOID});
		if (lock_plan == NULL || head_plan == NULL || link_plan == NULL)
			elog(ERROR, "could not prepare the audit chain statements: %s",
				 SPI_result_code_string(SPI_result));
		for (i = 0; i < (int) nrows; i++)
		{
			Datum		args[2];

			args[0] = Int64GetDatum(ids[i]);
			args[1] = CStringGetTextDatum(chains[i]);
			if (locked == NULL || strcmp(locked, chains[i]) != 0)
			{
				exec_latest(lock_plan, args + 1);
				exec_latest(head_plan, args + 1);
				locked = chains[i];
			}
			exec_latest(link_plan, args);
			if (SPI_processed != 1)
				elog(ERROR, "could not link audit row " INT64_FORMAT, ids[i]);
		}
		SPI_finish();
		PopActiveSnapshot();
	}
	PG_FINALLY();
	{
		AtEOXact_GUC(true, nestlevel);
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

/* SQL: medpro.audit_link_pending() RETURNS void */
PG_FUNCTION_INFO_V1(medpro_audit_link_pending);
Datum
medpro_audit_link_pending(PG_FUNCTION_ARGS)
{
	link_pending();
	PG_RETURN_VOID();
}

static void
audit_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			link_pending();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* the array went away with TopTransactionContext */
			pending_ids = NULL;
			pending_count = 0;
			pending_size = 0;
			break;
		default:
			break;
	}
}

void
audit_init(void)
{
	RegisterXactCallback(audit_xact_callback, NULL);
}
