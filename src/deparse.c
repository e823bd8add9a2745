/*
 * deparse.c
 *	  The remote SQL of medpro_fdw: which clauses, sort keys and values of a
 *	  query on one clinic table are shipped to the clinic database, and how
 *	  they are written.
 *
 * The rule is "when in doubt, don't ship": an expression is shipped only
 * when the clinic database computes exactly what the local server would.
 * Both are the same PostgreSQL server and the clinic databases are cloned
 * from the central database's template, so built-in types, operators and
 * functions behave alike, and the default collation is the same; anything
 * else (extension or user functions and operators, explicit or
 * non-default collations, volatile or stable functions, masked and
 * encrypted columns) stays local.  See docs/routing.md, "What runs in the clinic database".
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/dependency.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "catalog/pg_type_d.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "foreign/foreign.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "deparse.h"
#include "fieldcrypt.h"

/* Walker state of deparse_is_shippable. */
typedef struct ShipCtx
{
	RelOptInfo *baserel;
	const DeparseColumns *cols;
	bool		leak_check;
	int			conditional;	/* under a later argument of AND / OR */
} ShipCtx;

static bool ship_walker(Node *node, ShipCtx *ctx);
static void deparse_aggref(StringInfo buf, Aggref *agg, const DeparseColumns *cols,
						   List **params);

/* Constants are sent as parameters (deparse_lift_constants). */
static bool lift_constants = false;

/* deparse_expr is under this many later arguments of AND / OR. */
static int	deparse_conditional = 0;

void
deparse_lift_constants(bool on)
{
	lift_constants = on;
}

/* Objects of the initial catalog: the same in every database of the server. */
static bool
is_builtin(Oid oid)
{
	return oid < FirstGenbkiObjectId;
}

/*
 * Whether funcid is unaccent(text) of the contrib extension unaccent: the
 * one function of an extension that is shipped.  Every clinic database has
 * the extension (clinic migration 022) and, on the same server, the same
 * rules file; it is STABLE only because it reads its dictionary, and it
 * cannot fail on a value.
 */
static bool
is_unaccent(Oid funcid)
{
	Oid			ext;
	char	   *extname;
	char	   *name;
	bool		result;

	if (is_builtin(funcid) || get_func_nargs(funcid) != 1 ||
		get_func_rettype(funcid) != TEXTOID)
		return false;
	name = get_func_name(funcid);
	if (name == NULL || strcmp(name, "unaccent") != 0)
		return false;
	ext = getExtensionOfObject(ProcedureRelationId, funcid);
	if (!OidIsValid(ext))
		return false;
	extname = get_extension_name(ext);
	result = extname != NULL && strcmp(extname, "unaccent") == 0;
	return result;
}

/* Whether node, or a node under it, keeps an expression from being a local value. */
static bool
local_value_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	switch (nodeTag(node))
	{
		case T_Var:
		case T_PlaceHolderVar:
		case T_CaseTestExpr:
		case T_CoerceToDomainValue:
		case T_SetToDefault:
		case T_CurrentOfExpr:
		case T_NextValueExpr:
		case T_Aggref:
		case T_WindowFunc:
		case T_GroupingFunc:
		case T_SubPlan:
		case T_AlternativeSubPlan:
		case T_SubLink:
			return true;
		case T_Param:
			return ((Param *) node)->paramkind != PARAM_EXTERN &&
				((Param *) node)->paramkind != PARAM_EXEC;
		default:
			break;
	}
	return expression_tree_walker(node, local_value_walker, context);
}

