/*
 * migrate.h
 *	  Private interface of migrate.c: applying clinic-schema migrations to a
 *	  clinic database or to the template database.
 */
#ifndef MEDPRO_MIGRATE_H
#define MEDPRO_MIGRATE_H

#include "postgres.h"
#include "libpq-fe.h"

/*
 * Apply the migrations of medpro.migrations above the database's current
 * version, up to target (0: all), to the database behind conn (an admin
 * connection), each in its own remote transaction, recording each in the
 * database's medpro_schema_migrations.  An applied migration whose
 * checksum differs from the central one is refused (55000) before anything
 * runs.  Returns the version the database is at afterwards; *from gets the
 * version before.  Needs SPI to be connected by the caller.
 */
extern int	migrate_apply(PGconn *conn, const char *dbname, int target, int *from);

/*
 * Record centrally that the clinic is at version (every migration up to it
 * applied).  Needs SPI; returns false when the statement failed.
 */
extern bool migrate_record_applied(const char *clinic_id, int version);

/*
 * A query listing "DROP INDEX CONCURRENTLY ..." for each invalid index in
 * schema public of a clinic database: what an interrupted
 * non-transactional migration (CREATE INDEX CONCURRENTLY) leaves behind.
 * Run before such a migration is tried again.
 */
extern const char *const migrate_invalid_indexes_sql;

/* The latest version in medpro.migrations (0 when there is none). */
extern int	migrate_latest_version(void);

/*
 * The name of this central database's template database, and make sure it
 * exists at the latest version (creating or migrating it).  Runs its DDL
 * through the loopback connection; needs SPI connected.
 */
extern char *migrate_template_name(void);

/* The central database's locale, as a CREATE DATABASE clause (migrate.c). */
extern char *migrate_locale_clause(void);

/*
 * The comment of a template database at the latest migration ("medpro
 * template at version N checksum <16 hex digits>"); needs SPI.
 */
extern char *migrate_template_marker(void);
extern void migrate_ensure_template(void);

/*
 * Release one hold of the template's advisory lock that
 * migrate_ensure_template took, so that registrations need not wait for the
 * rest of a long transaction (medpro_migrate_all).
 */
extern void migrate_template_unlock(void);

#endif							/* MEDPRO_MIGRATE_H */
