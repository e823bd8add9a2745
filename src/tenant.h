/*
 * tenant.h
 *	  Private interface of tenant.c: the tenant context of this backend.
 *
 * The context (clinic, user, application role) lives only in backend
 * memory.  The only writer is tenant_set(), called by medpro_authenticate
 * after it verified a token; no setting or table can change it.
 */
#ifndef MEDPRO_TENANT_H
#define MEDPRO_TENANT_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/uuid.h"

#define TENANT_ROLE_MAXLEN 32

typedef struct TenantContext
{
	bool		valid;
	bool		has_clinic;		/* false for super_admin */
	pg_uuid_t	clinic_id;
	pg_uuid_t	user_id;
	char		role[TENANT_ROLE_MAXLEN];
	bool		session;		/* survives transaction end */
	TimestampTz expires;		/* the token's exp (plus leeway) */
	int32		token_version;	/* the user's token version it was made with */
	LocalTransactionId checked_lxid;	/* last transaction that checked it */
	uint64		checked_generation; /* routing cache generation of that check */
} TenantContext;

/* Register transaction callbacks and the utility hook (from _PG_init). */
extern void tenant_init(void);

/*
 * Install a verified context; session = keep it past transaction end.  The
 * context ends by itself at expires (the token's exp plus leeway), which
 * matters for session contexts.  A session context is checked again
 * (user active, token version, clinic active) in every later transaction
 * that uses it.
 */
extern void tenant_set(const pg_uuid_t *clinic, const pg_uuid_t *user,
					   const char *role, bool session, TimestampTz expires,
					   int32 token_version);
extern void tenant_clear(void);

/* The current context, or NULL when there is none. */
extern const TenantContext *tenant_get(void);

/* The current context, or raise 42501 "no clinic selected". */
extern const TenantContext *tenant_require(void);

#endif							/* MEDPRO_TENANT_H */
