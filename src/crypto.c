/*
 * crypto.c
 *	  Random bytes, constant-time comparison, the master key, sealing of
 *	  secrets with AES-256-GCM and Argon2id password hashing.
 *
 * The master key is 32 bytes read from the file named by
 * medpro.master_key_file (64 hexadecimal digits).  It is read on the first
 * seal or unseal of a backend, after checking that the file is a regular
 * file owned by the server's user, has no group or other permissions and
 * does not live inside the data directory.  The key stays in static backend
 * memory until the setting changes (crypto_forget_master_key, called from
 * the setting's assign hook) or the process exits; it is wiped then.  No
 * message ever shows the key, any part of the file or the file's path (the
 * path goes to the server log only, because the setting is superuser-only).
 * Every master key problem raises ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
 * (55000), so that callers can tell "medpro is not set up" from other
 * failures.
 *
 * A sealed value is
 *		version (1 byte, 1) | nonce (12 bytes) | tag (16 bytes) | ciphertext
 * where ciphertext is as long as the plaintext.  The additional
 * authenticated data is the domain string "medpro-seal-v1", a NUL byte, then
 * the caller's context string, so that a value sealed for one context does
 * not unseal in another one.  OpenSSL contexts live only inside the helpers
 * gcm_encrypt and gcm_decrypt, which never raise an error, so that they are
 * freed on every path.
 *
 * Passwords are hashed with Argon2id (libargon2) at the OWASP parameters and
 * stored as PHC strings.  Verification accepts any Argon2id PHC string
 * within sane cost limits; a hash of a known password with the same
 * parameters backs crypto_password_verify_dummy, so that an unknown user
 * costs the same time as a wrong password.
 */
#include "postgres.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "crypto.h"
#include "medpro.h"

/* Master key */
#define MASTER_KEY_LEN			32
#define MASTER_KEY_HEX_LEN		(2 * MASTER_KEY_LEN)

/* Sealed format */
#define SEAL_VERSION			1
#define SEAL_NONCE_LEN			12
#define SEAL_TAG_LEN			16
#define SEAL_NONCE_OFFSET		1
#define SEAL_TAG_OFFSET			(SEAL_NONCE_OFFSET + SEAL_NONCE_LEN)
#define SEAL_DATA_OFFSET		(SEAL_TAG_OFFSET + SEAL_TAG_LEN)

StaticAssertDecl(SEAL_DATA_OFFSET == CRYPTO_SEAL_OVERHEAD,
				 "CRYPTO_SEAL_OVERHEAD does not match the sealed format");

/* Domain separation string; sizeof includes the NUL that ends it in the AAD. */
static const char seal_domain[] = "medpro-seal-v1";

/* Argon2id parameters of new hashes (OWASP) */
#define PW_T_COST				2
#define PW_M_COST				19456
#define PW_PARALLELISM			1
#define PW_SALT_LEN				16
#define PW_HASH_LEN				32

/* Largest costs accepted from a stored PHC string */
#define PW_MAX_M_COST			262144	/* KiB, 256 MiB */
#define PW_MAX_T_COST			16
#define PW_MAX_PARALLELISM		16

/*
 * Argon2id, m=19456, t=2, p=1, of a fixed password with the fixed salt
 * "medpro.dummy.slt": the target of crypto_password_verify_dummy.  Nothing
 * depends on the password; only the cost matters.
 */
static const char dummy_phc[] =
"$argon2id$v=19$m=19456,t=2,p=1$bWVkcHJvLmR1bW15LnNsdA$"
"hT2H2Ct7a+u9PqpQh5u0Sl7Cn+TbBXvHgEtmoyP+fSE";

/* The cached master key of this backend */
static uint8 master_key[MASTER_KEY_LEN];
static bool master_key_loaded = false;
static bool master_key_exit_registered = false;

/* Outcome of the OpenSSL helpers */
typedef enum GcmResult
{
	GCM_OK,
	GCM_AUTH_FAILED,
	GCM_LIB_ERROR
} GcmResult;

