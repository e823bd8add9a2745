/*
 * migrate.c
 *	  Clinic-schema migrations: applying them to a clinic database, and
 *	  keeping the template database that new clinics are cloned from at the
 *	  latest version.
 *
 * The migrations live in medpro.migrations (the extension's own, loaded
 * from sql/clinic/ at install, and later operators' own), each with a
 * SHA-256 checksum of its text.  Every clinic database records what it has
 * applied in medpro_schema_migrations; that record is the truth, the
 * central clinics.schema_version a copy of it.  Each migration runs in its
 * own remote transaction: a clinic is always fully at a version or not.
 */
#include "postgres.h"

#include "catalog/pg_authid_d.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "commands/dbcommands.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/uuid.h"
#include "fmgr.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_database.h"
#include "utils/syscache.h"
#include "storage/lock.h"
#include "funcapi.h"
#include "utils/tuplestore.h"

#include "auth.h"
#include "migrate.h"
#include "remote.h"

#define TEMPLATE_PREFIX "medpro_template_"

static const char *const schema_migrations_ddl =
"CREATE TABLE IF NOT EXISTS public.medpro_schema_migrations ("
"  version integer PRIMARY KEY,"
"  name text NOT NULL,"
"  checksum text NOT NULL,"
"  applied_at timestamptz NOT NULL DEFAULT now())";

const char *const migrate_invalid_indexes_sql =
"SELECT pg_catalog.format('DROP INDEX CONCURRENTLY IF EXISTS %s', i.indexrelid::pg_catalog.regclass)"
"  FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
" WHERE NOT i.indisvalid AND c.relnamespace = 'public'::pg_catalog.regnamespace";