/*
 * Whether expr is a "local value": an expression of constants and
 * parameters only (no column, aggregate, sub-select or set-returning or
 * volatile function), other than a bare Const or Param, e.g.
 * md5('p' || $1)::uuid or now() - interval '1 day'.  It is computed here
 * when the scan starts (as PostgreSQL computes an index scan's keys) and
 * sent as a parameter: the clinic compares its columns with the value,
 * and a stable function such as now() gives the value it has for the
 * whole local statement.  It reads no row, so it can neither fail on nor
 * leak a soft-deleted one.
 *
 * Only an expression that the clause evaluates whenever it is evaluated is
 * one: not one under the second or a later argument of an AND or OR (see
 * is_conditional_arg), which local evaluation skips once the result is
 * known, e.g. $1::date in ($2 = 'name' AND last_name = $1) OR ($2 = 'born'
 * AND date_of_birth = $1::date): computed at scan start it would fail for
 * a name.  Such an expression is shipped as itself, if it can be.
 */
static bool
is_local_value(Node *node)
{
	if (node == NULL || IsA(node, Const) || IsA(node, Param) || IsA(node, List))
		return false;
	if (!is_builtin(exprType(node)))
		return false;
	return !local_value_walker(node, NULL) &&
		!contain_volatile_functions(node) &&
		!expression_returns_set(node);
}

/*
 * Whether the argument at index argno of node is evaluated only depending
 * on the arguments before it (the second and later ones of AND and OR).
 * Every other node that can be shipped evaluates all its arguments.
 */
static bool
is_conditional_arg(Node *node, int argno)
{
	return argno > 0 && IsA(node, BoolExpr) && ((BoolExpr *) node)->boolop != NOT_EXPR;
}

/* A collation the clinic applies the same way: none or the default one. */
static bool
collation_ok(Oid collid)
{
	return !OidIsValid(collid) || collid == DEFAULT_COLLATION_OID;
}

/*
 * Functions that cannot fail (or otherwise reveal their arguments) on any
 * stored value, though not marked leakproof: pattern matching with a
 * constant pattern, case folding.
 */
static bool
func_never_leaks(Oid funcid)
{
	const char *name;

	if (get_func_leakproof(funcid))
		return true;
	name = get_func_name(funcid);
	if (name == NULL)
		return false;
	return strcmp(name, "textlike") == 0 || strcmp(name, "textnlike") == 0 ||
		strcmp(name, "texticlike") == 0 || strcmp(name, "texticnlike") == 0 ||
		strcmp(name, "lower") == 0 || strcmp(name, "upper") == 0;
}

DeparseColumns *
deparse_columns(Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	DeparseColumns *cols = palloc0(sizeof(DeparseColumns));
	int			i;

	cols->relid = RelationGetRelid(rel);
	cols->natts = tupdesc->natts;
	cols->masks = palloc0(Max(tupdesc->natts, 1));
	for (i = 0; i < tupdesc->natts; i++)
	{
		ListCell   *lc;

		if (TupleDescAttr(tupdesc, i)->attisdropped)
			continue;
		foreach(lc, GetForeignColumnOptions(cols->relid, i + 1))
		{
			DefElem    *def = lfirst_node(DefElem, lc);

			if (strcmp(def->defname, "mask") == 0)
				cols->masks[i] = strcmp(defGetString(def), "last2") == 0 ?
					MASK_LAST2 : MASK_HIDE;
		}
	}
	(void) fieldcrypt_columns(rel, &cols->crypt);
	return cols;
}

DeparseColumns *
deparse_join_columns(const DeparseColumns *a, Index varno_a,
					 const DeparseColumns *b, Index varno_b)
{
	DeparseColumns *ca = palloc(sizeof(DeparseColumns));
	DeparseColumns *cb = palloc(sizeof(DeparseColumns));

	*ca = *a;
	*cb = *b;
	ca->varno = varno_a;
	ca->alias = psprintf("r%u", varno_a);
	ca->next = cb;
	cb->varno = varno_b;
	cb->alias = psprintf("r%u", varno_b);
	cb->next = NULL;
	return ca;
}

const DeparseColumns *
deparse_columns_of(const DeparseColumns *cols, Index varno)
{
	const DeparseColumns *c;

	for (c = cols; c != NULL; c = c->next)
		if (c->varno == 0 || c->varno == varno)
			return c;
	return NULL;
}