PG_FUNCTION_INFO_V1(medpro_seal_sql);
PG_FUNCTION_INFO_V1(medpro_unseal_sql);
PG_FUNCTION_INFO_V1(medpro_master_key_status);
PG_FUNCTION_INFO_V1(medpro_crypto_password_hash);
PG_FUNCTION_INFO_V1(medpro_crypto_password_verify);


/*
 * crypto_random_bytes
 *	  Fill buf with len bytes from the operating system's strong random
 *	  source; ERROR if it fails.
 */
void
crypto_random_bytes(uint8 *buf, size_t len)
{
	if (len == 0)
		return;
	if (!pg_strong_random(buf, len))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes")));
}

/*
 * crypto_wipe
 *	  Zero len bytes at p; the compiler may not drop the store.
 */
void
crypto_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		explicit_bzero(p, len);
}

/*
 * crypto_ct_equal
 *	  True when the len bytes at a and b are equal; the time taken does not
 *	  depend on where they differ.
 */
bool
crypto_ct_equal(const void *a, const void *b, size_t len)
{
	if (len == 0)
		return true;
	return CRYPTO_memcmp(a, b, len) == 0;
}


/* ---------------------------------------------------------------------
 * The master key
 * ---------------------------------------------------------------------
 */

/* Value of one hexadecimal digit, or -1. */
static int
hex_digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode the contents of a key file (len bytes at text) into out, which
 * receives MASTER_KEY_LEN bytes.  The contents must be exactly 64
 * hexadecimal digits, optionally followed by one newline.  Returns false,
 * leaving out untouched, when they are not.
 */
static bool
decode_key_text(const char *text, size_t len, uint8 *out)
{
	int			i;

	if (len == MASTER_KEY_HEX_LEN + 1 && text[MASTER_KEY_HEX_LEN] == '\n')
		len--;
	if (len != MASTER_KEY_HEX_LEN)
		return false;
	for (i = 0; i < MASTER_KEY_HEX_LEN; i++)
	{
		if (hex_digit_value(text[i]) < 0)
			return false;
	}
	for (i = 0; i < MASTER_KEY_LEN; i++)
		out[i] = (uint8) ((hex_digit_value(text[2 * i]) << 4) |
						  hex_digit_value(text[2 * i + 1]));
	return true;
}

/* True when path (canonical) is dir (canonical) or lies below it. */
static bool
path_is_under(const char *path, const char *dir)
{
	size_t		dlen = strlen(dir);

	while (dlen > 0 && dir[dlen - 1] == '/')
		dlen--;
	if (strncmp(path, dir, dlen) != 0)
		return false;
	return path[dlen] == '/' || path[dlen] == '\0';
}

/* Close fd keeping errno, so that a following %m reports the real error. */
static void
close_keep_errno(int fd)
{
	int			save_errno = errno;

	close(fd);
	errno = save_errno;
}

/*
 * read_master_key_file
 *	  Check the file named by medpro.master_key_file and decode the key in it
 *	  into out (MASTER_KEY_LEN bytes).  Raises ERROR (55000) on any problem,
 *	  leaving out untouched; the file descriptor is closed on every path and
 *	  the buffer that held the file's contents is wiped.
 *
 * The file is opened first and every property is checked on the open
 * descriptor (fstat), so that the file checked is the file read.  A symbolic
 * link is followed; the canonical path of its target is what must lie
 * outside the data directory, and that path must still name the opened
 * file.
 */
