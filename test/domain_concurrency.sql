-- pgTAP: the clinic domain rules under concurrent writers, which pgTAP
-- cannot make itself: scripts/domain_concurrency.sh runs them as background
-- psql sessions through clinic.* (pg_prove runs from the top of the tree).
--   1. 8 sessions issue 50 invoices each (and roll back 5 more each):
--      400 numbers FAC-<year>-000001..000400, no gap, no duplicate;
--   2. 8 overlapping bookings of one practitioner, released together by a
--      barrier: exactly one wins, the others get 23P01;
--   3. 8 inserts of the same person, names differing in case and accents:
--      exactly one wins, the others get 23505.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

SELECT plan(14);

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tap_domain_app') THEN
		CREATE ROLE tap_domain_app LOGIN;
		GRANT medpro_api TO tap_domain_app;
	END IF;
END $$;
SELECT current_database() AS db \gset
SELECT medpro_key_rotate() IS NOT NULL AS rotated \gset
SELECT medpro_register_clinic('Concurrence', 'FR', 'admin@conc.test', 'parallel writers 2026') AS clinic \gset
SELECT medpro_register_clinic('Concurrencia', 'ES', 'admin@conc-es.test', 'parallel writers 2026') AS other \gset
SELECT medpro_login('admin@conc.test', 'parallel writers 2026') AS tok \gset
SELECT medpro_login('admin@conc-es.test', 'parallel writers 2026') AS tok_other \gset

-- Fixtures of the clinic, committed so that the sessions see them.
SELECT medpro_authenticate(:'tok', true) IS NOT NULL AS authenticated \gset
INSERT INTO clinic.patients (first_name, last_name) VALUES ('Camille', 'Martin') RETURNING id AS patient \gset
INSERT INTO clinic.practitioners (first_name, last_name) VALUES ('Louis', 'Pasteur') RETURNING id AS practitioner \gset
SELECT medpro_reset();

-- 1. Gapless numbering.
\set out `bash scripts/domain_concurrency.sh invoices :'db' tap_domain_app :'tok' :'patient' 8 50`
SELECT is(:'out'::text, 'committed=400 failed=0', '8 sessions x 50 invoices: all 400 committed');

SELECT medpro_authenticate(:'tok', true) IS NOT NULL AS authenticated \gset
CREATE TEMP TABLE numbers AS
	SELECT document_number, split_part(document_number, '-', 3)::int AS n
	  FROM clinic.documents WHERE document_type = 'invoice';
SELECT is((SELECT count(*)::int FROM numbers), 400, '400 invoices exist (the rolled-back ones left nothing)');
SELECT is((SELECT count(DISTINCT document_number)::int FROM numbers), 400, 'no duplicate number');
SELECT is((SELECT min(n) || '-' || max(n) FROM numbers), '1-400', 'numbers run from 1 to 400: no gap');
SELECT ok((SELECT bool_and(document_number ~ ('^FAC-' || extract(year FROM now() AT TIME ZONE 'Europe/Paris') || '-[0-9]{6}$'))
			 FROM numbers), 'every number has the form FAC-<year>-NNNNNN');
SELECT is((SELECT count(*)::int FROM clinic.documents WHERE document_number IS NULL), 0, 'no invoice was left unnumbered');
SELECT medpro_reset();

-- The other clinic's counter is its own.
SELECT medpro_authenticate(:'tok_other', true) IS NOT NULL AS authenticated \gset
INSERT INTO clinic.patients (first_name, last_name) VALUES ('Lucía', 'García') RETURNING id AS patient_other \gset
SELECT is((SELECT count(*)::int FROM clinic.documents), 0, 'the other clinic sees none of those invoices');
INSERT INTO clinic.documents (document_type, status, patient_id, items)
VALUES ('invoice', 'sent', :'patient_other', '[{"description": "Consulta", "quantity": 1, "unit_price": 40}]')
RETURNING document_number AS other_number \gset
SELECT is(:'other_number'::text, 'FAC-' || extract(year FROM now() AT TIME ZONE 'Europe/Madrid') || '-000001',
		  'the other clinic''s first invoice is number 1');
SELECT medpro_reset();

-- 2. Overlapping bookings.
\set out `bash scripts/domain_concurrency.sh bookings :'db' tap_domain_app :'tok' :'patient' 8 :'practitioner' '2026-06-15 09:00:00+02'`
SELECT is(:'out'::text, 'booked=1 refused=7 other=0', '8 overlapping bookings at once: one booked, 7 refused with 23P01');
SELECT medpro_authenticate(:'tok', true) IS NOT NULL AS authenticated \gset
SELECT is((SELECT count(*)::int FROM clinic.appointments WHERE practitioner_id = :'practitioner'), 1,
		  'exactly one appointment exists');
SELECT medpro_reset();

-- The same bookings cancelled do not block: a second round again admits one.
SELECT medpro_authenticate(:'tok', true) IS NOT NULL AS authenticated \gset
UPDATE clinic.appointments SET status = 'cancelled' WHERE practitioner_id = :'practitioner';
SELECT medpro_reset();
\set out `bash scripts/domain_concurrency.sh bookings :'db' tap_domain_app :'tok' :'patient' 8 :'practitioner' '2026-06-15 09:00:00+02'`
SELECT is(:'out'::text, 'booked=1 refused=7 other=0', 'after cancelling, the slot is free again for exactly one booking');

-- 3. Duplicate patients.
\set out `bash scripts/domain_concurrency.sh patients :'db' tap_domain_app :'tok' - 8`
SELECT is(:'out'::text, 'inserted=1 refused=7 other=0', '8 inserts of one person at once: one inserted, 7 refused with 23505');
SELECT medpro_authenticate(:'tok', true) IS NOT NULL AS authenticated \gset
SELECT is((SELECT count(*)::int FROM clinic.patients WHERE last_name = 'Dupont-Durand Concurrent'), 1,
		  'exactly one such patient exists');
SELECT medpro_reset();

-- The clinic database's counter row agrees.
SELECT is((SELECT v FROM dblink(format('host=%s port=%s dbname=%s user=postgres',
									   split_part(current_setting('unix_socket_directories'), ',', 1),
									   current_setting('port'),
									   (SELECT db_name FROM medpro.clinics WHERE id = :'clinic')),
								'SELECT last_value::text FROM medpro_document_counters WHERE document_type = ''invoice''')
					AS t(v text)), '400', 'the invoice counter stands at 400');

SELECT * FROM finish();
