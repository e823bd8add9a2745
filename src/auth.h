/*
 * auth.h
 *	  Private interface of auth.c: passwords, login and token authentication
 *	  (the keyring itself is keyring.c), and the checks keyring.c shares.
 */
#ifndef MEDPRO_AUTH_H
#define MEDPRO_AUTH_H

#include "postgres.h"

#include "fmgr.h"

/* Text argument n of a SQL function; 22023 "<name> must not be null" for NULL. */
extern char *auth_text_arg(FunctionCallInfo fcinfo, int n, const char *name);

/* Whether the session's outer role is a superuser or acts as medpro_operator. */
extern bool auth_caller_is_operator(void);

/*
 * Whether the user and clinic of a session context still hold: the user
 * active, not deleted and at the context's token version, the clinic (if
 * any) active.  Reads the catalog as the extension owner.
 */
struct TenantContext;
extern bool auth_session_still_valid(const struct TenantContext *ctx);

#endif							/* MEDPRO_AUTH_H */
