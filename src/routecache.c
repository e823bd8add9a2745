/*
 * routecache.c
 *	  This backend's cache of the routing catalog: the routing row of each
 *	  clinic used, the latest schema version, the row counts of the clinic
 *	  tables it scanned and the clinics' estimates of remote statements
 *	  (for planning), and a generation number that
 *	  changes with medpro.clinics, medpro.servers, medpro.users and
 *	  medpro.migrations.  See routecache.h.
 *
 * Invalidation: the trigger medpro.routing_changed() on those tables
 * queues a relcache invalidation of the table it fires on; at commit it
 * reaches every backend (this one included), whose callback here bumps the
 * generation.  The callback does no catalog access and frees nothing: the
 * entries are dropped at the next use of the cache, inside a transaction.
 * A lost invalidation (sinval queue overflow) arrives as a reset for every
 * relation (InvalidOid), which bumps the generation too.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "routecache.h"

typedef struct RouteEntry
{
	pg_uuid_t	clinic;			/* hash key */
	bool		found;
	RouteData	data;
} RouteEntry;

/* The OIDs of the watched tables, resolved at first use. */
#define WATCHED_TABLES 4
static const char *const watched_names[WATCHED_TABLES] = {
	"clinics", "servers", "users", "migrations"
};
static Oid	watched[WATCHED_TABLES];
static bool watched_resolved = false;

/* Bumped by every invalidation of a watched table (never 0 once resolved). */
static uint64 generation = 1;
/* The generation the cache contents belong to. */
static uint64 cache_generation = 0;

typedef struct RowsKey
{
	pg_uuid_t	clinic;
	Oid			relid;
} RowsKey;

typedef struct RowsEntry
{
	RowsKey		key;
	double		rows;
	TimestampTz read_at;
} RowsEntry;

/* Row counts and estimates are read again after this long. */
#define ROWS_MAX_AGE_MS	(5 * 60 * 1000)

typedef struct EstimateKey
{
	pg_uuid_t	clinic;
	uint64		sql_hash;		/* hash_bytes_extended of the statement */
} EstimateKey;

typedef struct EstimateEntry
{
	EstimateKey key;
	double		rows;
	TimestampTz read_at;
} EstimateEntry;

/* At most this many estimates are kept; the table is emptied when full. */
#define ESTIMATES_MAX	1024

static MemoryContext cache_cxt = NULL;
static HTAB *routes = NULL;
static HTAB *table_rows = NULL;
static HTAB *estimates = NULL;
static bool latest_cached = false;
static int	latest_version = 0;

static void
routecache_inval_callback(Datum arg, Oid relid)
{
	int			i;

	if (!OidIsValid(relid))
	{
		generation++;
		watched_resolved = false;
		return;
	}
	for (i = 0; i < WATCHED_TABLES; i++)
	{
		if (watched[i] == relid)
		{
			generation++;
			/* a dropped and recreated extension has new OIDs */
			watched_resolved = false;
			return;
		}
	}
}

/* Resolve the watched OIDs; false when the extension's tables are missing. */
static bool
resolve_watched(void)
{
	Oid			nsp;
	int			i;

	if (watched_resolved)
		return true;
	nsp = get_namespace_oid("medpro", true);
	if (!OidIsValid(nsp))
		return false;
	for (i = 0; i < WATCHED_TABLES; i++)
	{
		watched[i] = get_relname_relid(watched_names[i], nsp);
		if (!OidIsValid(watched[i]))
			return false;
	}
	watched_resolved = true;
	return true;
}