static void
read_master_key_file(uint8 *out)
{
	const char *path = medpro_master_key_file;
	int			fd;
	struct stat st;
	struct stat rst;
	char	   *resolved;
	char	   *datadir;
	bool		inside;
	char		buf[MASTER_KEY_HEX_LEN + 2];
	size_t		total;
	bool		ok;

	if (path == NULL || path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("medpro.master_key_file is not set"),
				 errhint("Set medpro.master_key_file in postgresql.conf to the absolute path of a file holding the master key as 64 hexadecimal digits, then reload the configuration.")));
	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("medpro.master_key_file must be an absolute path")));

	fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not open medpro master key file: %m"),
				 errdetail_log("The file is \"%s\".", path)));

	if (fstat(fd, &st) != 0)
	{
		close_keep_errno(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not stat medpro master key file: %m"),
				 errdetail_log("The file is \"%s\".", path)));
	}
	if (!S_ISREG(st.st_mode))
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("medpro master key file is not a regular file"),
				 errdetail_log("The file is \"%s\".", path)));
	}
	if (st.st_uid != geteuid())
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("medpro master key file is not owned by the server's user"),
				 errdetail("The file must be owned by the operating system user that runs the server."),
				 errdetail_log("The file is \"%s\".", path)));
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("medpro master key file has group or other permissions"),
				 errdetail("The file must have mode 0600 or stricter."),
				 errdetail_log("The file is \"%s\".", path)));
	}

	resolved = realpath(path, NULL);
	if (resolved == NULL)
	{
		close_keep_errno(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not resolve the path of the medpro master key file: %m"),
				 errdetail_log("The file is \"%s\".", path)));
	}
	if (stat(resolved, &rst) != 0 ||
		rst.st_dev != st.st_dev || rst.st_ino != st.st_ino)
	{
		free(resolved);
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("medpro master key file changed while it was being checked"),
				 errdetail_log("The file is \"%s\".", path)));
	}
	datadir = realpath(DataDir, NULL);
	if (datadir == NULL)
	{
		free(resolved);
		close_keep_errno(fd);
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not resolve the path of the data directory: %m")));
	}
	inside = path_is_under(resolved, datadir);
	free(datadir);
	free(resolved);
	if (inside)
	{
		close(fd);
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("medpro master key file is inside the data directory"),
				 errdetail("The key must be kept outside the data directory, so that base backups and copies of the data directory do not contain it."),
				 errdetail_log("The file is \"%s\".", path)));
	}

	/* Read at most one byte more than a valid file can hold. */
	total = 0;
	while (total < sizeof(buf))
	{
		ssize_t		n = read(fd, buf + total, sizeof(buf) - total);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			crypto_wipe(buf, sizeof(buf));
			close_keep_errno(fd);
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("could not read medpro master key file: %m"),
					 errdetail_log("The file is \"%s\".", path)));
		}
		if (n == 0)
			break;
		total += n;
	}
	close(fd);

	ok = decode_key_text(buf, total, out);
	crypto_wipe(buf, sizeof(buf));
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("medpro master key file does not hold a valid key"),
				 errdetail("The file must contain exactly 64 hexadecimal digits, optionally followed by a newline."),
				 errdetail_log("The file is \"%s\".", path)));
}

/* on_proc_exit callback: wipe the key before the process goes away. */
static void
master_key_at_exit(int code, Datum arg)
{
	crypto_forget_master_key();
}

/*
 * get_master_key
 *	  The master key of this backend, read and cached on first use; ERROR
 *	  (55000) when it is not configured or its file is not acceptable.
 */
static const uint8 *
get_master_key(void)
{
	if (!master_key_loaded)
	{
		if (!master_key_exit_registered)
		{
			on_proc_exit(master_key_at_exit, (Datum) 0);
			master_key_exit_registered = true;
		}
		read_master_key_file(master_key);
		master_key_loaded = true;
	}
	return master_key;
}

/*
 * crypto_forget_master_key
 *	  Wipe the cached master key; the next seal or unseal reads the file
 *	  again.
 */
void
crypto_forget_master_key(void)
{
	crypto_wipe(master_key, sizeof(master_key));
	master_key_loaded = false;
}

/*
 * crypto_check_master_key
 *	  Read and check the key file into a local buffer that is wiped at once;
 *	  the cached key is left alone.
 */
void
crypto_check_master_key(void)
{
	uint8		key[MASTER_KEY_LEN];

	read_master_key_file(key);
	crypto_wipe(key, sizeof(key));
}


/* ---------------------------------------------------------------------
 * Sealing
 * ---------------------------------------------------------------------
 */

/* Copy the oldest queued OpenSSL error into errbuf and clear the queue. */
static void
openssl_error_text(char *errbuf, size_t errbuflen)
{
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, errbuf, errbuflen);
	else
		strlcpy(errbuf, "unknown OpenSSL error", errbuflen);
	ERR_clear_error();
}

