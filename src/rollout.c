/*
 * rollout.c
 *	  medpro_migrate_all: rolling the pending clinic-schema migrations out to
 *	  every clinic database, several clinics at a time.
 *
 * The template is migrated first (an error there stops the run before any
 * clinic is touched).  Then every active or suspended clinic whose central
 * schema_version is below the latest is worked on by one of at most
 * `parallel` slots, each an asynchronous libpq connection driven by one
 * event loop that waits on the process latch and every slot's socket, so
 * query cancel, statement_timeout and termination interrupt it.  Clinics
 * already at the latest version are reported from the central record
 * without a connection.
 *
 * A slot first takes the clinic's advisory lock (the one provisioning,
 * medpro_migrate_clinic and the lifecycle functions take) without waiting:
 * a clinic another run holds is reported "busy" and left to it.  Under the
 * lock it reads what the clinic database applied (the truth), refuses a
 * changed migration, then applies each pending migration in a remote
 * transaction of its own (BEGIN, the text, the medpro_schema_migrations
 * row, COMMIT), so a clinic is always fully at a version or not at all.  A
 * non-transactional migration (first line "-- medpro:no-transaction") runs
 * outside a transaction block after invalid indexes an interrupted earlier
 * attempt left are dropped, and is recorded afterwards.  A failing
 * migration is rolled back and the clinic is left at its last version.
 *
 * Central bookkeeping (clinics.schema_version and last_error,
 * clinic_migrations with error, attempts and duration) is written on a
 * connection of the run to this database, as the bootstrap superuser, each
 * statement in a transaction of its own, queued as soon as the clinic
 * database has committed (or failed) and sent while the slots go on: it
 * survives a later rollback of the caller's transaction.  If the run is
 * interrupted between a remote COMMIT and its central record, the next run
 * finds the version in the clinic database and records it without applying
 * it again.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "auth.h"
#include "migrate.h"
#include "remote.h"
#include "rollout.h"

#define MAX_PARALLEL			64
#define CONNECT_TIMEOUT_MS		10000
#define PROGRESS_EVERY			25
#define PROGRESS_INTERVAL_MS	5000

typedef struct Migration
{
	int			version;
	char	   *name;
	char	   *checksum;
	char	   *sql;
	bool		transactional;
} Migration;

typedef struct Clinic
{
	char	   *id;
	char	   *db;
	int			version;		/* central record */
} Clinic;

typedef enum StepKind
{
	STEP_CHECK,					/* read medpro_schema_migrations */
	STEP_PLAIN,					/* a command whose result is not looked at */
	STEP_MIGRATION,				/* the migration text */
	STEP_RECORD,				/* the clinic's own record (and COMMIT) */
	STEP_RESUME,				/* list invalid indexes to drop */
	STEP_ROLLBACK				/* after a failure */
} StepKind;

typedef struct Step
{
	StepKind	kind;
	char	   *sql;
	int			mig;			/* index in migrations, -1 when none */
} Step;

typedef enum SlotState
{
	SLOT_FREE,
	SLOT_CONNECTING,
	SLOT_BUSY
} SlotState;

typedef struct Slot
{
	SlotState	state;
	int			clinic;
	PGconn	   *conn;
	PostgresPollingStatusType poll;
	TimestampTz deadline;		/* of the connection attempt */
	List	   *steps;			/* of Step *, still to run */
	Step	   *cur;			/* being run */
	PGresult   *last;			/* last result of cur (tuples) */
	char	   *error;			/* first error of the clinic, or NULL */
	int			failed_mig;		/* migration that failed, -1 */
	TimestampTz started;
	TimestampTz mig_started;
	int			from;
	int			to;
	LOCKTAG		tag;
	bool		locked;
} Slot;

typedef struct Run
{
	MemoryContext cxt;
	Migration  *migs;
	int			nmigs;
	int			latest;
	Clinic	   *clinics;
	int			nclinics;
	Slot	   *slots;
	int			nslots;
	ReturnSetInfo *rsinfo;
	int			done;
	int			migrated;
	int			failed;
	int			current;
	int			busy;
	int			reported;
	TimestampTz last_report;
	/* central bookkeeping: a connection to this database and its queue */
	PGconn	   *central;
	List	   *cw_queue;		/* of CentralWrite *, not sent yet */
	bool		cw_busy;		/* a write is in flight */
	PGresult   *cw_error;		/* its error result, if any */
} Run;

