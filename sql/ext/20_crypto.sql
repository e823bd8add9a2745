-- medpro install script, part 20: sealing and password helpers (src/crypto.c).
--
-- seal, unseal, crypto_password_hash and crypto_password_verify are for
-- superusers (tests and operations by hand): they are revoked from PUBLIC and
-- granted to no one.  crypto_password_hash applies no password policy; user
-- passwords go through medpro.password_hash(password, email) (40_auth.sql).
-- master_key_status lets medpro_operator check the master key setup without
-- seeing the key.  See docs/master-key.md.

CREATE FUNCTION medpro.seal(plain bytea, context text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'medpro_seal_sql'
	LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION medpro.seal(bytea, text) IS
	'seals plain under the master key with AES-256-GCM, bound to context (superuser only)';
REVOKE ALL ON FUNCTION medpro.seal(bytea, text) FROM PUBLIC;

CREATE FUNCTION medpro.unseal(sealed bytea, context text) RETURNS bytea
	AS 'MODULE_PATHNAME', 'medpro_unseal_sql'
	LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION medpro.unseal(bytea, text) IS
	'unseals a value made by medpro.seal with the same context; XX001 if it does not authenticate (superuser only)';
REVOKE ALL ON FUNCTION medpro.unseal(bytea, text) FROM PUBLIC;

CREATE FUNCTION medpro.master_key_status() RETURNS text
	AS 'MODULE_PATHNAME', 'medpro_master_key_status'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION medpro.master_key_status() IS
	'reads and checks the medpro.master_key_file as a new session would: returns ok or raises the error a seal would raise';
REVOKE ALL ON FUNCTION medpro.master_key_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro.master_key_status() TO medpro_operator;

CREATE FUNCTION medpro.crypto_password_hash(password text) RETURNS text
	AS 'MODULE_PATHNAME', 'medpro_crypto_password_hash'
	LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION medpro.crypto_password_hash(text) IS
	'Argon2id PHC string for password (m=19456, t=2, p=1, random salt), without password policy (superuser only)';
REVOKE ALL ON FUNCTION medpro.crypto_password_hash(text) FROM PUBLIC;

CREATE FUNCTION medpro.crypto_password_verify(hash text, password text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'medpro_crypto_password_verify'
	LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION medpro.crypto_password_verify(text, text) IS
	'true when password matches the Argon2id PHC string hash (superuser only)';
REVOKE ALL ON FUNCTION medpro.crypto_password_verify(text, text) FROM PUBLIC;