/*
 * The per-column hook: whether column attnum may be read by remote SQL.
 * A masked column never is; nor an encrypted one: the clinic holds only its
 * ciphertext and blind index (its equality with a value is translated by
 * fdw.c, fieldcrypt_deparse_qual, and also checked locally).
 */
static bool
column_is_shippable(const DeparseColumns *cols, AttrNumber attnum)
{
	if (cols == NULL || attnum <= 0 || attnum > cols->natts)
		return false;
	return cols->masks[attnum - 1] == MASK_NONE && !cols->crypt[attnum - 1];
}

static bool
operator_ok(Oid opno, Oid funcid, ShipCtx *ctx)
{
	if (!is_builtin(opno) || !is_builtin(funcid))
		return false;
	if (func_volatile(funcid) != PROVOLATILE_IMMUTABLE)
		return false;
	if (ctx->leak_check && !func_never_leaks(funcid))
		return false;
	return true;
}

static bool
ship_walker(Node *node, ShipCtx *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, List))
		return expression_tree_walker(node, ship_walker, (void *) ctx);

	/* Every node's result and input collation must be the default (or none). */
	if (!collation_ok(exprCollation(node)) || !collation_ok(exprInputCollation(node)))
		return true;
	if (ctx->conditional == 0 && is_local_value(node))
		return false;

	switch (nodeTag(node))
	{
		case T_Var:
			{
				Var		   *var = (Var *) node;

				if (!bms_is_member(var->varno, ctx->baserel->relids) || var->varlevelsup != 0)
					return true;
				if (!column_is_shippable(deparse_columns_of(ctx->cols, var->varno),
										 var->varattno))
					return true;
				return !is_builtin(var->vartype);
			}
		case T_Const:
			return !is_builtin(((Const *) node)->consttype);
		case T_Param:
			{
				Param	   *p = (Param *) node;

				if (p->paramkind != PARAM_EXTERN && p->paramkind != PARAM_EXEC)
					return true;
				return !is_builtin(p->paramtype);
			}
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
			{
				OpExpr	   *op = (OpExpr *) node;

				set_opfuncid(op);
				if (!operator_ok(op->opno, op->opfuncid, ctx) ||
					!is_builtin(op->opresulttype))
					return true;
				break;
			}
		case T_ScalarArrayOpExpr:
			{
				ScalarArrayOpExpr *op = (ScalarArrayOpExpr *) node;

				set_sa_opfuncid(op);
				if (!operator_ok(op->opno, op->opfuncid, ctx))
					return true;
				break;
			}
		case T_FuncExpr:
			{
				FuncExpr   *f = (FuncExpr *) node;

				if (is_unaccent(f->funcid) && !f->funcvariadic &&
					f->funcformat == COERCE_EXPLICIT_CALL)
					break;
				if (!is_builtin(f->funcid) || !is_builtin(f->funcresulttype) ||
					f->funcretset || f->funcvariadic)
					return true;
				if (func_volatile(f->funcid) != PROVOLATILE_IMMUTABLE)
					return true;
				if (ctx->leak_check && !func_never_leaks(f->funcid))
					return true;
				break;
			}
		case T_RelabelType:
			if (!is_builtin(((RelabelType *) node)->resulttype))
				return true;
			break;
		case T_CoerceViaIO:
			/* an input function may fail on data, and may not be immutable */
			{
				CoerceViaIO *c = (CoerceViaIO *) node;

				if (!is_builtin(c->resulttype) || ctx->leak_check ||
					contain_mutable_functions(node))
					return true;
				break;
			}
		case T_BoolExpr:
			{
				ListCell   *lc;

				foreach(lc, ((BoolExpr *) node)->args)
				{
					bool		conditional = is_conditional_arg(node, foreach_current_index(lc));
					bool		refused;

					ctx->conditional += conditional;
					refused = ship_walker((Node *) lfirst(lc), ctx);
					ctx->conditional -= conditional;
					if (refused)
						return true;
				}
				return false;
			}
		case T_NullTest:
			if (((NullTest *) node)->argisrow)
				return true;
			break;
		case T_ArrayExpr:
			{
				ArrayExpr  *a = (ArrayExpr *) node;

				if (a->multidims || !is_builtin(a->array_typeid))
					return true;
				break;
			}
		default:
			return true;
	}
	return expression_tree_walker(node, ship_walker, (void *) ctx);
}

