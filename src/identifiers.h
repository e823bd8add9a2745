/*
 * identifiers.h
 *	  Private interface of identifiers.c: check digits of French and Spanish
 *	  business, VAT and social security numbers (DESIGN 5.6).
 */
#ifndef MEDPRO_IDENTIFIERS_H
#define MEDPRO_IDENTIFIERS_H

#include "postgres.h"

/*
 * Each takes a NUL-terminated value as typed (spaces, '.', '-' and '/' are
 * ignored, letters are case-insensitive) and returns whether its check
 * digits are right.  country is "FR" or "ES" (case-insensitive); any other
 * country raises 22023.
 */
extern bool ident_valid_business_number(const char *country, const char *value);
extern bool ident_valid_vat_number(const char *value);
extern bool ident_valid_ssn(const char *country, const char *value);

#endif							/* MEDPRO_IDENTIFIERS_H */