/*
 * gcm_encrypt
 *	  AES-256-GCM encryption of inlen bytes at in into out (inlen bytes),
 *	  writing the tag into tag.  Never raises an error: returns GCM_OK, or
 *	  GCM_LIB_ERROR with OpenSSL's message in errbuf.
 */
static GcmResult
gcm_encrypt(const uint8 *key, const uint8 *nonce,
			const uint8 *aad, size_t aadlen,
			const uint8 *in, size_t inlen,
			uint8 *out, uint8 *tag,
			char *errbuf, size_t errbuflen)
{
	EVP_CIPHER_CTX *ctx;
	int			outl;
	bool		ok;

	ERR_clear_error();
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
	{
		openssl_error_text(errbuf, errbuflen);
		return GCM_LIB_ERROR;
	}

	ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) == 1 &&
		EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
		EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int) aadlen) == 1;
	if (ok && inlen > 0)
		ok = EVP_EncryptUpdate(ctx, out, &outl, in, (int) inlen) == 1 &&
			(size_t) outl == inlen;
	if (ok)
		ok = EVP_EncryptFinal_ex(ctx, out + inlen, &outl) == 1 && outl == 0 &&
			EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) == 1;

	if (!ok)
		openssl_error_text(errbuf, errbuflen);
	EVP_CIPHER_CTX_free(ctx);
	return ok ? GCM_OK : GCM_LIB_ERROR;
}

/*
 * gcm_decrypt
 *	  AES-256-GCM decryption of inlen bytes at in into out (inlen bytes),
 *	  checking tag.  Never raises an error: returns GCM_OK, GCM_AUTH_FAILED
 *	  (out then holds unauthenticated bytes that the caller must wipe) or
 *	  GCM_LIB_ERROR with OpenSSL's message in errbuf.
 */
static GcmResult
gcm_decrypt(const uint8 *key, const uint8 *nonce,
			const uint8 *aad, size_t aadlen,
			const uint8 *in, size_t inlen,
			const uint8 *tag, uint8 *out,
			char *errbuf, size_t errbuflen)
{
	EVP_CIPHER_CTX *ctx;
	uint8		tagbuf[SEAL_TAG_LEN];
	int			outl;
	bool		ok;
	GcmResult	result;

	ERR_clear_error();
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
	{
		openssl_error_text(errbuf, errbuflen);
		return GCM_LIB_ERROR;
	}

	memcpy(tagbuf, tag, SEAL_TAG_LEN);
	ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) == 1 &&
		EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
		EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int) aadlen) == 1;
	if (ok && inlen > 0)
		ok = EVP_DecryptUpdate(ctx, out, &outl, in, (int) inlen) == 1 &&
			(size_t) outl == inlen;
	if (ok)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tagbuf) == 1;

	if (!ok)
	{
		openssl_error_text(errbuf, errbuflen);
		result = GCM_LIB_ERROR;
	}
	else if (EVP_DecryptFinal_ex(ctx, out + inlen, &outl) == 1)
		result = GCM_OK;
	else
	{
		/* A tag mismatch; it queues no error, but clear anything queued. */
		ERR_clear_error();
		result = GCM_AUTH_FAILED;
	}
	EVP_CIPHER_CTX_free(ctx);
	return result;
}

/*
 * Build the additional authenticated data for context: the domain string,
 * its NUL, then the context.  Returns a palloc'd buffer of *len bytes.
 */
static uint8 *
seal_aad(const char *context, size_t *len)
{
	size_t		ctxlen;
	uint8	   *aad;

	if (context == NULL)
		elog(ERROR, "seal context must not be NULL");
	ctxlen = strlen(context);
	if (ctxlen > MaxAllocSize - sizeof(seal_domain))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("seal context is too long")));
	*len = sizeof(seal_domain) + ctxlen;
	aad = palloc(*len);
	memcpy(aad, seal_domain, sizeof(seal_domain));
	memcpy(aad + sizeof(seal_domain), context, ctxlen);
	return aad;
}