/* One central write: a statement with text parameters. */
typedef struct CentralWrite
{
	const char *sql;
	int			nparams;
	char	   *values[4];
} CentralWrite;

static void run_clinics(Run *run);
static void slot_start(Run *run, Slot *slot, int clinic);
static void slot_advance(Run *run, Slot *slot);
static void slot_send(Run *run, Slot *slot);
static void slot_step_done(Run *run, Slot *slot, PGresult *error_res);
static void slot_fail(Run *run, Slot *slot, const char *msg);
static void slot_finish(Run *run, Slot *slot, const char *status);
static void slot_close(Slot *slot);
static void emit(Run *run, const char *clinic_id, int from, int to,
				 const char *status, const char *error, TimestampTz started);
static void progress(Run *run, bool force);
static char *result_error(PGresult *res, PGconn *conn);
static int	migration_index(Run *run, int version);
static void central_write(Run *run, const char *sql, int nparams, const char *const *values);
static void central_kick(Run *run);
static void central_advance(Run *run);

/* The advisory lock medpro takes on a clinic (hashtext keys, as in SQL). */
static void
clinic_locktag(LOCKTAG *tag, const char *clinic_id)
{
	int32		k1 = DatumGetInt32(DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
														   CStringGetTextDatum("medpro.clinic")));
	int32		k2 = DatumGetInt32(DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
														   CStringGetTextDatum(clinic_id)));

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) k1, (uint32) k2, 2);
}

