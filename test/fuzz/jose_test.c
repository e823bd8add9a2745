/*
 * jose_test.c
 *	  Unit tests of src/jose.c outside PostgreSQL, built with ASan and UBSan
 *	  (test/fuzz/run.sh).  Hostile inputs (deep nesting, megabyte headers,
 *	  NUL bytes, invalid UTF-8, non-canonical base64url, padding) must be
 *	  rejected with the documented reason, quickly, and without touching
 *	  memory outside the fixed buffers.  Prints "jose_test: N passed, M
 *	  failed" and exits non-zero on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jose.h"

static int passed;
static int failed;

static JoseParser P;
static JoseToken T;

static void
ok(int cond, const char *what, int line)
{
	if (cond)
		passed++;
	else
	{
		failed++;
		fprintf(stderr, "FAILED (line %d): %s\n", line, what);
	}
}

#define OK(cond) ok((cond), #cond, __LINE__)

/* reason r is the expected e (both may be NULL) */
static int
same(const char *r, const char *e)
{
	if (r == NULL || e == NULL)
		return r == e;
	return strcmp(r, e) == 0;
}

static const char *
parse(const char *json)
{
	return jose_json_parse(&P, json, strlen(json), JOSE_DOC_PAYLOAD, 0, NULL, NULL);
}

static const char *
parse_len(const char *json, size_t len)
{
	return jose_json_parse(&P, json, len, JOSE_DOC_PAYLOAD, 0, NULL, NULL);
}

