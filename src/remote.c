/*
 * remote.c
 *	  libpq connections made from inside the backend.
 *
 * This file owns every libpq connection medpro opens and the rules for
 * using them: each wait on a remote server goes through the process latch
 * (WaitLatchOrSocket plus CHECK_FOR_INTERRUPTS), so query cancel,
 * statement_timeout and backend termination interrupt it; each connection
 * counts against fd.c's limit on external file descriptors; and every
 * PGresult is cleared on every path, errors included.  Execution uses the
 * helpers of libpq/libpq-be-fe-helpers.h, the code postgres_fdw and dblink
 * use from PostgreSQL 16 on.
 *
 * Connections to the local server as the bootstrap superuser: the loopback,
 * a private connection from
 * this backend to this server's current database as the bootstrap
 * superuser over the Unix socket, used by remote_autonomous_exec for writes
 * that must survive the caller's rollback.  It is not visible to SQL (it
 * is not a dblink named connection), is opened on first use, kept while it
 * is used (its server session ends itself after 60 idle seconds), checked
 * before every reuse, replaced when it died, and closed cleanly at backend
 * exit (and at the end of a transaction that provisioned a clinic).  docs/loopback.md describes what
 * pg_hba.conf needs for it.  Provisioning and migrations open short-lived
 * admin connections to clinic databases (remote_admin_connect), which their
 * callers close on every path, and undo work at transaction abort through
 * remote_cleanup_exec, which never raises.
 *
 * Clinic connections, used by routing: a per-backend LRU cache of
 * connections to clinic databases as each clinic's own role, with remote
 * transactions that follow the local transaction and its subtransactions
 * (remote_clinic_begin, remote_clinic_exec; see the section near the end of
 * this file and docs/routing-connections.md).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_authid_d.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq-fe.h"
#include "libpq/libpq-be-fe-helpers.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "postmaster/postmaster.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procsignal.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "common/hashfn.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#include "crypto.h"
#include "medpro.h"
#include "remote.h"
#include "routecache.h"
#include "tenant.h"

/* Seconds a loopback connection attempt may take before it is abandoned. */
#define LOOPBACK_CONNECT_TIMEOUT	10

/* Milliseconds to wait for a cancelled statement before closing anyway. */
#define LOOPBACK_CANCEL_WAIT_MS		1000

/* The backend's loopback connection, or NULL when there is none. */
static PGconn *loopback_conn = NULL;

/* Whether provisioning pinned the loopback for the current transaction. */
static bool loopback_pinned = false;

/* Whether loopback_exit_callback has been registered. */
static bool loopback_exit_registered = false;

static PGconn *loopback_get(void);
static PGconn *admin_connect(const char *dbname, const char *failmsg);
static PGconn *admin_connect_internal(const char *dbname, const char *failmsg,
									  bool start_only);
static bool loopback_start(PGconn *conn, bool *timed_out);
static PGconn *connect_and_wait(const char *const *keywords,
								const char *const *values,
								char *secret, size_t secret_len, char **failure);
static char *loopback_socket_dir(void);
static bool loopback_is_usable(PGconn *conn);
static bool loopback_is_idle(PGconn *conn);
static void loopback_cancel(PGconn *conn);
static void loopback_exit_callback(int code, Datum arg);
static void report_remote_error(int elevel, PGresult *res, PGconn *conn,
								const char *context_msg, bool keep_detail);
static void loopback_notice_receiver(void *arg, const PGresult *res);
static bool conn_cleanup_exec(PGconn *conn, const char *sql, int timeout_ms,
							  char **errmsg, bool *lost);

/*
 * remote_autonomous_exec
 *		Run one statement in its own transaction on the loopback connection.
 *
 * See remote.h for the contract.  The statement runs in autocommit mode, so
 * it has committed (or failed) on the loopback by the time this returns.
 * If the wait for its result is interrupted, the statement is cancelled on
 * the loopback and the connection dropped, so whether the write happened is
 * then unknown; the next call connects afresh.
 */
void
remote_autonomous_exec(const char *sql, int nparams,
					   const char *const *values)
{
	PGconn	   *conn;
	PGresult   *volatile res = NULL;

	Assert(sql != NULL);
	Assert(nparams >= 0 && (nparams == 0 || values != NULL));

	conn = loopback_get();

	PG_TRY();
	{
		ExecStatusType status;

		res = libpqsrv_exec_params(conn, sql, nparams, NULL, values,
								   NULL, NULL, 0, PG_WAIT_EXTENSION);
		status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

		if (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR ||
			status == PGRES_BAD_RESPONSE)
		{
			PGresult   *failed = res;

			/* remote_report_error clears it */
			res = NULL;
			remote_report_error(ERROR, failed, conn,
								"autonomous statement on the loopback connection");
		}
		else if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("unexpected result from the loopback connection: %s",
							PQresStatus(status))));
	}
	PG_CATCH();
	{
		PQclear(res);

		/*
		 * An error the loopback reported leaves the connection idle and
		 * reusable.  Anything else (an interrupt while the statement still
		 * runs, a lost connection, a COPY state) makes it unusable.
		 */
		if (loopback_conn != NULL && !loopback_is_idle(loopback_conn))
			remote_loopback_disconnect();
		PG_RE_THROW();
	}
	PG_END_TRY();

	PQclear(res);
}

/*
 * remote_report_error
 *		Raise, at elevel, the error a remote server returned.
 *
 * See remote.h for the contract.  res may be NULL (the query could not be
 * sent, or the connection broke); then conn's error message is used.
 */
void
remote_report_error(int elevel, PGresult *res, PGconn *conn,
					const char *context_msg)
{
	report_remote_error(elevel, res, conn, context_msg, true);
}

/*
 * report_remote_error
 *		remote_report_error, optionally without the remote detail and
 *		context: those can quote whole rows ("Failing row contains ..."),
 *		masked columns included.
 */
static void
report_remote_error(int elevel, PGresult *res, PGconn *conn,
					const char *context_msg, bool keep_detail)
{
	PG_TRY();
	{
		char	   *diag_sqlstate = NULL;
		char	   *message_primary = NULL;
		char	   *message_detail = NULL;
		char	   *message_hint = NULL;
		char	   *message_context = NULL;
		int			sqlstate = ERRCODE_CONNECTION_FAILURE;

		if (res != NULL)
		{
			diag_sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			message_primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			message_detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
			message_hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
			message_context = PQresultErrorField(res, PG_DIAG_CONTEXT);
		}

		if (diag_sqlstate != NULL && strlen(diag_sqlstate) == 5)
			sqlstate = MAKE_SQLSTATE(diag_sqlstate[0], diag_sqlstate[1],
									 diag_sqlstate[2], diag_sqlstate[3],
									 diag_sqlstate[4]);

		/*
		 * Errors libpq generated itself (lost connection, out of memory)
		 * carry no fields; their text is the result's or the connection's
		 * error message.
		 */
		if (message_primary == NULL)
		{
			const char *msg;

			msg = res ? PQresultErrorMessage(res) : "";
			if (msg[0] == '\0')
				msg = PQerrorMessage(conn);
			if (msg[0] != '\0')
				message_primary = pchomp(msg);
		}

		if (!keep_detail)
		{
			message_detail = NULL;
			message_context = NULL;
		}

		ereport(elevel,
				(errcode(sqlstate),
				 message_primary ? errmsg_internal("%s", message_primary) :
				 errmsg("could not obtain message string for remote error"),
				 message_detail ? errdetail_internal("%s", message_detail) : 0,
				 message_hint ? errhint("%s", message_hint) : 0,
				 message_context ? errcontext("%s", message_context) : 0,
				 context_msg ? errcontext("%s", context_msg) : 0));
	}
	PG_FINALLY();
	{
		PQclear(res);
	}
	PG_END_TRY();
}

/*
 * remote_xact_callback
 *		At transaction end, close the loopback if provisioning pinned it.
 *
 * The loopback connects as the bootstrap superuser.  It is cached across
 * transactions, so a flood of refused tokens costs one statement each and
 * not one new backend each; but its session has idle_session_timeout, so
 * an idle application backend does not hold a superuser connection slot for
 * long.  Provisioning pins it for its transaction (no idle timeout), so the
 * connection that must drop a half-made clinic at abort is still there;
 * a pinned loopback is closed when the transaction ends.  Registered before
 * provisioning's callback, so it runs after it.
 */
static void
remote_xact_callback(XactEvent event, void *arg)
{
	if (!loopback_pinned)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		loopback_pinned = false;
		remote_loopback_disconnect();
	}
}

/*
 * remote_loopback_pin
 *		Keep the loopback connection alive until the end of the current
 *		transaction (no idle timeout), then close it.
 */
void
remote_loopback_pin(void)
{
	if (loopback_pinned && loopback_conn != NULL)
		return;
	remote_autonomous_exec("SET idle_session_timeout = 0", 0, NULL);
	loopback_pinned = true;
}

void
remote_init(void)
{
	RegisterXactCallback(remote_xact_callback, NULL);
}

/*
 * remote_loopback_disconnect
 *		Close the loopback connection, if there is one, first cancelling a
 *		statement that may still run on it.
 *
 * After the cancel request, the statement's results are drained for at
 * most LOOPBACK_CANCEL_WAIT_MS, so the loopback backend reports the cancel
 * and then reads a clean Terminate instead of failing to write to a closed
 * socket.  Interrupts are not serviced during that bounded wait: this also
 * runs while an error propagates and at backend exit.
 */