static void
load(Run *run)
{
	uint64		i;
	MemoryContext old;

	if (SPI_execute("SELECT 1 FROM medpro.migrations "
					" WHERE xmin = pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.xid LIMIT 1",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read medpro.migrations");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migrations added in this transaction must be committed before medpro_migrate_all runs"),
				 errdetail("The central record of each clinic is written in transactions of its own, which cannot see an uncommitted migration."),
				 errhint("Commit after medpro_add_migration(), then call medpro_migrate_all().")));

	if (SPI_execute("SELECT version, name, checksum, sql, transactional FROM medpro.migrations ORDER BY version",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read medpro.migrations");
	old = MemoryContextSwitchTo(run->cxt);
	run->nmigs = (int) SPI_processed;
	run->migs = palloc0(sizeof(Migration) * Max(run->nmigs, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Migration  *m = &run->migs[i];

		m->version = atoi(SPI_getvalue(tup, desc, 1));
		m->name = pstrdup(SPI_getvalue(tup, desc, 2));
		m->checksum = pstrdup(SPI_getvalue(tup, desc, 3));
		m->sql = pstrdup(SPI_getvalue(tup, desc, 4));
		m->transactional = strcmp(SPI_getvalue(tup, desc, 5), "t") == 0;
	}
	run->latest = run->nmigs > 0 ? run->migs[run->nmigs - 1].version : 0;
	MemoryContextSwitchTo(old);

	if (SPI_execute("SELECT id, db_name, schema_version FROM medpro.clinics "
					" WHERE deleted_at IS NULL AND status IN ('active', 'suspended') AND db_name IS NOT NULL "
					" ORDER BY created_at, id",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read medpro.clinics");
	old = MemoryContextSwitchTo(run->cxt);
	run->nclinics = (int) SPI_processed;
	run->clinics = palloc0(sizeof(Clinic) * Max(run->nclinics, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		run->clinics[i].id = pstrdup(SPI_getvalue(tup, desc, 1));
		run->clinics[i].db = pstrdup(SPI_getvalue(tup, desc, 2));
		run->clinics[i].version = atoi(SPI_getvalue(tup, desc, 3));
	}
	MemoryContextSwitchTo(old);
}

/* SQL: medpro_migrate_all(parallel integer DEFAULT 2) RETURNS TABLE(...) */
PG_FUNCTION_INFO_V1(medpro_migrate_all);
Datum
medpro_migrate_all(PG_FUNCTION_ARGS)
{
	Run			run;
	int			parallel = PG_ARGISNULL(0) ? 2 : PG_GETARG_INT32(0);

	if (!auth_caller_is_operator())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to migrate clinics"),
				 errhint("Only members of medpro_operator may do this.")));
	if (parallel < 1 || parallel > MAX_PARALLEL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("parallel must be between 1 and %d", MAX_PARALLEL)));

	InitMaterializedSRF(fcinfo, 0);
	memset(&run, 0, sizeof(run));
	run.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	run.cxt = AllocSetContextCreate(CurrentMemoryContext, "medpro migrate_all",
									ALLOCSET_DEFAULT_SIZES);
	run.nslots = parallel;
	run.slots = MemoryContextAllocZero(run.cxt, sizeof(Slot) * parallel);
	run.last_report = GetCurrentTimestamp();

	SPI_connect();
	/* The template first: if a migration fails there, no clinic is touched. */
	migrate_ensure_template();
	/* registrations clone the template meanwhile: it is at the latest version */
	migrate_template_unlock();
	load(&run);
	run_clinics(&run);
	SPI_finish();
	MemoryContextDelete(run.cxt);

	return (Datum) 0;
}

/* The event loop.  Every connection is closed on every path. */
static void
run_clinics(Run *run)
{
	int			next = 0;

	PG_TRY();
	{
		for (;;)
		{
			int			active = 0;
			int			i;
			WaitEventSet *set;
			WaitEvent  *events;
			int			nevents;
			long		timeout = PROGRESS_INTERVAL_MS;
			TimestampTz now;

			/* Fill free slots; clinics at the latest version need no slot. */
			for (i = 0; i < run->nslots && next < run->nclinics; i++)
			{
				Slot	   *slot = &run->slots[i];

				while (slot->state == SLOT_FREE && next < run->nclinics)
				{
					Clinic	   *c = &run->clinics[next];

					if (c->version >= run->latest)
					{
						emit(run, c->id, c->version, c->version, "current", NULL, 0);
						run->current++;
						run->done++;
						next++;
						continue;
					}
					slot_start(run, slot, next++);
				}
			}
			for (i = 0; i < run->nslots; i++)
				if (run->slots[i].state != SLOT_FREE)
					active++;
			progress(run, false);
			central_kick(run);
			if (active == 0 && next >= run->nclinics && !run->cw_busy)
				break;
			if (active == 0 && !run->cw_busy)
				continue;

			/* Wait for the latch or any slot's socket. */
			now = GetCurrentTimestamp();
			set = CreateWaitEventSet(CurrentMemoryContext, active + 3);
			AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
			if (run->cw_busy)
				AddWaitEventToSet(set, WL_SOCKET_READABLE, PQsocket(run->central), NULL, run);
			for (i = 0; i < run->nslots; i++)
			{
				Slot	   *slot = &run->slots[i];
				uint32		ev;

				if (slot->state == SLOT_FREE)
					continue;
				if (slot->state == SLOT_CONNECTING)
				{
					long		left = TimestampDifferenceMilliseconds(now, slot->deadline);

					ev = slot->poll == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
					timeout = Min(timeout, Max(left, 1));
				}
				else
					ev = WL_SOCKET_READABLE;
				AddWaitEventToSet(set, ev, PQsocket(slot->conn), NULL, slot);
			}
			events = palloc(sizeof(WaitEvent) * (active + 3));
			nevents = WaitEventSetWait(set, timeout, events, active + 3, PG_WAIT_EXTENSION);
			FreeWaitEventSet(set);

			for (i = 0; i < nevents; i++)
			{
				if (events[i].events & WL_LATCH_SET)
				{
					ResetLatch(MyLatch);
					CHECK_FOR_INTERRUPTS();
				}
			}
			for (i = 0; i < nevents; i++)
			{
				if (events[i].user_data == run)
					central_advance(run);
				else if (events[i].user_data != NULL)
				{
					Slot	   *slot = (Slot *) events[i].user_data;

					if (slot->state != SLOT_FREE)
						slot_advance(run, slot);
				}
			}
			pfree(events);

			/* Connection attempts past their deadline. */
			now = GetCurrentTimestamp();
			for (i = 0; i < run->nslots; i++)
			{
				Slot	   *slot = &run->slots[i];

				if (slot->state == SLOT_CONNECTING && now >= slot->deadline)
					slot_fail(run, slot, "clinic database unavailable: connection attempt timed out");
			}
		}
	}
	PG_CATCH();
	{
		int			i;

		/* Closing a connection rolls back its open remote transaction. */
		for (i = 0; i < run->nslots; i++)
		{
			Slot	   *slot = &run->slots[i];

			if (slot->conn)
				remote_admin_disconnect(slot->conn);
			slot->conn = NULL;
			PQclear(slot->last);
			slot->last = NULL;
		}
		PQclear(run->cw_error);
		run->cw_error = NULL;
		remote_admin_disconnect(run->central);
		run->central = NULL;
		PG_RE_THROW();
	}
	PG_END_TRY();
	remote_admin_disconnect(run->central);
	run->central = NULL;
	progress(run, true);
}

/* Lock the clinic (without waiting) and start connecting to it. */
static void
slot_start(Run *run, Slot *slot, int clinic)
{
	Clinic	   *c = &run->clinics[clinic];
	LockAcquireResult lr;

	memset(slot, 0, sizeof(Slot));
	slot->clinic = clinic;
	slot->failed_mig = -1;
	slot->started = GetCurrentTimestamp();
	slot->from = slot->to = c->version;

	clinic_locktag(&slot->tag, c->id);
	lr = LockAcquire(&slot->tag, ExclusiveLock, false, true);
	if (lr == LOCKACQUIRE_NOT_AVAIL)
	{
		emit(run, c->id, c->version, c->version, "busy",
			 "another run is working on this clinic", slot->started);
		run->busy++;
		run->done++;
		slot->state = SLOT_FREE;
		return;
	}
	slot->locked = true;

	slot->conn = remote_admin_connect_start(c->db);
	slot->state = SLOT_CONNECTING;
	slot->poll = PGRES_POLLING_WRITING;
	slot->deadline = TimestampTzPlusMilliseconds(slot->started, CONNECT_TIMEOUT_MS);
	if (PQstatus(slot->conn) == CONNECTION_BAD)
		slot_fail(run, slot, result_error(NULL, slot->conn));
}

/* The socket of a slot is ready: make progress without blocking. */
static void
slot_advance(Run *run, Slot *slot)
{
	if (slot->state == SLOT_CONNECTING)
	{
		MemoryContext old = MemoryContextSwitchTo(run->cxt);
		Step	   *check = palloc0(sizeof(Step));

		slot->poll = PQconnectPoll(slot->conn);
		if (slot->poll == PGRES_POLLING_FAILED)
		{
			MemoryContextSwitchTo(old);
			slot_fail(run, slot, result_error(NULL, slot->conn));
			return;
		}
		if (slot->poll != PGRES_POLLING_OK)
		{
			MemoryContextSwitchTo(old);
			return;
		}
		check->kind = STEP_CHECK;
		check->mig = -1;
		check->sql = pstrdup("CREATE TABLE IF NOT EXISTS public.medpro_schema_migrations ("
							 "  version integer PRIMARY KEY, name text NOT NULL,"
							 "  checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
							 "SELECT version, checksum FROM public.medpro_schema_migrations ORDER BY version");
		slot->steps = list_make1(check);
		MemoryContextSwitchTo(old);
		slot->state = SLOT_BUSY;
		slot_send(run, slot);
		return;
	}

	if (!PQconsumeInput(slot->conn))
	{
		slot_fail(run, slot, result_error(NULL, slot->conn));
		return;
	}
	while (slot->state == SLOT_BUSY && !PQisBusy(slot->conn))
	{
		PGresult   *res = PQgetResult(slot->conn);
		ExecStatusType st;

		if (res == NULL)
		{
			PGresult   *last = slot->last;

			slot->last = NULL;
			if (last != NULL &&
				PQresultStatus(last) != PGRES_COMMAND_OK &&
				PQresultStatus(last) != PGRES_TUPLES_OK &&
				PQresultStatus(last) != PGRES_EMPTY_QUERY)
				slot_step_done(run, slot, last);
			else
			{
				slot->last = last;
				slot_step_done(run, slot, NULL);
			}
			continue;
		}
		st = PQresultStatus(res);
		if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
		{
			PQclear(res);
			slot_fail(run, slot, "a migration must not use COPY");
			return;
		}
		/* keep the first error, else the last result */
		if (slot->last != NULL &&
			PQresultStatus(slot->last) != PGRES_COMMAND_OK &&
			PQresultStatus(slot->last) != PGRES_TUPLES_OK &&
			PQresultStatus(slot->last) != PGRES_EMPTY_QUERY)
			PQclear(res);
		else
		{
			PQclear(slot->last);
			slot->last = res;
		}
	}
}

/* Send the next step of the slot, or finish the clinic when none is left. */
static void
slot_send(Run *run, Slot *slot)
{
	if (slot->steps == NIL)
	{
		slot_finish(run, slot, slot->error ? "failed" : (slot->to > slot->from ? "migrated" : "current"));
		return;
	}
	slot->cur = linitial(slot->steps);
	slot->steps = list_delete_first(slot->steps);
	if (slot->cur->mig >= 0 && slot->mig_started == 0)
		slot->mig_started = GetCurrentTimestamp();
	if (!PQsendQuery(slot->conn, slot->cur->sql))
		slot_fail(run, slot, result_error(NULL, slot->conn));
}

/* Central record: migration m applied to the clinic of slot. */
static void
record_applied(Run *run, Slot *slot, int m)
{
	const char *values[4];
	Interval   *iv;

	values[0] = run->clinics[slot->clinic].id;
	values[1] = psprintf("%d", run->migs[m].version);
	values[2] = run->migs[m].checksum;
	iv = DatumGetIntervalP(DirectFunctionCall2(timestamp_mi,
											   TimestampTzGetDatum(GetCurrentTimestamp()),
											   TimestampTzGetDatum(slot->mig_started ? slot->mig_started : slot->started)));
	values[3] = DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(iv)));
	central_write(run, "WITH m AS ("
						   " INSERT INTO medpro.clinic_migrations AS cm (clinic_id, version, checksum, status, duration)"
						   " VALUES ($1::pg_catalog.uuid, $2::pg_catalog.int4, $3, 'applied', $4::pg_catalog.interval)"
						   " ON CONFLICT (clinic_id, version) DO UPDATE SET status = 'applied', error = NULL,"
						   "   checksum = excluded.checksum, duration = excluded.duration, applied_at = pg_catalog.now(),"
						   "   attempts = cm.attempts OPERATOR(pg_catalog.+) (cm.status OPERATOR(pg_catalog.=) 'failed')::pg_catalog.int4)"
						   " UPDATE medpro.clinics SET schema_version = GREATEST(schema_version, $2::pg_catalog.int4),"
						   "   last_error = NULL, updated_at = pg_catalog.now()"
						   " WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid",
						   4, values);
	slot->mig_started = 0;
}