/*
 * crypto_seal
 *	  See crypto.h.  The result is palloc'd in the current memory context.
 */
bytea *
crypto_seal(const uint8 *plain, size_t len, const char *context)
{
	const uint8 *key;
	uint8	   *aad;
	size_t		aadlen;
	bytea	   *result;
	uint8	   *data;
	char		errbuf[256];
	GcmResult	rc;

	key = get_master_key();
	if (len > MaxAllocSize - VARHDRSZ - CRYPTO_SEAL_OVERHEAD)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("secret is too long to seal")));
	aad = seal_aad(context, &aadlen);

	result = palloc(VARHDRSZ + CRYPTO_SEAL_OVERHEAD + len);
	SET_VARSIZE(result, VARHDRSZ + CRYPTO_SEAL_OVERHEAD + len);
	data = (uint8 *) VARDATA(result);
	data[0] = SEAL_VERSION;
	crypto_random_bytes(data + SEAL_NONCE_OFFSET, SEAL_NONCE_LEN);

	rc = gcm_encrypt(key, data + SEAL_NONCE_OFFSET, aad, aadlen,
					 plain, len,
					 data + SEAL_DATA_OFFSET, data + SEAL_TAG_OFFSET,
					 errbuf, sizeof(errbuf));
	pfree(aad);
	if (rc != GCM_OK)
	{
		crypto_wipe(data, CRYPTO_SEAL_OVERHEAD + len);
		pfree(result);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not seal secret"),
				 errdetail_internal("%s", errbuf)));
	}
	return result;
}

/*
 * crypto_unseal
 *	  See crypto.h.  Any defect of the sealed value (too short, unknown
 *	  version, wrong tag because of tampering, another context or another
 *	  master key) raises ERRCODE_DATA_CORRUPTED (XX001) "could not unseal
 *	  secret".  sealed may be in any varlena form; it is detoasted here.
 */
uint8 *
crypto_unseal(const bytea *sealed, const char *context, size_t *len)
{
	const uint8 *key;
	bytea	   *value;
	const uint8 *data;
	size_t		datalen;
	size_t		ctlen;
	uint8	   *aad;
	size_t		aadlen;
	uint8	   *out;
	char		errbuf[256];
	GcmResult	rc;

	key = get_master_key();

	value = (bytea *) pg_detoast_datum_packed(unconstify(bytea *, sealed));
	data = (const uint8 *) VARDATA_ANY(value);
	datalen = VARSIZE_ANY_EXHDR(value);
	if (datalen < CRYPTO_SEAL_OVERHEAD)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not unseal secret"),
				 errdetail("The value is too short to be a sealed secret.")));
	if (data[0] != SEAL_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not unseal secret"),
				 errdetail("The value has the unknown format version %d.", data[0])));
	ctlen = datalen - CRYPTO_SEAL_OVERHEAD;
	aad = seal_aad(context, &aadlen);

	out = palloc(ctlen + 1);
	rc = gcm_decrypt(key, data + SEAL_NONCE_OFFSET, aad, aadlen,
					 data + SEAL_DATA_OFFSET, ctlen,
					 data + SEAL_TAG_OFFSET, out,
					 errbuf, sizeof(errbuf));
	pfree(aad);
	if ((const bytea *) value != sealed)
		pfree(value);
	if (rc != GCM_OK)
	{
		crypto_wipe(out, ctlen + 1);
		pfree(out);
		if (rc == GCM_AUTH_FAILED)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("could not unseal secret"),
					 errdetail("The value was altered, or it was sealed for another context or with another master key.")));
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not unseal secret"),
				 errdetail_internal("%s", errbuf)));
	}
	out[ctlen] = '\0';
	*len = ctlen;
	return out;
}


/* ---------------------------------------------------------------------
 * Keyed primitives for other modules: HMAC, derived keys, AEAD under a
 * caller's key (field encryption, audit checkpoints)
 * ---------------------------------------------------------------------
 */