static bool
mutable_func_checker(Oid func_id, void *context)
{
	return func_volatile(func_id) != PROVOLATILE_IMMUTABLE && !is_unaccent(func_id);
}

/*
 * Whether the clinic would run a function that is not immutable in node
 * (contain_mutable_functions, leaving out the local values, computed here);
 * *conditional counts the AND / OR arguments node is under (ship_walker).
 */
static bool
mutable_in_clinic(Node *node, void *context)
{
	int		   *conditional = (int *) context;

	if (node == NULL || (*conditional == 0 && is_local_value(node)))
		return false;
	if (check_functions_in_node(node, mutable_func_checker, NULL))
		return true;
	if (IsA(node, SQLValueFunction) || IsA(node, NextValueExpr))
		return true;
	if (IsA(node, BoolExpr))
	{
		ListCell   *lc;

		foreach(lc, ((BoolExpr *) node)->args)
		{
			bool		c = is_conditional_arg(node, foreach_current_index(lc));
			bool		found;

			*conditional += c;
			found = mutable_in_clinic((Node *) lfirst(lc), context);
			*conditional -= c;
			if (found)
				return true;
		}
		return false;
	}
	return expression_tree_walker(node, mutable_in_clinic, context);
}

bool
deparse_is_shippable(Expr *expr, RelOptInfo *baserel,
					 const DeparseColumns *cols, bool leak_check)
{
	ShipCtx		ctx;
	int			conditional = 0;

	ctx.baserel = baserel;
	ctx.cols = cols;
	ctx.leak_check = leak_check;
	ctx.conditional = 0;
	if (ship_walker((Node *) expr, &ctx))
		return false;
	/* e.g. timestamptz casts of a text constant depend on TimeZone */
	return !mutable_in_clinic((Node *) expr, &conditional);
}

/* ---------------------------------------------------------------------
 * Writing SQL
 * ---------------------------------------------------------------------
 */

/*
 * Whether the text form of a value of type depends on the settings
 * set_transmission_modes fixes (dates, times, intervals, floats, and
 * arrays or ranges of them); uuid, text, integers, numeric, boolean do not.
 */
bool
deparse_output_needs_modes(Oid type)
{
	Oid			elem = get_element_type(type);
	char		category;
	bool		preferred;

	if (OidIsValid(elem))
		type = elem;
	type = getBaseType(type);
	if (type == FLOAT4OID || type == FLOAT8OID)
		return true;
	get_type_category_preferred(type, &category, &preferred);
	return category == TYPCATEGORY_DATETIME || category == TYPCATEGORY_TIMESPAN ||
		category == TYPCATEGORY_RANGE || category == TYPCATEGORY_USER ||
		category == TYPCATEGORY_COMPOSITE || category == TYPCATEGORY_PSEUDOTYPE;
}

/* The type name the clinic reads back the same (built-in types only). */
static char *
type_name(Oid type, int32 typmod)
{
	return format_type_with_typemod(type, typmod);
}

