/*
 * jose.h
 *	  Interface of jose.c: the PostgreSQL-independent core of JWT
 *	  verification (compact-token split, strict base64url, strict JSON,
 *	  header and time-claim policy).  libc only, fixed memory bounds, no
 *	  recursion; the fuzz harness and the parser tests in test/fuzz/ build
 *	  it without PostgreSQL.
 *
 * Every function that checks input returns NULL on success or one of the
 * stable reason strings of docs/jwt.md (static storage).
 */
#ifndef MEDPRO_JOSE_H
#define MEDPRO_JOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest token accepted, in bytes; checked before any decoding. */
#define JOSE_MAX_TOKEN_LEN		8192
/* Largest encoded header accepted, in bytes. */
#define JOSE_MAX_HEADER_LEN		1024
/* Largest JSON text parsed: the decoded size of a maximal segment. */
#define JOSE_MAX_JSON_LEN		(JOSE_MAX_TOKEN_LEN / 4 * 3 + 2)
/* Deepest nesting of objects and arrays accepted. */
#define JOSE_MAX_DEPTH			64

/*
 * Numbers must be storable by a decimal type such as PostgreSQL's numeric:
 * decimal scale at most this (fraction digits minus exponent) ...
 */
#define JOSE_NUMBER_MAX_SCALE	16383
/* ... and decimal weight at most this (integer digits plus exponent). */
#define JOSE_NUMBER_MAX_WEIGHT	131000

/* Time claims must lie in 1970-01-01 .. 9999-12-31T23:59:59Z. */
#define JOSE_MAX_TIME_SECS		INT64_C(253402300799)
#define JOSE_MAX_TIME_USECS		(JOSE_MAX_TIME_SECS * INT64_C(1000000))

/* Unpadded base64url length of n bytes, and the decoded size bound. */
#define JOSE_B64URL_LEN(n)		(((n) * 4 + 2) / 3)
#define JOSE_B64URL_DECODED_MAX(n)	((n) / 4 * 3 + 2)

/* The three segments of a compact JWS, pointing into the token. */
typedef struct JoseSegments
{
	const char *header;
	size_t		header_len;
	const char *payload;
	size_t		payload_len;
	const char *sig;
	size_t		sig_len;
	size_t		signed_len;		/* length of "header.payload" */
} JoseSegments;

/*
 * Size limits and the three-segment structure, before any decoding:
 * "token too large", "malformed", "header too large".
 */
extern const char *jose_split(const char *token, size_t len, JoseSegments *seg);

/*
 * Strict unpadded base64url (RFC 4648 section 5): only A-Z a-z 0-9 - _,
 * no padding, no whitespace, length not 1 mod 4, unused bits of the last
 * character zero.  dst needs JOSE_B64URL_DECODED_MAX(len) + 1 bytes (a NUL
 * is appended).  Returns false for anything else.
 */
extern bool jose_b64url_decode(const char *src, size_t len,
							   uint8_t *dst, size_t *dstlen);
/* Encode n bytes into dst (JOSE_B64URL_LEN(n) bytes, no NUL). */
extern void jose_b64url_encode(const uint8_t *src, size_t n, char *dst);

/* Strict UTF-8 (no NUL byte, no overlong form, no surrogate, <= U+10FFFF). */
extern bool jose_utf8_valid(const uint8_t *s, size_t len);

/* JSON value kinds. */
typedef enum JoseType
{
	JOSE_ABSENT = 0,
	JOSE_OBJECT,
	JOSE_ARRAY,
	JOSE_STRING,
	JOSE_NUMBER,
	JOSE_TRUE,
	JOSE_FALSE,
	JOSE_NULL
} JoseType;

/* The top-level members the parser records (any other is only checked). */
typedef enum JoseMember
{
	JOSE_M_ALG,
	JOSE_M_TYP,
	JOSE_M_KID,
	JOSE_M_CRIT,
	JOSE_M_EXP,
	JOSE_M_NBF,
	JOSE_M_IAT,
	JOSE_M_ISS,
	JOSE_M_SUB,
	JOSE_M_AUD,
	JOSE_M_JTI,
	JOSE_M_COUNT
} JoseMember;

/* A recorded top-level member. */
typedef struct JoseValue
{
	JoseType	type;			/* JOSE_ABSENT when the member is not there */
	const char *raw;			/* the value's JSON text (strings: quoted) */
	size_t		raw_len;
	const char *str;			/* strings: the unescaped UTF-8 (no NUL) */
	size_t		str_len;
	int			nelems;			/* arrays: number of elements */
	int			nstrings;		/* arrays: elements that are strings */
	int			nempty;			/* arrays: elements that are "" */
} JoseValue;

/*
 * Events of a parse, for a consumer that builds its own tree (jwt.c builds
 * jsonb).  Strings and keys are unescaped (pointers into the document or
 * into the parser's arena, valid until the next parse with that parser);
 * numbers are their JSON text.  Any callback may be NULL.  A number out of
 * range is passed as JOSE_NULL (the parse then fails): a consumer may stop
 * trusting what it built as soon as jose_json_parse reports an error.
 */
typedef struct JoseEvents
{
	void		(*begin) (void *arg, JoseType container, bool in_array);
	void		(*end) (void *arg, JoseType container);
	void		(*key) (void *arg, const char *s, size_t len);
	void		(*scalar) (void *arg, JoseType type, const char *s, size_t len,
						   bool in_array);
} JoseEvents;

/* What a document is, for the wording of the reasons. */
typedef enum JoseDoc
{
	JOSE_DOC_HEADER,
	JOSE_DOC_PAYLOAD
} JoseDoc;

