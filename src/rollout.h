/*
 * rollout.h
 *	  Private interface of rollout.c: medpro_migrate_all, which rolls the
 *	  pending migrations out to every clinic database over asynchronous
 *	  connections.  Its only entry point is the SQL-callable function; see
 *	  rollout.c for the design and docs/operators.md for its use.
 */
#ifndef MEDPRO_ROLLOUT_H
#define MEDPRO_ROLLOUT_H

#include "postgres.h"
#include "fmgr.h"

extern Datum medpro_migrate_all(PG_FUNCTION_ARGS);

#endif							/* MEDPRO_ROLLOUT_H */
