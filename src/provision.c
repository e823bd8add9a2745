/*
 * provision.c
 *	  Creating a clinic's login role and database, and undoing that when
 *	  the caller's transaction (or subtransaction) does not commit.
 *
 * CREATE DATABASE cannot run inside a transaction, so the role and the
 * database are created through the loopback connection, each in its own
 * autonomous transaction.  What this backend created is remembered, with
 * the (sub)transaction level that created it; if that level aborts, the
 * database and the role are dropped again through the loopback.  A crash in
 * between leaves them behind without a committed clinic row; every object
 * carries a comment naming its central database and clinic, by which
 * medpro_repair() recognises and removes it.  While a clinic is being
 * provisioned its backend holds an advisory lock on it, so repair never
 * touches work in progress.
 *
 * The steps, each idempotent so that medpro_provision_clinic can resume:
 * role (random password, stored only sealed), database (a spare database
 * from the pool renamed, else cloned from the template, or created empty
 * and migrated), CONNECT only for the clinic's
 * role, privileges and country defaults inside the clinic database, then
 * the clinic row becomes active.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/base64.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "crypto.h"
#include "migrate.h"
#include "provision.h"
#include "remote.h"

/*
 * From libpq/scram.h, which cannot be included without the GSSAPI headers
 * (through libpq/libpq-be.h); the server exports it.
 */
extern char *pg_be_scram_build_secret(const char *password);

char	   *medpro_debug_provision_fail = NULL;
bool		medpro_clinic_template = true;

#define CLEANUP_TIMEOUT_MS	30000
#define ROLE_PASSWORD_BYTES 24

/* Something this backend created and must drop if its level aborts. */
typedef struct Created
{
	bool		is_database;
	int			level;
	char		name[NAMEDATALEN];
} Created;

static List *created = NIL;		/* in TopMemoryContext */

static void
remember(bool is_database, const char *name)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	Created    *c = palloc0(sizeof(Created));

	c->is_database = is_database;
	c->level = GetCurrentTransactionNestLevel();
	strlcpy(c->name, name, sizeof(c->name));
	/* newest first: databases are dropped before the roles that own them */
	created = lcons(c, created);
	MemoryContextSwitchTo(old);
}

/* Drop what levels >= level created; never raises. */
static void
undo_from_level(int level)
{
	ListCell   *lc;
	List	   *keep = NIL;

	foreach(lc, created)
	{
		Created    *c = lfirst(lc);

		if (c->level >= level)
		{
			char	   *err = NULL;
			char	   *sql;

			sql = psprintf(c->is_database ? "DROP DATABASE IF EXISTS %s WITH (FORCE)" : "DROP ROLE IF EXISTS %s",
						   quote_identifier(c->name));
			if (!remote_cleanup_exec(sql, CLEANUP_TIMEOUT_MS, &err))
				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("could not drop %s \"%s\" after the provisioning transaction was rolled back",
								c->is_database ? "database" : "role", c->name),
						 errdetail_internal("%s", err ? err : "unknown error"),
						 errhint("Run medpro_repair() to remove it.")));
			pfree(c);
		}
		else
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			keep = lappend(keep, c);
			MemoryContextSwitchTo(old);
		}
	}
	list_free(created);
	created = keep;
}

static void
provision_xact_callback(XactEvent event, void *arg)
{
	if (created == NIL)
		return;
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			undo_from_level(0);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			list_free_deep(created);
			created = NIL;
			break;
		default:
			break;
	}
}

static void
provision_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	int			level;
	ListCell   *lc;

	if (created == NIL)
		return;
	level = GetCurrentTransactionNestLevel();
	if (event == SUBXACT_EVENT_ABORT_SUB)
		undo_from_level(level);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, created)
		{
			Created    *c = lfirst(lc);

			if (c->level >= level)
				c->level = level - 1;
		}
	}
}

void
provision_init(void)
{
	RegisterXactCallback(provision_xact_callback, NULL);
	RegisterSubXactCallback(provision_subxact_callback, NULL);
}