/* Central record: versions up to `version` found applied in the clinic. */
static void
record_catch_up(Run *run, Slot *slot, int version)
{
	const char *values[2];

	values[0] = run->clinics[slot->clinic].id;
	values[1] = psprintf("%d", version);
	central_write(run, "WITH m AS ("
						   " INSERT INTO medpro.clinic_migrations AS cm (clinic_id, version, checksum, status)"
						   " SELECT $1::pg_catalog.uuid, g.version, g.checksum, 'applied' FROM medpro.migrations g"
						   "  WHERE g.version OPERATOR(pg_catalog.<=) $2::pg_catalog.int4"
						   " ON CONFLICT (clinic_id, version) DO UPDATE SET status = 'applied', error = NULL"
						   "  WHERE cm.status OPERATOR(pg_catalog.<>) 'applied')"
						   " UPDATE medpro.clinics SET schema_version = GREATEST(schema_version, $2::pg_catalog.int4),"
						   "   updated_at = pg_catalog.now()"
						   " WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid",
						   2, values);
}

/* Central record: the clinic failed at migration m (or before any, m = -1). */
static void
record_failed(Run *run, Slot *slot, int m, const char *error)
{
	const char *values[4];
	int			i;

	if (m < 0)
	{
		/* the first migration the clinic still needs, by the best record */
		for (i = 0; i < run->nmigs; i++)
			if (run->migs[i].version > slot->to)
			{
				m = i;
				break;
			}
	}
	values[0] = run->clinics[slot->clinic].id;
	values[1] = m >= 0 ? psprintf("%d", run->migs[m].version) : NULL;
	values[2] = m >= 0 ? run->migs[m].checksum : NULL;
	values[3] = error;
	central_write(run, "WITH m AS ("
						   " INSERT INTO medpro.clinic_migrations AS cm (clinic_id, version, checksum, status, error)"
						   " SELECT $1::pg_catalog.uuid, $2::pg_catalog.int4, $3, 'failed', $4"
						   "  WHERE $2::pg_catalog.int4 IS NOT NULL"
						   " ON CONFLICT (clinic_id, version) DO UPDATE SET status = 'failed', error = excluded.error,"
						   "   applied_at = pg_catalog.now(), duration = NULL,"
						   "   attempts = cm.attempts OPERATOR(pg_catalog.+) 1)"
						   " UPDATE medpro.clinics SET last_error = $4, updated_at = pg_catalog.now()"
						   " WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid",
						   4, values);
}

