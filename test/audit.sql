-- pgTAP: the audit trail is append-only and hash-chained per clinic.
--
-- Links are made at commit under a lock on the chain's head, so 8
-- concurrent writers give one chain; medpro_audit_verify() finds the first
-- broken link after a superuser tampers with rows (triggers disabled);
-- pruning leaves a signed checkpoint from which the rest still verifies.
-- The tampering and the pruning run in transactions that are rolled back.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(43);

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
INSERT INTO medpro.clinics (id, name, country, email, status) VALUES
	('a5a5a5a5-0000-4000-8000-000000000001', 'Audit Clinic A', 'FR', 'aud-a@clinic.test', 'active'),
	('b6b6b6b6-0000-4000-8000-000000000002', 'Audit Clinic B', 'ES', 'aud-b@clinic.test', 'active')
ON CONFLICT DO NOTHING;
\set ca 'a5a5a5a5-0000-4000-8000-000000000001'
\set cb 'b6b6b6b6-0000-4000-8000-000000000002'

-- Rows are linked when their transaction commits. ---------------------------------
BEGIN;
SELECT medpro.audit_append(:'ca', NULL, 'tap_event', 'patient', 'p1', NULL,
	'{"b": 1.50, "a": [1e3, "é", null], "z": {"nested": true}, "n": -0.000001}', '192.0.2.7');
SELECT is((SELECT count(*) FROM medpro.audit_log l WHERE l.action = 'tap_event' AND l.row_hash IS NOT NULL), 0::bigint,
	'a row is not linked before its transaction commits');
COMMIT;
SELECT is((SELECT l.chain_seq FROM medpro.audit_log l WHERE l.action = 'tap_event'), 1::bigint, 'the first row of clinic A is link 1 of its chain');
SELECT medpro.audit_append(:'ca', NULL, 'tap_event2', 'patient', 'p2', '{"x": "y"}', NULL, NULL);
SELECT medpro.audit_append(:'cb', NULL, 'tap_event_b', 'patient', 'q1', NULL, NULL, NULL);
SELECT is((SELECT l.chain_seq FROM medpro.audit_log l WHERE l.action = 'tap_event_b'), 1::bigint, 'clinic B has a chain of its own');
SELECT is((SELECT l.prev_hash FROM medpro.audit_log l WHERE l.action = 'tap_event2'),
		  (SELECT l.row_hash FROM medpro.audit_log l WHERE l.action = 'tap_event'),
	'each link points at the previous row''s hash');
SELECT is((SELECT array_agg(chain) FROM medpro_audit_verify() WHERE NOT valid), NULL, 'every chain verifies');
SELECT is((SELECT rows_checked FROM medpro_audit_verify(:'ca')), 2::bigint, 'clinic A''s chain has its two rows');
SELECT is((SELECT valid FROM medpro_audit_verify(:'ca')), true,
	'microsecond timestamps, jsonb numbers, unicode and inet round-trip into the same hash');
-- The same hash, recomputed by hand: the canonical text is documented.
SELECT is((SELECT l.row_hash FROM medpro.audit_log l WHERE l.action = 'tap_event'),
	(SELECT sha256(medpro.audit_genesis(:'ca') || convert_to(concat_ws('|', 'v1', '1', l.id::text,
		'36:' || :'ca', '-', '9:tap_event', '7:patient', '2:p1', '-', length(l.new_data::text) || ':' || l.new_data::text,
		'12:192.0.2.7/32', length(extract(epoch FROM l.at)::text) || ':' || extract(epoch FROM l.at)::text), getdatabaseencoding()))
	   FROM medpro.audit_log l WHERE l.action = 'tap_event'),
	'row_hash = sha256(prev_hash || canonical text), as docs/security.md says');

-- Append-only, even for the owner. ------------------------------------------------
SELECT throws_ok($$UPDATE medpro.audit_log SET action = 'x' WHERE action = 'tap_event'$$, '42501', NULL, 'audit rows cannot be updated');
SELECT throws_ok($$DELETE FROM medpro.audit_log WHERE action = 'tap_event'$$, '42501', NULL, 'audit rows cannot be deleted');
SELECT throws_ok('TRUNCATE medpro.audit_log', '42501', NULL, 'the audit log cannot be truncated');
SELECT throws_ok($$UPDATE medpro.audit_log SET row_hash = NULL, chain_seq = NULL WHERE action = 'tap_event'$$, '42501', NULL,
	'a link cannot be undone');
