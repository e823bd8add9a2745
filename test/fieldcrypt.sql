-- pgTAP: patients.social_security_number is encrypted with the clinic's
-- data key before it leaves the central database.
--
-- Two clinics.  The clinic database holds ciphertext, a blind index and a
-- key version, never the number: a CHECKPOINT and a grep of the clinic
-- database's files and of the WAL prove it (with a positive control that
-- the grep finds a plaintext that is stored).  Equality search goes through
-- the blind index; a secretary sees the last two characters; a ciphertext
-- moved to another row or clinic does not decrypt; medpro_rotate_clinic_key
-- re-encrypts in resumable batches.  Runs as postgres (the grep reads the
-- server's files).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(49);

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tap_app') THEN
		CREATE ROLE tap_app LOGIN;
		GRANT medpro_api TO tap_app;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tap_op') THEN
		CREATE ROLE tap_op LOGIN;
		GRANT medpro_operator TO tap_op;
	END IF;
END $$;
SELECT medpro_key_rotate() IS NOT NULL AS rotated \gset
SELECT medpro_register_clinic('Chiffre Alpha', 'FR', 'admin@fc-a.test', 'fieldcrypt alpha 1') AS ca \gset
SELECT medpro_register_clinic('Cifra Bravo', 'FR', 'admin@fc-b.test', 'fieldcrypt bravo 1') AS cb \gset
SELECT medpro_create_user('doc@fc-a.test', 'fieldcrypt doctor a', 'doctor', NULL, NULL, :'ca') IS NOT NULL AS u1 \gset
SELECT medpro_create_user('sec@fc-a.test', 'fieldcrypt front a', 'secretary', NULL, NULL, :'ca') IS NOT NULL AS u2 \gset
SELECT medpro_create_user('doc@fc-b.test', 'fieldcrypt doctor b', 'doctor', NULL, NULL, :'cb') IS NOT NULL AS u3 \gset
SELECT db_name AS db_a FROM medpro.clinics WHERE id = :'ca' \gset
SELECT db_name AS db_b FROM medpro.clinics WHERE id = :'cb' \gset
CREATE FUNCTION pg_temp.in_clinic(db text, query text) RETURNS SETOF record LANGUAGE sql AS $$
	SELECT * FROM dblink(format('host=%s port=%s dbname=%s user=postgres',
								split_part(current_setting('unix_socket_directories'), ',', 1),
								current_setting('port'), db), query) AS t(v text)
$$;
CREATE FUNCTION pg_temp.clinic_exec(db text, stmt text) RETURNS text LANGUAGE sql AS $$
	SELECT dblink_exec(format('host=%s port=%s dbname=%s user=postgres',
							  split_part(current_setting('unix_socket_directories'), ',', 1),
							  current_setting('port'), db), stmt)
$$;
CREATE FUNCTION pg_temp.state(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
BEGIN
	EXECUTE stmt;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
	RETURN st;
END $$;

-- The number used throughout; it appears nowhere else in the tests.
\set ssn '279097512345690'
\set ssn2 '180027512345676'

SET ROLE tap_app;
SELECT medpro_login('doc@fc-a.test', 'fieldcrypt doctor a') AS doc_a \gset
SELECT medpro_login('sec@fc-a.test', 'fieldcrypt front a') AS sec_a \gset
SELECT medpro_login('doc@fc-b.test', 'fieldcrypt doctor b') AS doc_b \gset

-- Writing and reading. --------------------------------------------------------------
BEGIN READ ONLY;
SELECT medpro_authenticate(:'doc_a') IS NOT NULL AS a;
SELECT is((SELECT count(*) FROM clinic.patients WHERE social_security_number = :'ssn'), 0::bigint,
	'searching a clinic that has no data key yet finds nothing (and creates no key)');
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'doc_a') IS NOT NULL AS a;
SELECT is(pg_temp.state($$INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('Bad', 'Key', '279097512345619')$$),
	'23514', 'a number with a wrong check key is refused in clear, before encryption');
COMMIT;
RESET ROLE;
SELECT is((SELECT count(*) FROM medpro.clinic_keys WHERE clinic_id = :'ca'), 0::bigint, '... and neither made a key');
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'doc_a') IS NOT NULL AS a;
WITH r AS (INSERT INTO clinic.patients (first_name, last_name, social_security_number)
		   VALUES ('Iris', 'Chiffre', '2 79 09 75 123 456 90') RETURNING social_security_number)