static void
deparse_const(StringInfo buf, Const *c)
{
	Oid			typout;
	bool		isvarlena;
	char	   *v;
	int			nestlevel;

	if (c->constisnull)
	{
		appendStringInfo(buf, "NULL::%s", type_name(c->consttype, c->consttypmod));
		return;
	}
	getTypeOutputInfo(c->consttype, &typout, &isvarlena);
	/* values print the same whatever the local settings are */
	if (deparse_output_needs_modes(c->consttype))
	{
		nestlevel = NewGUCNestLevel();
		(void) set_config_option("datestyle", "ISO", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("intervalstyle", "postgres", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("extra_float_digits", "3", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		v = OidOutputFunctionCall(typout, c->constvalue);
		AtEOXact_GUC(true, nestlevel);
	}
	else
		v = OidOutputFunctionCall(typout, c->constvalue);

	switch (c->consttype)
	{
		case INT4OID:
			/* a bare integer literal is an int4: no cast needed */
			if (strspn(v, "0123456789") == strlen(v))
			{
				appendStringInfoString(buf, v);
				return;
			}
			break;
		case BOOLOID:
			appendStringInfoString(buf, strcmp(v, "t") == 0 ? "true" : "false");
			return;
		default:
			break;
	}
	appendStringInfo(buf, "%s::%s", quote_literal_cstr(v),
					 type_name(c->consttype, c->consttypmod));
}

/*
 * A value computed here, sent as a remote parameter: a Param, or a local
 * value (is_local_value).
 */
static void
deparse_param(StringInfo buf, Expr *p, List **params)
{
	ListCell   *lc;
	int			n = 0;
	int			i = 1;
	const char *t = type_name(exprType((Node *) p), exprTypmod((Node *) p));

	if (params == NULL)
	{
		/* for EXPLAIN: a value the clinic's planner treats as unknown */
		appendStringInfo(buf, "((SELECT NULL::%s)::%s)", t, t);
		return;
	}
	foreach(lc, *params)
	{
		if (equal(p, lfirst(lc)))
		{
			n = i;
			break;
		}
		i++;
	}
	if (n == 0)
	{
		*params = lappend(*params, p);
		n = list_length(*params);
	}
	appendStringInfo(buf, "$%d::%s", n, t);
}

/* "op" of a built-in operator (all live in pg_catalog). */
static void
deparse_operator_name(StringInfo buf, Oid opno)
{
	char	   *name = get_opname(opno);

	if (name == NULL)
		elog(ERROR, "cache lookup failed for operator %u", opno);
	appendStringInfoString(buf, name);
}

static void
deparse_op(StringInfo buf, Oid opno, List *args, const DeparseColumns *cols,
		   List **params)
{
	appendStringInfoChar(buf, '(');
	if (list_length(args) == 2)
	{
		deparse_expr(buf, linitial(args), cols, params);
		appendStringInfoChar(buf, ' ');
		deparse_operator_name(buf, opno);
		appendStringInfoChar(buf, ' ');
		deparse_expr(buf, lsecond(args), cols, params);
	}
	else
	{
		deparse_operator_name(buf, opno);
		appendStringInfoChar(buf, ' ');
		deparse_expr(buf, linitial(args), cols, params);
	}
	appendStringInfoChar(buf, ')');
}

static void
deparse_func(StringInfo buf, FuncExpr *f, const DeparseColumns *cols,
			 List **params)
{
	ListCell   *lc;
	bool		first = true;

	if (f->funcformat == COERCE_IMPLICIT_CAST)
	{
		deparse_expr(buf, linitial(f->args), cols, params);
		return;
	}
	if (f->funcformat == COERCE_EXPLICIT_CAST)
	{
		int32		typmod;

		(void) exprIsLengthCoercion((Node *) f, &typmod);
		appendStringInfoChar(buf, '(');
		deparse_expr(buf, linitial(f->args), cols, params);
		appendStringInfo(buf, ")::%s", type_name(f->funcresulttype, typmod));
		return;
	}
	if (is_unaccent(f->funcid))
		appendStringInfoString(buf, "public.unaccent(");
	else
		appendStringInfo(buf, "pg_catalog.%s(", quote_identifier(get_func_name(f->funcid)));
	foreach(lc, f->args)
	{
		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		deparse_expr(buf, (Expr *) lfirst(lc), cols, params);
	}
	appendStringInfoChar(buf, ')');
}

void
deparse_expr(StringInfo buf, Expr *expr, const DeparseColumns *cols,
			 List **params)
{
	Node	   *node = (Node *) expr;
	ListCell   *lc;

	if (deparse_conditional == 0 && is_local_value(node))
	{
		deparse_param(buf, expr, params);
		return;
	}
	switch (nodeTag(node))
	{
		case T_Var:
			{
				const DeparseColumns *c = deparse_columns_of(cols, ((Var *) node)->varno);

				if (c == NULL)
					elog(ERROR, "variable of an unknown relation in remote SQL");
				/* never in clear in remote SQL (column_is_shippable refuses it) */
				if (((Var *) node)->varattno <= 0 || ((Var *) node)->varattno > c->natts ||
					c->crypt[((Var *) node)->varattno - 1])
					elog(ERROR, "encrypted or system column in remote SQL");
				if (c->alias != NULL)
					appendStringInfo(buf, "%s.", c->alias);
				appendStringInfoString(buf,
									   quote_identifier(get_attname(c->relid,
																	((Var *) node)->varattno,
																	false)));
			}
			break;
		case T_Const:
			if (lift_constants && params != NULL)
				deparse_param(buf, expr, params);
			else
				deparse_const(buf, (Const *) node);
			break;
		case T_Param:
			deparse_param(buf, expr, params);
			break;
		case T_OpExpr:
			deparse_op(buf, ((OpExpr *) node)->opno, ((OpExpr *) node)->args,
					   cols, params);
			break;
		case T_DistinctExpr:
			{
				DistinctExpr *d = (DistinctExpr *) node;

				appendStringInfoChar(buf, '(');
				deparse_expr(buf, linitial(d->args), cols, params);
				appendStringInfoString(buf, " IS DISTINCT FROM ");
				deparse_expr(buf, lsecond(d->args), cols, params);
				appendStringInfoChar(buf, ')');
			}
			break;
		case T_NullIfExpr:
			{
				NullIfExpr *n = (NullIfExpr *) node;

				appendStringInfoString(buf, "NULLIF(");
				deparse_expr(buf, linitial(n->args), cols, params);
				appendStringInfoString(buf, ", ");
				deparse_expr(buf, lsecond(n->args), cols, params);
				appendStringInfoChar(buf, ')');
			}
			break;
		case T_ScalarArrayOpExpr:
			{
				ScalarArrayOpExpr *op = (ScalarArrayOpExpr *) node;

				appendStringInfoChar(buf, '(');
				deparse_expr(buf, linitial(op->args), cols, params);
				appendStringInfoChar(buf, ' ');
				deparse_operator_name(buf, op->opno);
				appendStringInfoString(buf, op->useOr ? " ANY (" : " ALL (");
				deparse_expr(buf, lsecond(op->args), cols, params);
				appendStringInfoString(buf, "))");
			}
			break;
		case T_FuncExpr:
			deparse_func(buf, (FuncExpr *) node, cols, params);
			break;
		case T_Aggref:
			deparse_aggref(buf, (Aggref *) node, cols, params);
			break;
		case T_RelabelType:
			{
				RelabelType *r = (RelabelType *) node;

				if (r->relabelformat == COERCE_IMPLICIT_CAST)
					deparse_expr(buf, r->arg, cols, params);
				else
				{
					appendStringInfoChar(buf, '(');
					deparse_expr(buf, r->arg, cols, params);
					appendStringInfo(buf, ")::%s", type_name(r->resulttype, r->resulttypmod));
				}
			}
			break;
		case T_CoerceViaIO:
			{
				CoerceViaIO *c = (CoerceViaIO *) node;

				appendStringInfoChar(buf, '(');
				deparse_expr(buf, c->arg, cols, params);
				appendStringInfo(buf, ")::%s", type_name(c->resulttype, -1));
			}
			break;
		case T_BoolExpr:
			{
				BoolExpr   *b = (BoolExpr *) node;
				bool		first = true;

				if (b->boolop == NOT_EXPR)
				{
					appendStringInfoString(buf, "(NOT ");
					deparse_expr(buf, linitial(b->args), cols, params);
					appendStringInfoChar(buf, ')');
					break;
				}
				appendStringInfoChar(buf, '(');
				foreach(lc, b->args)
				{
					int			save = deparse_conditional;

					if (!first)
						appendStringInfoString(buf, b->boolop == AND_EXPR ? " AND " : " OR ");
					/* a local value must not be computed ahead here */
					if (is_conditional_arg(node, foreach_current_index(lc)))
						deparse_conditional++;
					PG_TRY();
					{
						deparse_expr(buf, (Expr *) lfirst(lc), cols, params);
					}
					PG_FINALLY();
					{
						deparse_conditional = save;
					}
					PG_END_TRY();
					first = false;
				}
				appendStringInfoChar(buf, ')');
			}
			break;
		case T_NullTest:
			{
				NullTest   *nt = (NullTest *) node;

				appendStringInfoChar(buf, '(');
				deparse_expr(buf, nt->arg, cols, params);
				appendStringInfoString(buf, nt->nulltesttype == IS_NULL ?
									   " IS NULL)" : " IS NOT NULL)");
			}
			break;
		case T_ArrayExpr:
			{
				ArrayExpr  *a = (ArrayExpr *) node;
				bool		first = true;

				appendStringInfoString(buf, "ARRAY[");
				foreach(lc, a->elements)
				{
					if (!first)
						appendStringInfoString(buf, ", ");
					first = false;
					deparse_expr(buf, (Expr *) lfirst(lc), cols, params);
				}
				appendStringInfo(buf, "]::%s", type_name(a->array_typeid, -1));
			}
			break;
		default:
			elog(ERROR, "unsupported expression type for deparse: %d",
				 (int) nodeTag(node));
	}
}

bool
deparse_order_by(StringInfo buf, List *pathkeys, RelOptInfo *baserel,
				 const DeparseColumns *cols, List **params)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, pathkeys)
	{
		PathKey    *pk = (PathKey *) lfirst(lc);
		EquivalenceClass *ec = pk->pk_eclass;
		EquivalenceMember *found = NULL;
		ListCell   *lm;
		Oid			sortop;
		TypeCacheEntry *tc;

		if (ec->ec_has_volatile || !collation_ok(ec->ec_collation))
			return false;
		foreach(lm, ec->ec_members)
		{
			EquivalenceMember *em = (EquivalenceMember *) lfirst(lm);

			if (em->em_is_child || bms_is_empty(em->em_relids) ||
				!bms_is_subset(em->em_relids, baserel->relids))
				continue;
			if (deparse_is_shippable(em->em_expr, baserel, cols, false))
			{
				found = em;
				break;
			}
		}
		if (found == NULL)
			return false;
		sortop = get_opfamily_member(pk->pk_opfamily, found->em_datatype,
									 found->em_datatype, pk->pk_strategy);
		if (!OidIsValid(sortop) || !is_builtin(sortop))
			return false;
		if (buf == NULL)
			continue;

		appendStringInfoString(buf, first ? " ORDER BY " : ", ");
		first = false;
		deparse_expr(buf, found->em_expr, cols, params);
		tc = lookup_type_cache(found->em_datatype, TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
		if (sortop == tc->lt_opr)
			appendStringInfoString(buf, " ASC");
		else if (sortop == tc->gt_opr)
			appendStringInfoString(buf, " DESC");
		else
		{
			appendStringInfoString(buf, " USING OPERATOR(pg_catalog.");
			deparse_operator_name(buf, sortop);
			appendStringInfoChar(buf, ')');
		}
		appendStringInfoString(buf, pk->pk_nulls_first ? " NULLS FIRST" : " NULLS LAST");
	}
	return true;
}

void
deparse_table(StringInfo buf, Oid relid)
{
	ForeignTable *ft = GetForeignTable(relid);
	const char *name = get_rel_name(relid);
	ListCell   *lc;

	foreach(lc, ft->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "table_name") == 0)
			name = defGetString(def);
	}
	appendStringInfo(buf, "public.%s", quote_identifier(name));
}

