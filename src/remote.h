/*
 * remote.h
 *	  Private interface of remote.c: libpq connections made from inside the
 *	  backend.  Every wait goes through the latch, so cancel,
 *	  statement_timeout and termination work.
 */
#ifndef MEDPRO_REMOTE_H
#define MEDPRO_REMOTE_H

#include "postgres.h"

/*
 * Run one statement in its own transaction on this server's current
 * database through a private loopback connection (as the bootstrap
 * superuser, over the Unix socket).  Used for writes that must survive the
 * caller's rollback: failed-login counters and failure audit rows.  The
 * connection is cached for the backend.  values may contain NULLs.
 * Raises ERROR on failure (the loopback error's SQLSTATE and message).
 */
extern void remote_autonomous_exec(const char *sql, int nparams,
								   const char *const *values);

#endif							/* MEDPRO_REMOTE_H */
