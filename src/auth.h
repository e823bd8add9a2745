/*
 * auth.h
 *	  Private interface of auth.c: passwords, login and token authentication
 *	  (the keyring itself is keyring.c).  auth.c exports only SQL-callable functions today;
 *	  this header exists for the layout's sake and for later callers.
 */
#ifndef MEDPRO_AUTH_H
#define MEDPRO_AUTH_H

#include "postgres.h"

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