void
remote_loopback_disconnect(void)
{
	PGconn	   *conn = loopback_conn;

	if (conn == NULL)
		return;
	loopback_conn = NULL;

	if (PQstatus(conn) == CONNECTION_OK &&
		PQtransactionStatus(conn) == PQTRANS_ACTIVE)
		loopback_cancel(conn);

	libpqsrv_disconnect(conn);
}

/*
 * remote_admin_connect
 *		A new superuser connection to database dbname of this server.
 *
 * See remote.h.  The caller owns the connection and must close it with
 * remote_admin_disconnect on every path (PG_TRY/PG_FINALLY).
 */
PGconn *
remote_admin_connect(const char *dbname)
{
	return admin_connect(dbname,
						 psprintf("could not connect to database \"%s\" on the local server",
								  dbname));
}

/*
 * remote_admin_exec
 *		Run sql on conn and return its (last) result, tuples or command
 *		status, or raise the remote error.  Without parameters sql may hold
 *		several statements.
 *
 * The caller PQclear's the result.  After an error conn may be busy; the
 * caller's cleanup closes it with remote_admin_disconnect, which cancels
 * what still runs.
 */
PGresult *
remote_admin_exec(PGconn *conn, const char *sql, int nparams,
				  const char *const *values, const char *context_msg)
{
	PGresult   *res;
	ExecStatusType status;

	/* Without parameters, the simple protocol: sql may hold several statements. */
	if (nparams == 0)
		res = libpqsrv_exec(conn, sql, PG_WAIT_EXTENSION);
	else
		res = libpqsrv_exec_params(conn, sql, nparams, NULL, values, NULL, NULL,
								   0, PG_WAIT_EXTENSION);
	status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
		remote_report_error(ERROR, res, conn, context_msg);
	return res;
}

/*
 * remote_admin_disconnect
 *		Close a connection from remote_admin_connect (NULL is a no-op),
 *		cancelling a statement that may still run on it.
 */
void
remote_admin_disconnect(PGconn *conn)
{
	if (conn == NULL)
		return;
	if (PQstatus(conn) == CONNECTION_OK &&
		PQtransactionStatus(conn) == PQTRANS_ACTIVE)
		loopback_cancel(conn);
	libpqsrv_disconnect(conn);
}

/*
 * remote_cleanup_exec
 *		Run sql on the loopback connection, if one is open and idle, without
 *		ever raising and without servicing interrupts; give up after
 *		timeout_ms.  For undoing work at transaction abort.
 *
 * Returns true when the statement succeeded.  On failure, *errmsg (when
 * not NULL) is set to a palloc'd description.
 */
bool
remote_cleanup_exec(const char *sql, int timeout_ms, char **errmsg)
{
	PGconn	   *conn = loopback_conn;
	bool		lost;
	bool		ok;

	if (errmsg)
		*errmsg = NULL;
	if (conn == NULL || !loopback_is_idle(conn))
	{
		if (errmsg)
			*errmsg = pstrdup("no usable loopback connection");
		return false;
	}
	ok = conn_cleanup_exec(conn, sql, timeout_ms, errmsg, &lost);
	if (lost)
		remote_loopback_disconnect();
	return ok;
}

/*
 * conn_cleanup_exec
 *		Run sql on conn (which must not be busy) without raising and without
 *		servicing interrupts; give up after timeout_ms.
 *
 * Returns true when the statement succeeded.  On failure, *errmsg (when not
 * NULL) is set to a palloc'd description.  *lost is set when the connection
 * can no longer be used (send failure, timeout with the statement still
 * running, lost connection); the caller then closes it.
 */
static bool
conn_cleanup_exec(PGconn *conn, const char *sql, int timeout_ms,
				  char **errmsg, bool *lost)
{
	TimestampTz deadline;
	PGresult   *res;
	PGresult   *last = NULL;
	bool		ok = false;

	*lost = false;
	if (!PQsendQuery(conn, sql))
	{
		if (errmsg)
			*errmsg = pchomp(PQerrorMessage(conn));
		*lost = true;
		return false;
	}
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	for (;;)
	{
		while (PQisBusy(conn))
		{
			long		timeout;
			int			rc;

			timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
													  deadline);
			if (timeout <= 0)
			{
				if (errmsg)
					*errmsg = pstrdup("timed out");
				PQclear(last);
				*lost = true;
				return false;
			}
			rc = WaitLatchOrSocket(MyLatch,
								   WL_EXIT_ON_PM_DEATH | WL_LATCH_SET |
								   WL_SOCKET_READABLE | WL_TIMEOUT,
								   PQsocket(conn), timeout,
								   PG_WAIT_EXTENSION);

			/*
			 * No interrupt is serviced here, but a procsignal barrier must
			 * be absorbed: DROP DATABASE waits until every backend, this
			 * one included, has.
			 */
			if (rc & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				if (ProcSignalBarrierPending)
					ProcessProcSignalBarrier();
			}
			if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn))
			{
				if (errmsg)
					*errmsg = pchomp(PQerrorMessage(conn));
				PQclear(last);
				*lost = true;
				return false;
			}
		}
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		PQclear(last);
		last = res;
	}
	if (last != NULL)
	{
		ExecStatusType status = PQresultStatus(last);

		ok = (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK);
		if (!ok && errmsg)
			*errmsg = pchomp(PQresultErrorMessage(last));
		PQclear(last);
	}
	if (PQstatus(conn) != CONNECTION_OK)
		*lost = true;
	return ok;
}

/*
 * loopback_get
 *		Return a usable loopback connection, connecting if needed.
 */
static PGconn *
loopback_get(void)
{
	if (loopback_conn != NULL && !loopback_is_usable(loopback_conn))
		remote_loopback_disconnect();

	if (loopback_conn == NULL)
	{
		loopback_conn = admin_connect(NULL,
									  "could not connect to the central database for an autonomous write");
		/* a replacement of a pinned connection is pinned too */
		if (loopback_pinned)
			PQclear(remote_admin_exec(loopback_conn, "SET idle_session_timeout = 0",
									  0, NULL, "pinning the loopback connection"));
	}

	return loopback_conn;
}

/*
 * admin_connect
 *		Open a new connection to database dbname (NULL: the current one) of
 *		this server as the bootstrap superuser over the Unix socket, or
 *		raise 08006 with failmsg as the message.
 *
 * Must run inside a transaction: it reads the database and superuser names
 * from the catalogs.
 */
static PGconn *
admin_connect(const char *dbname, const char *failmsg)
{
	return admin_connect_internal(dbname, failmsg, false);
}

/*
 * remote_admin_connect_start
 *		Start, without waiting, a superuser connection to database dbname of
 *		this server (see remote.h).
 */
PGconn *
remote_admin_connect_start(const char *dbname)
{
	return admin_connect_internal(dbname,
								  psprintf("could not connect to database \"%s\" on the local server",
										   dbname),
								  true);
}

/*
 * admin_connect_internal
 *		admin_connect, or with start_only the started connection attempt
 *		(counted against the external descriptors) that the caller drives
 *		with PQconnectPoll.
 */
static PGconn *
admin_connect_internal(const char *dbname, const char *failmsg, bool start_only)
{
	const char *keywords[9];
	const char *values[9];
	char		port[12];
	char	   *host;
	PGconn	   *conn;
	char	   *failure;
	int			n = 0;

	host = loopback_socket_dir();
	if (host == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg_internal("%s", failmsg),
				 errdetail("\"unix_socket_directories\" is empty, and the loopback connection needs a Unix-domain socket."),
				 errhint("Set \"unix_socket_directories\" and allow the bootstrap superuser on a \"local\" line of pg_hba.conf.")));

	snprintf(port, sizeof(port), "%d", PostPortNumber);

	keywords[n] = "host";
	values[n++] = host;
	keywords[n] = "port";
	values[n++] = port;
	keywords[n] = "dbname";
	values[n++] = dbname ? dbname : get_database_name(MyDatabaseId);
	keywords[n] = "user";
	values[n++] = GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false);
	keywords[n] = "application_name";
	values[n++] = "medpro loopback";
	keywords[n] = "connect_timeout";
	values[n++] = CppAsString2(LOOPBACK_CONNECT_TIMEOUT);
	keywords[n] = "options";
	values[n++] = "-c search_path=pg_catalog,pg_temp -c lock_timeout=10s -c idle_session_timeout=60s";
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	keywords[n] = NULL;
	values[n] = NULL;
	Assert(n < lengthof(keywords));

	if (values[2] == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg_internal("%s", failmsg),
				 errdetail("The current database no longer exists.")));

	if (!loopback_exit_registered)
	{
		on_proc_exit(loopback_exit_callback, (Datum) 0);
		loopback_exit_registered = true;
	}

	if (start_only)
	{
		if (!AcquireExternalFD())
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg_internal("%s", failmsg),
					 errdetail("There are too many open files on the local server.")));
		conn = PQconnectStartParams(keywords, values, 0);
		if (conn == NULL)
		{
			ReleaseExternalFD();
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory"),
					 errdetail("Could not allocate a connection.")));
		}
		PQsetNoticeReceiver(conn, loopback_notice_receiver, NULL);
		return conn;
	}

	conn = connect_and_wait(keywords, values, NULL, 0, &failure);
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg_internal("%s", failmsg),
				 errdetail_log("%s", failure),
				 errhint("pg_hba.conf must allow the bootstrap superuser on a \"local\" line (trust or peer).")));

	PQsetNoticeReceiver(conn, loopback_notice_receiver, NULL);

	return conn;
}

