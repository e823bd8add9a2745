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
 * is not a dblink named connection), is opened on first use, kept until the
 * end of the transaction, checked before every reuse, replaced when it
 * died, and closed cleanly at transaction end and backend exit.  docs/loopback.md describes what
 * pg_hba.conf needs for it.  Provisioning and migrations open short-lived
 * admin connections to clinic databases (remote_admin_connect), which their
 * callers close on every path, and undo work at transaction abort through
 * remote_cleanup_exec, which never raises.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid_d.h"
#include "commands/dbcommands.h"
#include "libpq-fe.h"
#include "libpq/libpq-be-fe-helpers.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "postmaster/postmaster.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procsignal.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#include "remote.h"

/* Seconds a loopback connection attempt may take before it is abandoned. */
#define LOOPBACK_CONNECT_TIMEOUT	10

/* Milliseconds to wait for a cancelled statement before closing anyway. */
#define LOOPBACK_CANCEL_WAIT_MS		1000

/* The backend's loopback connection, or NULL when there is none. */
static PGconn *loopback_conn = NULL;

/* Whether loopback_exit_callback has been registered. */
static bool loopback_exit_registered = false;

static PGconn *loopback_get(void);
static PGconn *admin_connect(const char *dbname, const char *failmsg);
static bool loopback_start(PGconn *conn, bool *timed_out);
static char *loopback_socket_dir(void);
static bool loopback_is_usable(PGconn *conn);
static bool loopback_is_idle(PGconn *conn);
static void loopback_cancel(PGconn *conn);
static void loopback_exit_callback(int code, Datum arg);
static void loopback_notice_receiver(void *arg, const PGresult *res);

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
 *		Close the loopback at the end of every transaction that used it.
 *
 * The loopback connects as the bootstrap superuser, so a cached one would
 * hold a superuser connection slot for as long as an application backend
 * lives; many idle application sessions could then exhaust the slots
 * reserved for superusers.  Reconnecting costs a few milliseconds, paid
 * only by transactions that write autonomously (logins, refused tokens,
 * provisioning).  Registered before provisioning's callback, so it runs
 * after it: undoing provisioning at abort still has the connection.
 */
static void
remote_xact_callback(XactEvent event, void *arg)
{
	if (loopback_conn == NULL)
		return;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		remote_loopback_disconnect();
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
	TimestampTz deadline;
	PGresult   *res;
	PGresult   *last = NULL;
	bool		ok = false;

	if (errmsg)
		*errmsg = NULL;
	if (conn == NULL || !loopback_is_idle(conn))
	{
		if (errmsg)
			*errmsg = pstrdup("no usable loopback connection");
		return false;
	}
	if (!PQsendQuery(conn, sql))
	{
		if (errmsg)
			*errmsg = pchomp(PQerrorMessage(conn));
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
				remote_loopback_disconnect();
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
				remote_loopback_disconnect();
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
		loopback_conn = admin_connect(NULL,
									  "could not connect to the central database for an autonomous write");

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
	const char *keywords[9];
	const char *values[9];
	char		port[12];
	char	   *host;
	PGconn	   *conn;
	bool		timed_out;
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
	values[n++] = "-c search_path=pg_catalog,pg_temp -c lock_timeout=10s";
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

	/* As libpqsrv_connect_params does; libpqsrv_disconnect releases it. */
	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg_internal("%s", failmsg),
				 errdetail("There are too many open files on the local server."),
				 errhint("Raise the server's max_files_per_process and/or \"ulimit -n\" limits.")));

	/* expand_dbname = 0: a database name is never parsed as a conninfo */
	conn = PQconnectStartParams(keywords, values, 0);
	if (conn == NULL)
	{
		ReleaseExternalFD();
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not allocate the loopback connection.")));
	}

	if (!loopback_start(conn, &timed_out))
	{
		char	   *msg;

		if (timed_out)
			msg = psprintf("Connection attempt timed out after %d seconds.",
						   LOOPBACK_CONNECT_TIMEOUT);
		else
			msg = pchomp(PQerrorMessage(conn));
		libpqsrv_disconnect(conn);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg_internal("%s", failmsg),
				 errdetail_log("%s", msg),
				 timed_out ? 0 :
				 errhint("pg_hba.conf must allow the bootstrap superuser on a \"local\" line (trust or peer).")));
	}

	PQsetNoticeReceiver(conn, loopback_notice_receiver, NULL);

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
 * Warnings stay warnings; lower severities become DEBUG1.  This runs inside
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
			 errcontext("message from the loopback connection")));
}
