/*
 * fuzz_jose.c
 *	  libFuzzer target for src/jose.c, outside PostgreSQL.
 *
 * Each input is tried four ways: as a compact token through the whole
 * HMAC-free pipeline (split, base64url, header JSON and policy, payload JSON
 * and time policy), as a JSON document (header and payload wording, UTF-8
 * and ASCII-only), as base64url, and as a time-claim number.  Besides the
 * sanitizers' checks it asserts properties that must hold for any input:
 * parse events are balanced and within the depth limit, every string handed
 * out is valid UTF-8 without NUL, recorded members point into the document
 * or the parser's arena, a parse is deterministic, and a base64url string
 * that decodes re-encodes to itself (one encoding per byte string).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jose.h"

#define CHECK(cond) \
	do { if (!(cond)) { fprintf(stderr, "property failed: %s (%s:%d)\n", \
								#cond, __FILE__, __LINE__); abort(); } } while (0)

static JoseToken tok;
static JoseParser parser;
static JoseParser parser2;
static uint8_t b64buf[JOSE_B64URL_DECODED_MAX(JOSE_MAX_TOKEN_LEN) + 1];
static char b64back[JOSE_MAX_TOKEN_LEN + 4];

/* Event checker: balance, depth, clean strings. */
typedef struct Watch
{
	int			depth;
	int			maxdepth;
	long		events;
} Watch;

static void
w_begin(void *arg, JoseType c, bool in_array)
{
	Watch	   *w = arg;

	CHECK(c == JOSE_OBJECT || c == JOSE_ARRAY);
	w->depth++;
	if (w->depth > w->maxdepth)
		w->maxdepth = w->depth;
	CHECK(w->depth <= JOSE_MAX_DEPTH);
	CHECK(!in_array || w->depth > 1);
	w->events++;
}

static void
w_end(void *arg, JoseType c)
{
	Watch	   *w = arg;

	CHECK(c == JOSE_OBJECT || c == JOSE_ARRAY);
	CHECK(w->depth > 0);
	w->depth--;
	w->events++;
}

static void
w_string(const char *s, size_t len)
{
	CHECK(s != NULL || len == 0);
	CHECK(len == 0 || memchr(s, '\0', len) == NULL);
	CHECK(jose_utf8_valid((const uint8_t *) s, len));
}

static void
w_key(void *arg, const char *s, size_t len)
{
	Watch	   *w = arg;

	CHECK(w->depth > 0);
	w_string(s, len);
	w->events++;
}

static void
w_scalar(void *arg, JoseType t, const char *s, size_t len, bool in_array)
{
	Watch	   *w = arg;

	CHECK(w->depth > 0);
	CHECK(t >= JOSE_STRING && t <= JOSE_NULL);
	CHECK(!in_array || w->depth > 0);
	if (t == JOSE_STRING)
		w_string(s, len);
	if (t == JOSE_NUMBER)
	{
		int64_t		us;

		CHECK(len > 0);
		/* any number the parser accepts is safe to convert */
		(void) jose_number_to_usecs(s, len, &us);
	}
	w->events++;
}

static const JoseEvents watch = {w_begin, w_end, w_key, w_scalar};

/* A recorded member must point into the document or the arena. */
static int
inside(const char *p, size_t len, const char *base, size_t blen)
{
	return p >= base && p + len <= base + blen;
}

static void
check_members(const JoseParser *p, const char *doc, size_t len)
{
	int			i;

	for (i = 0; i < JOSE_M_COUNT; i++)
	{
		const JoseValue *v = &p->members[i];

		if (v->type == JOSE_ABSENT)
			continue;
		CHECK(inside(v->raw, v->raw_len, doc, len));
		CHECK(v->raw_len > 0);
		if (v->type == JOSE_STRING)
		{
			CHECK(inside(v->str, v->str_len, doc, len) ||
				  inside(v->str, v->str_len, p->arena, sizeof(p->arena)));
			w_string(v->str, v->str_len);
		}
		if (v->type == JOSE_ARRAY)
			CHECK(v->nstrings <= v->nelems && v->nempty <= v->nstrings);
	}
}

/*
 * The time policy at any instant and leeway, the extremes of int64 and
 * values taken from the input: UBSan fails on any overflow, and a claim
 * can only be past, future or neither consistently with the ordering.
 */
static void
fuzz_times(const JoseParser *p, const uint8_t *data, size_t size)
{
	JoseTimes	t;
	int64_t		v[6] = {INT64_MIN, INT64_MAX, 0, -1, 0, 0};
	size_t		i;
	size_t		j;

	if (jose_read_times(p, &t) != NULL)
		return;
	if (size >= 16)
	{
		memcpy(&v[4], data, 8);
		memcpy(&v[5], data + 8, 8);
	}
	for (i = 0; i < 6; i++)
		for (j = 0; j < 6; j++)
		{
			const char *r = jose_times_hold(&t, v[i], v[j]);

			/* a claim that holds at now with no leeway holds with more */
			if (v[j] > 0 && jose_times_hold(&t, v[i], 0) == NULL)
				CHECK(r == NULL);
		}
}

static void
fuzz_json(const uint8_t *data, size_t size, JoseDoc doc, unsigned flags)
{
	Watch		w = {0, 0, 0};
	const char *r1;
	const char *r2;

	r1 = jose_json_parse(&parser, (const char *) data, size, doc, flags, &watch, &w);
	r2 = jose_json_parse(&parser2, (const char *) data, size, doc, flags, NULL, NULL);
	CHECK(r1 == r2);			/* events do not change the verdict */
	if (r1 == NULL)
	{
		CHECK(w.depth == 0 && w.maxdepth >= 1);
		check_members(&parser, (const char *) data, size);
		(void) jose_check_header(&parser, "HS256");
		(void) jose_check_times(&parser, INT64_C(2000000000000000), 30000000, NULL);
		fuzz_times(&parser, data, size);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *) data;
	size_t		n;
	const char *r;

	/* 1. the token pipeline, without the MAC */
	r = jose_token_open(&tok, s, size, "HS256", 0, NULL, NULL);
	if (r == NULL)
	{
		CHECK(tok.seg.signed_len < size);
		check_members(&tok.hp, (const char *) tok.header, tok.header_len);
		r = jose_token_claims(&tok, INT64_C(1700000000000000), 30000000, 0,
							  NULL, &watch, &(Watch) {0, 0, 0});
		if (r == NULL || tok.pp.members[JOSE_M_EXP].type != JOSE_ABSENT)
			check_members(&tok.pp, (const char *) tok.payload, tok.payload_len);
	}
	(void) jose_token_header(&tok, s, size, JOSE_ASCII_ONLY, &watch, &(Watch) {0, 0, 0});

	/* 2. JSON documents */
	fuzz_json(data, size, JOSE_DOC_HEADER, 0);
	fuzz_json(data, size, JOSE_DOC_PAYLOAD, JOSE_ASCII_ONLY);

	/* 3. base64url: strict means canonical */
	if (size <= JOSE_MAX_TOKEN_LEN && jose_b64url_decode(s, size, b64buf, &n))
	{
		CHECK(n <= JOSE_B64URL_DECODED_MAX(size));
		CHECK(JOSE_B64URL_LEN(n) == size);
		jose_b64url_encode(b64buf, n, b64back);
		CHECK(memcmp(b64back, s, size) == 0);
	}

	/* 4. a number as a time claim */
	if (size < 64)
	{
		int64_t		us;

		if (jose_number_to_usecs(s, size, &us))
			CHECK(us >= 0 && us <= JOSE_MAX_TIME_USECS);
	}
	return 0;
}