static Step *
new_step(Run *run, StepKind kind, char *sql, int mig)
{
	Step	   *s = MemoryContextAllocZero(run->cxt, sizeof(Step));

	s->kind = kind;
	s->sql = sql;
	s->mig = mig;
	return s;
}

/* Plan the pending migrations of the clinic after the check step. */
static void
plan(Run *run, Slot *slot, PGresult *res)
{
	int			i;
	int			current = 0;
	MemoryContext old;

	for (i = 0; i < PQntuples(res); i++)
	{
		int			version = atoi(PQgetvalue(res, i, 0));
		int			m = migration_index(run, version);

		if (m >= 0 && strcmp(run->migs[m].checksum, PQgetvalue(res, i, 1)) != 0)
		{
			slot_fail(run, slot, psprintf("migration %d has changed since it was applied", version));
			return;
		}
		if (version > current)
			current = version;
	}
	slot->from = slot->to = current;
	if (current > run->clinics[slot->clinic].version)
		record_catch_up(run, slot, current);

	old = MemoryContextSwitchTo(run->cxt);
	for (i = 0; i < run->nmigs; i++)
	{
		Migration  *mg = &run->migs[i];
		char	   *record;

		if (mg->version <= current)
			continue;
		record = psprintf("INSERT INTO public.medpro_schema_migrations (version, name, checksum) VALUES (%d, %s, %s)",
						  mg->version, quote_literal_cstr(mg->name), quote_literal_cstr(mg->checksum));
		if (mg->transactional)
		{
			slot->steps = lappend(slot->steps, new_step(run, STEP_PLAIN,
														"BEGIN; SET LOCAL search_path = public, pg_catalog", i));
			slot->steps = lappend(slot->steps, new_step(run, STEP_MIGRATION, mg->sql, i));
			slot->steps = lappend(slot->steps, new_step(run, STEP_RECORD,
														psprintf("%s; COMMIT", record), i));
		}
		else
		{
			slot->steps = lappend(slot->steps, new_step(run, STEP_PLAIN,
														"SET search_path = public, pg_catalog", i));
			slot->steps = lappend(slot->steps, new_step(run, STEP_RESUME, pstrdup(migrate_invalid_indexes_sql), i));
			slot->steps = lappend(slot->steps, new_step(run, STEP_MIGRATION, mg->sql, i));
			slot->steps = lappend(slot->steps, new_step(run, STEP_RECORD, record, i));
			slot->steps = lappend(slot->steps, new_step(run, STEP_PLAIN, "RESET search_path", -1));
		}
	}
	MemoryContextSwitchTo(old);
}