/* Make the cache current: empty it if an invalidation came since it filled. */
static bool
cache_ready(void)
{
	if (!resolve_watched())
		return false;
	if (cache_generation != generation || routes == NULL)
	{
		HASHCTL		ctl;

		if (cache_cxt == NULL)
			cache_cxt = AllocSetContextCreate(TopMemoryContext,
											  "medpro routing cache",
											  ALLOCSET_SMALL_SIZES);
		else
			MemoryContextReset(cache_cxt);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(pg_uuid_t);
		ctl.entrysize = sizeof(RouteEntry);
		ctl.hcxt = cache_cxt;
		routes = hash_create("medpro routes", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(RowsKey);
		ctl.entrysize = sizeof(RowsEntry);
		ctl.hcxt = cache_cxt;
		table_rows = hash_create("medpro table rows", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		estimates = NULL;
		latest_cached = false;
		cache_generation = generation;
	}
	return true;
}

bool
routecache_get_route(const pg_uuid_t *clinic, bool *found, RouteData *data)
{
	RouteEntry *e;

	if (!cache_ready())
		return false;
	e = hash_search(routes, clinic, HASH_FIND, NULL);
	if (e == NULL)
		return false;
	*found = e->found;
	*data = e->data;
	return true;
}

void
routecache_put_route(const pg_uuid_t *clinic, bool found, const RouteData *data)
{
	RouteEntry *e;
	bool		exists;

	if (!cache_ready())
		return;
	e = hash_search(routes, clinic, HASH_ENTER, &exists);
	e->found = found;
	e->data = *data;
	if (found && data->password_sealed != NULL)
	{
		Size		len = VARSIZE_ANY(data->password_sealed);

		e->data.password_sealed = MemoryContextAlloc(cache_cxt, len);
		memcpy(e->data.password_sealed, data->password_sealed, len);
	}
	else
		e->data.password_sealed = NULL;
}

bool
routecache_get_latest_version(int *version)
{
	if (!cache_ready() || !latest_cached)
		return false;
	*version = latest_version;
	return true;
}

void
routecache_put_latest_version(int version)
{
	if (!cache_ready())
		return;
	latest_version = version;
	latest_cached = true;
}

bool
routecache_get_rows(const pg_uuid_t *clinic, Oid relid, double *rows)
{
	RowsKey		key;
	RowsEntry  *e;

	if (!cache_ready())
		return false;
	memset(&key, 0, sizeof(key));
	key.clinic = *clinic;
	key.relid = relid;
	e = hash_search(table_rows, &key, HASH_FIND, NULL);
	if (e == NULL ||
		TimestampDifferenceExceeds(e->read_at, GetCurrentTimestamp(), ROWS_MAX_AGE_MS))
		return false;
	*rows = e->rows;
	return true;
}

void
routecache_put_rows(const pg_uuid_t *clinic, Oid relid, double rows)
{
	RowsKey		key;
	RowsEntry  *e;

	if (!cache_ready())
		return;
	memset(&key, 0, sizeof(key));
	key.clinic = *clinic;
	key.relid = relid;
	e = hash_search(table_rows, &key, HASH_ENTER, NULL);
	e->rows = rows;
	e->read_at = GetCurrentTimestamp();
}

/* The estimates table, created (or emptied when full) as needed. */
static HTAB *
estimates_table(void)
{
	HASHCTL		ctl;

	if (estimates != NULL && hash_get_num_entries(estimates) < ESTIMATES_MAX)
		return estimates;
	if (estimates != NULL)
		hash_destroy(estimates);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(EstimateKey);
	ctl.entrysize = sizeof(EstimateEntry);
	ctl.hcxt = cache_cxt;
	estimates = hash_create("medpro estimates", 256, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	return estimates;
}

static void
estimate_key(EstimateKey *key, const pg_uuid_t *clinic, const char *sql)
{
	memset(key, 0, sizeof(*key));
	key->clinic = *clinic;
	key->sql_hash = hash_bytes_extended((const unsigned char *) sql,
										(int) strlen(sql), 0);
}

bool
routecache_get_estimate(const pg_uuid_t *clinic, const char *sql, double *rows)
{
	EstimateKey key;
	EstimateEntry *e;

	if (!cache_ready() || estimates == NULL)
		return false;
	estimate_key(&key, clinic, sql);
	e = hash_search(estimates, &key, HASH_FIND, NULL);
	if (e == NULL ||
		TimestampDifferenceExceeds(e->read_at, GetCurrentTimestamp(), ROWS_MAX_AGE_MS))
		return false;
	*rows = e->rows;
	return true;
}

void
routecache_put_estimate(const pg_uuid_t *clinic, const char *sql, double rows)
{
	EstimateKey key;
	EstimateEntry *e;

	if (!cache_ready())
		return;
	estimate_key(&key, clinic, sql);
	e = hash_search(estimates_table(), &key, HASH_ENTER, NULL);
	e->rows = rows;
	e->read_at = GetCurrentTimestamp();
}

uint64
routecache_generation(void)
{
	if (!resolve_watched())
		return 0;
	return generation;
}

void
routecache_init(void)
{
	CacheRegisterRelcacheCallback(routecache_inval_callback, (Datum) 0);
}

/*
 * SQL: medpro.routing_changed() RETURNS trigger
 *		Statement trigger on the routing catalog: every backend's routing
 *		cache is dropped when the change commits.
 */
PG_FUNCTION_INFO_V1(medpro_routing_changed);

Datum
medpro_routing_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("medpro.routing_changed() must be called as a trigger")));
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