void
deparse_select(StringInfo buf, Relation rel, Bitmapset *attrs_used,
			   List *conds, bool soft_delete, const DeparseColumns *cols,
			   List **retrieved_attrs, List **params)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	bool		wholerow = bms_is_member(0 - FirstLowInvalidHeapAttributeNumber,
										 attrs_used);
	bool		first = true;
	int			i;

	*retrieved_attrs = NIL;
	appendStringInfoString(buf, "SELECT ");
	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		if (!wholerow &&
			!bms_is_member(i + 1 - FirstLowInvalidHeapAttributeNumber, attrs_used))
			continue;
		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		if (cols->crypt[i])
			fieldcrypt_deparse_fetch(buf, rel, i + 1, NULL);
		else
			appendStringInfoString(buf, quote_identifier(NameStr(att->attname)));
		*retrieved_attrs = lappend_int(*retrieved_attrs, i + 1);
	}
	if (first)
		appendStringInfoString(buf, "NULL");
	deparse_from_where(buf, RelationGetRelid(rel), conds, soft_delete, cols, params);
}

void
deparse_from_where(StringInfo buf, Oid relid, List *conds, bool soft_delete,
				   const DeparseColumns *cols, List **params)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfoString(buf, " FROM ");
	deparse_table(buf, relid);
	if (soft_delete)
	{
		appendStringInfoString(buf, " WHERE (deleted_at IS NULL)");
		first = false;
	}
	foreach(lc, conds)
	{
		appendStringInfoString(buf, first ? " WHERE " : " AND ");
		first = false;
		deparse_expr(buf, (Expr *) lfirst(lc), cols, params);
	}
}