/*
 * connect_and_wait
 *		Start a connection with keywords/values (expand_dbname = 0, so a
 *		database name is never parsed as a conninfo) and drive it to its end
 *		through the latch, counting it against fd.c's external descriptors
 *		as libpqsrv_connect_params does.
 *
 * secret (may be NULL) is wiped as soon as libpq has copied the parameters.
 * Returns the connection, or NULL with *failure set to a description for
 * the server log (it may name hosts and sockets: never show it to clients).
 * Raises only for out-of-memory and interrupts.
 */
static PGconn *
connect_and_wait(const char *const *keywords, const char *const *values,
				 char *secret, size_t secret_len, char **failure)
{
	PGconn	   *conn;
	bool		timed_out;

	if (!AcquireExternalFD())
	{
		if (secret)
			crypto_wipe(secret, secret_len);
		*failure = pstrdup("There are too many open files on the local server.");
		return NULL;
	}

	conn = PQconnectStartParams(keywords, values, 0);
	if (secret)
		crypto_wipe(secret, secret_len);
	if (conn == NULL)
	{
		ReleaseExternalFD();
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not allocate a connection.")));
	}

	if (!loopback_start(conn, &timed_out))
	{
		if (timed_out)
			*failure = psprintf("Connection attempt timed out after %d seconds.",
								LOOPBACK_CONNECT_TIMEOUT);
		else
			*failure = pchomp(PQerrorMessage(conn));
		libpqsrv_disconnect(conn);
		return NULL;
	}
	return conn;
}

/*
 * loopback_start
 *		Drive a started connection attempt to its end, waiting on the latch.
 *
 * This is libpqsrv_connect_params's loop with a deadline: libpq applies
 * connect_timeout only in its blocking connect, so an asynchronous connect
 * has to enforce it itself.  Returns true when the connection is made,
 * false when it failed (conn's error message says why) or when the deadline
 * passed (*timed_out is set).  On an interrupt the connection is closed and
 * the error propagates.
 */
static bool
loopback_start(PGconn *conn, bool *timed_out)
{
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;
	TimestampTz deadline;

	*timed_out = false;
	if (PQstatus(conn) == CONNECTION_BAD)
		return false;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   LOOPBACK_CONNECT_TIMEOUT * 1000);

	PG_TRY();
	{
		/* Per PQconnectPoll's contract, first wait until writable. */
		while (status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED)
		{
			int			io_flag;
			long		timeout;
			int			rc;

			io_flag = (status == PGRES_POLLING_READING) ?
				WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
			timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
													  deadline);
			if (timeout <= 0)
				break;

			rc = WaitLatchOrSocket(MyLatch,
								   WL_EXIT_ON_PM_DEATH | WL_LATCH_SET |
								   WL_TIMEOUT | io_flag,
								   PQsocket(conn), timeout,
								   PG_WAIT_EXTENSION);

			if (rc & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}

			if (rc & io_flag)
				status = PQconnectPoll(conn);
		}
	}
	PG_CATCH();
	{
		libpqsrv_disconnect(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (status == PGRES_POLLING_OK)
		return true;
	*timed_out = (status != PGRES_POLLING_FAILED);
	return false;
}

/*
 * loopback_socket_dir
 *		The first directory of unix_socket_directories, as libpq's host, or
 *		NULL when the server has no Unix-domain socket.
 *
 * A relative directory is relative to the data directory, which is the
 * backend's working directory; libpq needs it absolute to take it for a
 * socket directory rather than a host name.  Abstract-namespace sockets
 * ('@' prefix) are passed through as libpq understands them.
 */
static char *
loopback_socket_dir(void)
{
	char	   *raw;
	List	   *dirs;
	char	   *dir = NULL;

	if (Unix_socket_directories == NULL)
		return NULL;

	raw = pstrdup(Unix_socket_directories);
	if (SplitDirectoriesString(raw, ',', &dirs) && dirs != NIL)
		dir = pstrdup((char *) linitial(dirs));
	list_free_deep(dirs);
	pfree(raw);

	if (dir == NULL || dir[0] == '\0')
		return NULL;

	if (dir[0] != '@' && !is_absolute_path(dir))
	{
		char	   *abs = make_absolute_path(dir);

		pfree(dir);
		dir = pstrdup(abs);
		free(abs);
	}

	return dir;
}

/*
 * loopback_is_usable
 *		Whether conn can take the next statement.
 *
 * It must be open and idle, and its server must not have gone away while
 * the connection sat idle (terminated backend, idle_session_timeout, server
 * restart).  An idle connection receives nothing but asynchronous messages,
 * so whatever is readable now is consumed: a closed socket, or the FATAL
 * message a terminated backend sends before closing it, makes libpq mark
 * the connection bad.  This check never blocks.
 */
static bool
loopback_is_usable(PGconn *conn)
{
	if (!loopback_is_idle(conn))
		return false;

	for (;;)
	{
		int			rc;

		rc = WaitLatchOrSocket(NULL,
							   WL_EXIT_ON_PM_DEATH | WL_SOCKET_READABLE |
							   WL_TIMEOUT,
							   PQsocket(conn), 0, PG_WAIT_EXTENSION);
		if (!(rc & WL_SOCKET_READABLE))
			break;
		if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK)
			return false;

		/* Parse what arrived; an idle connection must stay idle. */
		if (PQisBusy(conn) || !loopback_is_idle(conn))
			return false;
	}

	return true;
}

/*
 * loopback_is_idle
 *		Whether conn is open with no statement or transaction in progress, as
 *		far as libpq knows without looking at the socket.
 */
static bool
loopback_is_idle(PGconn *conn)
{
	return PQstatus(conn) == CONNECTION_OK &&
		PQtransactionStatus(conn) == PQTRANS_IDLE;
}

/*
 * loopback_cancel
 *		Ask the server to cancel the statement running on conn, then discard
 *		its results until it ends or LOOPBACK_CANCEL_WAIT_MS pass.
 *
 * Best effort: a failed cancel request or a statement that does not stop
 * in time just leaves the caller to close the connection anyway, and the
 * loopback backend notices that once its statement ends.
 */
static void
loopback_cancel(PGconn *conn)
{
	PGcancel   *cancel;
	TimestampTz deadline;
	char		errbuf[256];

	cancel = PQgetCancel(conn);
	if (cancel == NULL)
		return;
	if (!PQcancel(cancel, errbuf, sizeof(errbuf)))
	{
		PQfreeCancel(cancel);
		return;
	}
	PQfreeCancel(cancel);

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
										   LOOPBACK_CANCEL_WAIT_MS);
	for (;;)
	{
		PGresult   *res;
		ExecStatusType status;

		while (PQisBusy(conn))
		{
			long		timeout;
			int			rc;

			timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
													  deadline);
			if (timeout <= 0)
				return;
			rc = WaitLatchOrSocket(NULL,
								   WL_EXIT_ON_PM_DEATH | WL_SOCKET_READABLE |
								   WL_TIMEOUT,
								   PQsocket(conn), timeout,
								   PG_WAIT_EXTENSION);
			if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn))
				return;
		}

		res = PQgetResult(conn);
		if (res == NULL)
			return;
		status = PQresultStatus(res);
		PQclear(res);

		/* A COPY state would return the same result forever. */
		if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT ||
			status == PGRES_COPY_BOTH)
			return;
	}
}

/*
 * loopback_exit_callback
 *		on_proc_exit callback: close the loopback connection cleanly, so the
 *		loopback backend sees a Terminate message rather than a dropped
 *		socket, and a statement cut off by a FATAL error is cancelled.
 */
static void
loopback_exit_callback(int code, Datum arg)
{
	remote_loopback_disconnect();
}

/*
 * loopback_notice_receiver
 *		Relay notices from the loopback into this backend's log stream
 *		instead of libpq's default of printing them on stderr.
 *
 * Warnings stay warnings; lower severities become DEBUG1.  arg, when not
 * NULL, is the context line to use (a constant string).  This runs inside
 * libpq, so it must not raise an ERROR.
 */
static void
loopback_notice_receiver(void *arg, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	int			elevel = DEBUG1;

	if (severity != NULL && strcmp(severity, "WARNING") == 0)
		elevel = WARNING;

	ereport(elevel,
			(errmsg_internal("%s", primary ? primary : "(no message)"),
			 detail ? errdetail_internal("%s", detail) : 0,
			 errcontext("%s", arg ? (const char *) arg :
						"message from the loopback connection")));
}

/*
 * Clinic connections (routing).
 *
 * Each backend caches at most medpro.max_cached_connections connections to
 * clinic databases, one per clinic, made as the clinic's own login role.  A
 * local transaction uses at most one clinic (the one its authentication
 * selected), so at most one cached connection is in use at a time; every
 * other one is idle and may be evicted, least recently used first.
 *
 * The routing row (database, role, sealed password, status, schema version)
 * is read from medpro.clinics as the extension owner and kept in the
 * routing cache (routecache.c) until the routing catalog changes: a clinic
 * suspended, dropped or migrated is noticed by the next transaction of
 * every backend (the change's trigger sends an invalidation).
 *
 * The remote transaction opens with the first statement sent in a local
 * transaction (in the same pipeline), at the local isolation level, and
 * follows it: remote savepoint s<n> stands for
 * local subtransaction level n, the remote transaction commits at local
 * pre-commit and rolls back at local abort.  There is no two-phase commit.
 */

