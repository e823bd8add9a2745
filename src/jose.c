/*
 * jose.c
 *	  The PostgreSQL-independent core of JWT verification (RFC 7515, 7519):
 *	  compact-token split, strict unpadded base64url, a strict RFC 8259 JSON
 *	  parser for headers and payloads, and the header and time-claim policy.
 *
 * This file owns the checks that need no key and no database.  It uses
 * only libc: no allocation (every buffer is in the caller's JoseParser or
 * JoseToken, sized by the fixed limits of jose.h), no recursion (the parser
 * keeps an explicit stack of JOSE_MAX_DEPTH), and work linear in the input
 * apart from sorting an object's keys for the duplicate check.  jwt.c adds
 * the signature check and the jsonb result; test/fuzz/ drives this file
 * directly under libFuzzer and the sanitizers.
 */
#include "jose.h"

#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------
 * Split
 * ----------------------------------------------------------------------
 */

const char *
jose_split(const char *token, size_t len, JoseSegments *seg)
{
	const char *end = token + len;
	const char *dot1;
	const char *dot2;

	if (len > JOSE_MAX_TOKEN_LEN)
		return "token too large";
	if (len == 0)
		return "malformed";
	dot1 = memchr(token, '.', len);
	if (dot1 == NULL)
		return "malformed";
	dot2 = memchr(dot1 + 1, '.', (size_t) (end - (dot1 + 1)));
	if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t) (end - (dot2 + 1))) != NULL)
		return "malformed";
	if ((size_t) (dot1 - token) > JOSE_MAX_HEADER_LEN)
		return "header too large";

	seg->header = token;
	seg->header_len = (size_t) (dot1 - token);
	seg->payload = dot1 + 1;
	seg->payload_len = (size_t) (dot2 - (dot1 + 1));
	seg->sig = dot2 + 1;
	seg->sig_len = (size_t) (end - (dot2 + 1));
	seg->signed_len = (size_t) (dot2 - token);
	return NULL;
}

/* ----------------------------------------------------------------------
 * base64url (RFC 4648 section 5, no padding)
 * ----------------------------------------------------------------------
 */