SELECT is((SELECT social_security_number FROM r), :'ssn',
	'INSERT RETURNING gives the number back, normalised (spaces removed)');
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'doc_a') IS NOT NULL AS a;
INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('Jules', 'Autre', :'ssn2');
INSERT INTO clinic.patients (first_name, last_name) VALUES ('Karl', 'Sansnumero');
SELECT id AS pat_iris FROM clinic.patients WHERE last_name = 'Chiffre' \gset
SELECT id AS pat_jules FROM clinic.patients WHERE last_name = 'Autre' \gset
SELECT is((SELECT social_security_number FROM clinic.patients WHERE id = :'pat_iris'), :'ssn', 'a doctor reads the number');
SELECT is((SELECT count(*) FROM clinic.patients WHERE social_security_number = :'ssn'), 1::bigint,
	'WHERE social_security_number = ... finds the patient');
SELECT is((SELECT last_name FROM clinic.patients WHERE social_security_number = :'ssn2'), 'Autre', '... the right one');
SELECT is((SELECT count(*) FROM clinic.patients WHERE social_security_number = '279097512345619'), 0::bigint,
	'another number finds nothing');
SELECT is((SELECT count(*) FROM clinic.patients WHERE social_security_number IS NULL), 1::bigint, 'IS NULL still works');
PREPARE tap_by_ssn(text) AS SELECT count(*) FROM clinic.patients WHERE social_security_number = $1;
CREATE TEMP TABLE tap_ssn_param AS EXECUTE tap_by_ssn(:'ssn');
SELECT is((SELECT count FROM tap_ssn_param), 1::bigint, 'a parameter is translated to the blind index too');
DEALLOCATE tap_by_ssn;
CREATE TEMP TABLE tap_explain (line text);
DO $$
DECLARE
	l text;
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM clinic.patients WHERE social_security_number = ''279097512345690''' LOOP
		INSERT INTO tap_explain VALUES (l);
	END LOOP;
END $$;
SELECT ok((SELECT bool_or(line ~ 'social_security_number_bidx OPERATOR\(pg_catalog.=\) \$1') FROM tap_explain WHERE line ~ 'Remote SQL'),
	'the remote SQL compares the blind index with a parameter');
SELECT is((SELECT count(*) FROM tap_explain WHERE line ~ 'Remote SQL' AND line ~ '279097512345690'), 0::bigint,
	'the number is not in the remote SQL');
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'sec_a') IS NOT NULL AS a;
SELECT is((SELECT social_security_number FROM clinic.patients WHERE id = :'pat_iris'), '*************90',
	'a secretary sees the last two characters');
SELECT is((SELECT count(*) FROM clinic.patients WHERE social_security_number = :'ssn'), 0::bigint,
	'a secretary cannot search by the number');
SELECT is(pg_temp.state(format($$UPDATE clinic.patients SET social_security_number = 'x' WHERE id = %L$$, :'pat_iris')), '42501',
	'a secretary cannot write it');
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'doc_b') IS NOT NULL AS b;
INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('Iris', 'Bravo', :'ssn');
SELECT is((SELECT count(*) FROM clinic.patients WHERE social_security_number = :'ssn'), 1::bigint,
	'clinic B finds only its own patient with the same number');
COMMIT;

-- What the clinic databases hold. ---------------------------------------------------------
RESET ROLE;
SELECT is((SELECT v FROM pg_temp.in_clinic(:'db_a', format($$SELECT concat_ws('|', social_security_number IS NULL,
	social_security_number_enc IS NOT NULL, social_security_number_key_version, social_security_number_bidx ~ '^[0-9a-f]{64}$')
	FROM patients WHERE id = %L$$, :'pat_iris')) AS t(v text)), 't|t|1|t',
	'clinic A''s database: no plaintext, a ciphertext, key version 1, a 256-bit blind index');
SELECT is((SELECT v FROM pg_temp.in_clinic(:'db_a', $$SELECT count(*)::text FROM patients WHERE social_security_number IS NOT NULL$$) AS t(v text)),
	'0', 'no row of clinic A has the plaintext column set');
SELECT is((SELECT v FROM pg_temp.in_clinic(:'db_a', format($$SELECT length(social_security_number_enc)::text FROM patients WHERE id = %L$$, :'pat_iris')) AS t(v text)),
	(29 + length(:'ssn'))::text, 'the ciphertext is the sealed format: 29 bytes more than the number');
SELECT isnt((SELECT v FROM pg_temp.in_clinic(:'db_a', format($$SELECT social_security_number_bidx FROM patients WHERE id = %L$$, :'pat_iris')) AS t(v text)),
	(SELECT v FROM pg_temp.in_clinic(:'db_b', $$SELECT social_security_number_bidx FROM patients WHERE last_name = 'Bravo'$$) AS t(v text)),
	'the same number has different blind indexes in two clinics (per-clinic keys)');
SELECT is((SELECT count(*) FROM medpro.clinic_keys WHERE clinic_id IN (:'ca', :'cb') AND status = 'active'), 2::bigint,
	'each clinic got a data key on its first write');
SELECT is((SELECT count(*) FROM medpro.audit_log WHERE clinic_id = :'ca'
			AND coalesce(new_data::text, '') || coalesce(old_data::text, '') ~ '(279097512345690|180027512345676)'), 0::bigint,
	'the audit rows do not carry the number');
-- the plaintext is refused by the clinic database itself
SELECT throws_like(format('SELECT pg_temp.clinic_exec(%L, %L)', :'db_a', $q$INSERT INTO patients (company_id, first_name, last_name, social_security_number)
	SELECT company_id, 'x', 'y', '1' FROM patients LIMIT 1$q$), '%patients_ssn_encrypted_check%',
	'the clinic database refuses a plaintext number (CHECK)');

-- A ciphertext is bound to its row and clinic. ---------------------------------------------
SELECT v AS jules_enc FROM pg_temp.in_clinic(:'db_a', format($$SELECT encode(social_security_number_enc, 'hex') || ':' || social_security_number_bidx
	FROM patients WHERE id = %L$$, :'pat_jules')) AS t(v text) \gset
SELECT pg_temp.clinic_exec(:'db_a', format($$UPDATE patients SET (social_security_number_enc, social_security_number_bidx) =
	(SELECT social_security_number_enc, social_security_number_bidx FROM patients WHERE id = %L) WHERE id = %L$$, :'pat_iris', :'pat_jules')) AS swapped;
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'doc_a') IS NOT NULL AS a;
SELECT is(pg_temp.state(format('SELECT social_security_number FROM clinic.patients WHERE id = %L', :'pat_jules')), 'XX001',
	'a ciphertext copied to another row does not decrypt (XX001)');
COMMIT;
RESET ROLE;
SELECT pg_temp.clinic_exec(:'db_a', format($$UPDATE patients SET social_security_number_enc = decode(%L, 'hex') WHERE id = %L$$,
	(SELECT v FROM pg_temp.in_clinic(:'db_b', $$SELECT encode(social_security_number_enc, 'hex') FROM patients WHERE last_name = 'Bravo'$$) AS t(v text)),
	:'pat_jules')) AS moved;
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'doc_a') IS NOT NULL AS a;
SELECT is(pg_temp.state(format('SELECT social_security_number FROM clinic.patients WHERE id = %L', :'pat_jules')), 'XX001',
	'a ciphertext of clinic B does not decrypt in clinic A');
SELECT is(pg_temp.state(format('UPDATE clinic.patients SET notes = %L WHERE id = %L', 'x', :'pat_jules')), 'XX001',
	'nor can the row be updated through clinic.patients (it is read first)');
COMMIT;
RESET ROLE;
SELECT pg_temp.clinic_exec(:'db_a', format($$UPDATE patients SET social_security_number_enc = decode(split_part(%L, ':', 1), 'hex'),
	social_security_number_bidx = split_part(%L, ':', 2) WHERE id = %L$$, :'jules_enc', :'jules_enc', :'pat_jules')) AS restored;
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'doc_a') IS NOT NULL AS a;
SELECT is((SELECT social_security_number FROM clinic.patients WHERE id = :'pat_jules'), :'ssn2', 'the original ciphertext decrypts again');
COMMIT;

-- Rotation, in resumable batches. ----------------------------------------------------------
SELECT throws_ok(format('SELECT medpro_rotate_clinic_key(%L)', :'ca'), '42501', NULL, 'medpro_api cannot rotate a clinic key');
RESET ROLE;
SET ROLE tap_op;
SELECT is(medpro_rotate_clinic_key(:'ca', 1), 1::bigint, 'rotation starts: one row re-encrypted, one left');
SELECT is((SELECT string_agg(version || ':' || status, ',' ORDER BY version) FROM medpro.clinic_keys WHERE clinic_id = :'ca'),
	'1:retiring,2:active', 'a new active version; the old one is retiring');
RESET ROLE;
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'doc_a') IS NOT NULL AS a;
SELECT is((SELECT string_agg(social_security_number, ',' ORDER BY last_name) FROM clinic.patients WHERE social_security_number IS NOT NULL),
	:'ssn2' || ',' || :'ssn', 'half-way through, rows under both versions decrypt');
SELECT is((SELECT count(*) FROM clinic.patients WHERE social_security_number IN (:'ssn', :'ssn2')), 2::bigint, 'and are found');
COMMIT;
RESET ROLE;
SET ROLE tap_op;
SELECT is(medpro_rotate_clinic_key(:'ca', 1), 0::bigint, 'the next call resumes and finishes');
SELECT is((SELECT string_agg(version || ':' || status, ',' ORDER BY version) FROM medpro.clinic_keys WHERE clinic_id = :'ca'),
	'1:retired,2:active', 'the old version is retired');
SELECT throws_ok('SELECT key_sealed FROM medpro.clinic_keys', '42501', NULL, 'operators cannot read key material');
RESET ROLE;
SELECT is((SELECT key_sealed FROM medpro.clinic_keys WHERE clinic_id = :'ca' AND version = 1), NULL, 'its key material is erased');
SELECT is((SELECT v FROM pg_temp.in_clinic(:'db_a', $$SELECT string_agg(DISTINCT social_security_number_key_version::text, ',') FROM patients$$) AS t(v text)),
	'2', 'every row of clinic A is under version 2');
SET ROLE tap_app;
BEGIN;
SELECT medpro_authenticate(:'doc_a') IS NOT NULL AS a;
SELECT is((SELECT count(*) FROM clinic.patients WHERE social_security_number = :'ssn'), 1::bigint, 'the blind index survives the rotation');
SELECT is((SELECT social_security_number FROM clinic.patients WHERE id = :'pat_iris'), :'ssn', 'the number reads back');
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'doc_b') IS NOT NULL AS b;
SELECT is((SELECT social_security_number FROM clinic.patients WHERE last_name = 'Bravo'), :'ssn', 'clinic B is untouched by A''s rotation');
COMMIT;
RESET ROLE;
SELECT is(medpro_rotate_clinic_key(:'ca', 100), 0::bigint, 'a new rotation of a small clinic finishes in one call');
SELECT is((SELECT max(version) FROM medpro.clinic_keys WHERE clinic_id = :'ca' AND status = 'active'), 3, '... at version 3');
SELECT throws_ok(format('SELECT medpro_rotate_clinic_key(%L, 0)', :'ca'), '22023', NULL, 'batch_size must be positive');
SELECT throws_ok(format('SELECT medpro_rotate_clinic_key(%L)', gen_random_uuid()), '22023', NULL, 'an unknown clinic');

-- No plaintext on disk: the clinic database's files and the WAL. ----------------------
CREATE TABLE public.tap_fc_canary (v text);
INSERT INTO public.tap_fc_canary VALUES ('medpro-fieldcrypt-canary-' || '7f3a9c');
CHECKPOINT;
SELECT current_setting('data_directory') AS pgdata \gset
SELECT oid AS db_a_oid FROM pg_database WHERE datname = :'db_a' \gset
SELECT oid AS db_b_oid FROM pg_database WHERE datname = :'db_b' \gset
SELECT oid AS central_oid FROM pg_database WHERE datname = current_database() \gset
\set canary_hits `grep -rlaF 'medpro-fieldcrypt-canary-7f3a9c' :'pgdata'/base/:central_oid :'pgdata'/pg_wal 2>/dev/null | wc -l`
\set ssn_hits `grep -rlaF -e 279097512345690 -e 180027512345676 :'pgdata'/base/:db_a_oid :'pgdata'/base/:db_b_oid :'pgdata'/pg_wal 2>/dev/null | wc -l`
\set central_hits `grep -rlaF -e 279097512345690 -e 180027512345676 :'pgdata'/base/:central_oid 2>/dev/null | wc -l`
\set files_read `find :'pgdata'/base/:db_a_oid :'pgdata'/pg_wal -type f -readable | wc -l`
SELECT cmp_ok(:files_read, '>', 10, 'the test can read the clinic database''s files and the WAL');
SELECT cmp_ok(:canary_hits, '>', 0, 'positive control: a stored plaintext is found by the grep');
SELECT is(:ssn_hits, 0, 'the numbers are nowhere in the clinic databases'' files or the WAL after a CHECKPOINT');
SELECT is(:central_hits, 0, '... nor in the central database''s files');
DROP TABLE public.tap_fc_canary;

-- The storage columns are marked medpro:internal, so a refresh of the
-- central relations never exposes the ciphertext or the blind index.
SELECT medpro_refresh_relations() \g /dev/null
SELECT is((SELECT array_agg(attname::text) FROM pg_attribute
			WHERE attrelid IN ('clinic.patients'::regclass, 'medpro.ft_patients'::regclass)
			  AND attname::text LIKE 'social\_security\_number\_%' AND NOT attisdropped), NULL,
	'medpro_refresh_relations() exposes none of the encrypted column''s storage columns');

SELECT * FROM finish();