/* Milliseconds an abort-time ROLLBACK may take before the connection is dropped. */
#define CLINIC_CLEANUP_TIMEOUT_MS	5000

/*
 * Settings of every clinic session, given at connect time: the remote SQL
 * medpro writes relies on them (values printed in ISO form, exact floats,
 * objects named from public then pg_catalog).  A client setting overrides
 * any ALTER ROLE / DATABASE setting of the clinic.
 */
#define CLINIC_SESSION_OPTIONS \
	"-c search_path=public,pg_catalog -c datestyle=ISO -c intervalstyle=postgres " \
	"-c extra_float_digits=3 -c statement_timeout=0 -c lock_timeout=0"

/* Statements deferred, and prepared, per connection at most. */
#define CLINIC_MAX_DEFERRED			8
#define CLINIC_MAX_PREPARED			64

/* Length of medpro.clinics.status values kept in ClinicRoute. */
#define CLINIC_STATUS_LEN			16

typedef struct ClinicConn
{
	pg_uuid_t	clinic_id;
	char		db_name[NAMEDATALEN];
	char		db_role[NAMEDATALEN];
	PGconn	   *conn;

	/*
	 * 0 when no remote transaction is open; otherwise the deepest local
	 * transaction nesting level that has its remote counterpart (1 is the
	 * remote transaction itself, n > 1 the savepoint s<n>).
	 */
	int			xact_depth;

	/* A transaction-control command is in flight: its outcome is unknown. */
	bool		changing_xact_state;

	/* The remote transaction can no longer commit (interrupted, lost). */
	bool		broken;

	/* Close when the local transaction ends (remote_clinic_disconnect_all). */
	bool		close_at_end;

	/*
	 * How many of the xact_depth levels are open on the remote: the remote
	 * transaction and its savepoints are sent with the first statement that
	 * needs them, in the same round trip (clinic_pipeline).
	 */
	int			sent_depth;

	/* A statement that may write (or lock) ran in this remote transaction. */
	bool		wrote;

	/* A read-only transaction's COMMIT was sent; its result is unread. */
	bool		commit_pending;

	/* The next statement may run without a remote transaction (remote_clinic_autocommit). */
	bool		autocommit_next;

	/* Statements sent before the next one (CLOSE of finished cursors). */
	int			ndeferred;
	char		deferred[CLINIC_MAX_DEFERRED][64];

	/* Statements prepared on this connection: medpro_p<i> is prepared[i]. */
	int			nprepared;
	char	   *prepared[CLINIC_MAX_PREPARED];
	uint32		prepared_hash[CLINIC_MAX_PREPARED];

	TimestampTz last_used;
} ClinicConn;

/* The routing data of the clinic the current local transaction uses. */
typedef struct ClinicRoute
{
	char		db_name[NAMEDATALEN];
	char		db_role[NAMEDATALEN];
	bytea	   *password_sealed;	/* in TopTransactionContext, or NULL */
	char		status[CLINIC_STATUS_LEN];
	char		server[NAMEDATALEN];
	int			schema_version;
	bool		local_server;
} ClinicRoute;

/* The cache: an array of pointers, both in TopMemoryContext. */
static ClinicConn **clinic_conns = NULL;
static int	clinic_nconns = 0;
static int	clinic_capacity = 0;

/* The clinic chosen by the current local transaction, and its connection. */
static bool xact_clinic_chosen = false;
static pg_uuid_t xact_clinic_id;
static ClinicRoute xact_route;
static ClinicConn *xact_conn = NULL;

/* Whether clinic_exit_callback has been registered. */
static bool clinic_exit_registered = false;

static char *clinic_id_string(const pg_uuid_t *clinic_id);
static bool clinic_route_lookup(const pg_uuid_t *clinic_id, ClinicRoute *route);
static void clinic_route_check(const pg_uuid_t *clinic_id,
							   const ClinicRoute *route);
static ClinicConn *clinic_conn_get(const pg_uuid_t *clinic_id,
								   const ClinicRoute *route);
static void clinic_cache_trim(ClinicConn *keep, int room);
static PGconn *clinic_connect(const pg_uuid_t *clinic_id,
							  const ClinicRoute *route);
static void clinic_conn_close(ClinicConn *entry);
static ClinicConn *clinic_conn_find(const PGconn *conn);
static void clinic_begin_remote_xact(ClinicConn *entry);
static PGresult *clinic_exec(ClinicConn *entry, const char *sql, int nparams,
							 const char *const *values);
static PGresult *clinic_pipeline(ClinicConn *entry, const RemoteStmt *stmts,
								 int nstmts);
static void clinic_raise(ClinicConn *entry, PGresult *res);
static void clinic_finish_commit(ClinicConn *entry);
static void clinic_report_lost(ClinicConn *entry, const char *why);
static bool clinic_abort_remote_xact(ClinicConn *entry);
static void clinic_xact_end(bool is_abort);
static void clinic_xact_callback(XactEvent event, void *arg);
static void clinic_subxact_callback(SubXactEvent event,
									SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);
static void clinic_exit_callback(int code, Datum arg);

/*
 * remote_clinic_in_use
 *		Whether the current local transaction has used a clinic connection,
 *		and which clinic (into *clinic_id when not NULL).
 */
bool
remote_clinic_in_use(pg_uuid_t *clinic_id)
{
	if (xact_clinic_chosen && clinic_id)
		*clinic_id = xact_clinic_id;
	return xact_clinic_chosen;
}

/*
 * remote_clinic_begin
 *		The connection to the clinic's database for the current local
 *		transaction, with its remote transaction open at the current local
 *		nesting level.
 *
 * See remote.h for the contract.
 */
PGconn *
remote_clinic_begin(const pg_uuid_t *clinic_id, int expected_version)
{
	ClinicConn *entry;

	Assert(clinic_id != NULL);

	if (!IsTransactionState())
		elog(ERROR, "clinic connections can only be used inside a transaction");

	if (xact_clinic_chosen &&
		memcmp(&xact_clinic_id, clinic_id, sizeof(pg_uuid_t)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to use two clinics in one transaction"),
				 errdetail("A transaction works on the clinic it authenticated for; authenticate as one clinic per transaction.")));

	if (!xact_clinic_chosen)
	{
		ClinicRoute route;

		if (!clinic_route_lookup(clinic_id, &route))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("clinic database unavailable"),
					 errdetail("Clinic %s does not exist.",
							   clinic_id_string(clinic_id))));
		clinic_route_check(clinic_id, &route);
		xact_route = route;
		xact_clinic_id = *clinic_id;
		xact_clinic_chosen = true;
	}

	if (expected_version > 0 && xact_route.schema_version != expected_version)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("clinic schema out of date"),
				 errdetail("Clinic %s is at schema version %d, but version %d is expected.",
						   clinic_id_string(clinic_id),
						   xact_route.schema_version, expected_version),
				 errhint("Run medpro_migrate_clinic() for this clinic.")));

	entry = xact_conn;
	if (entry == NULL)
	{
		entry = clinic_conn_get(clinic_id, &xact_route);
		xact_conn = entry;
	}
	else if (entry->broken || PQstatus(entry->conn) != CONNECTION_OK)
		clinic_report_lost(entry, NULL);

	clinic_begin_remote_xact(entry);
	entry->last_used = GetCurrentTimestamp();

	return entry->conn;
}

/*
 * remote_clinic_exec
 *		Run sql on a clinic connection and return its (last) result, or
 *		re-raise the remote error.
 *
 * Without parameters the simple protocol is used (sql may hold several
 * statements); with parameters the extended protocol, with text values.
 */
PGresult *
remote_clinic_exec(PGconn *conn, const char *sql, int nparams,
				   const char *const *values)
{
	RemoteStmt	stmt;

	stmt.sql = sql;
	stmt.nparams = nparams;
	stmt.values = values;
	stmt.prepare = false;
	return remote_clinic_run(conn, &stmt, 1, false);
}

/*
 * remote_clinic_run
 *		Run statements on a clinic connection in one round trip and return
 *		the result of the last one.
 *
 * See remote.h for the contract.
 */
PGresult *
remote_clinic_run(PGconn *conn, const RemoteStmt *stmts, int nstmts,
				  bool read_only)
{
	ClinicConn *entry;
	PGresult   *res;

	Assert(nstmts > 0);

	entry = clinic_conn_find(conn);
	if (entry == NULL)
		elog(ERROR, "connection is not a cached clinic connection");
	if (entry != xact_conn || entry->xact_depth <= 0)
		elog(ERROR, "clinic connection used outside the remote transaction remote_clinic_begin opened");
	if (entry->broken)
		clinic_report_lost(entry, NULL);

	if (!read_only)
	{
		entry->wrote = true;
		entry->autocommit_next = false;
	}
	res = clinic_pipeline(entry, stmts, nstmts);
	entry->last_used = GetCurrentTimestamp();
	return res;
}

