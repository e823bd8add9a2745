/*
 * tenant.c
 *	  The tenant context: which clinic, user and application role this
 *	  backend acts for.
 *
 * The context is plain backend memory.  It is written only by tenant_set(),
 * which medpro_authenticate calls after verifying a token; there is no
 * setting, table or SQL function that writes it directly.  A context lasts
 * until the end of the transaction that set it, unless it was set with
 * session = true.  Transaction abort undoes whatever the aborted transaction
 * set, and rolling back to a savepoint undoes what was set after it.
 * DISCARD ALL and RESET ALL clear it (through the utility hook).
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "auth.h"
#include "routecache.h"
#include "tenant.h"

/* The context in force, and the session-level one to fall back to. */
static TenantContext current;
static TenantContext session_ctx;

/*
 * For each subtransaction level that changed the context, the context it
 * found when it first did; restored when that subtransaction aborts.
 * Allocated in TopTransactionContext, so it goes away with the transaction.
 */
typedef struct SavedContext
{
	int			level;
	TenantContext prev;
	struct SavedContext *next;
} SavedContext;

static SavedContext *saved = NULL;

static ProcessUtility_hook_type prev_utility_hook = NULL;

static void
tenant_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PREPARE:
			/*
			 * A prepared transaction may be committed later, by anyone: what
			 * it set is not kept for this session.
			 */
			current = session_ctx;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* A session context set in this transaction becomes the fallback. */
			if (current.valid && current.session)
				session_ctx = current;
			current = session_ctx;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* Undo whatever the aborted transaction did. */
			current = session_ctx;
			break;
		default:
			return;
	}
	saved = NULL;
}

static void
tenant_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	int			level;

	if (saved == NULL)
		return;
	level = GetCurrentTransactionNestLevel();
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		while (saved && saved->level >= level)
		{
			current = saved->prev;
			saved = saved->next;
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB && saved->level == level)
	{
		/* The parent inherits the change; keep the oldest state to restore. */
		if (saved->next && saved->next->level == level - 1)
			saved = saved->next;
		else
			saved->level = level - 1;
	}
}

static void
tenant_utility_hook(PlannedStmt *pstmt, const char *queryString,
					bool readOnlyTree, ProcessUtilityContext context,
					ParamListInfo params, QueryEnvironment *queryEnv,
					DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if ((IsA(stmt, DiscardStmt) && ((DiscardStmt *) stmt)->target == DISCARD_ALL) ||
		(IsA(stmt, VariableSetStmt) && ((VariableSetStmt *) stmt)->kind == VAR_RESET_ALL))
		tenant_clear();

	if (prev_utility_hook)
		prev_utility_hook(pstmt, queryString, readOnlyTree, context, params,
						  queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

void
tenant_init(void)
{
	memset(&current, 0, sizeof(current));
	memset(&session_ctx, 0, sizeof(session_ctx));
	RegisterXactCallback(tenant_xact_callback, NULL);
	RegisterSubXactCallback(tenant_subxact_callback, NULL);
	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = tenant_utility_hook;
}

void
tenant_set(const pg_uuid_t *clinic, const pg_uuid_t *user, const char *role,
		   bool session, TimestampTz expires, int32 token_version)
{
	TenantContext ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.valid = true;
	if (clinic)
	{
		ctx.has_clinic = true;
		ctx.clinic_id = *clinic;
	}
	ctx.user_id = *user;
	strlcpy(ctx.role, role, sizeof(ctx.role));
	ctx.session = session;
	ctx.expires = expires;
	ctx.token_version = token_version;
	ctx.checked_lxid = MyProc->lxid;
	/* the caller has just checked the user and the clinic */
	ctx.checked_generation = IsTransactionState() ? routecache_generation() : 0;

	if (IsTransactionState() && (saved == NULL ||
								 saved->level != GetCurrentTransactionNestLevel()))
	{
		SavedContext *entry = MemoryContextAlloc(TopTransactionContext,
												 sizeof(SavedContext));

		entry->level = GetCurrentTransactionNestLevel();
		entry->prev = current;
		entry->next = saved;
		saved = entry;
	}
	current = ctx;
}

void
tenant_clear(void)
{
	/* Clearing is never undone, not even by a rollback to a savepoint. */
	memset(&current, 0, sizeof(current));
	memset(&session_ctx, 0, sizeof(session_ctx));
	saved = NULL;
}

const TenantContext *
tenant_get(void)
{
	if (current.valid && GetCurrentTimestamp() > current.expires)
	{
		/* the token ran out: a session context does not outlive it */
		memset(&current, 0, sizeof(current));
		memset(&session_ctx, 0, sizeof(session_ctx));
	}

	/*
	 * A session context carried into a new transaction is checked again:
	 * a revoked token, a deactivated user or a suspended clinic ends it.
	 */
	if (current.valid && current.session && current.checked_lxid != MyProc->lxid &&
		IsTransactionState())
	{
		/*
		 * Nothing to read when medpro.users and medpro.clinics have not
		 * changed since the last check (routecache.c: their changes bump
		 * the generation in every backend).
		 */
		uint64		gen = routecache_generation();

		current.checked_lxid = MyProc->lxid;
		session_ctx.checked_lxid = MyProc->lxid;
		if (gen == 0 || gen != current.checked_generation)
		{
			if (!auth_session_still_valid(&current))
			{
				memset(&current, 0, sizeof(current));
				memset(&session_ctx, 0, sizeof(session_ctx));
			}
			else
			{
				current.checked_generation = gen;
				session_ctx.checked_generation = gen;
			}
		}
	}
	return current.valid ? &current : NULL;
}

const TenantContext *
tenant_require(void)
{
	if (tenant_get() == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no clinic selected"),
				 errhint("Call medpro_authenticate() with a valid token first.")));
	return &current;
}

/* SQL: medpro_current_clinic() RETURNS uuid */
PG_FUNCTION_INFO_V1(medpro_current_clinic);
Datum
medpro_current_clinic(PG_FUNCTION_ARGS)
{
	const TenantContext *ctx = tenant_require();
	pg_uuid_t  *res;

	if (!ctx->has_clinic)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no clinic selected"),
				 errdetail("A super_admin token is not bound to a clinic.")));
	res = palloc(sizeof(pg_uuid_t));
	*res = ctx->clinic_id;
	PG_RETURN_UUID_P(res);
}

/* SQL: medpro_current_user_id() RETURNS uuid */
PG_FUNCTION_INFO_V1(medpro_current_user_id);
Datum
medpro_current_user_id(PG_FUNCTION_ARGS)
{
	const TenantContext *ctx = tenant_require();
	pg_uuid_t  *res = palloc(sizeof(pg_uuid_t));

	*res = ctx->user_id;
	PG_RETURN_UUID_P(res);
}

/* SQL: medpro_current_role() RETURNS text */
PG_FUNCTION_INFO_V1(medpro_current_role);
Datum
medpro_current_role(PG_FUNCTION_ARGS)
{
	const TenantContext *ctx = tenant_require();

	PG_RETURN_TEXT_P(cstring_to_text(ctx->role));
}

/* SQL: medpro_reset() RETURNS void */
PG_FUNCTION_INFO_V1(medpro_reset);
Datum
medpro_reset(PG_FUNCTION_ARGS)
{
	tenant_clear();
	PG_RETURN_VOID();
}