SELECT throws_ok($$UPDATE medpro.audit_log SET row_hash = sha256('x') WHERE action = 'tap_event'$$, '42501', NULL,
	'a link cannot be rewritten');
SELECT throws_ok('TRUNCATE medpro.audit_checkpoints', '42501', NULL, 'checkpoints cannot be truncated');
SELECT throws_ok('DELETE FROM medpro.audit_checkpoints', '42501', NULL, 'checkpoints cannot be deleted');

-- Who may verify and prune. -------------------------------------------------------
SET ROLE tap_app;
SELECT throws_ok('SELECT * FROM medpro_audit_verify()', '42501', NULL, 'medpro_api cannot verify the audit trail');
SELECT throws_ok('SELECT * FROM medpro_audit_prune(interval ''1 day'')', '42501', NULL, 'medpro_api cannot prune');
SELECT throws_ok('SELECT * FROM medpro.audit_heads', '42501', NULL, 'medpro_api cannot read the chain heads');
RESET ROLE;
SET ROLE tap_op;
SELECT is((SELECT valid FROM medpro_audit_verify(:'cb')), true, 'operators verify');
SELECT throws_ok('SELECT row_hash FROM medpro.audit_log', '42501', NULL, 'operators read no chain column directly');
RESET ROLE;

-- 8 concurrent writers, one chain. ------------------------------------------------
CREATE FUNCTION pg_temp.conninfo() RETURNS text LANGUAGE sql AS $$
	SELECT format('host=%s port=%s dbname=%s user=postgres',
				  split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'), current_database())
$$;
SELECT count(*) AS connected FROM generate_series(1, 8) i, LATERAL dblink_connect('tap_w' || i, pg_temp.conninfo());
SELECT count(*) AS sent FROM generate_series(1, 8) i, LATERAL dblink_send_query('tap_w' || i, format($q$
	DO $w$
	BEGIN
		FOR n IN 1..25 LOOP
			PERFORM medpro.audit_append(%L, NULL, 'tap_concurrent', 'writer', %L, NULL,
										jsonb_build_object('n', n), NULL);
			COMMIT;
		END LOOP;
	END $w$$q$, :'cb', i));
SELECT count(*) AS done FROM generate_series(1, 8) i, LATERAL dblink_get_result('tap_w' || i) AS t(r text);
SELECT count(*) AS disconnected FROM generate_series(1, 8) i, LATERAL dblink_disconnect('tap_w' || i);
SELECT is((SELECT count(*) FROM medpro.audit_log WHERE action = 'tap_concurrent'), 200::bigint, '8 writers appended 200 rows');
SELECT is((SELECT count(DISTINCT l.chain_seq) FROM medpro.audit_log l WHERE l.action = 'tap_concurrent'), 200::bigint,
	'every row got a link of its own');
SELECT is((SELECT max(chain_seq) FROM medpro.audit_log WHERE clinic_id = :'cb'), 201::bigint, 'the links of clinic B are 1 to 201, without a gap');
SELECT is((SELECT row(valid, rows_checked)::text FROM medpro_audit_verify(:'cb')), '(t,201)', 'the concurrent chain verifies: no fork');
-- The same at REPEATABLE READ: the head is read with the latest snapshot.
SELECT count(*) AS connected FROM generate_series(1, 8) i, LATERAL dblink_connect('tap_w' || i, pg_temp.conninfo());
SELECT count(*) AS rr FROM generate_series(1, 8) i,
	LATERAL dblink_exec('tap_w' || i, 'SET default_transaction_isolation = ''repeatable read''');
SELECT count(*) AS sent FROM generate_series(1, 8) i, LATERAL dblink_send_query('tap_w' || i, format($q$
	DO $w$
	BEGIN
		FOR n IN 1..25 LOOP
			PERFORM medpro.audit_append(%L, NULL, 'tap_concurrent_rr', 'writer', %L, NULL,
										jsonb_build_object('n', n), NULL);
			COMMIT;
		END LOOP;
	END $w$$q$, :'cb', i));
SELECT count(*) AS done FROM generate_series(1, 8) i, LATERAL dblink_get_result('tap_w' || i) AS t(r text);
SELECT count(*) AS disconnected FROM generate_series(1, 8) i, LATERAL dblink_disconnect('tap_w' || i);
SELECT is((SELECT count(*) FROM medpro.audit_log WHERE action = 'tap_concurrent_rr' AND row_hash IS NOT NULL), 200::bigint,
	'8 REPEATABLE READ writers appended and linked 200 rows, none failed');
SELECT is((SELECT row(valid, rows_checked)::text FROM medpro_audit_verify(:'cb')), '(t,401)', '... into the same valid chain');

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
-- Results inside the rolled-back transactions are kept in psql variables
-- (pgTAP's own counters would be rolled back) and checked after them.
-- Tampering as a superuser is caught. ----------------------------------------------
BEGIN;
ALTER TABLE medpro.audit_log DISABLE TRIGGER USER;
UPDATE medpro.audit_log SET new_data = '{"x": "forged"}' WHERE action = 'tap_event2';
SELECT ((SELECT row(valid, broken_seq, problem)::text FROM medpro_audit_verify(:'ca')))::text AS r1 \gset
SELECT ((SELECT broken_log_id FROM medpro_audit_verify(:'ca')))::text AS r2 \gset
UPDATE medpro.audit_log SET new_data = NULL WHERE action = 'tap_event2';
SELECT ((SELECT valid FROM medpro_audit_verify(:'ca')))::text AS r3 \gset
UPDATE medpro.audit_log SET at = at + interval '1 microsecond' WHERE action = 'tap_event2';
SELECT ((SELECT problem FROM medpro_audit_verify(:'ca')))::text AS r4 \gset
UPDATE medpro.audit_log SET at = at - interval '1 microsecond' WHERE action = 'tap_event2';
UPDATE medpro.audit_log SET clinic_id = 'c7c7c7c7-0000-4000-8000-000000000003' WHERE action = 'tap_event2';
SELECT ((SELECT problem FROM medpro_audit_verify(:'ca')))::text AS r5 \gset
UPDATE medpro.audit_log SET clinic_id = :'ca' WHERE action = 'tap_event2';
INSERT INTO medpro.audit_log (clinic_id, action) VALUES (:'ca', 'tap_forged');
SELECT ((SELECT problem FROM medpro_audit_verify(:'ca')))::text AS r6 \gset
DELETE FROM medpro.audit_log WHERE action = 'tap_forged';
DELETE FROM medpro.audit_log WHERE action = 'tap_event';
SELECT ((SELECT row(valid, broken_seq, problem)::text FROM medpro_audit_verify(:'ca')))::text AS r7 \gset
ROLLBACK;
SELECT is(:'r1'::text, ('(f,2,"audit row altered")')::text, 'an altered row is reported as the first broken link');
SELECT is(:'r2'::text, ((SELECT id FROM medpro.audit_log WHERE action = 'tap_event2'))::text, '... with its id');
SELECT is(:'r3'::text, (true)::text, 'putting the exact value back verifies again');
SELECT is(:'r4'::text, ('audit row altered')::text, 'a timestamp moved by one microsecond is caught');
SELECT is(:'r5'::text, ('links missing at the end of the chain')::text, 'a row moved to another clinic is caught');
SELECT is(:'r6'::text, ('audit row not in the chain')::text, 'a row inserted around the trigger is caught');
SELECT is(:'r7'::text, ('(f,1,"audit row missing")')::text, 'a deleted row is caught');
BEGIN;
ALTER TABLE medpro.audit_log DISABLE TRIGGER USER;
DELETE FROM medpro.audit_log WHERE clinic_id = :'cb' AND chain_seq = 100;
SELECT ((SELECT row(valid, broken_seq, problem)::text FROM medpro_audit_verify(:'cb')))::text AS r8 \gset
ROLLBACK;
SELECT is(:'r8'::text, ('(f,100,"audit row missing")')::text, 'a row deleted from the middle of the chain is caught');
BEGIN;
ALTER TABLE medpro.audit_log DISABLE TRIGGER USER;
DELETE FROM medpro.audit_log WHERE clinic_id = :'cb' AND chain_seq = 401;
SELECT ((SELECT row(valid, broken_seq, problem)::text FROM medpro_audit_verify(:'cb')))::text AS r9 \gset
ROLLBACK;
SELECT is(:'r9'::text, ('(f,401,"links missing at the end of the chain")')::text, 'removing the newest row is caught by the head');
BEGIN;
ALTER TABLE medpro.audit_log DISABLE TRIGGER USER;
UPDATE medpro.audit_log SET new_data = '{"n": 0}' WHERE clinic_id = :'cb' AND chain_seq = 50;
UPDATE medpro.audit_log l SET row_hash = medpro.audit_row_hash(l.prev_hash, l.chain_seq, l)
 WHERE l.clinic_id = :'cb' AND l.chain_seq = 50;
SELECT ((SELECT row(valid, broken_seq, problem)::text FROM medpro_audit_verify(:'cb')))::text AS r10 \gset
ROLLBACK;
SELECT is(:'r10'::text, ('(f,51,"link does not follow the previous one")')::text,
	'a row rewritten with a recomputed hash is caught by the next link');

-- Retention: pruning leaves a signed checkpoint. -----------------------------------
BEGIN;
SELECT medpro.audit_append(:'ca', NULL, 'tap_old', NULL, NULL, NULL, NULL, NULL) FROM generate_series(1, 3);
SELECT pg_sleep(0.05);
SELECT clock_timestamp() AS mid \gset
SELECT pg_sleep(0.05);
SELECT medpro.audit_append(:'ca', NULL, 'tap_new', NULL, NULL, NULL, NULL, NULL) FROM generate_series(1, 2);
SET LOCAL medpro.audit_retention_days = 0;
SELECT ((SELECT count(*) FROM medpro_audit_prune()))::text AS r110 \gset
SELECT ((SELECT pruned FROM medpro_audit_prune(clock_timestamp() - :'mid'::timestamptz) WHERE chain = :'ca'))::text AS r111 \gset
SELECT ((SELECT count(*) FROM medpro.audit_log WHERE clinic_id = :'ca' AND action IN ('tap_event', 'tap_event2', 'tap_old')))::text AS r112 \gset
SELECT ((SELECT row(valid, rows_checked)::text FROM medpro_audit_verify(:'ca')))::text AS r113 \gset
SELECT coalesce((SELECT array_agg(chain) FROM medpro_audit_verify() WHERE NOT valid)::text, 'none') AS r114 \gset
ALTER TABLE medpro.audit_checkpoints DISABLE TRIGGER USER;
UPDATE medpro.audit_checkpoints SET pruned_rows = pruned_rows, signature = sha256(signature) WHERE chain = :'ca';
SELECT ((SELECT problem FROM medpro_audit_verify(:'ca')))::text AS r115 \gset
ROLLBACK;
SELECT is(:'r110'::text, (0::bigint)::text, 'without retention nothing is pruned');
SELECT is(:'r111'::text, (5::bigint)::text, 'pruning deletes clinic A''s rows older than the cutoff');
SELECT is(:'r112'::text, (0::bigint)::text, '... which are gone');
SELECT is(:'r113'::text, ('(t,2)')::text, 'the rest of the chain verifies from the signed checkpoint');
SELECT is(:'r114'::text, 'none'::text, 'every chain verifies after pruning');
SELECT is(:'r115'::text, ('checkpoint signature does not verify')::text, 'a forged checkpoint is caught');
BEGIN;
ALTER TABLE medpro.audit_log DISABLE TRIGGER USER;
UPDATE medpro.audit_log SET action = 'tap_tampered' WHERE action = 'tap_event';
SELECT pg_temp.state($$SELECT * FROM medpro_audit_prune(interval '0')$$) AS r116 \gset
ROLLBACK;
SELECT is(:'r116'::text, 'XX001', 'a broken chain is never pruned away');


SELECT * FROM finish();