/* Fail here if the test setting names this step. */
static void
fault_point(const char *step)
{
	if (medpro_debug_provision_fail && strcmp(medpro_debug_provision_fail, step) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("injected failure at provisioning step \"%s\"", step)));
}

static void
loopback(const char *sql)
{
	remote_autonomous_exec(sql, 0, NULL);
}

static bool
spi_exists(const char *sql, const char *arg)
{
	if (SPI_execute_with_args(sql, 1, (Oid[]) {TEXTOID},
							  (Datum[]) {CStringGetTextDatum(arg)}, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI query failed: %s", sql);
	return SPI_processed > 0;
}

static char *
spi_value(int col)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

/* The comment that marks an object as this central database's clinic's. */
static char *
marker(const char *clinic_id)
{
	return psprintf("medpro clinic %s of %s", clinic_id,
					get_database_name(MyDatabaseId));
}

/* Step 1: the login role, with a random password stored only sealed. */
static void
ensure_role(const char *clinic_id, const char *role, bool has_password)
{
	uint8		raw[ROLE_PASSWORD_BYTES];
	char		password[64];
	int			len;
	char	   *secret;
	bytea	   *sealed;

	if (spi_exists("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", role))
	{
		if (!has_password)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("role \"%s\" already exists", role),
					 errdetail("The role was not created by medpro for this clinic; it is left as it is."),
					 errhint("Drop or rename the role, then call medpro_provision_clinic() again.")));
		return;
	}

	crypto_random_bytes(raw, sizeof(raw));
	len = pg_b64_encode((const char *) raw, sizeof(raw), password, sizeof(password) - 1);
	crypto_wipe(raw, sizeof(raw));
	if (len < 0)
		elog(ERROR, "could not encode the clinic role's password");
	password[len] = '\0';

	/* The server only ever sees the SCRAM verifier, never the password. */
	secret = pg_be_scram_build_secret(password);
	sealed = crypto_seal((const uint8 *) password, len,
						 psprintf("medpro.clinics:%s:db_password", clinic_id));
	crypto_wipe(password, sizeof(password));

	loopback(psprintf("CREATE ROLE %s LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s",
					  quote_identifier(role), quote_literal_cstr(secret)));
	remember(false, role);
	loopback(psprintf("COMMENT ON ROLE %s IS %s", quote_identifier(role),
					  quote_literal_cstr(marker(clinic_id))));

	if (SPI_execute_with_args("UPDATE medpro.clinics SET db_password_sealed = $2, updated_at = now() WHERE id = $1::uuid",
							  2, (Oid[]) {TEXTOID, BYTEAOID},
							  (Datum[]) {CStringGetTextDatum(clinic_id), PointerGetDatum(sealed)},
							  NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not store the clinic role's password");
}

/*
 * A spare database (medpro_fill_spare_pool) at the template's current
 * version, locked for this transaction, or NULL when there is none.
 */
static char *
take_spare(void)
{
	char	   *want = psprintf("medpro spare of %s at %s", get_database_name(MyDatabaseId),
								migrate_template_marker());

	if (SPI_execute_with_args("SELECT d.datname FROM pg_catalog.pg_database d "
							  " WHERE d.datname LIKE 'medpro\\_spare\\_%' "
							  "   AND pg_catalog.shobj_description(d.oid, 'pg_database') = $1 "
							  "   AND pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('medpro.spare'), "
							  "                                            pg_catalog.hashtext(d.datname::text)) "
							  " LIMIT 1",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(want)},
							  NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look for a spare database");
	if (SPI_processed == 0)
		return NULL;
	return spi_value(1);
}

/*
 * Step 2: the database: a spare one renamed when the pool has one at the
 * current version, else cloned from the template (or, with
 * medpro.clinic_template off, created empty: migrate_apply then replays
 * every migration).
 */
static void
ensure_database(const char *clinic_id, const char *db, const char *role)
{
	const char *qdb = quote_identifier(db);
	bool		replay = !medpro_clinic_template;
	char	   *spare = NULL;

	if (spi_exists("SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", db))
	{
		if (!spi_exists("SELECT 1 FROM pg_catalog.pg_database d JOIN pg_catalog.pg_roles r ON r.oid = d.datdba "
						" WHERE d.datname = $1 AND r.rolname = d.datname", db))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_DATABASE),
					 errmsg("database \"%s\" already exists", db),
					 errdetail("The database was not created by medpro for this clinic; it is left as it is."),
					 errhint("Drop or rename the database, then call medpro_provision_clinic() again.")));
		return;
	}

	if (!replay)
	{
		migrate_ensure_template();
		spare = take_spare();
	}
	if (spare)
	{
		/* owner first: a crash in between leaves a spare, not a stray clinic */
		loopback(psprintf("ALTER DATABASE %s OWNER TO %s", quote_identifier(spare), quote_identifier(role)));
		loopback(psprintf("ALTER DATABASE %s RENAME TO %s", quote_identifier(spare), qdb));
	}
	else
		loopback(psprintf("CREATE DATABASE %s OWNER %s TEMPLATE %s%s",
						  qdb, quote_identifier(role),
						  replay ? "template0" : quote_identifier(migrate_template_name()),
						  replay ? psprintf(" ENCODING %s%s",
											quote_literal_cstr(GetDatabaseEncodingName()),
											migrate_locale_clause()) : ""));
	remember(true, db);
	loopback(psprintf("COMMENT ON DATABASE %s IS %s", qdb,
					  quote_literal_cstr(marker(clinic_id))));
}

