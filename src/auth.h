/*
 * auth.h
 *	  Private interface of auth.c: the keyring, passwords, login and token
 *	  authentication.  auth.c exports only SQL-callable functions today;
 *	  this header exists for the layout's sake and for later callers.
 */
#ifndef MEDPRO_AUTH_H
#define MEDPRO_AUTH_H

#include "postgres.h"

/* Whether the session's outer role is a superuser or acts as medpro_operator. */
extern bool auth_caller_is_operator(void);

#endif							/* MEDPRO_AUTH_H */
