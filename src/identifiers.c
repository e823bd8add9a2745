/*
 * identifiers.c
 *	  Check digits of the identifiers a French or Spanish clinic deals with:
 *	  SIREN/SIRET, NIF (DNI, NIE, K/L/M, CIF), intra-EU VAT numbers (FR,
 *	  ES), and the social security numbers NIR (FR) and NUSS (ES).  Pure functions,
 *	  IMMUTABLE in SQL; docs/domain.md lists the rules.
 *
 * Only the arithmetic is checked: a number that passes may still not be
 * registered anywhere.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "identifiers.h"

/* Longest normalised identifier accepted (a NIR has 15 characters). */
#define IDENT_MAX_LEN	32

/* SIREN of La Poste, whose establishments do not follow Luhn. */
#define LA_POSTE_SIREN	"356000000"
#define LA_POSTE_HEAD_OFFICE "35600000000048"

/* DNI/NIE control letters, by remainder mod 23. */
static const char dni_letters[] = "TRWAGMYFPDXBNJZSQVHLCKE";

/* CIF control letters, by control digit. */
static const char cif_letters[] = "JABCDEFGHI";

PG_FUNCTION_INFO_V1(medpro_valid_business_number);
PG_FUNCTION_INFO_V1(medpro_valid_vat_number);
PG_FUNCTION_INFO_V1(medpro_valid_ssn);

/*
 * Copy value into out (IDENT_MAX_LEN + 1 bytes) without separators, letters
 * upper-cased.  Returns false for any other character or when too long.
 */