/* A step ended (error_res: its error result, which this clears). */
static void
slot_step_done(Run *run, Slot *slot, PGresult *error_res)
{
	Step	   *step = slot->cur;
	PGresult   *res = slot->last;

	slot->last = NULL;
	slot->cur = NULL;

	if (error_res != NULL)
	{
		char	   *msg = result_error(error_res, slot->conn);

		PQclear(error_res);
		PQclear(res);
		if (step->kind == STEP_ROLLBACK)
		{
			slot_fail(run, slot, msg);
			return;
		}
		if (step->mig >= 0)
		{
			slot->failed_mig = step->mig;
			msg = psprintf("migration %d (%s): %s", run->migs[step->mig].version,
						   run->migs[step->mig].name, msg);
		}
		slot->error = MemoryContextStrdup(run->cxt, msg);
		record_failed(run, slot, slot->failed_mig, slot->error);
		run->failed++;
		list_free(slot->steps);
		slot->steps = NIL;
		if (PQtransactionStatus(slot->conn) != PQTRANS_IDLE)
			slot->steps = list_make1(new_step(run, STEP_ROLLBACK, "ROLLBACK", -1));
		slot_send(run, slot);
		return;
	}

	switch (step->kind)
	{
		case STEP_CHECK:
			plan(run, slot, res);
			break;
		case STEP_MIGRATION:
			{
				bool		in_xact = PQtransactionStatus(slot->conn) == PQTRANS_INTRANS;

				if (in_xact != run->migs[step->mig].transactional)
				{
					slot->failed_mig = step->mig;
					slot->error = MemoryContextStrdup(run->cxt,
													  psprintf("migration %d (%s): %s", run->migs[step->mig].version,
															   run->migs[step->mig].name,
															   in_xact ? "a non-transactional migration must not leave a transaction open"
															   : "a migration must not end its transaction (BEGIN, COMMIT or ROLLBACK in its text)"));
					record_failed(run, slot, step->mig, slot->error);
					run->failed++;
					list_free(slot->steps);
					slot->steps = NIL;
					if (in_xact)
						slot->steps = list_make1(new_step(run, STEP_ROLLBACK, "ROLLBACK", -1));
				}
				break;
			}
		case STEP_RECORD:
			slot->to = run->migs[step->mig].version;
			record_applied(run, slot, step->mig);
			break;
		case STEP_RESUME:
			{
				int			i;
				MemoryContext old = MemoryContextSwitchTo(run->cxt);

				/* drop each leftover before the migration runs again */
				for (i = PQntuples(res) - 1; i >= 0; i--)
					slot->steps = lcons(new_step(run, STEP_PLAIN, pstrdup(PQgetvalue(res, i, 0)), step->mig),
										slot->steps);
				MemoryContextSwitchTo(old);
				break;
			}
		case STEP_PLAIN:
		case STEP_ROLLBACK:
			break;
	}
	PQclear(res);
	if (slot->state == SLOT_BUSY)
		slot_send(run, slot);
}

