/*
 * routecache.h
 *	  Private interface of routecache.c: this backend's cache of the
 *	  routing catalog (medpro.clinics, medpro.servers, medpro.users,
 *	  medpro.migrations), so that routing a statement reads no catalog.
 *
 * The cache is kept until one of those tables changes: a statement trigger
 * on each (medpro.routing_changed()) sends a relcache invalidation for the
 * table, which every backend receives at its next transaction start (or
 * lock acquisition), and the callback here marks the cache stale.  A stale
 * cache is emptied at its next use.  Nothing is shared between backends.
 */
#ifndef MEDPRO_ROUTECACHE_H
#define MEDPRO_ROUTECACHE_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/uuid.h"

/* Length of medpro.clinics.status values kept. */
#define ROUTE_STATUS_LEN	16

/* The routing row of a clinic (medpro.clinics joined with medpro.servers). */
typedef struct RouteData
{
	char		db_name[NAMEDATALEN];
	char		db_role[NAMEDATALEN];
	bytea	   *password_sealed;	/* sealed; NULL when there is none */
	char		status[ROUTE_STATUS_LEN];
	char		server[NAMEDATALEN];
	int			schema_version;
	bool		local_server;
} RouteData;

/*
 * The cached routing row of a clinic: true with *found and *data filled in
 * (data->password_sealed points into the cache: copy it to keep it), false
 * when the clinic is not cached.  Must be called inside a transaction.
 */
extern bool routecache_get_route(const pg_uuid_t *clinic, bool *found,
								 RouteData *data);

/* Remember a clinic's routing row (found false: there is no such clinic). */
extern void routecache_put_route(const pg_uuid_t *clinic, bool found,
								 const RouteData *data);

/* The cached max(version) of medpro.migrations, if cached. */
extern bool routecache_get_latest_version(int *version);
extern void routecache_put_latest_version(int version);

/*
 * The row count of a clinic table (pg_class.reltuples in the clinic
 * database) last read by this backend, for planner estimates; entries older
 * than a few minutes are not returned.
 */
extern bool routecache_get_rows(const pg_uuid_t *clinic, Oid relid, double *rows);
extern void routecache_put_rows(const pg_uuid_t *clinic, Oid relid, double rows);

/*
 * The rows a clinic's planner expects from a statement (EXPLAIN there),
 * keyed by clinic and statement text; an entry is forgotten after five
 * minutes or when the routing catalog changes.  get returns false without
 * a fresh entry.
 */
extern bool routecache_get_estimate(const pg_uuid_t *clinic, const char *sql, double *rows);
extern void routecache_put_estimate(const pg_uuid_t *clinic, const char *sql, double rows);

/*
 * A number that changes whenever the routing catalog may have changed (0:
 * unknown, always recheck).  tenant.c keeps the number under which a session
 * context was last checked against medpro.users and medpro.clinics.  Must
 * be called inside a transaction.
 */
extern uint64 routecache_generation(void);

/* Register the invalidation callback (_PG_init). */
extern void routecache_init(void);

/* SQL: medpro.routing_changed() RETURNS trigger */
extern Datum medpro_routing_changed(PG_FUNCTION_ARGS);

#endif							/* MEDPRO_ROUTECACHE_H */
