/*
 * provision.h
 *	  Private interface of provision.c: creating clinic roles and databases
 *	  as part of the caller's transaction.
 */
#ifndef MEDPRO_PROVISION_H
#define MEDPRO_PROVISION_H

#include "postgres.h"

/* Register the transaction callbacks that undo provisioning on abort. */
extern void provision_init(void);

/* Fault injection for tests: the step at which provisioning fails, or NULL. */
extern char *medpro_debug_provision_fail;
/* Whether new clinic databases are cloned from the template (else replayed). */
extern bool medpro_clinic_template;

#endif							/* MEDPRO_PROVISION_H */