/* The clinic failed before or outside a migration step: report and free. */
static void
slot_fail(Run *run, Slot *slot, const char *msg)
{
	if (slot->error == NULL)
	{
		slot->error = MemoryContextStrdup(run->cxt, msg);
		record_failed(run, slot, slot->failed_mig, slot->error);
		run->failed++;
	}
	slot_finish(run, slot, "failed");
}

static void
slot_finish(Run *run, Slot *slot, const char *status)
{
	Clinic	   *c = &run->clinics[slot->clinic];

	if (strcmp(status, "migrated") == 0)
		run->migrated++;
	else if (strcmp(status, "current") == 0)
		run->current++;
	emit(run, c->id, slot->from, slot->to, status, slot->error, slot->started);
	run->done++;
	slot_close(slot);
}

static void
slot_close(Slot *slot)
{
	PQclear(slot->last);
	slot->last = NULL;
	if (slot->conn)
		remote_admin_disconnect(slot->conn);
	slot->conn = NULL;
	if (slot->locked)
		LockRelease(&slot->tag, ExclusiveLock, false);
	slot->locked = false;
	list_free(slot->steps);
	slot->steps = NIL;
	slot->state = SLOT_FREE;
}

static void
emit(Run *run, const char *clinic_id, int from, int to, const char *status,
	 const char *error, TimestampTz started)
{
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	values[0] = DirectFunctionCall1(uuid_in, CStringGetDatum(clinic_id));
	values[1] = Int32GetDatum(from);
	values[2] = Int32GetDatum(to);
	values[3] = CStringGetTextDatum(status);
	if (error)
		values[4] = CStringGetTextDatum(error);
	else
		nulls[4] = true;
	if (started)
		values[5] = DirectFunctionCall2(timestamp_mi,
										TimestampTzGetDatum(GetCurrentTimestamp()),
										TimestampTzGetDatum(started));
	else
		nulls[5] = true;
	tuplestore_putvalues(run->rsinfo->setResult, run->rsinfo->setDesc, values, nulls);
}