/*
 * remote_clinic_autocommit
 *		Let the next statement on conn run without a remote transaction.
 *
 * See remote.h for when it does.
 */
void
remote_clinic_autocommit(PGconn *conn)
{
	ClinicConn *entry = clinic_conn_find(conn);

	if (entry != NULL && entry == xact_conn)
		entry->autocommit_next = true;
}

/*
 * remote_clinic_defer
 *		Send sql (a statement without parameters that cannot fail, such as
 *		CLOSE of a cursor) with the next statement on the connection.
 */
void
remote_clinic_defer(PGconn *conn, const char *sql)
{
	ClinicConn *entry = clinic_conn_find(conn);

	if (entry == NULL || entry != xact_conn || entry->sent_depth <= 0)
		return;
	/* when the list is full the end of the remote transaction does it */
	if (entry->ndeferred < CLINIC_MAX_DEFERRED && strlen(sql) < 64)
		strlcpy(entry->deferred[entry->ndeferred++], sql, 64);
}

/*
 * remote_clinic_disconnect_all
 *		Close every cached clinic connection.
 *
 * The connection the current local transaction uses (with its remote
 * transaction open) is closed when the local transaction ends instead.
 */
void
remote_clinic_disconnect_all(void)
{
	int			i;

	for (i = clinic_nconns - 1; i >= 0; i--)
	{
		ClinicConn *entry = clinic_conns[i];

		if (entry == xact_conn && entry->xact_depth > 0)
			entry->close_at_end = true;
		else
			clinic_conn_close(entry);
	}
}

/*
 * remote_clinic_init
 *		Register the transaction callbacks of clinic connections (_PG_init).
 */
void
remote_clinic_init(void)
{
	RegisterXactCallback(clinic_xact_callback, NULL);
	RegisterSubXactCallback(clinic_subxact_callback, NULL);
}

/*
 * medpro_connections_internal
 *		SQL-callable: this backend's cached clinic connections, for the view
 *		medpro.connections.
 *
 * alive is checked without blocking: an idle connection whose server went
 * away is reported dead (and replaced when next used); one in use in this
 * transaction is alive unless it was lost or its remote transaction broke.
 */
PG_FUNCTION_INFO_V1(medpro_connections_internal);

Datum
medpro_connections_internal(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;

	InitMaterializedSRF(fcinfo, 0);

	for (i = 0; i < clinic_nconns; i++)
	{
		ClinicConn *entry = clinic_conns[i];
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
		bool		alive;

		*id = entry->clinic_id;
		clinic_finish_commit(entry);
		if (entry->xact_depth > 0)
			alive = !entry->broken && PQstatus(entry->conn) == CONNECTION_OK;
		else
			alive = loopback_is_usable(entry->conn);

		values[0] = UUIDPGetDatum(id);
		values[1] = CStringGetTextDatum(entry->db_name);
		values[2] = BoolGetDatum(entry->xact_depth > 0);
		values[3] = TimestampTzGetDatum(entry->last_used);
		values[4] = BoolGetDatum(alive);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	return (Datum) 0;
}

/* The canonical text form of a clinic id, palloc'd. */
static char *
clinic_id_string(const pg_uuid_t *clinic_id)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out,
											   UUIDPGetDatum((pg_uuid_t *) clinic_id)));
}

/*
 * remote_extension_owner
 *		The role that owns extension medpro in this database.
 */
Oid
remote_extension_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("medpro"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"medpro\" is not installed in this database")));
	return owner;
}

/*
 * clinic_route_lookup
 *		Read the clinic's routing row into *route; false when there is no
 *		such (undeleted) clinic.
 *
 * The caller is typically a medpro_api role without access to
 * medpro.clinics, so the query runs as the extension owner, in a restricted
 * security context, with the caller's identity restored on every path.  The
 * operators are schema-qualified: the caller's search_path is in force.
 */
static bool
clinic_route_lookup(const pg_uuid_t *clinic_id, ClinicRoute *route)
{
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	bool		found = false;
	RouteData	cached;

	memset(route, 0, sizeof(ClinicRoute));

	/* The routing cache, kept until the routing catalog changes. */
	if (routecache_get_route(clinic_id, &found, &cached))
	{
		if (found)
		{
			strlcpy(route->db_name, cached.db_name, NAMEDATALEN);
			strlcpy(route->db_role, cached.db_role, NAMEDATALEN);
			strlcpy(route->status, cached.status, CLINIC_STATUS_LEN);
			strlcpy(route->server, cached.server, NAMEDATALEN);
			route->schema_version = cached.schema_version;
			route->local_server = cached.local_server;
			if (cached.password_sealed != NULL)
			{
				Size		len = VARSIZE_ANY(cached.password_sealed);

				route->password_sealed = MemoryContextAlloc(TopTransactionContext, len);
				memcpy(route->password_sealed, cached.password_sealed, len);
			}
		}
		return found;
	}

	owner = remote_extension_owner();

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		Oid			argtypes[1] = {UUIDOID};
		Datum		args[1];
		int			rc;

		args[0] = UUIDPGetDatum((pg_uuid_t *) clinic_id);

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		rc = SPI_execute_with_args("SELECT c.db_name, c.db_role, c.db_password_sealed, c.status, "
								   "       c.schema_version, c.server, s.conninfo_sealed IS NULL "
								   "  FROM medpro.clinics c "
								   "  LEFT JOIN medpro.servers s ON s.name OPERATOR(pg_catalog.=) c.server "
								   " WHERE c.id OPERATOR(pg_catalog.=) $1 AND c.deleted_at IS NULL",
								   1, argtypes, args, NULL, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read the routing data of a clinic: %s",
				 SPI_result_code_string(rc));

		if (SPI_processed == 1)
		{
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *v;
			Datum		d;
			bool		isnull;

			found = true;
			if ((v = SPI_getvalue(tup, desc, 1)) != NULL)
				strlcpy(route->db_name, v, NAMEDATALEN);
			if ((v = SPI_getvalue(tup, desc, 2)) != NULL)
				strlcpy(route->db_role, v, NAMEDATALEN);
			d = SPI_getbinval(tup, desc, 3, &isnull);
			if (!isnull)
			{
				MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

				route->password_sealed = DatumGetByteaPCopy(d);
				MemoryContextSwitchTo(old);
			}
			if ((v = SPI_getvalue(tup, desc, 4)) != NULL)
				strlcpy(route->status, v, CLINIC_STATUS_LEN);
			d = SPI_getbinval(tup, desc, 5, &isnull);
			route->schema_version = isnull ? 0 : DatumGetInt32(d);
			if ((v = SPI_getvalue(tup, desc, 6)) != NULL)
				strlcpy(route->server, v, NAMEDATALEN);
			d = SPI_getbinval(tup, desc, 7, &isnull);
			route->local_server = !isnull && DatumGetBool(d);
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();

	memset(&cached, 0, sizeof(cached));
	if (found)
	{
		strlcpy(cached.db_name, route->db_name, NAMEDATALEN);
		strlcpy(cached.db_role, route->db_role, NAMEDATALEN);
		strlcpy(cached.status, route->status, ROUTE_STATUS_LEN);
		strlcpy(cached.server, route->server, NAMEDATALEN);
		cached.schema_version = route->schema_version;
		cached.local_server = route->local_server;
		cached.password_sealed = route->password_sealed;
	}
	routecache_put_route(clinic_id, found, &cached);
	return found;
}

/*
 * clinic_route_check
 *		Raise the error that keeps the clinic from being used, if any.
 */
static void
clinic_route_check(const pg_uuid_t *clinic_id, const ClinicRoute *route)
{
	if (strcmp(route->status, "suspended") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("clinic is suspended")));
	if (strcmp(route->status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("clinic database unavailable"),
				 errdetail("Clinic %s is %s.", clinic_id_string(clinic_id),
						   route->status)));
	if (route->db_name[0] == '\0' || route->db_role[0] == '\0' ||
		route->password_sealed == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("clinic database unavailable"),
				 errdetail("Clinic %s has no database credentials.",
						   clinic_id_string(clinic_id)),
				 errhint("Run medpro_provision_clinic() for this clinic.")));
	if (!route->local_server)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("clinic databases on another server are not supported yet"),
				 errdetail("Clinic %s is on server \"%s\".",
						   clinic_id_string(clinic_id), route->server)));
}

/*
 * clinic_conn_get
 *		The cached connection to the clinic, checked and idle, or a new one;
 *		evicts the least recently used idle connections to make room.
 *
 * Called only at the clinic's first use in a local transaction, so a dead
 * cached connection can be replaced without losing remote work.
 */