/* crypto_hmac_sha256: see crypto.h. */
void
crypto_hmac_sha256(const uint8 *key, size_t keylen, const uint8 *msg, size_t len,
				   uint8 *out)
{
	unsigned int outlen = CRYPTO_HMAC_LEN;
	char		errbuf[256];

	ERR_clear_error();
	if (HMAC(EVP_sha256(), key, (int) keylen, msg, len, out, &outlen) == NULL ||
		outlen != CRYPTO_HMAC_LEN)
	{
		openssl_error_text(errbuf, sizeof(errbuf));
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute HMAC"),
				 errdetail_internal("%s", errbuf)));
	}
}

/* crypto_derive_key: see crypto.h. */
void
crypto_derive_key(const char *label, uint8 *out)
{
	static const char kdf_domain[] = "medpro-kdf-v1";
	size_t		labellen = strlen(label);
	uint8	   *msg = palloc(sizeof(kdf_domain) + labellen);

	memcpy(msg, kdf_domain, sizeof(kdf_domain));
	memcpy(msg + sizeof(kdf_domain), label, labellen);
	crypto_hmac_sha256(get_master_key(), MASTER_KEY_LEN, msg,
					   sizeof(kdf_domain) + labellen, out);
	pfree(msg);
}

/* crypto_aead_encrypt: see crypto.h. */
bytea *
crypto_aead_encrypt(const uint8 *key, const uint8 *plain, size_t len,
					const uint8 *aad, size_t aadlen)
{
	bytea	   *result;
	uint8	   *data;
	char		errbuf[256];

	if (len > MaxAllocSize - VARHDRSZ - CRYPTO_SEAL_OVERHEAD)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value is too long to encrypt")));
	result = palloc(VARHDRSZ + CRYPTO_SEAL_OVERHEAD + len);
	SET_VARSIZE(result, VARHDRSZ + CRYPTO_SEAL_OVERHEAD + len);
	data = (uint8 *) VARDATA(result);
	data[0] = SEAL_VERSION;
	crypto_random_bytes(data + SEAL_NONCE_OFFSET, SEAL_NONCE_LEN);
	if (gcm_encrypt(key, data + SEAL_NONCE_OFFSET, aad, aadlen, plain, len,
					data + SEAL_DATA_OFFSET, data + SEAL_TAG_OFFSET,
					errbuf, sizeof(errbuf)) != GCM_OK)
	{
		crypto_wipe(data, CRYPTO_SEAL_OVERHEAD + len);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not encrypt value"),
				 errdetail_internal("%s", errbuf)));
	}
	return result;
}

/* crypto_aead_decrypt: see crypto.h. */
uint8 *
crypto_aead_decrypt(const uint8 *key, const uint8 *data, size_t datalen,
					const uint8 *aad, size_t aadlen, size_t *len)
{
	size_t		ctlen;
	uint8	   *out;
	char		errbuf[256];
	GcmResult	rc;

	if (datalen < CRYPTO_SEAL_OVERHEAD || data[0] != SEAL_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not decrypt value"),
				 errdetail("The value is not an encrypted field of a known format.")));
	ctlen = datalen - CRYPTO_SEAL_OVERHEAD;
	out = palloc(ctlen + 1);
	rc = gcm_decrypt(key, data + SEAL_NONCE_OFFSET, aad, aadlen,
					 data + SEAL_DATA_OFFSET, ctlen, data + SEAL_TAG_OFFSET, out,
					 errbuf, sizeof(errbuf));
	if (rc != GCM_OK)
	{
		crypto_wipe(out, ctlen + 1);
		pfree(out);
		if (rc == GCM_AUTH_FAILED)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("could not decrypt value"),
					 errdetail("The value was altered, or it belongs to another row, column, clinic or key.")));
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not decrypt value"),
				 errdetail_internal("%s", errbuf)));
	}
	out[ctlen] = '\0';
	*len = ctlen;
	return out;
}


/* ---------------------------------------------------------------------
 * Passwords
 * ---------------------------------------------------------------------
 */

/*
 * crypto_check_password_arg
 *	  See crypto.h.
 */