int
migrate_latest_version(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute("SELECT coalesce(max(version), 0) FROM medpro.migrations", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read medpro.migrations");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return DatumGetInt32(d);
}

/* Run a command on conn, discarding its result. */
static void
exec_command(PGconn *conn, const char *sql, const char *context_msg)
{
	PQclear(remote_admin_exec(conn, sql, 0, NULL, context_msg));
}

int
migrate_apply(PGconn *conn, const char *dbname, int target, int *from)
{
	PGresult   *res;
	int			current = 0;
	int			i;
	uint64		n;
	char	   *context_msg = psprintf("migrating database \"%s\"", dbname);

	exec_command(conn, schema_migrations_ddl, context_msg);

	/*
	 * Applied migrations must still match the central text.  The remote
	 * result is copied out and cleared first, so no error below leaks it.
	 */
	res = remote_admin_exec(conn,
							"SELECT version, checksum FROM public.medpro_schema_migrations ORDER BY version",
							0, NULL, context_msg);
	{
		int			napplied = PQntuples(res);
		char	  **versions = palloc(sizeof(char *) * Max(napplied, 1));
		char	  **checksums = palloc(sizeof(char *) * Max(napplied, 1));

		for (i = 0; i < napplied; i++)
		{
			versions[i] = pstrdup(PQgetvalue(res, i, 0));
			checksums[i] = pstrdup(PQgetvalue(res, i, 1));
		}
		PQclear(res);

		for (i = 0; i < napplied; i++)
		{
			int			version = atoi(versions[i]);
			bool		isnull;

			if (SPI_execute_with_args("SELECT checksum = $2 FROM medpro.migrations WHERE version = $1::int",
									  2, (Oid[]) {TEXTOID, TEXTOID},
									  (Datum[]) {CStringGetTextDatum(versions[i]), CStringGetTextDatum(checksums[i])},
									  NULL, true, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not read medpro.migrations");
			if (SPI_processed == 1 &&
				!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											&isnull)))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("migration %d has changed since it was applied", version),
						 errdetail("Database \"%s\" applied version %d with another checksum than medpro.migrations holds now.",
								   dbname, version),
						 errhint("An applied migration is never edited; add a new migration instead.")));
			if (version > current)
				current = version;
		}
	}
	if (from)
		*from = current;

	if (SPI_execute_with_args("SELECT version, name, checksum, sql, transactional FROM medpro.migrations "
							  " WHERE version > $1 AND ($2 = 0 OR version <= $2) ORDER BY version",
							  2, (Oid[]) {INT4OID, INT4OID},
							  (Datum[]) {Int32GetDatum(current), Int32GetDatum(target)},
							  NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read medpro.migrations");
	n = SPI_processed;
	if (n > 0)
	{
		SPITupleTable *tuptable = SPI_tuptable;
		uint64		r;

		for (r = 0; r < n; r++)
		{
			HeapTuple	tup = tuptable->vals[r];
			const char *version = SPI_getvalue(tup, tuptable->tupdesc, 1);
			const char *values[3];
			char	   *step_ctx;

			values[0] = version;
			values[1] = SPI_getvalue(tup, tuptable->tupdesc, 2);
			values[2] = SPI_getvalue(tup, tuptable->tupdesc, 3);
			step_ctx = psprintf("applying migration %s (%s) to database \"%s\"",
								version, values[1], dbname);

			if (strcmp(SPI_getvalue(tup, tuptable->tupdesc, 5), "t") == 0)
			{
				exec_command(conn, "BEGIN", step_ctx);
				exec_command(conn, "SET LOCAL search_path = public, pg_catalog", step_ctx);
				exec_command(conn, SPI_getvalue(tup, tuptable->tupdesc, 4), step_ctx);
				if (PQtransactionStatus(conn) != PQTRANS_INTRANS)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
							 errmsg("a migration must not end its transaction"),
							 errdetail("Migration %s contains BEGIN, COMMIT or ROLLBACK.", version),
							 errcontext("%s", step_ctx)));
				PQclear(remote_admin_exec(conn,
										  "INSERT INTO public.medpro_schema_migrations (version, name, checksum) "
										  "VALUES ($1::int, $2, $3)",
										  3, values, step_ctx));
				exec_command(conn, "COMMIT", step_ctx);
			}
			else
			{
				/*
				 * Outside a transaction block: first drop the invalid
				 * indexes an interrupted CREATE INDEX CONCURRENTLY left, so
				 * the migration can run again.
				 */
				PGresult   *left;
				int			j;

				exec_command(conn, "SET search_path = public, pg_catalog", step_ctx);
				left = remote_admin_exec(conn, migrate_invalid_indexes_sql, 0, NULL, step_ctx);
				{
					int			nleft = PQntuples(left);
					char	  **drops = palloc(sizeof(char *) * Max(nleft, 1));

					for (j = 0; j < nleft; j++)
						drops[j] = pstrdup(PQgetvalue(left, j, 0));
					PQclear(left);
					for (j = 0; j < nleft; j++)
						exec_command(conn, drops[j], step_ctx);
				}
				exec_command(conn, SPI_getvalue(tup, tuptable->tupdesc, 4), step_ctx);
				PQclear(remote_admin_exec(conn,
										  "INSERT INTO public.medpro_schema_migrations (version, name, checksum) "
										  "VALUES ($1::int, $2, $3)",
										  3, values, step_ctx));
				exec_command(conn, "RESET search_path", step_ctx);
			}
			current = atoi(version);
		}
	}
	return current;
}

char *
migrate_template_name(void)
{
	char	   *db = get_database_name(MyDatabaseId);
	char		name[NAMEDATALEN];

	snprintf(name, sizeof(name), "%s%s", TEMPLATE_PREFIX, db);
	return pstrdup(name);
}

/*
 * migrate_locale_clause
 *		" LC_COLLATE '...' LC_CTYPE '...' [LOCALE_PROVIDER icu ICU_LOCALE '...']"
 *		of the central database, for CREATE DATABASE ... TEMPLATE template0.
 *
 * The clinic template (hence every clinic cloned from it) and a clinic
 * created from template0 get the central database's collation and
 * character classification, whatever the cluster's default: text
 * comparisons, sorts and lower/upper shipped to the clinic then give what
 * they give here (docs/routing.md, "Collation").
 */
