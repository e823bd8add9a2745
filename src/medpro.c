/*
 * medpro.c
 *	  Library entry point: _PG_init and the medpro.* settings.
 *
 * Everything else lives in one file per concern, each with its private
 * header in src/.  Settings
 * that decide whether a token is accepted are superuser-only, so that a
 * client cannot widen them for itself.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "audit.h"
#include "crypto.h"
#include "medpro.h"
#include "provision.h"
#include "remote.h"
#include "routecache.h"
#include "tenant.h"

PG_MODULE_MAGIC;

char	   *medpro_master_key_file = NULL;
int			medpro_jwt_leeway = 30;
char	   *medpro_jwt_issuer = NULL;
char	   *medpro_jwt_audience = NULL;
int			medpro_token_lifetime = 3600;
int			medpro_max_cached_connections = 16;
int			medpro_fetch_size = 100;
bool		medpro_remote_estimates = true;
int			medpro_clinic_rate_limit = 0;
int			medpro_login_max_failures = 5;
int			medpro_login_lockout = 900;
int			medpro_audit_retention_days = 0;

void		_PG_init(void);

static void
master_key_file_assign(const char *newval, void *extra)
{
	crypto_forget_master_key();
}

void
_PG_init(void)
{
	DefineCustomStringVariable("medpro.master_key_file",
							   "Path of the file holding medpro's 256-bit master key (64 hex digits).",
							   "The file must be mode 0600, owned by the server's user and outside the data directory.",
							   &medpro_master_key_file,
							   NULL,
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_DISALLOW_IN_AUTO_FILE | GUC_NOT_IN_SAMPLE,
							   NULL, master_key_file_assign, NULL);

	DefineCustomIntVariable("medpro.jwt_leeway",
							"Seconds of clock skew allowed when checking exp, nbf and iat.",
							NULL,
							&medpro_jwt_leeway,
							30, 0, 3600,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("medpro.jwt_issuer",
							   "The iss claim medpro puts in its tokens and requires of them.",
							   NULL,
							   &medpro_jwt_issuer,
							   "medpro",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("medpro.jwt_audience",
							   "When set, the aud claim medpro puts in its tokens and requires of them.",
							   NULL,
							   &medpro_jwt_audience,
							   NULL,
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("medpro.token_lifetime",
							"Seconds an access token from medpro_login stays valid.",
							NULL,
							&medpro_token_lifetime,
							3600, 60, 7 * 24 * 3600,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("medpro.max_cached_connections",
							"Clinic connections one backend keeps open (least recently used are closed first).",
							NULL,
							&medpro_max_cached_connections,
							16, 1, 1000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("medpro.fetch_size",
							"Rows fetched per round trip by the routing foreign-data wrapper.",
							NULL,
							&medpro_fetch_size,
							100, 1, 100000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("medpro.remote_estimates",
							 "Asks the clinic database's planner for the row estimates of queries that join relations.",
							 "Only under a tenant context of a clinic; one EXPLAIN per statement shape, cached for five minutes.",
							 &medpro_remote_estimates,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("medpro.clinic_rate_limit",
							"Authenticated transactions per second allowed per clinic; 0 disables the limit.",
							"Needs medpro in shared_preload_libraries.",
							&medpro_clinic_rate_limit,
							0, 0, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("medpro.login_max_failures",
							"Consecutive failed logins after which an account is locked.",
							NULL,
							&medpro_login_max_failures,
							5, 1, 1000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("medpro.login_lockout",
							"Seconds an account stays locked after too many failed logins.",
							NULL,
							&medpro_login_lockout,
							900, 1, 7 * 24 * 3600,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("medpro.audit_retention_days",
							"Days audit rows are kept before medpro_audit_prune() may delete them; 0 keeps them for ever.",
							NULL,
							&medpro_audit_retention_days,
							0, 0, 36500,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("medpro.clinic_template",
							 "Clone new clinic databases from the template database.",
							 "When off, a new clinic database is created empty and every migration is replayed into it.",
							 &medpro_clinic_template,
							 true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("medpro.debug_provision_fail",
							   "For tests: the provisioning step at which to inject a failure.",
							   NULL,
							   &medpro_debug_provision_fail,
							   NULL,
							   PGC_SUSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("medpro");

	tenant_init();
	audit_init();
	/* remote before provision: its callbacks run in reverse order */
	remote_init();
	remote_clinic_init();
	routecache_init();
	provision_init();
}