void
crypto_check_password_arg(const char *password, size_t len)
{
	if (password == NULL || len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password must not be empty")));
	if (len > CRYPTO_PASSWORD_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password is too long"),
				 errdetail("A password may be at most %d bytes long.",
						   CRYPTO_PASSWORD_MAX_LEN)));
}

/*
 * Parse "name=<decimal>" at *s into *val, advancing *s past it.  Returns
 * false on a missing name, missing digits or a value above max.
 */
static bool
parse_phc_param(const char **s, const char *name, uint32 max, uint32 *val)
{
	size_t		nlen = strlen(name);
	const char *p = *s;
	uint64		v = 0;

	if (strncmp(p, name, nlen) != 0)
		return false;
	p += nlen;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
	{
		v = v * 10 + (*p - '0');
		if (v > max)
			return false;
		p++;
	}
	*s = p;
	*val = (uint32) v;
	return true;
}

/*
 * Check that phc starts like an Argon2id PHC string,
 * "$argon2id$[v=N$]m=M,t=T,p=P$...", with costs within the limits a backend
 * can afford, and return its parallelism.  The rest of the string is left
 * to libargon2.
 */
static bool
check_phc_string(const char *phc, uint32 *parallelism)
{
	static const char prefix[] = "$argon2id$";
	const char *s = phc;
	uint32		version;
	uint32		m_cost;
	uint32		t_cost;

	if (strncmp(s, prefix, sizeof(prefix) - 1) != 0)
		return false;
	s += sizeof(prefix) - 1;
	if (strncmp(s, "v=", 2) == 0)
	{
		if (!parse_phc_param(&s, "v=", 255, &version) || *s++ != '$')
			return false;
	}
	if (!parse_phc_param(&s, "m=", UINT32_MAX, &m_cost) || *s++ != ',' ||
		!parse_phc_param(&s, "t=", UINT32_MAX, &t_cost) || *s++ != ',' ||
		!parse_phc_param(&s, "p=", UINT32_MAX, parallelism) || *s != '$')
		return false;
	if (m_cost > PW_MAX_M_COST || t_cost > PW_MAX_T_COST ||
		*parallelism > PW_MAX_PARALLELISM)
	{
		ereport(LOG,
				(errmsg("medpro refused a stored Argon2id hash whose costs exceed its limits"),
				 errdetail("medpro accepts at most m=%d, t=%d and p=%d.",
						   PW_MAX_M_COST, PW_MAX_T_COST, PW_MAX_PARALLELISM)));
		return false;
	}
	return true;
}

/*
 * Run argon2id_verify.  True on a match, false on a mismatch or a string
 * libargon2 cannot use; ERROR when it runs out of memory or threads.  With
 * more than one lane libargon2 starts threads; all signals are blocked
 * meanwhile so that the threads start with them blocked and never run the
 * server's signal handlers.  Signals that arrive are handled once the mask is
 * restored.
 */
static bool
run_argon2id_verify(const char *phc, const char *password, size_t len,
					uint32 parallelism)
{
	sigset_t	all;
	sigset_t	old;
	int			rc;

	if (parallelism > 1)
	{
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, &old);
	}
	rc = argon2id_verify(phc, password, len);
	if (parallelism > 1)
		sigprocmask(SIG_SETMASK, &old, NULL);

	if (rc == ARGON2_OK)
		return true;
	if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Argon2id could not allocate its working memory.")));
	if (rc == ARGON2_THREAD_FAIL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not verify password"),
				 errdetail_internal("%s", argon2_error_message(rc))));
	return false;
}

/*
 * crypto_password_hash
 *	  See crypto.h.  ERROR 22023 for an empty or over-long password.
 */
char *
crypto_password_hash(const char *password, size_t len)
{
	uint8		salt[PW_SALT_LEN];
	size_t		enclen;
	char	   *encoded;
	int			rc;

	crypto_check_password_arg(password, len);
	crypto_random_bytes(salt, sizeof(salt));

	enclen = argon2_encodedlen(PW_T_COST, PW_M_COST, PW_PARALLELISM,
							   PW_SALT_LEN, PW_HASH_LEN, Argon2_id);
	encoded = palloc(enclen);
	rc = argon2id_hash_encoded(PW_T_COST, PW_M_COST, PW_PARALLELISM,
							   password, len, salt, sizeof(salt),
							   PW_HASH_LEN, encoded, enclen);
	if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Argon2id could not allocate its working memory.")));
	if (rc != ARGON2_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not hash password"),
				 errdetail_internal("%s", argon2_error_message(rc))));
	return encoded;
}