#define PARSE(json, expect) \
	ok(same(parse(json), (expect)), "parse " #json " -> " #expect, __LINE__)

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
b64(const char *s, uint8_t *out, size_t *n)
{
	return jose_b64url_decode(s, strlen(s), out, n);
}

static void
test_base64url(void)
{
	uint8_t		buf[64];
	uint8_t		raw[48];
	char		enc[80];
	size_t		n;
	size_t		len;

	OK(b64("e30", buf, &n) && n == 2 && memcmp(buf, "{}", 2) == 0);
	OK(b64("", buf, &n) && n == 0);
	OK(!b64("e30=", buf, &n));	/* padding */
	OK(!b64("e3==", buf, &n));
	OK(!b64("AA==", buf, &n));
	OK(!b64("e3+0", buf, &n));	/* standard alphabet */
	OK(!b64("e3/0", buf, &n));
	OK(!b64("e3 0", buf, &n));	/* whitespace */
	OK(!b64("e30\n", buf, &n));
	OK(!b64("A", buf, &n));		/* length 1 mod 4 */
	OK(!b64("AAAAA", buf, &n));
	OK(!b64("AB", buf, &n));	/* non-canonical tail bits */
	OK(!b64("AAB", buf, &n));
	OK(!b64("e31", buf, &n));
	OK(b64("AA", buf, &n) && n == 1 && buf[0] == 0);
	OK(b64("AAA", buf, &n) && n == 2);
	OK(b64("_-8", buf, &n) && n == 2 && buf[0] == 0xFF && buf[1] == 0xEF);
	{
		const char nul[] = "e3\0w";

		OK(!jose_b64url_decode(nul, 4, buf, &n));	/* NUL byte */
	}
	OK(!b64("\xc3\xa9" "30", buf, &n));	/* non-ASCII */

	/* every length round-trips, and the encoding is the only one accepted */
	for (len = 0; len <= sizeof(raw); len++)
	{
		size_t		i;
		int			good = 1;

		for (i = 0; i < len; i++)
			raw[i] = (uint8_t) (i * 37 + len);
		jose_b64url_encode(raw, len, enc);
		enc[JOSE_B64URL_LEN(len)] = '\0';
		if (!b64(enc, buf, &n) || n != len || memcmp(buf, raw, len) != 0)
			good = 0;
		ok(good, "base64url round trip", __LINE__);
	}
}

static void
test_utf8(void)
{
	OK(jose_utf8_valid((const uint8_t *) "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\x89", 10));
	OK(!jose_utf8_valid((const uint8_t *) "\xc0\x80", 2));	/* overlong NUL */
	OK(!jose_utf8_valid((const uint8_t *) "\xc1\xbf", 2));
	OK(!jose_utf8_valid((const uint8_t *) "\xe0\x80\x80", 3));
	OK(!jose_utf8_valid((const uint8_t *) "\xe0\x9f\xbf", 3));
	OK(!jose_utf8_valid((const uint8_t *) "\xf0\x80\x80\x80", 4));
	OK(!jose_utf8_valid((const uint8_t *) "\xf0\x8f\xbf\xbf", 4));
	OK(!jose_utf8_valid((const uint8_t *) "\xed\xa0\x80", 3));	/* surrogate */
	OK(!jose_utf8_valid((const uint8_t *) "\xed\xbf\xbf", 3));
	OK(jose_utf8_valid((const uint8_t *) "\xed\x9f\xbf", 3));
	OK(!jose_utf8_valid((const uint8_t *) "\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	OK(!jose_utf8_valid((const uint8_t *) "\xf5\x80\x80\x80", 4));
	OK(jose_utf8_valid((const uint8_t *) "\xf4\x8f\xbf\xbf", 4));
	OK(!jose_utf8_valid((const uint8_t *) "\x80", 1));	/* stray continuation */
	OK(!jose_utf8_valid((const uint8_t *) "\xc3", 1));	/* truncated */
	OK(!jose_utf8_valid((const uint8_t *) "\xe2\x82", 2));
	OK(!jose_utf8_valid((const uint8_t *) "\xc3\x28", 2));
	OK(!jose_utf8_valid((const uint8_t *) "a\0b", 3));	/* NUL byte */
	OK(!jose_utf8_valid((const uint8_t *) "\xff", 1));
}

static void
test_json_syntax(void)
{
	PARSE("{}", NULL);
	PARSE(" \t\r\n{ \"a\" : [ 1 , -0.5e+3 , true , false , null , \"x\" , { } , [ ] ] }\r\n", NULL);
	PARSE("", "payload is not a JSON object");
	PARSE("[]", "payload is not a JSON object");
	PARSE("\"x\"", "payload is not a JSON object");
	PARSE("null", "payload is not a JSON object");
	PARSE("{", "payload is not a JSON object");
	PARSE("{\"a\":1", "payload is not a JSON object");
	PARSE("{\"a\":1,}", "payload is not a JSON object");
	PARSE("{\"a\" 1}", "payload is not a JSON object");
	PARSE("{a:1}", "payload is not a JSON object");
	PARSE("{'a':1}", "payload is not a JSON object");
	PARSE("{\"a\":1}x", "payload is not a JSON object");
	PARSE("{\"a\":1}{}", "payload is not a JSON object");
	PARSE("{\"a\":[1,]}", "payload is not a JSON object");
	PARSE("{\"a\":[1 2]}", "payload is not a JSON object");
	PARSE("{\"a\":tru}", "payload is not a JSON object");
	PARSE("{\"a\":truex}", "payload is not a JSON object");
	PARSE("{\"a\":NaN}", "payload is not a JSON object");
	PARSE("{\"a\":Infinity}", "payload is not a JSON object");
	PARSE("{\"a\":-Infinity}", "payload is not a JSON object");
	/* numbers */
	PARSE("{\"a\":01}", "payload is not a JSON object");
	PARSE("{\"a\":1.}", "payload is not a JSON object");
	PARSE("{\"a\":.5}", "payload is not a JSON object");
	PARSE("{\"a\":-}", "payload is not a JSON object");
	PARSE("{\"a\":+1}", "payload is not a JSON object");
	PARSE("{\"a\":1e}", "payload is not a JSON object");
	PARSE("{\"a\":1e+}", "payload is not a JSON object");
	PARSE("{\"a\":0x10}", "payload is not a JSON object");
	PARSE("{\"a\":-0}", NULL);
	PARSE("{\"a\":1E400}", NULL);
	PARSE("{\"a\":1e100000}", NULL);
	PARSE("{\"a\":1e-100000}", "number out of range");
	PARSE("{\"a\":1e999999999999999999999}", "number out of range");
	PARSE("{\"a\":1e-999999999999999999999}", "number out of range");
	/* strings */
	PARSE("{\"a\":\"\t\"}", "payload is not a JSON object");	/* raw control */
	PARSE("{\"a\":\"\\x\"}", "payload is not a JSON object");
	PARSE("{\"a\":\"\\u12\"}", "payload is not a JSON object");
	PARSE("{\"a\":\"\\u12g4\"}", "payload is not a JSON object");
	PARSE("{\"a\":\"abc}", "payload is not a JSON object");
	PARSE("{\"a\":\"\\\"}", "payload is not a JSON object");
	PARSE("{\"a\":\"\\ud800\"}", "payload is not a JSON object");	/* lone high */
	PARSE("{\"a\":\"\\udc00\"}", "payload is not a JSON object");	/* lone low */
	PARSE("{\"a\":\"\\ud800\\u0041\"}", "payload is not a JSON object");
	PARSE("{\"a\":\"\\ud83d\\ude00\"}", NULL);
	PARSE("{\"a\":\"\\/\\b\\f\\n\\r\\t\\\\\\\"\"}", NULL);
	/* NUL */
	PARSE("{\"a\":\"\\u0000\"}", "NUL character in JSON string");
	PARSE("{\"\\u0000\":1}", "NUL character in JSON string");
	OK(same(parse_len("{\"a\":\"\0\"}", 8), "invalid UTF-8"));	/* raw NUL */
	/* UTF-8 */
	PARSE("{\"a\":\"\xc3\xa9\"}", NULL);
	PARSE("{\"a\":\"\xc0\xae\"}", "invalid UTF-8");
	PARSE("{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8");
	PARSE("{\"a\":\"\xff\"}", "invalid UTF-8");
	PARSE("{\"a\":1} \xc3", "invalid UTF-8");	/* invalid UTF-8 wins */
	/* ASCII only */
	OK(same(jose_json_parse(&P, "{\"a\":\"\xc3\xa9\"}", 10, JOSE_DOC_HEADER, JOSE_ASCII_ONLY, NULL, NULL),
			"text not representable in the database encoding"));
	OK(same(jose_json_parse(&P, "{\"a\":\"\\u00e9\"}", 14, JOSE_DOC_HEADER, JOSE_ASCII_ONLY, NULL, NULL),
			"text not representable in the database encoding"));
	OK(same(jose_json_parse(&P, "{\"a\":\"\\u007f\"}", 14, JOSE_DOC_HEADER, JOSE_ASCII_ONLY, NULL, NULL), NULL));
	/* precedence (docs/jwt.md): a raw non-ASCII byte before nesting and syntax ... */
	OK(same(jose_json_parse(&P, "{\"a\":x,\"b\":\"\xc3\xa9\"}", 16, JOSE_DOC_HEADER, JOSE_ASCII_ONLY, NULL, NULL),
			"text not representable in the database encoding"));
	/* ... but an escape outside ASCII only where it is read */
	OK(same(jose_json_parse(&P, "{\"a\":x,\"b\":\"\\u00e9\"}", 20, JOSE_DOC_HEADER, JOSE_ASCII_ONLY, NULL, NULL),
			"header is not a JSON object"));
	/* header wording */
	OK(same(jose_json_parse(&P, "[]", 2, JOSE_DOC_HEADER, 0, NULL, NULL), "header is not a JSON object"));
	OK(same(jose_json_parse(&P, "{\"a\":1,\"a\":1}", 13, JOSE_DOC_HEADER, 0, NULL, NULL), "duplicate member in header"));
}

static void
test_json_duplicates(void)
{
	char		big[8192];
	int			i;
	size_t		n;

	PARSE("{\"a\":1,\"a\":1}", "duplicate member in payload");
	PARSE("{\"a\":1,\"\\u0061\":2}", "duplicate member in payload");
	PARSE("{\"x\":{\"b\":1,\"b\":2}}", "duplicate member in payload");
	PARSE("{\"x\":[{\"y\":1},{\"y\":1,\"y\":1}]}", "duplicate member in payload");
	PARSE("{\"x\":{\"b\":1},\"y\":{\"b\":1},\"b\":1}", NULL);
	PARSE("{\"ab\":1,\"a\":1,\"b\":1,\"ba\":1}", NULL);
	/* duplicate beats a bad number, syntax beats both */
	PARSE("{\"a\":1e-100000,\"a\":1}", "duplicate member in payload");
	PARSE("{\"a\":1,\"a\":1,}", "payload is not a JSON object");

	/* many members: the sorting path */
	n = 0;
	n += sprintf(big + n, "{");
	for (i = 0; i < 500; i++)
		n += sprintf(big + n, "%s\"k%d\":%d", i ? "," : "", i, i);
	strcpy(big + n, "}");
	PARSE(big, NULL);
	big[n] = '\0';
	n += sprintf(big + n, ",\"k250\":0}");
	PARSE(big, "duplicate member in payload");
}

static void
test_json_limits(void)
{
	static char buf[1 << 20];
	char		doc[512];
	double		t0;
	int			i;
	size_t		n;

	/* 64 levels are fine, 65 are not */
	n = sprintf(doc, "{\"x\":");
	for (i = 0; i < 63; i++)
		doc[n++] = '[';
	for (i = 0; i < 63; i++)
		doc[n++] = ']';
	doc[n++] = '}';
	doc[n] = '\0';
	PARSE(doc, NULL);
	n = sprintf(doc, "{\"x\":");
	for (i = 0; i < 64; i++)
		doc[n++] = '[';
	for (i = 0; i < 64; i++)
		doc[n++] = ']';
	doc[n++] = '}';
	doc[n] = '\0';
	PARSE(doc, "JSON nested too deeply");

	/* as deep as the size limit allows, unclosed: refused at level 65 */
	t0 = now_ms();
	buf[0] = '{';
	buf[1] = '"';
	buf[2] = 'x';
	buf[3] = '"';
	buf[4] = ':';
	memset(buf + 5, '[', JOSE_MAX_JSON_LEN - 5);
	OK(same(parse_len(buf, JOSE_MAX_JSON_LEN), "JSON nested too deeply"));
	memset(buf + 5, '{', JOSE_MAX_JSON_LEN - 5);
	OK(same(parse_len(buf, JOSE_MAX_JSON_LEN), "payload is not a JSON object"));
	for (i = 5; i + 5 <= JOSE_MAX_JSON_LEN; i += 5)
		memcpy(buf + i, "{\"a\":", 5);
	OK(same(parse_len(buf, i), "JSON nested too deeply"));

	/* a megabyte document is refused before it is read */
	memset(buf, ' ', sizeof(buf));
	buf[0] = '{';
	buf[sizeof(buf) - 1] = '}';
	OK(same(parse_len(buf, sizeof(buf)), "token too large"));
	/* the largest document accepted: a long string */
	n = sprintf(buf, "{\"s\":\"");
	memset(buf + n, 'a', JOSE_MAX_JSON_LEN - n - 2);
	memcpy(buf + JOSE_MAX_JSON_LEN - 2, "\"}", 2);
	OK(same(parse_len(buf, JOSE_MAX_JSON_LEN), NULL));
	OK(same(parse_len(buf, JOSE_MAX_JSON_LEN + 1), "token too large"));
	/* all escapes: the arena holds them */
	n = sprintf(buf, "{\"s\":\"");
	while (n + 8 < JOSE_MAX_JSON_LEN)
		n += sprintf(buf + n, "\\u00e9");
	n += sprintf(buf + n, "\"}");
	OK(same(parse_len(buf, n), NULL));
	OK(P.members[JOSE_M_COUNT - 1].type == JOSE_ABSENT);
	/* as many empty keys as fit: all duplicates */
	n = sprintf(buf, "{");
	while (n + 8 < JOSE_MAX_JSON_LEN)
		n += sprintf(buf + n, "\"\":0,");
	n += sprintf(buf + n, "\"\":0}");
	OK(same(parse_len(buf, n), "duplicate member in payload"));
	/* as many distinct keys as fit */
	n = sprintf(buf, "{");
	for (i = 0; n + 16 < JOSE_MAX_JSON_LEN; i++)
		n += sprintf(buf + n, "\"%x\":0,", i);
	n += sprintf(buf + n, "\"z\":0}");
	OK(same(parse_len(buf, n), NULL));
	/* and all that in bounded time, sanitizers included */
	OK(now_ms() - t0 < 2000);
}

static void
test_members(void)
{
	const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k\\u0031\",\"crit\":[\"a\",\"\",3],\"x\":{\"alg\":1}}";
	const char *p = "{\"exp\":1700000000.9,\"iss\":\"me\",\"aud\":[\"a\",\"b\"],\"sub\":\"u\",\"nested\":{\"exp\":\"no\"}}";

	OK(same(jose_json_parse(&P, h, strlen(h), JOSE_DOC_HEADER, 0, NULL, NULL), NULL));
	OK(P.members[JOSE_M_ALG].type == JOSE_STRING && P.members[JOSE_M_ALG].str_len == 5 &&
	   memcmp(P.members[JOSE_M_ALG].str, "HS256", 5) == 0);
	OK(P.members[JOSE_M_KID].type == JOSE_STRING && P.members[JOSE_M_KID].str_len == 2 &&
	   memcmp(P.members[JOSE_M_KID].str, "k1", 2) == 0);
	OK(P.members[JOSE_M_CRIT].type == JOSE_ARRAY && P.members[JOSE_M_CRIT].nelems == 3 &&
	   P.members[JOSE_M_CRIT].nstrings == 2 && P.members[JOSE_M_CRIT].nempty == 1);
	OK(P.members[JOSE_M_CRIT].raw_len == strlen("[\"a\",\"\",3]"));
	OK(P.members[JOSE_M_EXP].type == JOSE_ABSENT);

	OK(same(parse(p), NULL));
	OK(P.members[JOSE_M_EXP].type == JOSE_NUMBER && P.members[JOSE_M_EXP].raw_len == 12);
	OK(P.members[JOSE_M_AUD].type == JOSE_ARRAY && P.members[JOSE_M_AUD].nelems == 2 &&
	   P.members[JOSE_M_AUD].nstrings == 2);
	OK(P.members[JOSE_M_AUD].raw_len == 9 && memcmp(P.members[JOSE_M_AUD].raw, "[\"a\",\"b\"]", 9) == 0);
	OK(P.members[JOSE_M_ISS].type == JOSE_STRING && P.members[JOSE_M_SUB].type == JOSE_STRING);
	OK(P.members[JOSE_M_ALG].type == JOSE_ABSENT);
}

static const char *
header(const char *json, const char *alg)
{
	const char *r = jose_json_parse(&P, json, strlen(json), JOSE_DOC_HEADER, 0, NULL, NULL);

	return r ? r : jose_check_header(&P, alg);
}

#define HEADER(json, expect) \
	ok(same(header(json, "HS256"), (expect)), "header " #json " -> " #expect, __LINE__)

static void
test_header_policy(void)
{
	HEADER("{\"alg\":\"HS256\"}", NULL);
	HEADER("{}", "missing alg");
	HEADER("{\"alg\":null}", "algorithm not allowed");
	HEADER("{\"alg\":\"none\"}", "algorithm not allowed");
	HEADER("{\"alg\":\"hs256\"}", "algorithm not allowed");
	HEADER("{\"alg\":\"HS2560\"}", "algorithm not allowed");
	HEADER("{\"alg\":\"HS25\"}", "algorithm not allowed");
	HEADER("{\"alg\":\"HS\\u0032\\u0035\\u0036\"}", NULL);
	/* typ: JWT or at+jwt, media-type rules */
	HEADER("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", NULL);
	HEADER("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", NULL);
	HEADER("{\"alg\":\"HS256\",\"typ\":\"application/jwt\"}", NULL);
	HEADER("{\"alg\":\"HS256\",\"typ\":\"Application/JWT\"}", NULL);
	HEADER("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", NULL);
	HEADER("{\"alg\":\"HS256\",\"typ\":\"AT+JWT\"}", NULL);
	HEADER("{\"alg\":\"HS256\",\"typ\":\"application/at+jwt\"}", NULL);
	HEADER("{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", "typ not allowed");
	HEADER("{\"alg\":\"HS256\",\"typ\":\"JWT \"}", "typ not allowed");
	HEADER("{\"alg\":\"HS256\",\"typ\":\"\"}", "typ not allowed");
	HEADER("{\"alg\":\"HS256\",\"typ\":\"application/\"}", "typ not allowed");
	HEADER("{\"alg\":\"HS256\",\"typ\":\"text/jwt\"}", "typ not allowed");
	HEADER("{\"alg\":\"HS256\",\"typ\":\"secevent+jwt\"}", "typ not allowed");
	HEADER("{\"alg\":\"HS256\",\"typ\":null}", "typ not allowed");
	HEADER("{\"alg\":\"HS256\",\"typ\":[\"JWT\"]}", "typ not allowed");
	/* crit: malformed, else not understood */
	HEADER("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "unsupported crit header");
	HEADER("{\"alg\":\"HS256\",\"crit\":[\"b64\",\"x\"]}", "unsupported crit header");
	HEADER("{\"alg\":\"HS256\",\"crit\":[]}", "malformed crit header");
	HEADER("{\"alg\":\"HS256\",\"crit\":\"exp\"}", "malformed crit header");
	HEADER("{\"alg\":\"HS256\",\"crit\":[1]}", "malformed crit header");
	HEADER("{\"alg\":\"HS256\",\"crit\":[\"\"]}", "malformed crit header");
	HEADER("{\"alg\":\"HS256\",\"crit\":[[\"x\"]]}", "malformed crit header");
	HEADER("{\"alg\":\"HS256\",\"crit\":null}", "malformed crit header");
	/* alg is checked first */
	HEADER("{\"alg\":\"RS256\",\"typ\":\"x\",\"crit\":1}", "algorithm not allowed");
	HEADER("{\"alg\":\"HS256\",\"typ\":\"x\",\"crit\":1}", "typ not allowed");
}

static int64_t
usecs(const char *num, int *good)
{
	int64_t		v = -1;

	*good = jose_number_to_usecs(num, strlen(num), &v);
	return v;
}

#define USECS(num, expect) \
	do { int g_; int64_t v_ = usecs(num, &g_); \
		 ok(g_ && v_ == INT64_C(expect), "usecs " #num " = " #expect, __LINE__); } while (0)
#define NOT_TIME(num) \
	do { int g_; (void) usecs(num, &g_); ok(!g_, "usecs " #num " refused", __LINE__); } while (0)

static const char *
times(const char *payload, int64_t now)
{
	const char *r = parse(payload);

	return r ? r : jose_check_times(&P, now, 0, NULL);
}

#define TIMES(payload, now, expect) \
	ok(same(times(payload, INT64_C(now)), (expect)), "times " #payload " at " #now " -> " #expect, __LINE__)

static void
test_times(void)
{
	USECS("0", 0);
	USECS("-0", 0);
	USECS("1700000000", 1700000000000000);
	USECS("1700000000.9", 1700000000900000);
	USECS("1700000000.0000001", 1700000000000001);	/* rounded up */
	USECS("1700000000.000000000000000000001", 1700000000000001);
	USECS("17e8", 1700000000000000);
	USECS("1.7E9", 1700000000000000);
	USECS("17000000000000e-4", 1700000000000000);
	USECS("0.000001", 1);
	USECS("0.0000001", 1);
	USECS("1e-400", 1);
	USECS("253402300799", 253402300799000000);
	NOT_TIME("253402300799.0000001");
	NOT_TIME("253402300800");
	NOT_TIME("-1");
	NOT_TIME("-0.0000001");
	NOT_TIME("1e20");
	NOT_TIME("1e19");
	NOT_TIME("9223372036854775807");
	NOT_TIME("18446744073709551616");
	NOT_TIME("1e100000000");
	NOT_TIME("1e999999999999999999999999");
	NOT_TIME("");
	NOT_TIME("x");
	NOT_TIME("1x");

	/* a float exp: valid up to its last microsecond */
	TIMES("{\"exp\":1700000000.9}", 1700000000899999, NULL);
	TIMES("{\"exp\":1700000000.9}", 1700000000900000, "expired");
	TIMES("{\"exp\":1700000000}", 1699999999999999, NULL);
	TIMES("{\"exp\":1700000000}", 1700000000000000, "expired");
	TIMES("{}", 0, "missing exp");
	TIMES("{\"x\":{\"exp\":1}}", 0, "missing exp");
	TIMES("{\"exp\":\"1700000000\"}", 0, "exp is not a number");
	TIMES("{\"exp\":null}", 0, "exp is not a number");
	TIMES("{\"exp\":[1]}", 0, "exp is not a number");
	TIMES("{\"exp\":1e20}", 0, "exp is not a valid time");
	TIMES("{\"exp\":-5}", 0, "exp is not a valid time");
	TIMES("{\"exp\":1e1000}", 0, "exp is not a valid time");
	TIMES("{\"exp\":1e100000000}", 0, "number out of range");
	TIMES("{\"exp\":2000000000,\"nbf\":true}", 0, "nbf is not a number");
	TIMES("{\"exp\":2000000000,\"nbf\":1e13}", 0, "nbf is not a valid time");
	TIMES("{\"exp\":2000000000,\"iat\":{}}", 0, "iat is not a number");
	TIMES("{\"exp\":2000000000,\"iat\":-1}", 0, "iat is not a valid time");
	TIMES("{\"exp\":2000000000,\"nbf\":1000}", 999999999, "not yet valid");
	TIMES("{\"exp\":2000000000,\"nbf\":1000}", 1000000000, NULL);
	TIMES("{\"exp\":2000000000,\"iat\":1000}", 1000000000, NULL);
	TIMES("{\"exp\":2000000000,\"iat\":1000.000001}", 1000000000, "issued in the future");
	/* read once, checked at any time (what a cache of verified tokens does) */
	{
		JoseTimes	t;

		OK(same(parse("{\"exp\":1700000000.9,\"nbf\":1600000000,\"iat\":1600000000}"), NULL));
		OK(same(jose_read_times(&P, &t), NULL));
		OK(t.exp == INT64_C(1700000000900000) && t.has_nbf && t.has_iat &&
		   t.nbf == INT64_C(1600000000000000));
		OK(same(jose_times_hold(&t, INT64_C(1700000000899999), 0), NULL));
		OK(same(jose_times_hold(&t, INT64_C(1700000000900000), 0), "expired"));
		OK(same(jose_times_hold(&t, INT64_C(1599999999999999), 0), "not yet valid"));
		OK(same(jose_times_hold(&t, INT64_C(1700000000900000), -5), "expired"));
		/* any now and leeway: no overflow (UBSan), no wrap-around */
		OK(same(jose_times_hold(&t, INT64_MAX, 0), "expired"));
		OK(same(jose_times_hold(&t, INT64_MAX, INT64_C(3600000000)), "expired"));
		OK(same(jose_times_hold(&t, INT64_MAX, INT64_MAX), NULL));
		OK(same(jose_times_hold(&t, INT64_MIN, 0), "not yet valid"));
		OK(same(jose_times_hold(&t, INT64_MIN, INT64_MAX), "not yet valid"));
		OK(same(jose_times_hold(&t, INT64_C(1600000000000000), INT64_MAX), NULL));
		OK(same(parse("{\"exp\":\"soon\"}"), NULL));
		OK(same(jose_read_times(&P, &t), "exp is not a number"));
	}
	/* leeway moves every boundary */
	OK(same(parse("{\"exp\":100,\"nbf\":50}"), NULL));
	OK(same(jose_check_times(&P, 129999999, 30000000, NULL), NULL));
	OK(same(jose_check_times(&P, 130000000, 30000000, NULL), "expired"));
	OK(same(jose_check_times(&P, 20000000, 30000000, NULL), NULL));
	OK(same(jose_check_times(&P, 19999999, 30000000, NULL), "not yet valid"));
}

static const char *
token(const char *t, const char *alg, int64_t now)
{
	const char *r = jose_token_open(&T, t, strlen(t), alg, 0, NULL, NULL);

	return r ? r : jose_token_claims(&T, now, 0, 0, NULL, NULL, NULL);
}

static void
test_tokens(void)
{
	/* RFC 7515 A.1 (CRLF whitespace in its JSON), at its time */
	const char *a1 = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
	"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	static char big[(1 << 20) + 16];
	double		t0;

	OK(same(token(a1, "HS256", INT64_C(1300819379000000)), NULL));
	OK(T.sig_len == 32 && T.seg.signed_len == strlen(a1) - 44);
	OK(T.pp.members[JOSE_M_ISS].str_len == 3);
	OK(same(token(a1, "HS256", INT64_C(1300819380000000)), "expired"));
	OK(same(token(a1, "HS384", 0), "algorithm not allowed"));
	OK(same(token("", "HS256", 0), "malformed"));
	OK(same(token("abc", "HS256", 0), "malformed"));
	OK(same(token("a.b", "HS256", 0), "malformed"));
	OK(same(token("a.b.c.d", "HS256", 0), "malformed"));
	OK(same(token("e30.e30.", "HS256", 0), "missing alg"));
	OK(same(token("e30=.e30.", "HS256", 0), "bad base64url"));
	OK(same(token("e30.e30=.", "HS256", 0), "bad base64url"));
	OK(same(token("e30.e30.AA==", "HS256", 0), "bad base64url"));
	OK(same(token("e31.e30.", "HS256", 0), "bad base64url"));
	OK(same(token("e30.e30.AB", "HS256", 0), "bad base64url"));
	OK(same(token("eyJhbGciOiJub25lIn0.e30.", "HS256", 0), "algorithm not allowed"));
	/* header JSON from the vectors: {"alg":"HS256"} then payload "Payload" */
	OK(same(token("eyJhbGciOiJIUzI1NiJ9.UGF5bG9hZA.", "HS256", 0), "payload is not a JSON object"));
	/* NUL bytes inside the token */
	OK(same(jose_token_open(&T, "e30.\0.", 6, "HS256", 0, NULL, NULL), "bad base64url"));
	/* a header of NUL bytes, encoded: AAAA is three NULs */
	OK(same(token("AAAA.e30.", "HS256", 0), "invalid UTF-8"));

	/* megabyte tokens and headers: refused before decoding, quickly */
	t0 = now_ms();
	memset(big, 'e', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	big[1 << 19] = '.';
	big[(1 << 19) + 2] = '.';
	OK(same(jose_token_open(&T, big, sizeof(big) - 1, "HS256", 0, NULL, NULL), "token too large"));
	OK(same(jose_token_header(&T, big, sizeof(big) - 1, 0, NULL, NULL), "token too large"));
	memset(big, 'A', JOSE_MAX_TOKEN_LEN);
	big[JOSE_MAX_HEADER_LEN + 1] = '.';
	big[JOSE_MAX_HEADER_LEN + 3] = '.';
	OK(same(jose_token_open(&T, big, JOSE_MAX_TOKEN_LEN, "HS256", 0, NULL, NULL), "header too large"));
	big[JOSE_MAX_HEADER_LEN + 1] = 'A';
	big[JOSE_MAX_HEADER_LEN] = '.';
	big[JOSE_MAX_HEADER_LEN + 3] = '.';
	/* 1024 A's decode to 768 NUL bytes: not UTF-8 */
	OK(same(jose_token_open(&T, big, JOSE_MAX_TOKEN_LEN, "HS256", 0, NULL, NULL), "invalid UTF-8"));
	OK(now_ms() - t0 < 500);
}

int
main(void)
{
	test_base64url();
	test_utf8();
	test_json_syntax();
	test_json_duplicates();
	test_json_limits();
	test_members();
	test_header_policy();
	test_times();
	test_tokens();
	printf("jose_test: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