static bool
normalise(const char *value, char *out)
{
	int			n = 0;

	for (; *value; value++)
	{
		char		c = *value;

		if (c == ' ' || c == '.' || c == '-' || c == '/')
			continue;
		if (c >= 'a' && c <= 'z')
			c = c - 'a' + 'A';
		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')))
			return false;
		if (n >= IDENT_MAX_LEN)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	return true;
}

static bool
all_digits(const char *s, int len)
{
	int			i;

	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Value of len digits (len <= 18). */
static uint64
digits_value(const char *s, int len)
{
	uint64		v = 0;
	int			i;

	for (i = 0; i < len; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* Luhn over a string of digits. */
static bool
luhn(const char *s, int len)
{
	int			sum = 0;
	int			i;

	for (i = 0; i < len; i++)
	{
		int			d = s[len - 1 - i] - '0';

		if (i % 2 == 1)
		{
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return sum % 10 == 0;
}

/* Raise 22023 unless country is FR or ES; returns the upper-case code. */
static const char *
check_country(const char *country)
{
	if (pg_strcasecmp(country, "FR") == 0)
		return "FR";
	if (pg_strcasecmp(country, "ES") == 0)
		return "ES";
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unsupported country \"%.*s\"",
					pg_mbcliplen(country, strlen(country), 16), country),
			 errhint("Supported countries are FR and ES.")));
	return NULL;				/* keep the compiler quiet */
}

/* ---------------------------------------------------------------------
 * France
 * ---------------------------------------------------------------------
 */

static bool
fr_siren(const char *s)
{
	return strlen(s) == 9 && all_digits(s, 9) && luhn(s, 9);
}

/*
 * SIRET: a valid SIREN and 5 more digits, Luhn over the 14.  La Poste's
 * establishments share one SIREN and do not follow Luhn: their digits add
 * up to a multiple of 5 instead.  Its head office, 35600000000048, is the
 * one La Poste SIRET numbered by Luhn (its digit sum is 26).
 */
static bool
fr_siret(const char *s)
{
	int			sum = 0;
	int			i;

	if (strlen(s) != 14 || !all_digits(s, 14) || !luhn(s, 9))
		return false;
	if (strncmp(s, LA_POSTE_SIREN, 9) != 0 || strcmp(s, LA_POSTE_HEAD_OFFICE) == 0)
		return luhn(s, 14);
	for (i = 0; i < 14; i++)
		sum += s[i] - '0';
	return sum % 5 == 0;
}

/* FR VAT: FR, a two-digit key (12 + 3 * (SIREN mod 97)) mod 97, the SIREN. */
static bool
fr_vat(const char *s)
{
	uint64		siren;
	int			key;

	if (strlen(s) != 13 || strncmp(s, "FR", 2) != 0 || !all_digits(s + 2, 11) ||
		!fr_siren(s + 4))
		return false;
	siren = digits_value(s + 4, 9);
	key = (int) ((12 + 3 * (siren % 97)) % 97);
	return key == (int) digits_value(s + 2, 2);
}

/*
 * NIR: 13 characters then a two-digit key = 97 - (number mod 97).  The
 * first digit is the sex (1, 2, or 3, 4, 7, 8 for provisional numbers);
 * the department at positions 6-7 may be 2A or 2B (Corsica), which count as
 * 19 and 18 in the number.
 */
static bool
fr_nir(const char *s)
{
	char		digits[14];
	uint64		number;
	int			key;

	if (strlen(s) != 15 || strchr("123478", s[0]) == NULL)
		return false;
	memcpy(digits, s, 13);
	digits[13] = '\0';
	if (digits[5] == '2' && (digits[6] == 'A' || digits[6] == 'B'))
	{
		bool		a = digits[6] == 'A';

		digits[5] = '1';
		digits[6] = a ? '9' : '8';
	}
	if (!all_digits(digits, 13) || !all_digits(s + 13, 2))
		return false;
	number = digits_value(digits, 13);
	key = (int) (97 - number % 97);
	return key == (int) digits_value(s + 13, 2);
}

/* ---------------------------------------------------------------------
 * Spain
 * ---------------------------------------------------------------------
 */

/* DNI: 8 digits and the letter of their value mod 23. */
static bool
es_dni(const char *s)
{
	return strlen(s) == 9 && all_digits(s, 8) &&
		s[8] == dni_letters[digits_value(s, 8) % 23];
}

/* NIE: X, Y or Z (0, 1, 2), 7 digits, the DNI letter of the 8 digits. */
static bool
es_nie(const char *s)
{
	const char *p;
	char		dni[10];

	if (strlen(s) != 9 || (p = strchr("XYZ", s[0])) == NULL)
		return false;
	memcpy(dni, s, 10);
	dni[0] = '0' + (char) (p - "XYZ");
	return es_dni(dni);
}

/*
 * NIF of a person without DNI or NIE: K (Spaniards under 14), L (Spaniards
 * living abroad), M (foreigners without NIE), 7 digits, and the DNI letter
 * of those 7 digits.
 */
static bool
es_klm(const char *s)
{
	return strlen(s) == 9 && strchr("KLM", s[0]) != NULL && all_digits(s + 1, 7) &&
		s[8] == dni_letters[digits_value(s + 1, 7) % 23];
}

/*
 * CIF: an entity letter, 7 digits and a control.  The digits in odd
 * positions are doubled (digits of the product added), the others added;
 * control = (10 - sum mod 10) mod 10, written as a digit (A, B, E, H), as
 * the letter JABCDEFGHI[control] (N, P, Q, R, S, W), or either (C, D, F, G,
 * J, U, V).
 */
static bool
es_cif(const char *s)
{
	int			sum = 0;
	int			control;
	int			i;
	char		c;

	if (strlen(s) != 9 || strchr("ABCDEFGHJNPQRSUVW", s[0]) == NULL ||
		!all_digits(s + 1, 7))
		return false;
	for (i = 0; i < 7; i++)
	{
		int			d = s[1 + i] - '0';

		if (i % 2 == 0)
		{
			d *= 2;
			d = d / 10 + d % 10;
		}
		sum += d;
	}
	control = (10 - sum % 10) % 10;
	c = s[8];
	if (strchr("ABEH", s[0]) != NULL)
		return c == '0' + control;
	if (strchr("NPQRSW", s[0]) != NULL)
		return c == cif_letters[control];
	return c == '0' + control || c == cif_letters[control];
}

static bool
es_nif(const char *s)
{
	return es_dni(s) || es_nie(s) || es_klm(s) || es_cif(s);
}

/* ES VAT: ES and a NIF. */
static bool
es_vat(const char *s)
{
	return strncmp(s, "ES", 2) == 0 && es_nif(s + 2);
}

/*
 * NUSS: two digits of province, eight of number, two of control =
 * (province * 10^8 + number) mod 97, or province * 10^7 + number when the
 * number is below 10^7 (the older 7-digit numbers).
 */
static bool
es_nuss(const char *s)
{
	uint64		province;
	uint64		number;
	uint64		base;

	if (strlen(s) != 12 || !all_digits(s, 12))
		return false;
	province = digits_value(s, 2);
	number = digits_value(s + 2, 8);
	base = number < UINT64CONST(10000000) ? province * UINT64CONST(10000000) + number
		: province * UINT64CONST(100000000) + number;
	return (int) (base % 97) == (int) digits_value(s + 10, 2);
}

/* ---------------------------------------------------------------------
 * Entry points
 * ---------------------------------------------------------------------
 */

bool
ident_valid_business_number(const char *country, const char *value)
{
	const char *c = check_country(country);
	char		s[IDENT_MAX_LEN + 1];

	if (!normalise(value, s))
		return false;
	if (strcmp(c, "FR") == 0)
		return fr_siren(s) || fr_siret(s);
	return es_nif(s);
}

bool
ident_valid_vat_number(const char *value)
{
	char		s[IDENT_MAX_LEN + 1];

	if (!normalise(value, s))
		return false;
	return fr_vat(s) || es_vat(s);
}

bool
ident_valid_ssn(const char *country, const char *value)
{
	const char *c = check_country(country);
	char		s[IDENT_MAX_LEN + 1];

	if (!normalise(value, s))
		return false;
	if (strcmp(c, "FR") == 0)
		return fr_nir(s);
	return es_nuss(s);
}

/* SQL: medpro_valid_business_number(country text, value text) RETURNS boolean */
Datum
medpro_valid_business_number(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ident_valid_business_number(text_to_cstring(PG_GETARG_TEXT_PP(0)),
											   text_to_cstring(PG_GETARG_TEXT_PP(1))));
}

/* SQL: medpro_valid_vat_number(value text) RETURNS boolean */
Datum
medpro_valid_vat_number(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ident_valid_vat_number(text_to_cstring(PG_GETARG_TEXT_PP(0))));
}

/* SQL: medpro_valid_ssn(country text, value text) RETURNS boolean */
Datum
medpro_valid_ssn(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ident_valid_ssn(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								   text_to_cstring(PG_GETARG_TEXT_PP(1))));
}