/*
 * crypto_password_verify
 *	  See crypto.h.  An empty or over-long password, a NULL or non-Argon2id
 *	  hash and a hash with costs above the limits all give false.
 */
bool
crypto_password_verify(const char *phc, const char *password, size_t len)
{
	uint32		parallelism;

	if (phc == NULL || password == NULL ||
		len == 0 || len > CRYPTO_PASSWORD_MAX_LEN)
		return false;
	if (!check_phc_string(phc, &parallelism))
		return false;
	return run_argon2id_verify(phc, password, len, parallelism);
}

/*
 * crypto_password_verify_dummy
 *	  See crypto.h.  Arguments that crypto_password_verify would reject
 *	  without hashing are rejected here without hashing too.
 */
void
crypto_password_verify_dummy(const char *password, size_t len)
{
	uint32		parallelism;

	if (password == NULL || len == 0 || len > CRYPTO_PASSWORD_MAX_LEN)
		return;
	if (!check_phc_string(dummy_phc, &parallelism))
		elog(ERROR, "medpro's dummy password hash is malformed");
	(void) run_argon2id_verify(dummy_phc, password, len, parallelism);
}


/* ---------------------------------------------------------------------
 * SQL-callable helpers (superuser-only, see sql/ext/20_crypto.sql)
 * ---------------------------------------------------------------------
 */

/* medpro.seal(plain bytea, context text) RETURNS bytea */
Datum
medpro_seal_sql(PG_FUNCTION_ARGS)
{
	bytea	   *plain = PG_GETARG_BYTEA_PP(0);
	char	   *context = text_to_cstring(PG_GETARG_TEXT_PP(1));

	PG_RETURN_BYTEA_P(crypto_seal((const uint8 *) VARDATA_ANY(plain),
								  VARSIZE_ANY_EXHDR(plain), context));
}

/* medpro.unseal(sealed bytea, context text) RETURNS bytea */
Datum
medpro_unseal_sql(PG_FUNCTION_ARGS)
{
	bytea	   *sealed = PG_GETARG_BYTEA_PP(0);
	char	   *context = text_to_cstring(PG_GETARG_TEXT_PP(1));
	uint8	   *plain;
	size_t		len;
	bytea	   *result;

	plain = crypto_unseal(sealed, context, &len);
	result = palloc(VARHDRSZ + len);
	SET_VARSIZE(result, VARHDRSZ + len);
	memcpy(VARDATA(result), plain, len);
	crypto_wipe(plain, len + 1);
	pfree(plain);
	PG_RETURN_BYTEA_P(result);
}

/* medpro.master_key_status() RETURNS text: 'ok', or the error a seal raises */
Datum
medpro_master_key_status(PG_FUNCTION_ARGS)
{
	crypto_check_master_key();
	PG_RETURN_TEXT_P(cstring_to_text("ok"));
}

/* medpro.crypto_password_hash(password text) RETURNS text */
Datum
medpro_crypto_password_hash(PG_FUNCTION_ARGS)
{
	text	   *password = PG_GETARG_TEXT_PP(0);
	char	   *phc;
	text	   *result;

	phc = crypto_password_hash(VARDATA_ANY(password),
							   VARSIZE_ANY_EXHDR(password));
	result = cstring_to_text(phc);
	pfree(phc);
	PG_RETURN_TEXT_P(result);
}

/* medpro.crypto_password_verify(hash text, password text) RETURNS boolean */
Datum
medpro_crypto_password_verify(PG_FUNCTION_ARGS)
{
	char	   *phc = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *password = PG_GETARG_TEXT_PP(1);

	PG_RETURN_BOOL(crypto_password_verify(phc, VARDATA_ANY(password),
										  VARSIZE_ANY_EXHDR(password)));
}
