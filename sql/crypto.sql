--
-- crypto: sealing under the master key, the master key file checks and
-- Argon2id password hashing (src/crypto.c, sql/ext/20_crypto.sql).
--
-- Runs as a superuser after setup.  psql and the server must run as the same
-- operating system user (as scripts/test.sh arranges), so that the key files
-- this test makes with \! belong to the server's user.  They live in a fresh
-- directory /tmp/medpro_crypto_test_XXXXXX that is removed at the end.
--
\set SHOW_CONTEXT never

-- The cluster's key file (postgresql.conf) is in order.
SELECT medpro.master_key_status();

--
-- Sealing
--
SELECT convert_from(medpro.unseal(medpro.seal(convert_to('patient secret', 'UTF8'),
                                              'test:one'),
                                  'test:one'),
                    'UTF8') AS round_trip;
SELECT medpro.unseal(medpro.seal('', 'test:empty'), 'test:empty') = ''::bytea AS empty_round_trip;
SELECT medpro.unseal(medpro.seal('\x00ff00'::bytea, ''), '') AS empty_context;
-- version byte 1, then 12 bytes of nonce and 16 of tag before the ciphertext
SELECT get_byte(s, 0) AS version, length(s) AS sealed_length
  FROM (SELECT medpro.seal('\x0001020304'::bytea, 'test:len') AS s) v;
SELECT medpro.seal(NULL, 'test:strict') IS NULL AS strict_plain,
       medpro.seal('x', NULL) IS NULL AS strict_context,
       medpro.unseal(NULL, 'test:strict') IS NULL AS strict_sealed;

-- The nonce is random: sealing the same plaintext twice gives two values.
CREATE TEMP TABLE sealed AS
  SELECT medpro.seal('same plaintext', 'test:ctx') AS a,
         medpro.seal('same plaintext', 'test:ctx') AS b;
SELECT a <> b AS values_differ,
       substr(a, 2, 12) <> substr(b, 2, 12) AS nonces_differ,
       medpro.unseal(a, 'test:ctx') = medpro.unseal(b, 'test:ctx') AS same_plaintext
  FROM sealed;

-- Another context does not unseal it, not even a prefix of the right one.
SELECT medpro.unseal(a, 'test:other') FROM sealed;
\echo :SQLSTATE
SELECT medpro.unseal(a, 'test:ct') FROM sealed;
SELECT medpro.unseal(a, 'test:ctx ') FROM sealed;

