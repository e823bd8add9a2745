/*
 * audit.h
 *	  Private interface of audit.c: writing rows to medpro.audit_log.
 */
#ifndef MEDPRO_AUDIT_H
#define MEDPRO_AUDIT_H

#include "postgres.h"
#include "utils/uuid.h"

/*
 * Append an audit row through medpro.audit_append().  clinic, user and the
 * text arguments may be NULL; old_data and new_data are JSON object texts
 * that must carry no secret.  The client address of this backend is
 * recorded when known.  With autonomous = true the row is written in its
 * own transaction over the loopback connection, so it survives the error
 * the caller is about to raise; otherwise it belongs to the current
 * transaction (and the caller must be running as the extension owner,
 * e.g. inside a SECURITY DEFINER function).
 */
extern void audit_write(const pg_uuid_t *clinic, const pg_uuid_t *user,
						const char *action, const char *entity,
						const char *entity_id, const char *old_data,
						const char *new_data, bool autonomous);

/* This backend's client address as text, or NULL (Unix socket, unknown). */
extern char *audit_client_addr(void);

/*
 * Register the transaction callback that links this transaction's new audit
 * rows into their hash chains just before it commits (called by _PG_init).
 */
extern void audit_init(void);

#endif							/* MEDPRO_AUDIT_H */