char *
migrate_locale_clause(void)
{
	HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	Form_pg_database db;
	StringInfoData buf;
	Datum		d;
	bool		isnull;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for database %u", MyDatabaseId);
	db = (Form_pg_database) GETSTRUCT(tup);
	initStringInfo(&buf);
	d = SysCacheGetAttr(DATABASEOID, tup, Anum_pg_database_datcollate, &isnull);
	if (!isnull)
		appendStringInfo(&buf, " LC_COLLATE %s", quote_literal_cstr(TextDatumGetCString(d)));
	d = SysCacheGetAttr(DATABASEOID, tup, Anum_pg_database_datctype, &isnull);
	if (!isnull)
		appendStringInfo(&buf, " LC_CTYPE %s", quote_literal_cstr(TextDatumGetCString(d)));
	if (db->datlocprovider == COLLPROVIDER_ICU)
	{
		d = SysCacheGetAttr(DATABASEOID, tup, Anum_pg_database_daticulocale, &isnull);
		if (!isnull)
			appendStringInfo(&buf, " LOCALE_PROVIDER icu ICU_LOCALE %s",
							 quote_literal_cstr(TextDatumGetCString(d)));
	}
	ReleaseSysCache(tup);
	return buf.data;
}

/* Run a cluster-level statement through the loopback; sql is built quoted. */
static void
loopback(const char *sql)
{
	remote_autonomous_exec(sql, 0, NULL);
}

/*
 * The comment the template carries when it is at the latest migration:
 * version and checksum prefix, so that a migration replaced after a
 * rolled-back medpro_add_migration is noticed too.
 */
