/*
 * medpro.h
 *	  Settings (GUC variables) shared by every medpro module.
 *
 * The variables are defined and registered in medpro.c (_PG_init); the other
 * modules only read them.
 */
#ifndef MEDPRO_H
#define MEDPRO_H

extern char *medpro_master_key_file;
extern int	medpro_jwt_leeway;
extern char *medpro_jwt_issuer;
extern char *medpro_jwt_audience;
extern int	medpro_token_lifetime;
extern int	medpro_max_cached_connections;
extern int	medpro_fetch_size;
extern bool medpro_remote_estimates;
extern int	medpro_clinic_rate_limit;
extern int	medpro_login_max_failures;
extern int	medpro_login_lockout;
extern int	medpro_audit_retention_days;

#endif							/* MEDPRO_H */
