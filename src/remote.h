/*
 * remote.h
 *	  Private interface of remote.c: libpq connections made from inside the
 *	  backend.  Every wait goes through the latch, so cancel,
 *	  statement_timeout and termination work.
 */
#ifndef MEDPRO_REMOTE_H
#define MEDPRO_REMOTE_H

#include "postgres.h"

#include "libpq-fe.h"
#include "utils/uuid.h"

/*
 * Run one statement in its own transaction on this server's current
 * database through a private loopback connection (as the bootstrap
 * superuser, over the Unix socket).  Used for writes that must survive the
 * caller's rollback: failed-login counters and failure audit rows.  The
 * connection is cached for the backend.  values may contain NULLs.
 * Raises ERROR on failure (the loopback error's SQLSTATE and message).
 *
 * sql is one statement, fully schema-qualified, written by medpro's C code:
 * it runs as the bootstrap superuser, so caller data goes only in values
 * (text parameters $1..$n, types inferred by the server).  The loopback
 * session's search_path is pg_catalog, pg_temp.  Must be called inside a
 * transaction (the first call reads the catalogs to connect), and
 * preferably before raising the caller's own error rather than from a
 * PG_CATCH block: there interrupts may be held, which makes the wait
 * uninterruptible, and catalog access is unsafe.
 *
 * If the loopback cannot be reached, the error is 08006 "could not connect
 * to the central database for an autonomous write", with libpq's reason as
 * detail.  If the wait is interrupted (cancel, statement_timeout,
 * termination), the statement is cancelled on the loopback and the
 * connection dropped; whether the write happened is then unknown.
 *
 * Deadlock hazard: the statement runs in another backend, so it waits for
 * any lock the caller's transaction holds, while the caller waits for the
 * statement.  The caller must not hold locks the statement needs (e.g. must
 * not have updated or locked the row the statement updates, or taken a
 * table lock that conflicts with it).  The deadlock detector cannot see
 * such a cycle (one side waits on a socket, not on a lock), but since the
 * caller waits through the latch, its statement_timeout or a query cancel
 * breaks it.
 */
extern void remote_autonomous_exec(const char *sql, int nparams,
								   const char *const *values);

/*
 * Raise, at elevel, the error a remote statement returned: the remote
 * SQLSTATE (08006 when there is none, e.g. a lost connection), the remote
 * primary message as the message, the remote detail and hint, the remote
 * context, then context_msg (may be NULL) as a context line.  res may be
 * NULL, in which case conn's error message is used.  res is always
 * PQclear'ed, also when elevel is below ERROR and the function returns.
 */
extern void remote_report_error(int elevel, PGresult *res, PGconn *conn,
								const char *context_msg);

/*
 * Close this backend's loopback connection if it is open, cancelling a
 * statement still running on it.  The next remote_autonomous_exec connects
 * again.  Also done automatically at backend exit.
 */
extern void remote_loopback_disconnect(void);

/*
 * A new connection to database dbname of this server, as the bootstrap
 * superuser over the Unix socket (see remote_autonomous_exec for what that
 * needs).  The caller owns it and closes it with remote_admin_disconnect on
 * every path.  Raises 08006 when the connection fails.
 */
extern PGconn *remote_admin_connect(const char *dbname);

/*
 * Start a connection like remote_admin_connect without waiting for it: the
 * caller drives PQconnectPoll through the latch (several at once), and
 * closes it with remote_admin_disconnect on every path.  A connection that
 * fails shows CONNECTION_BAD.  Raises only when no connection can be
 * allocated.
 */
extern PGconn *remote_admin_connect_start(const char *dbname);

/*
 * Run one statement on an admin connection; returns the result (caller
 * PQclear's it) or raises the remote error with context_msg as context.
 */
extern PGresult *remote_admin_exec(PGconn *conn, const char *sql, int nparams,
								   const char *const *values,
								   const char *context_msg);

/* Close an admin connection (NULL is a no-op), cancelling what still runs. */
extern void remote_admin_disconnect(PGconn *conn);

/*
 * Run sql on the loopback connection without raising and without servicing
 * interrupts, for undoing work during transaction abort.  Needs an open,
 * idle loopback connection; gives up after timeout_ms.  Returns whether the
 * statement succeeded; *errmsg (if not NULL) says why not.
 */
extern bool remote_cleanup_exec(const char *sql, int timeout_ms, char **errmsg);