static ClinicConn *
clinic_conn_get(const pg_uuid_t *clinic_id, const ClinicRoute *route)
{
	ClinicConn *entry = NULL;
	PGconn	   *conn;
	MemoryContext old;
	int			i;

	for (i = 0; i < clinic_nconns; i++)
	{
		if (memcmp(&clinic_conns[i]->clinic_id, clinic_id, sizeof(pg_uuid_t)) == 0)
		{
			entry = clinic_conns[i];
			break;
		}
	}

	/* The previous transaction's COMMIT, if it was not waited for. */
	if (entry != NULL)
		clinic_finish_commit(entry);

	/* Dead, not idle, or made for a database or role the clinic no longer has. */
	if (entry != NULL &&
		(entry->broken || !loopback_is_usable(entry->conn) ||
		 strcmp(entry->db_name, route->db_name) != 0 ||
		 strcmp(entry->db_role, route->db_role) != 0))
	{
		clinic_conn_close(entry);
		entry = NULL;
	}
	if (entry != NULL)
	{
		/* The setting may have been lowered since the cache filled. */
		clinic_cache_trim(entry, 0);
		return entry;
	}

	/* Make room for the new connection. */
	clinic_cache_trim(NULL, 1);

	/*
	 * A backend may hold only so many sockets (a third of max_safe_fds, see
	 * AcquireExternalFD): when none is left, close the least recently used
	 * idle connections rather than fail.
	 */
	for (;;)
	{
		int			before = clinic_nconns;

		if (AcquireExternalFD())
		{
			ReleaseExternalFD();
			break;
		}
		/* close one: nconns + room = max + 1 */
		clinic_cache_trim(NULL, medpro_max_cached_connections - clinic_nconns + 1);
		if (clinic_nconns == before)
			break;				/* nothing idle: connect_and_wait reports it */
	}

	/* Allocate before connecting, so that nothing can fail once connected. */
	old = MemoryContextSwitchTo(TopMemoryContext);
	if (clinic_conns == NULL)
	{
		clinic_capacity = 8;
		clinic_conns = palloc(clinic_capacity * sizeof(ClinicConn *));
	}
	else if (clinic_nconns >= clinic_capacity)
	{
		clinic_capacity *= 2;
		clinic_conns = repalloc(clinic_conns, clinic_capacity * sizeof(ClinicConn *));
	}
	entry = palloc0(sizeof(ClinicConn));
	MemoryContextSwitchTo(old);

	PG_TRY();
	{
		conn = clinic_connect(clinic_id, route);
	}
	PG_CATCH();
	{
		pfree(entry);
		PG_RE_THROW();
	}
	PG_END_TRY();

	entry->clinic_id = *clinic_id;
	strlcpy(entry->db_name, route->db_name, NAMEDATALEN);
	strlcpy(entry->db_role, route->db_role, NAMEDATALEN);
	entry->conn = conn;
	entry->last_used = GetCurrentTimestamp();
	clinic_conns[clinic_nconns++] = entry;

	return entry;
}

/*
 * clinic_cache_trim
 *		Close least recently used idle connections (never keep, nor one in
 *		use in the current transaction) until room more fit within
 *		medpro.max_cached_connections.
 */
static void
clinic_cache_trim(ClinicConn *keep, int room)
{
	while (clinic_nconns + room > medpro_max_cached_connections)
	{
		ClinicConn *lru = NULL;
		int			i;

		for (i = 0; i < clinic_nconns; i++)
		{
			ClinicConn *e = clinic_conns[i];

			if (e == keep || e == xact_conn || e->xact_depth > 0)
				continue;
			if (lru == NULL || e->last_used < lru->last_used)
				lru = e;
		}
		if (lru == NULL)
			break;
		clinic_conn_close(lru);
	}
}

/*
 * clinic_connect
 *		Open a connection to the clinic's database as its own role, or raise
 *		08006 "clinic database unavailable".
 *
 * The password is unsealed only for the call that starts the connection
 * (libpq copies its parameters) and wiped right after.  libpq's own message
 * goes to the server log only: it may name hosts and sockets.  The session
 * gets no settings beyond client_encoding; everything else is set with SET
 * LOCAL in each remote transaction.
 */
static PGconn *
clinic_connect(const pg_uuid_t *clinic_id, const ClinicRoute *route)
{
	const char *keywords[12];
	const char *values[12];
	char		port[12];
	char	   *host;
	char	   *idstr = clinic_id_string(clinic_id);
	char	   *password;
	size_t		password_len;
	PGconn	   *conn;
	char	   *failure;
	int			n = 0;

	host = loopback_socket_dir();
	if (host == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("clinic database unavailable"),
				 errdetail("Clinic %s could not be reached.", idstr),
				 errdetail_log("\"unix_socket_directories\" is empty, and connections to clinic databases on this server need a Unix-domain socket.")));

	snprintf(port, sizeof(port), "%d", PostPortNumber);

	if (!clinic_exit_registered)
	{
		on_proc_exit(clinic_exit_callback, (Datum) 0);
		clinic_exit_registered = true;
	}

	password = (char *) crypto_unseal(route->password_sealed,
									  psprintf("medpro.clinics:%s:db_password", idstr),
									  &password_len);

	keywords[n] = "host";
	values[n++] = host;
	keywords[n] = "port";
	values[n++] = port;
	keywords[n] = "dbname";
	values[n++] = route->db_name;
	keywords[n] = "user";
	values[n++] = route->db_role;
	keywords[n] = "password";
	values[n++] = password;
	keywords[n] = "application_name";
	values[n++] = "medpro routing";
	keywords[n] = "connect_timeout";
	values[n++] = CppAsString2(LOOPBACK_CONNECT_TIMEOUT);
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	/* fixed for the session; only timeouts are set per transaction */
	keywords[n] = "options";
	values[n++] = CLINIC_SESSION_OPTIONS;
	keywords[n] = NULL;
	values[n] = NULL;
	Assert(n < lengthof(keywords));

	/* the password is wiped as soon as libpq has copied it */
	conn = connect_and_wait(keywords, values, password, password_len, &failure);
	pfree(password);
	values[4] = NULL;
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("clinic database unavailable"),
				 errdetail("Clinic %s could not be reached.", idstr),
				 errdetail_log("Clinic %s could not be reached: %s", idstr, failure)));

	PQsetNoticeReceiver(conn, loopback_notice_receiver,
						(void *) "message from a clinic database");

	return conn;
}

/*
 * clinic_conn_close
 *		Remove entry from the cache and close its connection, cancelling a
 *		statement that may still run on it.  Never raises.
 */
static void
clinic_conn_close(ClinicConn *entry)
{
	PGconn	   *conn = entry->conn;
	int			i;

	for (i = 0; i < clinic_nconns; i++)
	{
		if (clinic_conns[i] == entry)
		{
			memmove(&clinic_conns[i], &clinic_conns[i + 1],
					(clinic_nconns - i - 1) * sizeof(ClinicConn *));
			clinic_nconns--;
			break;
		}
	}
	if (xact_conn == entry)
		xact_conn = NULL;
	for (i = 0; i < entry->nprepared; i++)
		if (entry->prepared[i] != NULL)
			pfree(entry->prepared[i]);
	pfree(entry);

	if (conn != NULL)
	{
		if (PQstatus(conn) == CONNECTION_OK &&
			PQtransactionStatus(conn) == PQTRANS_ACTIVE)
			loopback_cancel(conn);
		libpqsrv_disconnect(conn);
	}
}

/* The cache entry of conn, or NULL. */
static ClinicConn *
clinic_conn_find(const PGconn *conn)
{
	int			i;

	if (xact_conn != NULL && xact_conn->conn == conn)
		return xact_conn;
	for (i = 0; i < clinic_nconns; i++)
		if (clinic_conns[i]->conn == conn)
			return clinic_conns[i];
	return NULL;
}

/*
 * clinic_begin_remote_xact
 *		Open the remote transaction if it is not open yet, then add remote
 *		savepoints up to the current local nesting level.
 *
 * The remote transaction gets the local isolation level and access mode;
 * search_path and the local statement_timeout and lock_timeout are set with
 * SET LOCAL, so the remote session keeps no state between transactions.
 */
static void
clinic_begin_remote_xact(ClinicConn *entry)
{
	int			curlevel = GetCurrentTransactionNestLevel();

	if (entry->xact_depth <= 0)
	{
		entry->xact_depth = 1;
		entry->sent_depth = 0;
		entry->wrote = false;
		entry->ndeferred = 0;
	}
	if (entry->xact_depth < curlevel)
		entry->xact_depth = curlevel;
}

/* The statement that starts the remote transaction. */
static char *
clinic_start_sql(void)
{
	const char *isolation;

	if (XactIsoLevel == XACT_SERIALIZABLE)
		isolation = "SERIALIZABLE";
	else if (XactIsoLevel == XACT_REPEATABLE_READ)
		isolation = "REPEATABLE READ";
	else
		isolation = "READ COMMITTED";
	return psprintf("START TRANSACTION ISOLATION LEVEL %s%s%s", isolation,
					XactReadOnly ? " READ ONLY" : "",
					(XactReadOnly && XactDeferrable &&
					 XactIsoLevel == XACT_SERIALIZABLE) ? " DEFERRABLE" : "");
}

/*
 * The local timeouts for the remote transaction, as one statement, or NULL
 * when both are 0 (the session's values).
 */
static char *
clinic_settings_sql(void)
{
	if (StatementTimeout == 0 && LockTimeout == 0)
		return NULL;
	return psprintf("SELECT pg_catalog.set_config('statement_timeout', '%d', true), "
					"pg_catalog.set_config('lock_timeout', '%d', true)",
					StatementTimeout, LockTimeout);
}

/* What one queued command of a pipeline is. */
typedef enum PipeKind
{
	PIPE_LEVEL,					/* START TRANSACTION or SAVEPOINT */
	PIPE_OTHER,					/* settings, deferred, PREPARE */
	PIPE_PREPARE,				/* Parse of prepared[index] */
	PIPE_STMT					/* a caller's statement */
} PipeKind;