/* SQL: medpro.provision(clinic uuid) RETURNS integer (the schema version) */
PG_FUNCTION_INFO_V1(medpro_provision);
Datum
medpro_provision(PG_FUNCTION_ARGS)
{
	char	   *clinic_id = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(0)));
	char	   *db;
	char	   *role;
	char	   *country;
	char	   *timezone;
	char	   *tax_rate;
	char	   *vat_mention;
	char	   *templates;
	bool		has_password;
	int			version = 0;
	PGconn	   *volatile conn = NULL;

	SPI_connect();
	/* A clinic row made without names (by hand, or restored) gets them now. */
	if (SPI_execute_with_args("UPDATE medpro.clinics c "
							  "   SET db_name = coalesce(c.db_name, 'medpro_clinic_' || replace(c.id::text, '-', '_')), "
							  "       db_role = coalesce(c.db_role, 'medpro_clinic_' || replace(c.id::text, '-', '_')), "
							  "       server = coalesce(c.server, (SELECT s.name FROM medpro.servers s WHERE s.is_default)) "
							  " WHERE c.id = $1::uuid AND (c.db_name IS NULL OR c.db_role IS NULL OR c.server IS NULL)",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(clinic_id)},
							  NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not name the clinic's database");
	if (SPI_execute_with_args("SELECT c.db_name, c.db_role, c.db_password_sealed IS NOT NULL, c.country, "
							  "       coalesce(c.timezone, d.timezone), d.default_tax_rate::text, d.vat_exempt_mention, "
							  "       (SELECT coalesce(jsonb_agg(to_jsonb(t) - 'country'), '[]') "
							  "          FROM medpro.consent_template_defaults t WHERE t.country = c.country) "
							  "  FROM medpro.clinics c JOIN medpro.country_defaults d ON d.country = c.country "
							  " WHERE c.id = $1::uuid FOR UPDATE OF c",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(clinic_id)},
							  NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("clinic %s does not exist", clinic_id)));
	db = spi_value(1);
	role = spi_value(2);
	has_password = strcmp(spi_value(3), "t") == 0;
	country = spi_value(4);
	timezone = spi_value(5);
	tax_rate = spi_value(6);
	vat_mention = spi_value(7);
	templates = spi_value(8);

	/* the connection that undoes this at abort must outlive any idle wait */
	remote_loopback_pin();
	fault_point("start");
	ensure_role(clinic_id, role, has_password);
	fault_point("role");
	ensure_database(clinic_id, db, role);
	fault_point("database");
	loopback(psprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", quote_identifier(db)));
	loopback(psprintf("GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s",
					  quote_identifier(db), quote_identifier(role)));
	fault_point("grants");

	PG_TRY();
	{
		const char *qrole = quote_identifier(role);
		const char *values[4];
		StringInfoData sql;

		conn = remote_admin_connect(db);
		version = migrate_apply(conn, db, 0, NULL);

		initStringInfo(&sql);
		appendStringInfo(&sql,
						 "BEGIN;"
						 "GRANT USAGE ON SCHEMA public TO %s;"
						 "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s;"
						 "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %s;"
						 "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO %s;"
						 "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %s;"
						 "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO %s;"
						 "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO %s;"
						 "REVOKE ALL ON public.medpro_schema_migrations FROM %s;"
						 "GRANT SELECT ON public.medpro_schema_migrations TO %s;"
						 "COMMIT",
						 qrole, qrole, qrole, qrole, qrole, qrole, qrole, qrole, qrole);
		PQclear(remote_admin_exec(conn, sql.data, 0, NULL, "granting the clinic role its privileges"));

		values[0] = clinic_id;
		values[1] = country;
		values[2] = timezone;
		values[3] = tax_rate;
		PQclear(remote_admin_exec(conn, "BEGIN", 0, NULL, NULL));
		PQclear(remote_admin_exec(conn,
								  "INSERT INTO public.medpro_settings (clinic_id, country, timezone, default_tax_rate) "
								  "VALUES ($1::uuid, $2, $3, $4::numeric) ON CONFLICT (id) DO NOTHING",
								  4, values, "writing the clinic's country defaults"));
		values[0] = vat_mention;
		PQclear(remote_admin_exec(conn,
								  "UPDATE public.medpro_settings SET vat_exempt_mention = coalesce(vat_exempt_mention, $1)",
								  1, values, "writing the clinic's country defaults"));
		values[0] = templates;
		PQclear(remote_admin_exec(conn,
								  "INSERT INTO public.consent_templates (name, type, language, content, is_required) "
								  "SELECT t.name, t.type, t.language, t.content, t.is_required "
								  "  FROM jsonb_to_recordset($1::jsonb) AS t(name text, type text, language text, content text, is_required boolean) "
								  " WHERE NOT EXISTS (SELECT 1 FROM public.consent_templates)",
								  1, values, "writing the clinic's consent templates"));
		PQclear(remote_admin_exec(conn, "COMMIT", 0, NULL, NULL));
		fault_point("settings");
	}
	PG_FINALLY();
	{
		remote_admin_disconnect(conn);
		conn = NULL;
	}
	PG_END_TRY();

	if (SPI_execute_with_args("UPDATE medpro.clinics SET status = 'active', schema_version = $2, "
							  "       timezone = coalesce(timezone, $3), last_error = NULL, updated_at = now() "
							  " WHERE id = $1::uuid",
							  3, (Oid[]) {TEXTOID, INT4OID, TEXTOID},
							  (Datum[]) {CStringGetTextDatum(clinic_id), Int32GetDatum(version),
							  CStringGetTextDatum(timezone)},
							  NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not activate the clinic");
	if (!migrate_record_applied(clinic_id, version))
		elog(ERROR, "could not record the clinic's migrations");
	fault_point("activate");
	SPI_finish();

	PG_RETURN_INT32(version);
}

/* SQL: medpro.autonomous(sql text) RETURNS void (extension owner only) */
PG_FUNCTION_INFO_V1(medpro_autonomous);
Datum
medpro_autonomous(PG_FUNCTION_ARGS)
{
	remote_autonomous_exec(text_to_cstring(PG_GETARG_TEXT_PP(0)), 0, NULL);
	PG_RETURN_VOID();
}

/* SQL: medpro.ensure_template() RETURNS text (extension owner only) */
PG_FUNCTION_INFO_V1(medpro_ensure_template);
Datum
medpro_ensure_template(PG_FUNCTION_ARGS)
{
	text	   *result;

	SPI_connect();
	migrate_ensure_template();
	/* SPI_palloc: the result must outlive SPI_finish */
	{
		char	   *name = migrate_template_name();
		size_t		len = strlen(name);

		result = SPI_palloc(VARHDRSZ + len);
		SET_VARSIZE(result, VARHDRSZ + len);
		memcpy(VARDATA(result), name, len);
	}
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}