/* Parse flag: refuse any character outside ASCII, raw or \u-escaped. */
#define JOSE_ASCII_ONLY		0x01

/* A key of an open object, kept for the duplicate check. */
typedef struct JoseKey
{
	const char *s;
	size_t		len;
} JoseKey;

/*
 * Parser state and arena: fixed size (about 40 kB), no allocation.  One
 * parser holds one document's results at a time.
 */
typedef struct JoseParser
{
	JoseValue	members[JOSE_M_COUNT];
	/* internal */
	size_t		arena_used;
	size_t		nkeys;
	int			depth;
	JoseType	stack[JOSE_MAX_DEPTH + 1];
	size_t		first_key[JOSE_MAX_DEPTH + 1];
	JoseKey		keys[JOSE_MAX_JSON_LEN / 3 + 2];
	char		arena[JOSE_MAX_JSON_LEN + 1];
} JoseParser;

/*
 * Parse the JSON text s[0..len), which must be one RFC 8259 object, and
 * record its top-level members in p->members.  Checks, before reading the
 * text: size ("token too large"), UTF-8 ("invalid UTF-8"), and, when asked,
 * raw bytes outside ASCII ("text not representable in the database
 * encoding"); then, the first found in reading order: nesting ("JSON
 * nested too deeply"), syntax ("header/payload is not a JSON object"),
 * \u0000 ("NUL character in JSON string"), a \u escape outside ASCII when
 * asked (the same reason as raw bytes); and only for a syntactically valid
 * document: duplicate member names at any depth, compared unescaped
 * ("duplicate member in header/payload"), then numbers ("number out of
 * range").  ev may be NULL.
 */
extern const char *jose_json_parse(JoseParser *p, const char *s, size_t len,
								   JoseDoc doc, unsigned flags,
								   const JoseEvents *ev, void *arg);

/*
 * Header policy, on a parsed header: "alg" is a string equal to alg
 * ("missing alg", "algorithm not allowed"); "typ", when present, is JWT or
 * at+jwt ("typ not allowed"); "crit" is refused: "malformed crit header"
 * unless it is a non-empty array of non-empty strings, else "unsupported
 * crit header" (no extension is understood).
 */
extern const char *jose_check_header(const JoseParser *hp, const char *alg);

/*
 * A JSON number (text num[0..len), known to match the grammar) as
 * microseconds since the Unix epoch, rounded up to the microsecond,
 * exactly (no floating point).  Returns false outside 0 ..
 * JOSE_MAX_TIME_SECS.
 */
extern bool jose_number_to_usecs(const char *num, size_t len, int64_t *usecs);

/* The time claims, as read. */
typedef struct JoseTimes
{
	int64_t		exp;			/* microseconds since the Unix epoch */
	int64_t		nbf;
	int64_t		iat;
	bool		has_nbf;
	bool		has_iat;
} JoseTimes;

/*
 * The time claims of a parsed payload: exp required, nbf and iat when
 * present, each a number in range ("missing exp", "exp is not a number",
 * "exp is not a valid time", and the same for nbf and iat).
 */
extern const char *jose_read_times(const JoseParser *pp, JoseTimes *t);

/*
 * Do the claims (as jose_read_times sets them) hold at now (microseconds
 * since the Unix epoch, any value) with leeway microseconds (any value; a
 * negative one counts as 0)?  "expired", "not yet valid", "issued in the future" or
 * NULL.  Needs no parse: a cache of verified tokens can keep the JoseTimes.
 */
extern const char *jose_times_hold(const JoseTimes *t, int64_t now, int64_t leeway);

/* Both of the above; t (may be NULL) receives the claims. */
extern const char *jose_check_times(const JoseParser *pp, int64_t now,
									int64_t leeway, JoseTimes *t);

/*
 * A token taken apart: segments, decoded bytes, and the parsed header.
 * About 94 kB; the caller owns it (jwt.c keeps one per backend).
 */
typedef struct JoseToken
{
	JoseSegments seg;
	size_t		header_len;
	size_t		payload_len;
	size_t		sig_len;
	uint8_t		header[JOSE_B64URL_DECODED_MAX(JOSE_MAX_HEADER_LEN) + 1];
	uint8_t		payload[JOSE_MAX_JSON_LEN + 1];
	uint8_t		sig[JOSE_MAX_JSON_LEN + 1];
	JoseParser	hp;				/* the header's members */
	JoseParser	pp;				/* the payload's, after jose_token_claims */
	JoseTimes	times;			/* its time claims, once read */
} JoseToken;

/*
 * Everything that comes before the signature check: split, base64url of
 * the three segments, header JSON (events in hev, may be NULL), and, when
 * alg is not NULL, the header policy.  The payload is not parsed.
 */
extern const char *jose_token_open(JoseToken *t, const char *token, size_t len,
								   const char *alg, unsigned flags,
								   const JoseEvents *hev, void *harg);

/*
 * Only the split and the header (base64url and JSON), for a caller that
 * needs the header before it knows the key (e.g. its "kid").
 */
extern const char *jose_token_header(JoseToken *t, const char *token, size_t len,
									 unsigned flags, const JoseEvents *hev,
									 void *harg);

/*
 * Everything after it: the payload JSON (events in pev, may be NULL) and
 * the time policy.  Call only once the signature has been found valid.
 */
extern const char *jose_token_claims(JoseToken *t, int64_t now, int64_t leeway,
									 unsigned flags, JoseTimes *times,
									 const JoseEvents *pev, void *parg);

#endif							/* MEDPRO_JOSE_H */