bool
deparse_aggregate_is_shippable(Aggref *agg, RelOptInfo *baserel,
							   const DeparseColumns *cols)
{
	const char *name;
	ListCell   *lc;

	if (agg->aggsplit != AGGSPLIT_SIMPLE || agg->aggkind != AGGKIND_NORMAL ||
		agg->aggdistinct != NIL || agg->aggorder != NIL || agg->aggfilter != NULL ||
		agg->aggvariadic || agg->aggdirectargs != NIL || agg->agglevelsup != 0)
		return false;
	if (!is_builtin(agg->aggfnoid) || !is_builtin(agg->aggtype) ||
		!collation_ok(agg->inputcollid) || !collation_ok(agg->aggcollid))
		return false;
	name = get_func_name(agg->aggfnoid);
	if (name == NULL || (strcmp(name, "count") != 0 && strcmp(name, "sum") != 0 &&
						 strcmp(name, "min") != 0 && strcmp(name, "max") != 0))
		return false;
	/* the arguments are computed on the rows the WHERE kept: no leak check */
	foreach(lc, agg->args)
	{
		TargetEntry *tle = lfirst_node(TargetEntry, lc);

		if (!deparse_is_shippable(tle->expr, baserel, cols, false))
			return false;
	}
	return true;
}

static void
deparse_aggref(StringInfo buf, Aggref *agg, const DeparseColumns *cols,
			   List **params)
{
	ListCell   *lc;
	bool		first = true;

	appendStringInfo(buf, "pg_catalog.%s(", quote_identifier(get_func_name(agg->aggfnoid)));
	if (agg->aggstar)
		appendStringInfoChar(buf, '*');
	foreach(lc, agg->args)
	{
		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		deparse_expr(buf, lfirst_node(TargetEntry, lc)->expr, cols, params);
	}
	appendStringInfoChar(buf, ')');
}