/*
 * Clinic connections (routing).  ------------------------------------------
 *
 * remote_clinic_begin returns the connection to the clinic's database for
 * use in the current local transaction: taken from this backend's LRU cache
 * (at most medpro.max_cached_connections; a dead one is replaced) or opened
 * as the clinic's own role with its unsealed password (wiped after use),
 * with a connect timeout (closing idle cached connections when the
 * backend's socket budget is used up).  It records that the local
 * transaction (and its current subtransaction level) needs a remote
 * transaction (and savepoints); they are sent with the next statement, in
 * the same round trip (remote_clinic_run), at the local isolation level,
 * with the local non-zero timeouts.  The remote transaction commits at local
 * pre-commit and rolls back at local abort (also for subtransactions).
 * Once a local transaction has used one clinic, asking for another raises
 * 42501.  An unreachable clinic raises 08006 "clinic database unavailable"
 * with the clinic id in the detail and no connection string; a clinic whose
 * schema version differs from expected_version (when > 0) raises 55000
 * "clinic schema out of date".  The clinic's routing data (database, role,
 * sealed password, server, status, schema version) is read from
 * medpro.clinics as the extension owner and kept in the routing cache
 * (routecache.h) until the routing catalog changes: a
 * suspended clinic raises 42501 "clinic is suspended", any other status but
 * active 08006, a clinic on another server 0A000.
 *
 * Call it at the start of every remote operation (scan, modify), not only
 * the first: that is what adds remote savepoints for the current local
 * subtransaction level.  The connection stays valid until the local
 * transaction ends; the caller must not close it, change its session state
 * outside the transaction, or leave a command running on it (an interrupted
 * command is cleaned up by the local abort).  Use it only through
 * remote_clinic_exec.  See docs/routing-connections.md.
 */
extern PGconn *remote_clinic_begin(const pg_uuid_t *clinic_id, int expected_version);

/*
 * Run sql (with text parameters) on a clinic connection; returns the result
 * (caller PQclear's it) or re-raises the remote error (remote SQLSTATE and
 * message).  Waits through the latch.
 */
extern PGresult *remote_clinic_exec(PGconn *conn, const char *sql, int nparams,
									const char *const *values);

/*
 * One statement of remote_clinic_run: text parameters (values may hold
 * NULLs); with prepare, the statement is prepared on the connection the
 * first time its text is seen and executed by name afterwards.
 */
typedef struct RemoteStmt
{
	const char *sql;
	int			nparams;
	const char *const *values;
	bool		prepare;
} RemoteStmt;

/*
 * Run nstmts single statements on a clinic connection in one round trip
 * (a libpq pipeline), together with whatever the remote transaction still
 * needs (its start, its settings, savepoints; remote_clinic_begin only
 * records them) and the deferred statements; returns the last statement's
 * result (caller PQclear's it) or raises the first error, as
 * remote_clinic_exec does.  read_only says the statements neither write
 * nor lock: a READ COMMITTED remote transaction that ran only such
 * statements commits without waiting for the COMMIT's outcome.
 */
extern PGresult *remote_clinic_run(PGconn *conn, const RemoteStmt *stmts,
								   int nstmts, bool read_only);

/*
 * Let the next remote_clinic_run on conn, a read, run in the clinic's
 * autocommit (no START TRANSACTION, no COMMIT) when it is the only remote
 * statement the local transaction can need: the caller vouches that its
 * local statement sends no other statement to the clinic (one scan, never
 * rescanned), and it does so only when, besides, the local transaction is
 * a single statement (no transaction block) at READ COMMITTED, outside any
 * subtransaction, without statement or lock timeouts, and has not started
 * a remote transaction on conn.  Otherwise the statement runs in the remote
 * transaction as usual.  A later statement in the same local transaction
 * (of a function the query calls) starts a remote transaction: under READ
 * COMMITTED it would have had a snapshot of its own anyway.
 */
extern void remote_clinic_autocommit(PGconn *conn);

/*
 * Send sql (a statement without parameters that cannot fail, e.g. CLOSE of
 * a cursor) in front of the next statement on the connection; forgotten
 * when the transaction or the current subtransaction ends.
 */
extern void remote_clinic_defer(PGconn *conn, const char *sql);

/*
 * Close every cached clinic connection (e.g. after suspending a clinic).  A
 * connection the current local transaction uses is closed when that
 * transaction ends.  Also done automatically at backend exit.
 */
extern void remote_clinic_disconnect_all(void);

/*
 * Register the transaction and subtransaction callbacks of clinic
 * connections (_PG_init, after remote_init).
 */
extern void remote_clinic_init(void);

/*
 * Whether the current local transaction has used a clinic connection, and
 * which clinic (into *clinic_id when not NULL).
 */
extern bool remote_clinic_in_use(pg_uuid_t *clinic_id);

/*
 * Keep the loopback connection alive (no idle timeout) until the end of the
 * current transaction, then close it: for provisioning, which must be able
 * to undo its work at abort.
 */
extern void remote_loopback_pin(void);

/* The owner of the medpro extension in this database (ERROR when absent). */
extern Oid	remote_extension_owner(void);

/* Register the transaction callback that closes the loopback (_PG_init). */
extern void remote_init(void);

#endif							/* MEDPRO_REMOTE_H */