typedef struct PipeItem
{
	PipeKind	kind;
	int			index;			/* PIPE_PREPARE, PIPE_STMT: stmt number */
	int			slot;			/* PIPE_PREPARE: prepared[] slot */
} PipeItem;

/*
 * clinic_pipeline
 *		Send what the remote transaction still lacks (its start, settings,
 *		savepoints), the deferred statements, then stmts, in one pipeline,
 *		and wait for the results, through the latch.  Returns the last
 *		statement's result; raises the first error (the remote one, or
 *		08006 when the connection is lost) after reading every result.
 *
 * A statement with prepare set is prepared (as medpro_p<n>) the first time
 * this connection sees its text and executed by name afterwards; prepared
 * statements outlive transactions (they are not transactional) and die
 * with the connection.
 */
static PGresult *
clinic_pipeline(ClinicConn *entry, const RemoteStmt *stmts, int nstmts)
{
	PGconn	   *conn = entry->conn;
	int			maxitems = nstmts * 2 + entry->ndeferred + entry->xact_depth + 2;
	PipeItem   *items = palloc(sizeof(PipeItem) * maxitems);
	char	  **newsql = palloc0(sizeof(char *) * (nstmts + 1));
	int			nitems = 0;
	int			nnew = 0;
	int			level;
	int			i;
	bool		sent = true;
	PGresult   *last = NULL;
	PGresult   *error = NULL;
	bool		lost = false;

	bool		autocommit;

	if (PQpipelineStatus(conn) != PQ_PIPELINE_OFF || entry->commit_pending)
		clinic_report_lost(entry, "connection in an unexpected state");
	if (!PQenterPipelineMode(conn))
		clinic_report_lost(entry, pchomp(PQerrorMessage(conn)));

	/*
	 * The one read of a single-statement READ COMMITTED transaction runs in
	 * the clinic's own implicit transaction, ended by the Sync: no START
	 * TRANSACTION, and no COMMIT to wake the clinic backend for later.
	 */
	autocommit = entry->autocommit_next && entry->sent_depth == 0 &&
		entry->xact_depth == 1 && entry->ndeferred == 0 &&
		!IsTransactionBlock() && XactIsoLevel == XACT_READ_COMMITTED &&
		StatementTimeout == 0 && LockTimeout == 0;
	entry->autocommit_next = false;

	/* the remote transaction and its savepoints */
	if (entry->sent_depth < entry->xact_depth && !autocommit)
		entry->changing_xact_state = true;
	if (entry->sent_depth == 0 && !autocommit)
	{
		char	   *settings = clinic_settings_sql();

		sent = sent && PQsendQueryParams(conn, clinic_start_sql(), 0, NULL, NULL,
										 NULL, NULL, 0);
		items[nitems].kind = PIPE_LEVEL;
		items[nitems++].index = 0;
		if (settings != NULL)
		{
			sent = sent && PQsendQueryParams(conn, settings, 0, NULL, NULL,
											 NULL, NULL, 0);
			items[nitems].kind = PIPE_OTHER;
			items[nitems++].index = 0;
		}
	}
	for (level = Max(entry->sent_depth, 1) + 1; level <= entry->xact_depth; level++)
	{
		sent = sent && PQsendQueryParams(conn, psprintf("SAVEPOINT s%d", level),
										 0, NULL, NULL, NULL, NULL, 0);
		items[nitems].kind = PIPE_LEVEL;
		items[nitems++].index = 0;
	}
	for (i = 0; i < entry->ndeferred; i++)
	{
		sent = sent && PQsendQueryParams(conn, entry->deferred[i], 0, NULL, NULL,
										 NULL, NULL, 0);
		items[nitems].kind = PIPE_OTHER;
		items[nitems++].index = 0;
	}
	entry->ndeferred = 0;

	for (i = 0; i < nstmts; i++)
	{
		const RemoteStmt *st = &stmts[i];
		int			slot = -1;

		if (st->prepare)
		{
			uint32		h = hash_bytes((const unsigned char *) st->sql, (int) strlen(st->sql));
			int			j;

			for (j = 0; j < entry->nprepared; j++)
			{
				if (entry->prepared_hash[j] == h && strcmp(entry->prepared[j], st->sql) == 0)
				{
					slot = j;
					break;
				}
			}
			if (slot < 0 && entry->nprepared + nnew < CLINIC_MAX_PREPARED)
			{
				char		name[32];

				slot = entry->nprepared + nnew++;
				snprintf(name, sizeof(name), "medpro_p%d", slot);
				sent = sent && PQsendPrepare(conn, name, st->sql, 0, NULL);
				items[nitems].kind = PIPE_PREPARE;
				items[nitems].slot = slot;
				items[nitems++].index = i;
				newsql[i] = (char *) st->sql;
			}
		}
		if (slot >= 0)
		{
			char		name[32];

			snprintf(name, sizeof(name), "medpro_p%d", slot);
			sent = sent && PQsendQueryPrepared(conn, name, st->nparams, st->values,
											   NULL, NULL, 0);
		}
		else
			sent = sent && PQsendQueryParams(conn, st->sql, st->nparams, NULL,
											 st->values, NULL, NULL, 0);
		items[nitems].kind = PIPE_STMT;
		items[nitems++].index = i;
	}
	Assert(nitems <= maxitems);
	sent = sent && PQpipelineSync(conn);
	if (!sent)
		clinic_report_lost(entry, pchomp(PQerrorMessage(conn)));

	/* one result (then NULL) per item, then the sync */
	for (i = 0; i < nitems; i++)
	{
		PGresult   *res = libpqsrv_get_result(conn, PG_WAIT_EXTENSION);
		PGresult   *extra;
		ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
		bool		ok = (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK);

		if (res == NULL && PQstatus(conn) != CONNECTION_OK)
		{
			lost = true;
			break;
		}
		while ((extra = libpqsrv_get_result(conn, PG_WAIT_EXTENSION)) != NULL)
			PQclear(extra);

		if (ok && items[i].kind == PIPE_LEVEL)
			entry->sent_depth = entry->sent_depth == 0 ? 1 : entry->sent_depth + 1;
		if (ok && items[i].kind == PIPE_PREPARE)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
			int			slot = items[i].slot;

			entry->prepared[slot] = pstrdup(newsql[items[i].index]);
			entry->prepared_hash[slot] = hash_bytes((const unsigned char *) entry->prepared[slot],
													(int) strlen(entry->prepared[slot]));
			entry->nprepared = slot + 1;
			MemoryContextSwitchTo(old);
		}
		if (!ok && error == NULL && status != PGRES_PIPELINE_ABORTED)
		{
			error = res;
			continue;
		}
		if (items[i].kind == PIPE_STMT && i == nitems - 1 && ok)
		{
			last = res;
			continue;
		}
		PQclear(res);
	}
	if (!lost)
	{
		PGresult   *res = libpqsrv_get_result(conn, PG_WAIT_EXTENSION);

		if (res == NULL || PQresultStatus(res) != PGRES_PIPELINE_SYNC)
			lost = true;
		PQclear(res);
		if (!lost && !PQexitPipelineMode(conn))
			lost = true;
	}
	entry->changing_xact_state = false;
	if (lost || PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = pchomp(PQerrorMessage(conn));

		PQclear(last);
		PQclear(error);
		clinic_report_lost(entry, msg);
	}
	if (error != NULL)
	{
		PQclear(last);
		clinic_raise(entry, error);
	}
	if (last == NULL)
		clinic_report_lost(entry, "no result");
	return last;
}

/*
 * clinic_exec
 *		Run sql on entry's connection, waiting through the latch; return the
 *		last result or raise: 08006 when the connection is lost, else the
 *		remote error.
 */
static PGresult *
clinic_exec(ClinicConn *entry, const char *sql, int nparams,
			const char *const *values)
{
	PGconn	   *conn = entry->conn;
	PGresult   *res;
	ExecStatusType status;

	if (nparams == 0)
		res = libpqsrv_exec(conn, sql, PG_WAIT_EXTENSION);
	else
		res = libpqsrv_exec_params(conn, sql, nparams, NULL, values, NULL, NULL,
								   0, PG_WAIT_EXTENSION);
	status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
		return res;

	if (PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = pchomp(PQerrorMessage(conn));

		PQclear(res);
		clinic_report_lost(entry, msg);
	}
	clinic_raise(entry, res);
	return NULL;				/* keep compiler quiet */
}

/*
 * clinic_raise
 *		Raise the error of a failed remote statement (res is cleared).
 */
static void
clinic_raise(ClinicConn *entry, PGresult *res)
{
	PGconn	   *conn = entry->conn;
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (res != NULL && (status == PGRES_COPY_IN || status == PGRES_COPY_OUT ||
						status == PGRES_COPY_BOTH))
	{
		PQclear(res);
		entry->broken = true;
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("unexpected COPY result from a clinic database")));
	}
	/*
	 * Only roles that see every column get the remote detail: for anyone
	 * else it could quote masked values of the failing row.
	 */
	{
		const TenantContext *ctx = tenant_get();
		bool		sees_all = ctx != NULL &&
			(strcmp(ctx->role, "admin") == 0 || strcmp(ctx->role, "doctor") == 0 ||
			 strcmp(ctx->role, "super_admin") == 0);

		report_remote_error(ERROR, res, conn, "statement on the clinic database",
							sees_all);
	}
}