static const char b64url_alphabet[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of each byte in the alphabet, -1 for every other byte. */
static const signed char b64url_values[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

void
jose_b64url_encode(const uint8_t *src, size_t n, char *dst)
{
	size_t		i;

	for (i = 0; i + 3 <= n; i += 3)
	{
		uint32_t	v = ((uint32_t) src[i] << 16) | ((uint32_t) src[i + 1] << 8) | src[i + 2];

		*dst++ = b64url_alphabet[(v >> 18) & 63];
		*dst++ = b64url_alphabet[(v >> 12) & 63];
		*dst++ = b64url_alphabet[(v >> 6) & 63];
		*dst++ = b64url_alphabet[v & 63];
	}
	if (n - i == 1)
	{
		uint32_t	v = (uint32_t) src[i] << 16;

		*dst++ = b64url_alphabet[(v >> 18) & 63];
		*dst++ = b64url_alphabet[(v >> 12) & 63];
	}
	else if (n - i == 2)
	{
		uint32_t	v = ((uint32_t) src[i] << 16) | ((uint32_t) src[i + 1] << 8);

		*dst++ = b64url_alphabet[(v >> 18) & 63];
		*dst++ = b64url_alphabet[(v >> 12) & 63];
		*dst++ = b64url_alphabet[(v >> 6) & 63];
	}
}

bool
jose_b64url_decode(const char *src, size_t len, uint8_t *dst, size_t *dstlen)
{
	const unsigned char *s = (const unsigned char *) src;
	uint8_t    *out = dst;
	size_t		i;
	size_t		rem = len % 4;

	if (rem == 1)
		return false;
	for (i = 0; i + 4 <= len; i += 4)
	{
		int			a = b64url_values[s[i]];
		int			b = b64url_values[s[i + 1]];
		int			c = b64url_values[s[i + 2]];
		int			d = b64url_values[s[i + 3]];
		uint32_t	v;

		if ((a | b | c | d) < 0)
			return false;
		v = ((uint32_t) a << 18) | ((uint32_t) b << 12) | ((uint32_t) c << 6) | (uint32_t) d;
		*out++ = (uint8_t) (v >> 16);
		*out++ = (uint8_t) (v >> 8);
		*out++ = (uint8_t) v;
	}
	if (rem == 2)
	{
		int			a = b64url_values[s[i]];
		int			b = b64url_values[s[i + 1]];

		/* the low 4 bits of b are not part of any byte: must be zero */
		if ((a | b) < 0 || (b & 0x0F) != 0)
			return false;
		*out++ = (uint8_t) ((a << 2) | (b >> 4));
	}
	else if (rem == 3)
	{
		int			a = b64url_values[s[i]];
		int			b = b64url_values[s[i + 1]];
		int			c = b64url_values[s[i + 2]];

		if ((a | b | c) < 0 || (c & 0x03) != 0)
			return false;
		*out++ = (uint8_t) ((a << 2) | (b >> 4));
		*out++ = (uint8_t) (((b & 0x0F) << 4) | (c >> 2));
	}
	*out = '\0';
	*dstlen = (size_t) (out - dst);
	return true;
}

/* ----------------------------------------------------------------------
 * UTF-8 (RFC 3629)
 * ----------------------------------------------------------------------
 */

bool
jose_utf8_valid(const uint8_t *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		uint8_t		c = s[i];

		if (c >= 0x01 && c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
		{
			if (len - i < 2 || (s[i + 1] & 0xC0) != 0x80)
				return false;
			i += 2;
		}
		else if (c >= 0xE0 && c <= 0xEF)
		{
			uint8_t		lo = (c == 0xE0) ? 0xA0 : 0x80;	/* no overlong */
			uint8_t		hi = (c == 0xED) ? 0x9F : 0xBF;	/* no surrogate */

			if (len - i < 3 || s[i + 1] < lo || s[i + 1] > hi ||
				(s[i + 2] & 0xC0) != 0x80)
				return false;
			i += 3;
		}
		else if (c >= 0xF0 && c <= 0xF4)
		{
			uint8_t		lo = (c == 0xF0) ? 0x90 : 0x80;	/* no overlong */
			uint8_t		hi = (c == 0xF4) ? 0x8F : 0xBF;	/* <= U+10FFFF */

			if (len - i < 4 || s[i + 1] < lo || s[i + 1] > hi ||
				(s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
				return false;
			i += 4;
		}
		else
			return false;		/* NUL, continuation, C0, C1, F5..FF */
	}
	return true;
}

/* ----------------------------------------------------------------------
 * JSON (RFC 8259)
 * ----------------------------------------------------------------------
 */

/* Outcomes of the scanners below. */
typedef enum
{
	J_OK = 0,
	J_SYNTAX,
	J_NUL,
	J_ASCII
} JScan;

static inline bool
j_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline int
j_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at s[0..4) (the caller checked there are 4 bytes). */
static inline int32_t
j_hex4(const char *s)
{
	int			a = j_hex(s[0]);
	int			b = j_hex(s[1]);
	int			c = j_hex(s[2]);
	int			d = j_hex(s[3]);

	if ((a | b | c | d) < 0)
		return -1;
	return (a << 12) | (b << 8) | (c << 4) | d;
}

/*
 * Scan the string starting at s[*pos] == '"'.  On J_OK, *pos is past the
 * closing quote and *out / *outlen is the unescaped text: a pointer into s
 * when there is no escape, else into p's arena.  The input is known to be
 * valid UTF-8, so raw bytes >= 0x80 are taken as they are.
 */
static JScan
j_string(JoseParser *p, const char *s, size_t len, size_t *pos,
		 unsigned flags, const char **out, size_t *outlen)
{
	size_t		i = *pos + 1;
	size_t		start = i;
	char	   *dst;

	/* fast path: no escape */
	for (; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '"')
		{
			*out = s + start;
			*outlen = i - start;
			*pos = i + 1;
			return J_OK;
		}
		if (c == '\\' || c < 0x20)
			break;
	}
	if (i >= len || (unsigned char) s[i] < 0x20)
		return J_SYNTAX;

	/*
	 * Escapes: unescape into the arena.  The unescaped form is never longer
	 * than its JSON text, and each string is copied once, so the arena
	 * (as large as the largest document) cannot overflow; check anyway.
	 */
	if (p->arena_used + (len - start) + 1 > sizeof(p->arena))
		return J_SYNTAX;
	dst = p->arena + p->arena_used;
	memcpy(dst, s + start, i - start);
	*out = dst;
	dst += i - start;
	while (i < len)
	{
		unsigned char c = (unsigned char) s[i];
		uint32_t	cp;

		if (c == '"')
		{
			*outlen = (size_t) (dst - *out);
			p->arena_used += *outlen;
			*pos = i + 1;
			return J_OK;
		}
		if (c < 0x20)
			return J_SYNTAX;
		if (c != '\\')
		{
			*dst++ = (char) c;
			i++;
			continue;
		}
		if (i + 1 >= len)
			return J_SYNTAX;
		switch (s[i + 1])
		{
			case '"':
				*dst++ = '"';
				i += 2;
				continue;
			case '\\':
				*dst++ = '\\';
				i += 2;
				continue;
			case '/':
				*dst++ = '/';
				i += 2;
				continue;
			case 'b':
				*dst++ = '\b';
				i += 2;
				continue;
			case 'f':
				*dst++ = '\f';
				i += 2;
				continue;
			case 'n':
				*dst++ = '\n';
				i += 2;
				continue;
			case 'r':
				*dst++ = '\r';
				i += 2;
				continue;
			case 't':
				*dst++ = '\t';
				i += 2;
				continue;
			case 'u':
				break;
			default:
				return J_SYNTAX;
		}
		/* \uXXXX, possibly a surrogate pair */
		{
			int32_t		u;

			if (len - i < 6 || (u = j_hex4(s + i + 2)) < 0)
				return J_SYNTAX;
			i += 6;
			if (u >= 0xDC00 && u <= 0xDFFF)
				return J_SYNTAX;	/* lone low surrogate */
			if (u >= 0xD800 && u <= 0xDBFF)
			{
				int32_t		lo;

				if (len - i < 6 || s[i] != '\\' || s[i + 1] != 'u' ||
					(lo = j_hex4(s + i + 2)) < 0 || lo < 0xDC00 || lo > 0xDFFF)
					return J_SYNTAX;	/* lone high surrogate */
				i += 6;
				cp = 0x10000 + (((uint32_t) u - 0xD800) << 10) + ((uint32_t) lo - 0xDC00);
			}
			else
				cp = (uint32_t) u;
		}
		if (cp == 0)
			return J_NUL;
		if ((flags & JOSE_ASCII_ONLY) && cp >= 0x80)
			return J_ASCII;
		if (cp < 0x80)
			*dst++ = (char) cp;
		else if (cp < 0x800)
		{
			*dst++ = (char) (0xC0 | (cp >> 6));
			*dst++ = (char) (0x80 | (cp & 0x3F));
		}
		else if (cp < 0x10000)
		{
			*dst++ = (char) (0xE0 | (cp >> 12));
			*dst++ = (char) (0x80 | ((cp >> 6) & 0x3F));
			*dst++ = (char) (0x80 | (cp & 0x3F));
		}
		else
		{
			*dst++ = (char) (0xF0 | (cp >> 18));
			*dst++ = (char) (0x80 | ((cp >> 12) & 0x3F));
			*dst++ = (char) (0x80 | ((cp >> 6) & 0x3F));
			*dst++ = (char) (0x80 | (cp & 0x3F));
		}
	}
	return J_SYNTAX;
}

/*
 * Scan the number at s[*pos] (RFC 8259 grammar).  Sets *storable to
 * whether its scale and weight are within the JOSE_NUMBER_MAX_* limits.
 */
static JScan
j_number(const char *s, size_t len, size_t *pos, bool *storable)
{
	size_t		i = *pos;
	int64_t		nint = 0;
	int64_t		nfrac = 0;
	int64_t		exp10 = 0;

	if (i < len && s[i] == '-')
		i++;
	if (i >= len)
		return J_SYNTAX;
	if (s[i] == '0')
		nint = 1, i++;
	else if (s[i] >= '1' && s[i] <= '9')
	{
		while (i < len && s[i] >= '0' && s[i] <= '9')
			nint++, i++;
	}
	else
		return J_SYNTAX;
	if (i < len && s[i] == '.')
	{
		i++;
		if (i >= len || !(s[i] >= '0' && s[i] <= '9'))
			return J_SYNTAX;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			nfrac++, i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		bool		neg = false;

		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			neg = (s[i++] == '-');
		if (i >= len || !(s[i] >= '0' && s[i] <= '9'))
			return J_SYNTAX;
		while (i < len && s[i] >= '0' && s[i] <= '9')
		{
			/* saturate: anything this large is out of range anyway */
			if (exp10 < INT64_C(100000000))
				exp10 = exp10 * 10 + (s[i] - '0');
			i++;
		}
		if (neg)
			exp10 = -exp10;
	}
	*storable = (nfrac - exp10 <= JOSE_NUMBER_MAX_SCALE &&
				 nint + exp10 <= JOSE_NUMBER_MAX_WEIGHT);
	*pos = i;
	return J_OK;
}

/* Which recorded member a top-level key names, or -1. */
static int
j_member_index(const char *k, size_t len)
{
	if (len == 3)
	{
		switch (k[0])
		{
			case 'a':
				if (k[1] == 'l' && k[2] == 'g')
					return JOSE_M_ALG;
				if (k[1] == 'u' && k[2] == 'd')
					return JOSE_M_AUD;
				break;
			case 't':
				if (k[1] == 'y' && k[2] == 'p')
					return JOSE_M_TYP;
				break;
			case 'k':
				if (k[1] == 'i' && k[2] == 'd')
					return JOSE_M_KID;
				break;
			case 'e':
				if (k[1] == 'x' && k[2] == 'p')
					return JOSE_M_EXP;
				break;
			case 'n':
				if (k[1] == 'b' && k[2] == 'f')
					return JOSE_M_NBF;
				break;
			case 'i':
				if (k[1] == 'a' && k[2] == 't')
					return JOSE_M_IAT;
				if (k[1] == 's' && k[2] == 's')
					return JOSE_M_ISS;
				break;
			case 's':
				if (k[1] == 'u' && k[2] == 'b')
					return JOSE_M_SUB;
				break;
			case 'j':
				if (k[1] == 't' && k[2] == 'i')
					return JOSE_M_JTI;
				break;
		}
	}
	else if (len == 4 && memcmp(k, "crit", 4) == 0)
		return JOSE_M_CRIT;
	return -1;
}

static int
j_key_cmp(const void *a, const void *b)
{
	const JoseKey *x = a;
	const JoseKey *y = b;
	int			c;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	c = memcmp(x->s, y->s, x->len);
	return c;
}

/* Does the slice keys[0..n) hold the same name twice? */
static bool
j_has_duplicate(JoseKey *keys, size_t n)
{
	size_t		i;
	size_t		j;

	if (n < 2)
		return false;
	if (n <= 16)
	{
		for (i = 0; i < n; i++)
			for (j = i + 1; j < n; j++)
				if (keys[i].len == keys[j].len &&
					memcmp(keys[i].s, keys[j].s, keys[i].len) == 0)
					return true;
		return false;
	}
	/* the slice belongs to an object being closed: it may be reordered */
	qsort(keys, n, sizeof(JoseKey), j_key_cmp);
	for (i = 1; i < n; i++)
		if (j_key_cmp(&keys[i - 1], &keys[i]) == 0)
			return true;
	return false;
}

/* Parser states. */
typedef enum
{
	S_VALUE,					/* a value is expected */
	S_OBJ_FIRST,				/* after '{': a key or '}' */
	S_KEY,						/* after ',' in an object: a key */
	S_ARR_FIRST,				/* after '[': a value or ']' */
	S_AFTER						/* after a value */
} JState;

const char *
jose_json_parse(JoseParser *p, const char *s, size_t len, JoseDoc doc,
				unsigned flags, const JoseEvents *ev, void *arg)
{
	const char *not_object = (doc == JOSE_DOC_PAYLOAD) ?
	"payload is not a JSON object" : "header is not a JSON object";
	const char *syntax = not_object;
	bool		duplicate = false;
	bool		bad_number = false;
	int			cur = -1;		/* member whose value is being read */
	size_t		i = 0;
	JState		state = S_VALUE;
	size_t		k;

	for (k = 0; k < JOSE_M_COUNT; k++)
		p->members[k].type = JOSE_ABSENT;	/* the rest is set with it */
	p->arena_used = 0;
	p->nkeys = 0;
	p->depth = 0;

	if (len > JOSE_MAX_JSON_LEN)
		return "token too large";
	if (!jose_utf8_valid((const uint8_t *) s, len))
		return "invalid UTF-8";
	if (flags & JOSE_ASCII_ONLY)
	{
		for (k = 0; k < len; k++)
			if ((unsigned char) s[k] >= 0x80)
				return "text not representable in the database encoding";
	}

	while (i < len && j_space(s[i]))
		i++;
	if (i >= len || s[i] != '{')
		return not_object;

	for (;;)
	{
		while (i < len && j_space(s[i]))
			i++;

		switch (state)
		{
			case S_OBJ_FIRST:
				if (i < len && s[i] == '}')
					goto close;
				/* FALLTHROUGH */
			case S_KEY:
				{
					const char *key;
					size_t		keylen;
					JScan		r;

					if (i >= len || s[i] != '"')
						return syntax;
					r = j_string(p, s, len, &i, flags, &key, &keylen);
					if (r == J_NUL)
						return "NUL character in JSON string";
					if (r == J_ASCII)
						return "text not representable in the database encoding";
					if (r != J_OK)
						return syntax;
					if (p->nkeys >= sizeof(p->keys) / sizeof(p->keys[0]))
						return syntax;	/* cannot happen within the size limit */
					p->keys[p->nkeys].s = key;
					p->keys[p->nkeys].len = keylen;
					p->nkeys++;
					if (p->depth == 1)
						cur = j_member_index(key, keylen);
					if (ev && ev->key)
						ev->key(arg, key, keylen);
					while (i < len && j_space(s[i]))
						i++;
					if (i >= len || s[i] != ':')
						return syntax;
					i++;
					state = S_VALUE;
					continue;
				}

			case S_ARR_FIRST:
				if (i < len && s[i] == ']')
					goto close;
				/* FALLTHROUGH */
			case S_VALUE:
				{
					bool		in_array = p->depth > 0 && p->stack[p->depth] == JOSE_ARRAY;
					JoseValue  *m = NULL;
					JoseType	type;
					const char *str = NULL;
					size_t		strlen_ = 0;
					size_t		start = i;

					if (i >= len)
						return syntax;

					/* a recorded top-level member, or an element of one */
					if (p->depth == 1 && cur >= 0)
						m = &p->members[cur];

					if (s[i] == '{' || s[i] == '[')
					{
						type = (s[i] == '{') ? JOSE_OBJECT : JOSE_ARRAY;
						if (p->depth >= JOSE_MAX_DEPTH)
							return "JSON nested too deeply";
						if (p->depth == 2 && in_array && cur >= 0)
							p->members[cur].nelems++;
						if (m)
						{
							memset(m, 0, sizeof(*m));
							m->type = type;
							m->raw = s + i;
						}
						if (ev && ev->begin)
							ev->begin(arg, type, in_array);
						p->depth++;
						p->stack[p->depth] = type;
						p->first_key[p->depth] = p->nkeys;
						i++;
						state = (type == JOSE_OBJECT) ? S_OBJ_FIRST : S_ARR_FIRST;
						continue;
					}
					if (s[i] == '"')
					{
						JScan		r = j_string(p, s, len, &i, flags, &str, &strlen_);

						if (r == J_NUL)
							return "NUL character in JSON string";
						if (r == J_ASCII)
							return "text not representable in the database encoding";
						if (r != J_OK)
							return syntax;
						type = JOSE_STRING;
					}
					else if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9'))
					{
						bool		storable;

						if (j_number(s, len, &i, &storable) != J_OK)
							return syntax;
						type = JOSE_NUMBER;
						if (!storable)
						{
							/* the parse fails; consumers never see it */
							bad_number = true;
							type = JOSE_NULL;
						}
						str = s + start;
						strlen_ = i - start;
					}
					else if (len - i >= 4 && memcmp(s + i, "true", 4) == 0)
						type = JOSE_TRUE, i += 4;
					else if (len - i >= 5 && memcmp(s + i, "false", 5) == 0)
						type = JOSE_FALSE, i += 5;
					else if (len - i >= 4 && memcmp(s + i, "null", 4) == 0)
						type = JOSE_NULL, i += 4;
					else
						return syntax;

					if (m)
					{
						memset(m, 0, sizeof(*m));
						m->type = type;
						m->raw = s + start;
						m->raw_len = i - start;
						if (type == JOSE_STRING)
						{
							m->str = str;
							m->str_len = strlen_;
						}
					}
					else if (p->depth == 2 && in_array && cur >= 0)
					{
						JoseValue  *a = &p->members[cur];

						a->nelems++;
						if (type == JOSE_STRING)
						{
							a->nstrings++;
							if (strlen_ == 0)
								a->nempty++;
						}
					}
					if (ev && ev->scalar)
						ev->scalar(arg, type, str, strlen_, in_array);
					state = S_AFTER;
					continue;
				}

			case S_AFTER:
				if (p->depth == 0)
				{
					if (i != len)
						return syntax;	/* something after the object */
					if (duplicate)
						return (doc == JOSE_DOC_PAYLOAD) ?
							"duplicate member in payload" :
							"duplicate member in header";
					if (bad_number)
						return "number out of range";
					return NULL;
				}
				if (i >= len)
					return syntax;
				if (s[i] == ',')
				{
					i++;
					state = (p->stack[p->depth] == JOSE_OBJECT) ? S_KEY : S_VALUE;
					continue;
				}
				if ((s[i] == '}' && p->stack[p->depth] == JOSE_OBJECT) ||
					(s[i] == ']' && p->stack[p->depth] == JOSE_ARRAY))
					goto close;
				return syntax;
		}

close:
		/* s[i] closes the container on top of the stack */
		{
			JoseType	type = p->stack[p->depth];

			if (type == JOSE_OBJECT)
			{
				size_t		first = p->first_key[p->depth];

				if (!duplicate &&
					j_has_duplicate(p->keys + first, p->nkeys - first))
					duplicate = true;
				p->nkeys = first;
			}
			if (ev && ev->end)
				ev->end(arg, type);
			p->depth--;
			i++;
			if (p->depth == 1 && cur >= 0 && p->members[cur].raw != NULL)
				p->members[cur].raw_len = (size_t) (s + i - p->members[cur].raw);
			state = S_AFTER;
		}
	}
}

/* ----------------------------------------------------------------------
 * Header policy
 * ----------------------------------------------------------------------
 */

/* ASCII case-insensitive comparison of s[0..len) with the C string lit. */
static bool
j_equal_ci(const char *s, size_t len, const char *lit)
{
	size_t		i;

	if (strlen(lit) != len)
		return false;
	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if (c != lit[i])
			return false;
	}
	return true;
}

/*
 * RFC 7515 4.1.9: "typ" is a media type, compared case-insensitively, and
 * a value without '/' stands for "application/" plus the value.  Accepted:
 * JWT (RFC 7519 5.1) and at+jwt (RFC 9068 2.1), either form.
 */
static bool
j_typ_allowed(const char *s, size_t len)
{
	if (len > 12 && j_equal_ci(s, 12, "application/"))
		s += 12, len -= 12;
	return j_equal_ci(s, len, "jwt") || j_equal_ci(s, len, "at+jwt");
}

const char *
jose_check_header(const JoseParser *hp, const char *alg)
{
	const JoseValue *a = &hp->members[JOSE_M_ALG];
	const JoseValue *typ = &hp->members[JOSE_M_TYP];
	const JoseValue *crit = &hp->members[JOSE_M_CRIT];

	if (a->type == JOSE_ABSENT)
		return "missing alg";
	if (a->type != JOSE_STRING || a->str_len != strlen(alg) ||
		memcmp(a->str, alg, a->str_len) != 0)
		return "algorithm not allowed";
	if (typ->type != JOSE_ABSENT &&
		(typ->type != JOSE_STRING || !j_typ_allowed(typ->str, typ->str_len)))
		return "typ not allowed";
	if (crit->type != JOSE_ABSENT)
	{
		/* RFC 7515 4.1.11: a non-empty array of non-empty names */
		if (crit->type != JOSE_ARRAY || crit->nelems == 0 ||
			crit->nstrings != crit->nelems || crit->nempty != 0)
			return "malformed crit header";
		return "unsupported crit header";
	}
	return NULL;
}

/* ----------------------------------------------------------------------
 * Time claims
 * ----------------------------------------------------------------------
 */

bool
jose_number_to_usecs(const char *num, size_t len, int64_t *usecs)
{
	const char *p = num;
	const char *end = num + len;
	const char *digits;
	const char *mant_end;
	bool		neg = false;
	int64_t		nint = 0;
	int64_t		exp10 = 0;
	int64_t		cut;
	int64_t		k = 0;
	int64_t		acc = 0;
	bool		rest_nonzero = false;

	if (p < end && *p == '-')
		neg = true, p++;
	digits = p;
	while (p < end && *p >= '0' && *p <= '9')
		nint++, p++;
	if (p < end && *p == '.')
	{
		p++;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	mant_end = p;
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		bool		eneg = false;

		p++;
		if (p < end && (*p == '+' || *p == '-'))
			eneg = (*p++ == '-');
		while (p < end && *p >= '0' && *p <= '9')
		{
			if (exp10 < INT64_C(100000000))
				exp10 = exp10 * 10 + (*p - '0');
			p++;
		}
		if (eneg)
			exp10 = -exp10;
	}
	if (nint == 0 || p != end)
		return false;			/* not a JSON number */

	/*
	 * The value is 0.D * 10^(nint + exp10), D the digit string (integer
	 * then fraction digits).  Its first nint + exp10 + 6 digits make the
	 * whole microseconds; any non-zero digit after them rounds up.
	 */
	cut = nint + exp10 + 6;
	for (; digits < mant_end; digits++)
	{
		int			d;

		if (*digits == '.')
			continue;
		d = *digits - '0';
		if (k < cut)
		{
			acc = acc * 10 + d;
			if (acc > JOSE_MAX_TIME_USECS)
				return false;
		}
		else if (d != 0)
			rest_nonzero = true;
		k++;
	}
	/* trailing zeros implied by a positive exponent */
	if (acc != 0)
	{
		for (; k < cut; k++)
		{
			acc *= 10;
			if (acc > JOSE_MAX_TIME_USECS)
				return false;
		}
	}
	if (rest_nonzero)
		acc++;
	if (neg && acc != 0)
		return false;
	if (acc > JOSE_MAX_TIME_USECS)
		return false;
	*usecs = acc;
	return true;
}

/* One time claim: kind and range. */
static const char *
j_time_claim(const JoseValue *v, const char *not_number, const char *not_time,
			 int64_t *usecs)
{
	if (v->type != JOSE_NUMBER)
		return not_number;
	if (!jose_number_to_usecs(v->raw, v->raw_len, usecs))
		return not_time;
	return NULL;
}

const char *
jose_read_times(const JoseParser *pp, JoseTimes *t)
{
	const char *r;

	memset(t, 0, sizeof(*t));
	if (pp->members[JOSE_M_EXP].type == JOSE_ABSENT)
		return "missing exp";
	r = j_time_claim(&pp->members[JOSE_M_EXP], "exp is not a number",
					 "exp is not a valid time", &t->exp);
	if (r)
		return r;
	if (pp->members[JOSE_M_NBF].type != JOSE_ABSENT)
	{
		r = j_time_claim(&pp->members[JOSE_M_NBF], "nbf is not a number",
						 "nbf is not a valid time", &t->nbf);
		if (r)
			return r;
		t->has_nbf = true;
	}
	if (pp->members[JOSE_M_IAT].type != JOSE_ABSENT)
	{
		r = j_time_claim(&pp->members[JOSE_M_IAT], "iat is not a number",
						 "iat is not a valid time", &t->iat);
		if (r)
			return r;
		t->has_iat = true;
	}
	return NULL;
}

const char *
jose_times_hold(const JoseTimes *t, int64_t now, int64_t leeway)
{
	/*
	 * now and leeway may be anything: the claims (0 .. JOSE_MAX_TIME_USECS,
	 * as jose_read_times gives them) carry the arithmetic, which then cannot
	 * overflow.
	 */
	if (leeway < 0)
		leeway = 0;
	/* RFC 7519 4.1.4: valid only while now < exp (plus leeway) */
	if (leeway <= INT64_MAX - t->exp && now >= t->exp + leeway)
		return "expired";
	/* RFC 7519 4.1.5: valid only from nbf (minus leeway) */
	if (t->has_nbf && now < t->nbf - leeway)
		return "not yet valid";
	if (t->has_iat && now < t->iat - leeway)
		return "issued in the future";
	return NULL;
}

const char *
jose_check_times(const JoseParser *pp, int64_t now, int64_t leeway,
				 JoseTimes *t)
{
	JoseTimes	local;
	const char *r;

	if (t == NULL)
		t = &local;
	r = jose_read_times(pp, t);
	return r ? r : jose_times_hold(t, now, leeway);
}

/* ----------------------------------------------------------------------
 * Whole tokens
 * ----------------------------------------------------------------------
 */

const char *
jose_token_open(JoseToken *t, const char *token, size_t len, const char *alg,
				unsigned flags, const JoseEvents *hev, void *harg)
{
	const char *r;

	t->header_len = t->payload_len = t->sig_len = 0;
	r = jose_split(token, len, &t->seg);
	if (r)
		return r;
	/* base64url of the other two segments is pure syntax: check it first */
	if (!jose_b64url_decode(t->seg.sig, t->seg.sig_len, t->sig, &t->sig_len) ||
		!jose_b64url_decode(t->seg.payload, t->seg.payload_len,
							t->payload, &t->payload_len) ||
		!jose_b64url_decode(t->seg.header, t->seg.header_len,
							t->header, &t->header_len))
		return "bad base64url";
	r = jose_json_parse(&t->hp, (const char *) t->header, t->header_len,
						JOSE_DOC_HEADER, flags, hev, harg);
	if (r)
		return r;
	if (alg)
		return jose_check_header(&t->hp, alg);
	return NULL;
}

const char *
jose_token_header(JoseToken *t, const char *token, size_t len, unsigned flags,
				  const JoseEvents *hev, void *harg)
{
	const char *r;

	t->header_len = t->payload_len = t->sig_len = 0;
	r = jose_split(token, len, &t->seg);
	if (r)
		return r;
	if (!jose_b64url_decode(t->seg.header, t->seg.header_len,
							t->header, &t->header_len))
		return "bad base64url";
	return jose_json_parse(&t->hp, (const char *) t->header, t->header_len,
						   JOSE_DOC_HEADER, flags, hev, harg);
}

const char *
jose_token_claims(JoseToken *t, int64_t now, int64_t leeway, unsigned flags,
				  JoseTimes *times, const JoseEvents *pev, void *parg)
{
	const char *r;

	r = jose_json_parse(&t->pp, (const char *) t->payload, t->payload_len,
						JOSE_DOC_PAYLOAD, flags, pev, parg);
	if (r)
		return r;
	return jose_check_times(&t->pp, now, leeway, times ? times : &t->times);
}
