/*
 * fieldcrypt.h
 *	  Private interface of fieldcrypt.c: columns of clinic tables stored
 *	  encrypted under the clinic's data key (patients.social_security_number).
 *
 * A foreign-table column with the option encrypted 'true' is never sent to
 * the clinic database in clear.  The clinic table holds, instead of it,
 * three columns named after it:
 *
 *	<col>_enc			bytea	AES-256-GCM ciphertext (sealed format of
 *								crypto.h), bound to (clinic, table, column,
 *								row id, key version)
 *	<col>_bidx			text	hex HMAC-SHA256 of the normalised value under
 *								the clinic's index key (the blind index)
 *	<col>_key_version	integer	the medpro.clinic_keys version used
 *
 * and <col> itself stays NULL.  fdw.c calls the hooks below at five points:
 * the remote column list (fetch expression), the remote INSERT / UPDATE
 * targets, the row parameters (encode), the fetched row (decode), and an
 * equality qual on the column (translated to the blind index).  Keys come
 * from medpro.clinic_keys (sealed under the master key), read as the
 * extension owner; unsealed keys are wiped when the scan or modify ends.
 */
#ifndef MEDPRO_FIELDCRYPT_H
#define MEDPRO_FIELDCRYPT_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pathnodes.h"
#include "utils/rel.h"
#include "utils/uuid.h"

/* Remote columns one encrypted column is written to. */
#define FIELDCRYPT_WIDTH	3

/* Per scan or modify: the clinic and its unsealed keys. */
typedef struct FieldCrypt FieldCrypt;

/* Whether any column of rel is encrypted; *flags (palloc'd, by attnum - 1). */
extern bool fieldcrypt_columns(Relation rel, char **flags);

/*
 * Planning (no key needed).
 *
 * fieldcrypt_deparse_fetch: the remote expression that reads encrypted
 * column attnum (qualified by alias unless NULL) as one text value for
 * fieldcrypt_decode.
 * fieldcrypt_deparse_target: for INSERT, append the remote column names of
 * attnum ("c_enc, c_bidx, c_key_version"); for UPDATE (set = true) the
 * assignments from parameters $*paramno onwards.  Advances *paramno.
 * fieldcrypt_qual_column: the attnum of the encrypted column of a qual
 * "column = text value" (Const or Param) on baserel, or 0.
 * fieldcrypt_deparse_qual: append "(c_bidx = $n)" for such a qual, adding
 * its value to *params (always as a new parameter, so call it after every
 * other deparse) and (n, attnum) to *bidx_params.
 */
extern void fieldcrypt_deparse_fetch(StringInfo buf, Relation rel, int attnum,
									 const char *alias);
extern void fieldcrypt_deparse_target(StringInfo buf, Relation rel, int attnum,
									  bool set, int *paramno);
extern int	fieldcrypt_qual_column(Expr *clause, RelOptInfo *baserel, const char *flags);
extern void fieldcrypt_deparse_qual(StringInfo buf, Relation rel, Expr *clause, int attnum,
									List **params, List **bidx_params);

/* Execution: NULL when rel has no encrypted column. */
extern FieldCrypt *fieldcrypt_begin(Relation rel, const pg_uuid_t *clinic);
extern bool fieldcrypt_is_encrypted(FieldCrypt *fc, int attnum);

/* A value fetched by fieldcrypt_deparse_fetch's expression, in clear (or NULL). */
extern char *fieldcrypt_decode(FieldCrypt *fc, int attnum, const char *fetched);

/*
 * The FIELDCRYPT_WIDTH text parameters that store plain (NULL stays NULL)
 * in row row_id: ciphertext ('\x...'), blind index, key version.  The value
 * is normalised first (see docs/security.md).  Creates the clinic's first
 * key when it has none.
 */
extern void fieldcrypt_encode(FieldCrypt *fc, int attnum, const char *plain,
							  const char *row_id, const char **out);

/* A new random (version 4) row id, for an INSERT that gives none. */
extern char *fieldcrypt_new_row_id(void);

/* Replace the parameters listed by fieldcrypt_deparse_qual with their blind index. */
extern void fieldcrypt_translate_params(FieldCrypt *fc, List *bidx_params,
										const char **values);

#endif							/* MEDPRO_FIELDCRYPT_H */
