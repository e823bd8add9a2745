/*
 * deparse.h
 *	  Private interface of deparse.c: which expressions of a query on a
 *	  medpro foreign table may run in the clinic database, and the remote
 *	  SQL that runs them.
 *
 * Only fdw.c calls it.  Everything here works on one foreign table at a
 * time (a base relation): the remote SQL names that table only, as
 * public.<table_name>, so no remote statement can name another clinic's
 * objects (a clinic database holds one clinic).
 */
#ifndef MEDPRO_DEPARSE_H
#define MEDPRO_DEPARSE_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pathnodes.h"
#include "utils/rel.h"

/* Column masks (column option mask). */
#define MASK_NONE	0
#define MASK_HIDE	1			/* NULL */
#define MASK_LAST2	2			/* '*' for every character but the last two */

/*
 * What the deparser knows of a foreign table's columns, indexed by attnum - 1.
 *
 * masks: MASK_* of each column.  An expression that reads a masked column is
 * never shipped, whatever the role: plans do not depend on the role, and a
 * remote comparison would filter (or sort) on the clear value.
 *
 * crypt: encrypted columns (option encrypted, fieldcrypt.h).  The clinic
 * holds only their ciphertext and blind index, so an expression that reads
 * one is never shipped either: the only remote use of such a column is its
 * fetch expression in a base scan's SELECT list (deparse_select) and the
 * blind-index translation of "col = value", which fdw.c adds itself
 * (fieldcrypt_deparse_qual); the clause also stays local.
 */
typedef struct DeparseColumns
{
	Oid			relid;			/* the foreign table */
	int			natts;
	char	   *masks;
	char	   *crypt;
	/* in a join: the relation's range table index and alias, and the other */
	Index		varno;			/* 0: the only relation */
	const char *alias;			/* NULL: columns are not qualified */
	struct DeparseColumns *next;
} DeparseColumns;

/* The columns of a join of two relations: copies of a and b, chained. */
extern DeparseColumns *deparse_join_columns(const DeparseColumns *a, Index varno_a,
											const DeparseColumns *b, Index varno_b);

/* The columns of rel (masks and encrypted flags from the column options), palloc'd. */
extern DeparseColumns *deparse_columns(Relation rel);

/*
 * Whether expr can be evaluated by the clinic database with the same
 * result as locally: Vars of unmasked columns of baserel (a base or, with
 * cols from deparse_join_columns, a join relation), constants,
 * parameters, and built-in immutable operators and functions (comparisons,
 * = ANY, IS [NOT] NULL, LIKE / ILIKE, AND / OR / NOT, casts, lower/upper,
 * ...) whose collations are the default one.  With leak_check, every
 * function must also be leakproof or unable to fail on data (LIKE, lower,
 * ...): such a clause sits above a security barrier (the soft-delete views)
 * and the clinic may evaluate it before the barrier's own qual.
 */
extern bool deparse_is_shippable(Expr *expr, RelOptInfo *baserel,
								 const DeparseColumns *cols, bool leak_check);

/* The entry of cols for range table index varno (the first when not a join). */
extern const DeparseColumns *deparse_columns_of(const DeparseColumns *cols, Index varno);

/*
 * The sort clause "expr ASC|DESC|USING op NULLS FIRST|LAST" of each pathkey,
 * or false when a pathkey cannot be sorted by the clinic with the local
 * semantics (non-default collation, non-built-in operator, masked column).
 * With buf NULL only checks.
 */
extern bool deparse_order_by(StringInfo buf, List *pathkeys, RelOptInfo *baserel,
							 const DeparseColumns *cols, List **params);

/*
 * Append the SQL of a shippable expression; Params are added to *params
 * (a Param already there reuses its number) and printed as $n::type.  With
 * params NULL (a statement for EXPLAIN, which has no parameter values) a
 * Param is printed as ((SELECT NULL::type)::type), a value the clinic's
 * planner does not know.
 */
extern void deparse_expr(StringInfo buf, Expr *expr, const DeparseColumns *cols,
						 List **params);

/*
 * Whether the text form of a value of type depends on DateStyle,
 * IntervalStyle or extra_float_digits (so it must be printed under fixed
 * settings to be read back the same by the clinic).
 */
extern bool deparse_output_needs_modes(Oid type);

/*
 * While on, deparse_expr sends constants as parameters ($n::type, the
 * value in *params) instead of literals, so that a statement prepared on a
 * clinic connection is the same text for every value (the scans that run
 * as prepared statements).  The caller turns it off again, also on error.
 */
extern void deparse_lift_constants(bool on);

/* "public.<table_name>" of a foreign table (option table_name). */
extern void deparse_table(StringInfo buf, Oid relid);

/*
 * SELECT <columns> FROM public.<table> [WHERE <conds>]: columns are those of
 * attrs_used (every column for a whole-row reference; "NULL" when none;
 * an encrypted column as fieldcrypt's fetch expression), *retrieved_attrs
 * gets their attnums.  conds are shippable clauses (Expr);
 * with soft_delete, (deleted_at IS NULL) comes first.
 */
extern void deparse_select(StringInfo buf, Relation rel, Bitmapset *attrs_used,
						   List *conds, bool soft_delete, const DeparseColumns *cols,
						   List **retrieved_attrs, List **params);

/*
 * " FROM public.<table> [WHERE (deleted_at IS NULL) AND <conds>]", as in
 * deparse_select.
 */
extern void deparse_from_where(StringInfo buf, Oid relid, List *conds,
							   bool soft_delete, const DeparseColumns *cols,
							   List **params);

/*
 * Whether an aggregate of baserel's rows can be computed by the clinic:
 * count(*), count, sum, min, max of shippable arguments, without DISTINCT,
 * ORDER BY or FILTER, with default collations.  deparse_expr writes it as
 * pg_catalog.<name>(<args>).
 */
extern bool deparse_aggregate_is_shippable(Aggref *agg, RelOptInfo *baserel,
										   const DeparseColumns *cols);

#endif							/* MEDPRO_DEPARSE_H */
