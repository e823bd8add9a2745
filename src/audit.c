/*
 * audit.c
 *	  Writing rows to medpro.audit_log.
 *
 * All rows go through the SQL function medpro.audit_append(), which owns
 * the table's invariants.  A row for an event whose statement is about to
 * fail (a failed login, a refused token) is written autonomously over the
 * loopback connection (remote.c) so that the caller's rollback does not
 * erase it; every other row joins the caller's transaction.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/uuid.h"

#include "audit.h"
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
