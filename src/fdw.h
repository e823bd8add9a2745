/*
 * fdw.h
 *	  Private interface of fdw.c: medpro_fdw, the routing foreign-data
 *	  wrapper behind the clinic.* relations.
 *
 * fdw.c has no C callers; its entry points are the SQL functions below,
 * declared by sql/ext/70_routing.sql.
 *
 *	medpro.fdw_handler() RETURNS fdw_handler
 *	medpro.fdw_validator(text[], oid) RETURNS void
 *
 * Options it understands (checked by the validator):
 *	server		schema_version 'latest' | '<n>' | '0'
 *	table		table_name '<clinic table>' (default: the foreign table's
 *				name), soft_delete 'true' | 'false' (default false)
 *	column		mask 'hide' | 'last2' (masked for every application role
 *				but admin and doctor; see docs/routing.md), encrypted 'true'
 *				(stored encrypted: fieldcrypt.h)
 */
#ifndef MEDPRO_FDW_H
#define MEDPRO_FDW_H

#include "postgres.h"
#include "fmgr.h"

extern Datum medpro_fdw_handler(PG_FUNCTION_ARGS);
extern Datum medpro_fdw_validator(PG_FUNCTION_ARGS);

#endif							/* MEDPRO_FDW_H */