/* A NOTICE every PROGRESS_EVERY clinics or PROGRESS_INTERVAL_MS. */
static void
progress(Run *run, bool force)
{
	TimestampTz now = GetCurrentTimestamp();

	if (run->done == run->reported)
		return;
	if (!force && run->done - run->reported < PROGRESS_EVERY &&
		!TimestampDifferenceExceeds(run->last_report, now, PROGRESS_INTERVAL_MS))
		return;
	ereport(NOTICE,
			(errmsg("medpro_migrate_all: %d of %d clinics done (%d migrated, %d failed, %d already current, %d busy)",
					run->done, run->nclinics, run->migrated, run->failed, run->current, run->busy)));
	run->reported = run->done;
	run->last_report = now;
}

/*
 * The message of an error result, or of the connection's error (then
 * reduced to the server's message, without socket paths).
 */
static char *
result_error(PGresult *res, PGconn *conn)
{
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *msg;
	const char *fatal;

	if (primary)
		return pstrdup(primary);
	msg = res ? PQresultErrorMessage(res) : "";
	if (msg[0] == '\0')
		msg = PQerrorMessage(conn);
	fatal = strstr(msg, "FATAL:  ");
	if (fatal)
		return psprintf("clinic database unavailable: %s", pchomp(fatal + 8));
	return pstrdup("clinic database unavailable");
}

static int
migration_index(Run *run, int version)
{
	int			i;

	for (i = 0; i < run->nmigs; i++)
		if (run->migs[i].version == version)
			return i;
	return -1;
}

/*
 * Central bookkeeping.  Each write is one statement in a transaction of its
 * own on a connection of this run to this database (as the bootstrap
 * superuser), so it survives a rollback of the caller's transaction.  Writes
 * are queued and sent one at a time while the slots go on, in the order
 * they were made; an error aborts the run.  After a cancel, writes not yet
 * sent are lost: the clinic databases stay the truth, and the next run
 * records what it finds there.
 */
static void
central_write(Run *run, const char *sql, int nparams, const char *const *values)
{
	MemoryContext old = MemoryContextSwitchTo(run->cxt);
	CentralWrite *w = palloc0(sizeof(CentralWrite));
	int			i;

	Assert(nparams <= lengthof(w->values));
	w->sql = sql;
	w->nparams = nparams;
	for (i = 0; i < nparams; i++)
		w->values[i] = values[i] ? pstrdup(values[i]) : NULL;
	run->cw_queue = lappend(run->cw_queue, w);
	MemoryContextSwitchTo(old);
	/* connected on first use: a run with nothing to do opens no connection */
	if (run->central == NULL)
		run->central = remote_admin_connect(get_database_name(MyDatabaseId));
	central_kick(run);
}

/* Send the next queued write when none is in flight. */
static void
central_kick(Run *run)
{
	CentralWrite *w;

	if (run->cw_busy || run->cw_queue == NIL || run->central == NULL)
		return;
	w = linitial(run->cw_queue);
	run->cw_queue = list_delete_first(run->cw_queue);
	if (!PQsendQueryParams(run->central, w->sql, w->nparams, NULL,
						   (const char *const *) w->values, NULL, NULL, 0))
		remote_report_error(ERROR, NULL, run->central, "recording the rollout centrally");
	run->cw_busy = true;
}

/* The central connection is readable: collect the write's result. */
static void
central_advance(Run *run)
{
	if (!PQconsumeInput(run->central))
		remote_report_error(ERROR, NULL, run->central, "recording the rollout centrally");
	while (run->cw_busy && !PQisBusy(run->central))
	{
		PGresult   *res = PQgetResult(run->central);

		if (res == NULL)
		{
			PGresult   *err = run->cw_error;

			run->cw_error = NULL;
			run->cw_busy = false;
			if (err)
				remote_report_error(ERROR, err, run->central, "recording the rollout centrally");
			central_kick(run);
			break;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
			run->cw_error == NULL)
			run->cw_error = res;
		else
			PQclear(res);
	}
}