-- A flipped bit in the nonce, the tag or the ciphertext is detected.
SELECT medpro.unseal(set_byte(a, 1, get_byte(a, 1) # 1), 'test:ctx') FROM sealed;
\echo :SQLSTATE
SELECT medpro.unseal(set_byte(a, 13, get_byte(a, 13) # 128), 'test:ctx') FROM sealed;
SELECT medpro.unseal(set_byte(a, 29, get_byte(a, 29) # 4), 'test:ctx') FROM sealed;
SELECT medpro.unseal(set_byte(a, length(a) - 1, get_byte(a, length(a) - 1) # 1), 'test:ctx') FROM sealed;

-- So are a truncated or extended value and an unknown version.
SELECT medpro.unseal(substr(a, 1, length(a) - 1), 'test:ctx') FROM sealed;
SELECT medpro.unseal(a || '\x00'::bytea, 'test:ctx') FROM sealed;
SELECT medpro.unseal(substr(a, 1, 29), 'test:ctx') FROM sealed;
SELECT medpro.unseal(substr(a, 1, 28), 'test:ctx') FROM sealed;
\echo :SQLSTATE
SELECT medpro.unseal('\x'::bytea, 'test:ctx');
SELECT medpro.unseal(set_byte(a, 0, 2), 'test:ctx') FROM sealed;

--
-- The master key file
--
\set tmpdir `mktemp -d /tmp/medpro_crypto_test_XXXXXX`
\setenv MEDPRO_T :tmpdir
CREATE TEMP TABLE keydir AS SELECT :'tmpdir'::text AS dir;
-- use_key(name): point medpro.master_key_file at a file of the test directory
CREATE PROCEDURE pg_temp.use_key(name text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('medpro.master_key_file',
					   (SELECT dir FROM keydir) || '/' || name, false);
END
$$;
-- use_datadir_key(name): the same for a file in the data directory
CREATE PROCEDURE pg_temp.use_datadir_key(name text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('medpro.master_key_file',
					   current_setting('data_directory') || '/' || name, false);
END
$$;

\! umask 077 && printf '%s\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff > "$MEDPRO_T/a.key"
\! umask 077 && printf '%s' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff > "$MEDPRO_T/a-no-newline.key"
\! umask 077 && printf '%s\n' 00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF > "$MEDPRO_T/a-upper.key"
\! umask 077 && printf '%s\n' ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100 > "$MEDPRO_T/b.key"
\! cd "$MEDPRO_T" && ln -s a.key a-link.key && cp a.key a-0400.key && chmod 0400 a-0400.key

-- Unset, relative, missing.
SET medpro.master_key_file = '';
SELECT medpro.seal('x', 'test:ctx');
\echo :SQLSTATE
SELECT medpro.unseal(a, 'test:ctx') FROM sealed;
SELECT medpro.master_key_status();
SET medpro.master_key_file = 'master.key';
SELECT medpro.master_key_status();
CALL pg_temp.use_key('missing.key');
SELECT medpro.seal('x', 'test:ctx');
\echo :SQLSTATE

-- A key of our own, with and without newline, in upper case, through a
-- symbolic link and with mode 0400: all the same key.
CALL pg_temp.use_key('a.key');
SELECT medpro.master_key_status();
CREATE TEMP TABLE sealed_a AS SELECT medpro.seal('sealed under key a', 'test:a') AS s;
SELECT convert_from(medpro.unseal(s, 'test:a'), 'UTF8') FROM sealed_a;
-- a value sealed by an independent AES-256-GCM implementation under key a,
-- with nonce 000102...0b and the AAD "medpro-seal-v1", NUL, "test:kat"
SELECT convert_from(medpro.unseal('\x01000102030405060708090a0b57f3dde17518328c223c3ef0986ccbf57d76da412e69acd8ba4c0a8e'::bytea,
                                  'test:kat'), 'UTF8') AS known_answer;
SELECT medpro.unseal('\x01000102030405060708090a0b57f3dde17518328c223c3ef0986ccbf57d76da412e69acd8ba4c0a8e'::bytea,
                     'test:kaT');
-- the value sealed under the cluster's key does not unseal under key a
SELECT medpro.unseal(a, 'test:ctx') FROM sealed;
CALL pg_temp.use_key('a-no-newline.key');
SELECT convert_from(medpro.unseal(s, 'test:a'), 'UTF8') FROM sealed_a;
CALL pg_temp.use_key('a-upper.key');
SELECT convert_from(medpro.unseal(s, 'test:a'), 'UTF8') FROM sealed_a;
CALL pg_temp.use_key('a-link.key');
SELECT convert_from(medpro.unseal(s, 'test:a'), 'UTF8') FROM sealed_a;
CALL pg_temp.use_key('a-0400.key');
SELECT convert_from(medpro.unseal(s, 'test:a'), 'UTF8') FROM sealed_a;
-- another key does not unseal it
CALL pg_temp.use_key('b.key');
SELECT medpro.unseal(s, 'test:a') FROM sealed_a;
\echo :SQLSTATE

-- Changing the file does not change the key of this session until the
-- setting changes; master_key_status reads the file afresh.
CALL pg_temp.use_key('a.key');
SELECT length(medpro.unseal(s, 'test:a')) FROM sealed_a;
\! chmod 0644 "$MEDPRO_T/a.key"
SELECT length(medpro.unseal(s, 'test:a')) FROM sealed_a;
SELECT medpro.master_key_status();
CALL pg_temp.use_key('a.key');
SELECT medpro.unseal(s, 'test:a') FROM sealed_a;
\! chmod 0600 "$MEDPRO_T/a.key"

-- Permissions: any group or other bit is refused.
\! cd "$MEDPRO_T" && for m in 0644 0640 0604 0610 0601; do cp a.key a-$m.key && chmod $m a-$m.key; done
CALL pg_temp.use_key('a-0644.key');
SELECT medpro.seal('x', 'test:ctx');
\echo :SQLSTATE
CALL pg_temp.use_key('a-0640.key');
SELECT medpro.master_key_status();
CALL pg_temp.use_key('a-0604.key');
SELECT medpro.master_key_status();
CALL pg_temp.use_key('a-0610.key');
SELECT medpro.master_key_status();
CALL pg_temp.use_key('a-0601.key');
SELECT medpro.master_key_status();
-- a file the server cannot read
\! cd "$MEDPRO_T" && cp a.key a-0000.key && chmod 0000 a-0000.key
CALL pg_temp.use_key('a-0000.key');
SELECT medpro.master_key_status();

-- Not a regular file: a directory, a FIFO (opening it must not block).
CALL pg_temp.use_key('');
SELECT medpro.master_key_status();
\! mkfifo -m 0600 "$MEDPRO_T/fifo.key"
CALL pg_temp.use_key('fifo.key');
SELECT medpro.master_key_status();

-- Not owned by the server's user (the server never runs as root).
SET medpro.master_key_file = '/etc/passwd';
SELECT medpro.master_key_status();

-- Inside the data directory, directly or through a symbolic link.
SELECT current_setting('data_directory') AS datadir \gset
\setenv MEDPRO_D :datadir
\! umask 077 && cp "$MEDPRO_T/a.key" "$MEDPRO_D/medpro_crypto_test.key" && ln -s "$MEDPRO_D/medpro_crypto_test.key" "$MEDPRO_T/in-datadir-link.key"
CALL pg_temp.use_datadir_key('medpro_crypto_test.key');
SELECT medpro.master_key_status();
\echo :SQLSTATE
CALL pg_temp.use_key('in-datadir-link.key');
SELECT medpro.seal('x', 'test:ctx');
\! rm -f "$MEDPRO_D/medpro_crypto_test.key"

-- Contents: exactly 64 hexadecimal digits and at most one newline.
\! cd "$MEDPRO_T" && umask 077 && printf '%s\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeef > short.key
\! cd "$MEDPRO_T" && umask 077 && printf '%s\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0 > long.key
\! cd "$MEDPRO_T" && umask 077 && printf '%s\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeefg > nonhex.key
\! cd "$MEDPRO_T" && umask 077 && printf '%s\r\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff > crlf.key
\! cd "$MEDPRO_T" && umask 077 && printf '%s\n\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff > two-newlines.key
\! cd "$MEDPRO_T" && umask 077 && printf ' %s\n' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff > leading-space.key
\! cd "$MEDPRO_T" && umask 077 && : > empty.key
CALL pg_temp.use_key('short.key');
SELECT medpro.master_key_status();
\echo :SQLSTATE
CALL pg_temp.use_key('long.key');
SELECT medpro.master_key_status();
CALL pg_temp.use_key('nonhex.key');
SELECT medpro.master_key_status();
CALL pg_temp.use_key('crlf.key');
SELECT medpro.master_key_status();
CALL pg_temp.use_key('two-newlines.key');
SELECT medpro.master_key_status();
CALL pg_temp.use_key('leading-space.key');
SELECT medpro.master_key_status();
CALL pg_temp.use_key('empty.key');
SELECT medpro.seal('x', 'test:ctx');

-- Back to the cluster's key: what was sealed under it unseals again.
RESET medpro.master_key_file;
SELECT medpro.master_key_status();
SELECT convert_from(medpro.unseal(a, 'test:ctx'), 'UTF8') FROM sealed;

--
-- Privileges
--
CREATE ROLE medpro_crypto_test_op NOLOGIN IN ROLE medpro_operator;
SET ROLE medpro_crypto_test_op;
SET medpro.master_key_file = '/tmp/medpro_crypto_test_elsewhere.key';
\echo :SQLSTATE
SHOW medpro.master_key_file;
SELECT medpro.seal('x', 'test:ctx');
\echo :SQLSTATE
SELECT medpro.unseal('\x01'::bytea, 'test:ctx');
SELECT medpro.crypto_password_hash('x');
SELECT medpro.crypto_password_verify('x', 'x');
-- operators may check the setup
SELECT medpro.master_key_status();
RESET ROLE;
DROP ROLE medpro_crypto_test_op;
-- who may execute them besides their owner
SELECT p.proname,
       array(SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
               FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
              WHERE a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE'
              ORDER BY 1) AS granted_to
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'medpro'
   AND p.proname IN ('seal', 'unseal', 'master_key_status', 'crypto_password_hash', 'crypto_password_verify')
 ORDER BY 1;

--
-- Passwords (Argon2id)
--
CREATE TEMP TABLE pw AS SELECT medpro.crypto_password_hash('correct horse battery staple') AS h;
SELECT h ~ '^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$' AS phc_string
  FROM pw;
SELECT medpro.crypto_password_verify(h, 'correct horse battery staple') AS right_password,
       medpro.crypto_password_verify(h, 'correct horse battery stapl') AS wrong_password,
       medpro.crypto_password_verify(h, 'Correct horse battery staple') AS wrong_case
  FROM pw;
-- a random salt each time
SELECT medpro.crypto_password_hash('same') <> medpro.crypto_password_hash('same') AS salted;
SELECT medpro.crypto_password_verify(medpro.crypto_password_hash('pässwörd ✓'), 'pässwörd ✓') AS utf8;
-- empty and over-long passwords are refused when hashing
SELECT medpro.crypto_password_hash('');
\echo :SQLSTATE
SELECT medpro.crypto_password_hash(repeat('a', 1025));
\echo :SQLSTATE
SELECT medpro.crypto_password_verify(medpro.crypto_password_hash(repeat('a', 1024)), repeat('a', 1024)) AS longest;
-- ... and simply do not verify
SELECT medpro.crypto_password_verify(h, '') AS empty, medpro.crypto_password_verify(h, repeat('a', 1025)) AS too_long
  FROM pw;
-- hashes made elsewhere, with other parameters, verify: the reference
-- implementation's test vector and a four-lane hash
SELECT medpro.crypto_password_verify('$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc',
                              'password') AS reference_vector;
SELECT medpro.crypto_password_verify('$argon2id$v=19$m=8192,t=1,p=4$bWVkcHJvLXRlc3Qtc2FsdA$73JO8swTmVl7VfNPKAVF3fZfR/AUun/Kv/jk+ojnbAs',
                              'pässwörd') AS four_lanes,
       medpro.crypto_password_verify('$argon2id$v=19$m=8192,t=1,p=4$bWVkcHJvLXRlc3Qtc2FsdA$73JO8swTmVl7VfNPKAVF3fZfR/AUun/Kv/jk+ojnbAs',
                              'passwörd') AS four_lanes_wrong;
-- anything else is false, not an error
SELECT medpro.crypto_password_verify('', 'password') AS empty_hash,
       medpro.crypto_password_verify('not a hash', 'password') AS garbage,
       medpro.crypto_password_verify('$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc',
                              'password') AS argon2i,
       medpro.crypto_password_verify('$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRP',
                              'password') AS truncated,
       medpro.crypto_password_verify('$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ', 'password') AS no_hash,
       medpro.crypto_password_verify('$argon2id$v=19$m=99999999999,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc',
                              'password') AS overflow;
-- costs a backend cannot afford are refused without hashing
SELECT medpro.crypto_password_verify('$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc',
                              'password') AS huge_memory,
       medpro.crypto_password_verify('$argon2id$v=19$m=65536,t=1000,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc',
                              'password') AS many_passes,
       medpro.crypto_password_verify('$argon2id$v=19$m=65536,t=2,p=255$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc',
                              'password') AS many_lanes;

\! rm -rf "$MEDPRO_T"