char *
migrate_template_marker(void)
{
	if (SPI_execute("SELECT medpro.template_marker()", true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not compute the template marker");
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * Whether the template applied a migration that medpro.migrations does not
 * hold (any more) with the same checksum: left by a medpro_add_migration
 * whose transaction rolled back.  Such a template is rebuilt.
 */
static bool
template_drifted(PGconn *conn, const char *tpl)
{
	PGresult   *res;
	int			n;
	int			i;
	char	  **versions;
	char	  **checksums;
	bool		drifted = false;

	exec_command(conn, schema_migrations_ddl, "checking the template database");
	res = remote_admin_exec(conn, "SELECT version, checksum FROM public.medpro_schema_migrations",
							0, NULL, "checking the template database");
	n = PQntuples(res);
	versions = palloc(sizeof(char *) * Max(n, 1));
	checksums = palloc(sizeof(char *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		versions[i] = pstrdup(PQgetvalue(res, i, 0));
		checksums[i] = pstrdup(PQgetvalue(res, i, 1));
	}
	PQclear(res);
	for (i = 0; i < n && !drifted; i++)
	{
		if (SPI_execute_with_args("SELECT 1 FROM medpro.migrations WHERE version = $1::int AND checksum = $2",
								  2, (Oid[]) {TEXTOID, TEXTOID},
								  (Datum[]) {CStringGetTextDatum(versions[i]), CStringGetTextDatum(checksums[i])},
								  NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read medpro.migrations");
		drifted = SPI_processed == 0;
	}
	if (drifted)
		ereport(NOTICE,
				(errmsg("rebuilding template database \"%s\"", tpl),
				 errdetail("It applied a migration that medpro.migrations no longer holds with the same text.")));
	return drifted;
}

void
migrate_ensure_template(void)
{
	char	   *tpl = migrate_template_name();
	const char *qtpl = quote_identifier(tpl);
	char	   *mark;
	bool		exists;
	PGconn	   *volatile conn = NULL;

	/* One backend at a time works on the template. */
	if (SPI_execute("SELECT pg_catalog.pg_advisory_xact_lock(hashtext('medpro.template'))",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the template");

	mark = migrate_template_marker();
	exists = OidIsValid(get_database_oid(tpl, true));
	if (exists)
	{
		/* Up to date?  Read its version without connecting: a comment. */
		char	   *comment = NULL;

		if (SPI_execute_with_args("SELECT pg_catalog.shobj_description(oid, 'pg_database') FROM pg_catalog.pg_database WHERE datname = $1",
								  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(tpl)},
								  NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1)
			comment = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (comment && strcmp(comment, mark) == 0)
			return;
		loopback(psprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true", qtpl));
	}
	else
	{
		loopback(psprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING %s%s",
						  qtpl, quote_literal_cstr(GetDatabaseEncodingName()),
						  migrate_locale_clause()));
	}

	PG_TRY();
	{
		conn = remote_admin_connect(tpl);
		if (exists && template_drifted(conn, tpl))
		{
			remote_admin_disconnect(conn);
			conn = NULL;
			loopback(psprintf("ALTER DATABASE %s WITH IS_TEMPLATE false", qtpl));
			loopback(psprintf("DROP DATABASE %s WITH (FORCE)", qtpl));
			loopback(psprintf("CREATE DATABASE %s TEMPLATE template0 ENCODING %s%s",
							  qtpl, quote_literal_cstr(GetDatabaseEncodingName()),
							  migrate_locale_clause()));
			conn = remote_admin_connect(tpl);
		}
		PQclear(remote_admin_exec(conn,
								  psprintf("ALTER SCHEMA public OWNER TO %s",
										   quote_identifier(GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false))),
								  0, NULL, "preparing the template database"));
		(void) migrate_apply(conn, tpl, 0, NULL);
		remote_admin_disconnect(conn);
		conn = NULL;
		loopback(psprintf("ALTER DATABASE %s WITH IS_TEMPLATE true ALLOW_CONNECTIONS false", qtpl));
		loopback(psprintf("COMMENT ON DATABASE %s IS %s", qtpl, quote_literal_cstr(mark)));
	}
	PG_FINALLY();
	{
		remote_admin_disconnect(conn);
	}
	PG_END_TRY();
}

void
migrate_template_unlock(void)
{
	int64		key = DatumGetInt32(DirectFunctionCall1Coll(hashtext, DEFAULT_COLLATION_OID,
														  CStringGetTextDatum("medpro.template")));
	LOCKTAG		tag;

	/* pg_advisory_xact_lock(bigint): the key's high and low halves, field 1 */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (key >> 32), (uint32) key, 1);
	LockRelease(&tag, ExclusiveLock, false);
}

/* SQL: medpro.template_columns() RETURNS TABLE(...) (extension owner only) */
PG_FUNCTION_INFO_V1(medpro_template_columns);
Datum
medpro_template_columns(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *tpl;
	const char *qtpl;
	PGconn	   *volatile conn = NULL;
	PGresult   *volatile res = NULL;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	migrate_ensure_template();
	tpl = migrate_template_name();
	qtpl = quote_identifier(tpl);

	/* Connections to the template are allowed only while it is read. */
	loopback(psprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS true", qtpl));
	PG_TRY();
	{
		int			i;

		conn = remote_admin_connect(tpl);
		res = remote_admin_exec(conn,
								"SELECT c.relname, a.attname, a.attnum, "
								"       pg_catalog.format_type(a.atttypid, a.atttypmod), "
								"       coalesce(pg_catalog.col_description(c.oid, a.attnum), '') LIKE 'medpro:medical%', "
								"       coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '') LIKE 'medpro:internal%' "
								"  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
								" WHERE c.relnamespace = 'public'::pg_catalog.regnamespace AND c.relkind IN ('r', 'p') "
								"   AND a.attnum > 0 AND NOT a.attisdropped "
								"   AND coalesce(pg_catalog.col_description(c.oid, a.attnum), '') NOT LIKE 'medpro:internal%' "
								" ORDER BY c.relname, a.attnum",
								0, NULL, "reading the template's tables");
		for (i = 0; i < PQntuples(res); i++)
		{
			Datum		values[6];
			bool		nulls[6] = {false, false, false, false, false, false};

			values[0] = CStringGetTextDatum(PQgetvalue(res, i, 0));
			values[1] = CStringGetTextDatum(PQgetvalue(res, i, 1));
			values[2] = Int32GetDatum(atoi(PQgetvalue(res, i, 2)));
			values[3] = CStringGetTextDatum(PQgetvalue(res, i, 3));
			values[4] = BoolGetDatum(strcmp(PQgetvalue(res, i, 4), "t") == 0);
			values[5] = BoolGetDatum(strcmp(PQgetvalue(res, i, 5), "t") == 0);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PG_FINALLY();
	{
		PQclear(res);
		remote_admin_disconnect(conn);
	}
	PG_END_TRY();
	loopback(psprintf("ALTER DATABASE %s WITH ALLOW_CONNECTIONS false", qtpl));
	SPI_finish();
	return (Datum) 0;
}

bool
migrate_record_applied(const char *clinic_id, int version)
{
	return SPI_execute_with_args("INSERT INTO medpro.clinic_migrations (clinic_id, version, checksum, status) "
								 "SELECT $1::uuid, m.version, m.checksum, 'applied' FROM medpro.migrations m "
								 " WHERE m.version <= $2 "
								 "ON CONFLICT (clinic_id, version) DO UPDATE SET status = 'applied', error = NULL",
								 2, (Oid[]) {TEXTOID, INT4OID},
								 (Datum[]) {CStringGetTextDatum(clinic_id), Int32GetDatum(version)},
								 NULL, false, 0) == SPI_OK_INSERT;
}

/* SQL: medpro_migrate_clinic(clinic uuid, target integer DEFAULT NULL) RETURNS integer */
PG_FUNCTION_INFO_V1(medpro_migrate_clinic);
Datum
medpro_migrate_clinic(PG_FUNCTION_ARGS)
{
	char	   *clinic_id;
	int			target = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1);
	int			latest;
	int			from = 0;
	int			version = 0;
	char	   *db;
	char	   *status;
	PGconn	   *volatile conn = NULL;

	if (!auth_caller_is_operator())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to migrate clinics"),
				 errhint("Only members of medpro_operator may do this.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clinic must not be null")));
	clinic_id = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0)));

	SPI_connect();
	latest = migrate_latest_version();
	if (target < 0 || target > latest)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("target version %d does not exist", target),
				 errdetail("The latest migration is version %d.", latest)));
	if (SPI_execute_with_args("SELECT db_name, status FROM medpro.clinics WHERE id = $1::uuid AND deleted_at IS NULL",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(clinic_id)},
							  NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clinic %s does not exist", clinic_id)));
	db = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("clinic %s is not provisioned", clinic_id),
				 errdetail("Its status is \"%s\".", status),
				 errhint("Call medpro_provision_clinic() first.")));

	/* The same lock provisioning takes: one worker per clinic at a time. */
	if (SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock(hashtext('medpro.clinic'), hashtext($1))",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(clinic_id)},
							  NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the clinic");

	PG_TRY();
	{
		conn = remote_admin_connect(db);
		version = migrate_apply(conn, db, target, &from);
	}
	PG_FINALLY();
	{
		remote_admin_disconnect(conn);
	}
	PG_END_TRY();

	if (SPI_execute_with_args("UPDATE medpro.clinics SET schema_version = $2, last_error = NULL, updated_at = now() "
							  " WHERE id = $1::uuid",
							  2, (Oid[]) {TEXTOID, INT4OID},
							  (Datum[]) {CStringGetTextDatum(clinic_id), Int32GetDatum(version)},
							  NULL, false, 0) != SPI_OK_UPDATE ||
		!migrate_record_applied(clinic_id, version))
		elog(ERROR, "could not record the clinic's migrations");
	SPI_finish();

	PG_RETURN_INT32(version);
}