/*
 * clinic_finish_commit
 *		Read the result of the COMMIT a read-only remote transaction sent
 *		without waiting; a connection on which it failed is closed.
 *		Returns with the entry still valid unless it was closed (*closed).
 */
static void
clinic_finish_commit(ClinicConn *entry)
{
	PGconn	   *conn = entry->conn;
	PGresult   *res;
	bool		ok = true;

	if (!entry->commit_pending)
		return;
	while ((res = libpqsrv_get_result(conn, PG_WAIT_EXTENSION)) != NULL)
	{
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			ok = false;
		PQclear(res);
	}
	entry->commit_pending = false;
	if (!ok || PQstatus(conn) != CONNECTION_OK ||
		PQtransactionStatus(conn) != PQTRANS_IDLE)
		entry->broken = true;
}

/*
 * clinic_report_lost
 *		Raise 08006 for a connection lost (or a remote transaction broken)
 *		in the middle of a local transaction; why, when not NULL, is libpq's
 *		message and goes to the server log only.
 */
static void
clinic_report_lost(ClinicConn *entry, const char *why)
{
	char	   *idstr = clinic_id_string(&entry->clinic_id);

	entry->broken = true;
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("clinic database unavailable"),
			 errdetail("The connection to clinic %s was lost or interrupted during the transaction.",
					   idstr),
			 why ? errdetail_log("The connection to clinic %s was lost or interrupted during the transaction: %s",
								 idstr, why) : 0));
}

/*
 * clinic_abort_remote_xact
 *		Roll back entry's remote transaction at local abort, without raising
 *		and without servicing interrupts.  Returns false when the connection
 *		cannot be reused and must be closed.
 *
 * A statement still running (the local wait was interrupted) is cancelled
 * first.  A remote transaction that already ended (a failed COMMIT) needs
 * nothing.
 */
static bool
clinic_abort_remote_xact(ClinicConn *entry)
{
	PGconn	   *conn = entry->conn;
	bool		lost;

	if (PQstatus(conn) != CONNECTION_OK || entry->commit_pending ||
		PQpipelineStatus(conn) != PQ_PIPELINE_OFF)
		return false;
	if (PQtransactionStatus(conn) == PQTRANS_ACTIVE)
	{
		loopback_cancel(conn);
		if (PQstatus(conn) != CONNECTION_OK ||
			PQtransactionStatus(conn) == PQTRANS_ACTIVE)
			return false;
	}
	switch (PQtransactionStatus(conn))
	{
		case PQTRANS_IDLE:
			return true;
		case PQTRANS_INTRANS:
		case PQTRANS_INERROR:
			return conn_cleanup_exec(conn, "ROLLBACK", CLINIC_CLEANUP_TIMEOUT_MS,
									 NULL, &lost) && !lost;
		default:
			return false;
	}
}

/*
 * clinic_xact_end
 *		Forget the current local transaction's clinic; at abort, roll back
 *		its remote transaction (or close the connection when that fails).
 */
static void
clinic_xact_end(bool is_abort)
{
	ClinicConn *entry = xact_conn;

	if (entry != NULL)
	{
		bool		keep = true;

		/*
		 * At commit the remote transaction has committed at pre-commit; a
		 * connection left in any other state than idle (a transaction
		 * command cut off in a subtransaction the caller caught) is closed.
		 */
		if (is_abort)
			keep = clinic_abort_remote_xact(entry);
		else
			keep = entry->xact_depth == 0 &&
				PQstatus(entry->conn) == CONNECTION_OK &&
				(entry->commit_pending ||
				 PQtransactionStatus(entry->conn) == PQTRANS_IDLE);

		entry->xact_depth = 0;
		entry->sent_depth = 0;
		entry->ndeferred = 0;
		entry->wrote = false;
		entry->autocommit_next = false;
		entry->changing_xact_state = false;
		entry->broken = false;
		if (!keep || entry->close_at_end)
			clinic_conn_close(entry);
	}
	xact_conn = NULL;
	xact_clinic_chosen = false;
	memset(&xact_route, 0, sizeof(xact_route));
}

/*
 * clinic_xact_callback
 *		Commit the remote transaction at local pre-commit, roll it back at
 *		local abort, refuse PREPARE TRANSACTION.
 *
 * An error from the remote COMMIT aborts the local transaction.  The remote
 * transaction commits before the local one: a crash (or a local failure)
 * between the two leaves the remote work committed; see
 * docs/routing-connections.md.
 */
static void
clinic_xact_callback(XactEvent event, void *arg)
{
	ClinicConn *entry = xact_conn;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			if (entry != NULL && entry->xact_depth > 0)
			{
				if (entry->broken || entry->changing_xact_state ||
					PQstatus(entry->conn) != CONNECTION_OK)
					clinic_report_lost(entry, NULL);
				if (entry->sent_depth == 0)
				{
					/* nothing was sent: there is no remote transaction */
				}
				else if (!entry->wrote && XactIsoLevel == XACT_READ_COMMITTED &&
						 PQsendQuery(entry->conn, "COMMIT"))
				{
					/*
					 * Only reads ran, each seeing what was committed when it
					 * started: the outcome of COMMIT changes nothing, so it is
					 * not waited for (clinic_finish_commit reads it later).
					 */
					entry->commit_pending = true;
				}
				else
				{
					entry->changing_xact_state = true;
					PQclear(clinic_exec(entry, "COMMIT", 0, NULL));
					entry->changing_xact_state = false;
				}
				entry->xact_depth = 0;
				entry->sent_depth = 0;
			}
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (entry != NULL && entry->xact_depth > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that used a clinic database")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			clinic_xact_end(false);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			clinic_xact_end(true);
			break;
	}
}

/*
 * clinic_subxact_callback
 *		Release the remote savepoint of a committing local subtransaction;
 *		roll back to it when the local subtransaction aborts.
 *
 * At abort nothing is raised: a statement still running is cancelled, and
 * when the remote state cannot be restored (cancel or rollback failed, or a
 * transaction-control command was cut off, or the remote transaction failed
 * at a level the local transaction keeps) the connection is marked broken,
 * so that the local transaction fails at its next remote use or at commit.
 */
static void
clinic_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	ClinicConn *entry = xact_conn;
	PGconn	   *conn;
	int			curlevel;

	if (entry == NULL || entry->conn == NULL)
		return;
	if (event != SUBXACT_EVENT_PRE_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;

	conn = entry->conn;
	curlevel = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_PRE_COMMIT_SUB)
	{
		char		sql[64];

		if (entry->xact_depth < curlevel)
			return;
		if (entry->broken || entry->sent_depth < curlevel)
		{
			entry->xact_depth = curlevel - 1;
			entry->sent_depth = Min(entry->sent_depth, curlevel - 1);
			return;
		}
		snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT s%d", curlevel);
		entry->changing_xact_state = true;
		PQclear(clinic_exec(entry, sql, 0, NULL));
		entry->changing_xact_state = false;
		entry->xact_depth = curlevel - 1;
		entry->sent_depth = curlevel - 1;
		return;
	}

	/* SUBXACT_EVENT_ABORT_SUB: cursors of the level may be gone */
	entry->ndeferred = 0;
	if (PQstatus(conn) != CONNECTION_OK ||
		PQpipelineStatus(conn) != PQ_PIPELINE_OFF)
	{
		entry->broken = true;
		if (entry->xact_depth >= curlevel)
			entry->xact_depth = curlevel - 1;
		entry->sent_depth = Min(entry->sent_depth, curlevel - 1);
		return;
	}
	if (PQtransactionStatus(conn) == PQTRANS_ACTIVE)
	{
		loopback_cancel(conn);
		if (PQstatus(conn) != CONNECTION_OK ||
			PQtransactionStatus(conn) == PQTRANS_ACTIVE)
			entry->broken = true;
	}
	if (entry->changing_xact_state)
		entry->broken = true;

	if (entry->xact_depth >= curlevel && entry->sent_depth < curlevel)
	{
		/* the level never reached the clinic */
		entry->xact_depth = curlevel - 1;
		if (entry->sent_depth > 0 && PQtransactionStatus(conn) == PQTRANS_INERROR)
			entry->broken = true;
	}
	else if (entry->xact_depth >= curlevel)
	{
		if (!entry->broken)
		{
			char		sql[128];
			bool		lost;

			snprintf(sql, sizeof(sql),
					 "ROLLBACK TO SAVEPOINT s%d; RELEASE SAVEPOINT s%d",
					 curlevel, curlevel);
			if (!conn_cleanup_exec(conn, sql, CLINIC_CLEANUP_TIMEOUT_MS,
								   NULL, &lost) || lost)
				entry->broken = true;
		}
		entry->xact_depth = curlevel - 1;
		entry->sent_depth = curlevel - 1;
	}
	else if (entry->xact_depth > 0 &&
			 PQtransactionStatus(conn) == PQTRANS_INERROR)
	{
		/* A statement of this level failed in a level that is kept. */
		entry->broken = true;
	}
}

/*
 * clinic_exit_callback
 *		on_proc_exit callback: close every clinic connection cleanly.
 */
static void
clinic_exit_callback(int code, Datum arg)
{
	while (clinic_nconns > 0)
		clinic_conn_close(clinic_conns[clinic_nconns - 1]);
}
