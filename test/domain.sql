-- pgTAP: the clinic domain rules (DESIGN 5.6, docs/domain.md) through
-- clinic.* and the central domain functions, with two clinics (FR in
-- Europe/Paris, ES moved to Atlantic/Canary) to show that numbers,
-- duplicates, slots and GDPR requests stay inside one clinic.  The
-- concurrent cases are in test/domain_concurrency.sql.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = warning;

SELECT plan(192);

-- Runs a query in a clinic database as the superuser (fixtures and checks).
CREATE FUNCTION pg_temp.in_clinic(clinic uuid, query text) RETURNS text LANGUAGE sql AS $$
	SELECT v FROM dblink(format('host=%s port=%s dbname=%s user=postgres',
								split_part(current_setting('unix_socket_directories'), ',', 1),
								current_setting('port'),
								(SELECT db_name FROM medpro.clinics WHERE id = clinic)), query) AS t(v text)
$$;
-- The connection string of a clinic database, as the superuser.
CREATE FUNCTION pg_temp.clinic_conninfo(clinic uuid) RETURNS text LANGUAGE sql AS $$
	SELECT format('host=%s port=%s dbname=%s user=postgres',
				  split_part(current_setting('unix_socket_directories'), ',', 1),
				  current_setting('port'), (SELECT db_name FROM medpro.clinics WHERE id = clinic))
$$;
-- SQLSTATE and hint of the error a statement raises ('' when none).
CREATE FUNCTION pg_temp.hint_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	v_state text;
	v_hint text;
BEGIN
	EXECUTE stmt;
	RETURN '';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_hint = PG_EXCEPTION_HINT;
	RETURN v_state || ' ' || v_hint;
END
$$;

SELECT medpro_key_rotate() IS NOT NULL AS rotated \gset
SELECT medpro_register_clinic('Cabinet Domaine', 'FR', 'admin@domaine.test', 'domain rules paris 2026',
							  business_number => '123 456 782 00010', vat_number => 'FR11123456782') AS fr \gset
SELECT medpro_register_clinic('Clínica Dominio', 'ES', 'admin@dominio.test', 'domain rules canarias 2026',
							  business_number => 'B12345674', vat_number => 'ESB12345674') AS es \gset
SELECT medpro_create_user('doc@domaine.test', 'domain doctor paris', 'doctor', 'Marie', 'Curie', :'fr') IS NOT NULL AS u \gset
SELECT medpro_create_user('sec@domaine.test', 'domain secretary paris', 'secretary', 'Paul', 'Petit', :'fr') IS NOT NULL AS u \gset
-- The Spanish clinic is in the Canary Islands.
UPDATE medpro.clinics SET timezone = 'Atlantic/Canary' WHERE id = :'es';
SELECT pg_temp.in_clinic(:'es', $$UPDATE medpro_settings SET timezone = 'Atlantic/Canary' RETURNING timezone$$) AS tz \gset

SELECT medpro_login('admin@domaine.test', 'domain rules paris 2026') AS fr_admin \gset
SELECT medpro_login('doc@domaine.test', 'domain doctor paris') AS fr_doc \gset
SELECT medpro_login('sec@domaine.test', 'domain secretary paris') AS fr_sec \gset
SELECT medpro_login('admin@dominio.test', 'domain rules canarias 2026') AS es_admin \gset

SELECT is((SELECT business_number || ' ' || vat_number FROM medpro.clinics WHERE id = :'fr'),
		  '123 456 782 00010 FR11123456782', 'register: valid SIRET and VAT number accepted');

-- ============================================================ Patients
SELECT medpro_authenticate(:'fr_admin', true) IS NOT NULL AS a \gset
INSERT INTO clinic.patients (first_name, last_name, email, date_of_birth, social_security_number, medical_history)
VALUES ('Hélène', 'Dupont-Durand', 'Helene.Dupont@example.test', '1985-05-17', '285057800608936', 'asthme')
RETURNING id AS helene, patient_number AS helene_number \gset
SELECT matches(:'helene_number'::text, '^P[0-9]{6}$', 'a patient number is generated (P000001 style)');
INSERT INTO clinic.patients (first_name, last_name, patient_number) VALUES ('Jean', 'Valjean', 'X-24601')
RETURNING id AS jean \gset
SELECT is((SELECT patient_number FROM clinic.patients WHERE id = :'jean'), 'X-24601', 'a given patient number is kept');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name, patient_number) VALUES ('Autre', 'Personne', 'X-24601')$$,
				 '23505', NULL, 'a patient number is unique among live patients');

SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES ('helene', 'dupont durand')$$,
				 '23505', format('duplicate patient: patient %s has the same email or name', :'helene_number'),
				 'duplicate: accents, case and hyphen folded; the message names only the patient number');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES ('  HÉLÈNE ', 'Dupont  -  Durand')$$,
				 '23505', NULL, 'duplicate: extra spaces around the hyphen and upper-case accents');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name, email) VALUES ('Someone', 'Else', 'HELENE.DUPONT@EXAMPLE.TEST')$$,
				 '23505', format('duplicate patient: patient %s has the same email or name', :'helene_number'),
				 'duplicate: the same email in another case');
SELECT lives_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES ('Hélène', 'Dupont')$$,
				'another last name is another patient');
SELECT lives_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES ('Œdipe', 'Roi')$$, 'a ligature name');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES ('oedipe', 'ROI')$$,
				 '23505', NULL, 'duplicate: the ligature œ folds to oe');
-- Unicode spellings of the same name: combining accents (NFD), a no-break
-- space, Unicode hyphens and dashes, an invisible zero-width space, a
-- typographic ligature.
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES (E'He\u0301le\u0300ne', 'Dupont-Durand')$$,
				 '23505', format('duplicate patient: patient %s has the same email or name', :'helene_number'),
				 'duplicate: combining accents (decomposed é, è) fold like precomposed ones');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES ('Hélène', E'Dupont\u00a0Durand')$$,
				 '23505', NULL, 'duplicate: a no-break space is a space');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES ('Hélène', E'Dupont\u2010Durand')$$,
				 '23505', NULL, 'duplicate: U+2010 HYPHEN is a hyphen');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES ('Hélène', E'Dupont \u2013 Durand')$$,
				 '23505', NULL, 'duplicate: an en dash is a hyphen');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES (E'H\u00e9l\u00ad\u00e8ne', E'Dupont-\u200bDurand\u200b')$$,
				 '23505', NULL, 'duplicate: zero-width space and soft hyphen are ignored');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES (E'\u0152DIPE', 'roi')$$,
				 '23505', NULL, 'duplicate: the capital ligature Œ in an upper-case name');
SELECT lives_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES (E'\ufb01lom\u00e8ne', 'Durand')$$,
				'a name with the typographic ligature ﬁ');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name) VALUES ('Filomene', 'DURAND')$$,
				 '23505', NULL, 'duplicate: the ligature ﬁ folds to fi');
SELECT is(pg_temp.in_clinic(:'fr', $$SELECT medpro_fold_name(E' \u1e9e\u00f8\u0142 O\u2019Br\u00ffan-\uff2d\uff41\uff52\uff54\u00ednez ')$$),
		  'ssol o bryan martinez', 'medpro_fold_name: capital ß, ø, ł, typographic apostrophe, full-width letters');
SELECT throws_ok(format($$UPDATE clinic.patients SET first_name = 'Helene', last_name = 'Dupont Durand' WHERE id = %L$$, :'jean'),
				 '23505', format('duplicate patient: patient %s has the same email or name', :'helene_number'),
				 'an update that makes a duplicate is refused too');
SELECT lives_ok(format($$UPDATE clinic.patients SET phone = '+33 1 23 45 67 89', email = 'helene.dupont@example.test' WHERE id = %L$$, :'helene'),
				'changing a patient''s email case does not make the patient a duplicate of itself');

-- Emails: surrounding white space is not part of the address, and a blank
-- email is no email (two patients without one are no duplicates).
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name, email) VALUES ('Other', 'Person', E' helene.dupont@example.test\t')$$,
				 '23505', format('duplicate patient: patient %s has the same email or name', :'helene_number'),
				 'duplicate: the same email with white space around it');
INSERT INTO clinic.patients (first_name, last_name, email) VALUES ('Sans', 'Courriel', '') RETURNING id AS blank1 \gset
SELECT lives_ok($$INSERT INTO clinic.patients (first_name, last_name, email) VALUES ('Aucun', 'Courriel', '  ')$$,
				'two patients with a blank email are not duplicates');
SELECT is((SELECT count(*)::int FROM clinic.patients WHERE last_name = 'Courriel' AND email IS NULL), 2,
		  'a blank email is stored as NULL');

-- Under REPEATABLE READ the trigger's snapshot cannot see a concurrent
-- insert committed after it was taken; the unique indexes still refuse the
-- duplicate.  Two sessions in the clinic database, interleaved by hand.
SELECT dblink_connect('rr1', pg_temp.clinic_conninfo(:'fr')) AS c \gset
SELECT dblink_connect('rr2', pg_temp.clinic_conninfo(:'fr')) AS c \gset
SELECT dblink_exec('rr1', 'BEGIN ISOLATION LEVEL REPEATABLE READ') AS c \gset
SELECT dblink_exec('rr2', 'BEGIN ISOLATION LEVEL REPEATABLE READ') AS c \gset
SELECT v AS c FROM dblink('rr1', 'SELECT count(*)::text FROM patients') AS t(v text) \gset
SELECT v AS c FROM dblink('rr2', 'SELECT count(*)::text FROM patients') AS t(v text) \gset
SELECT dblink_exec('rr1', $$INSERT INTO patients (first_name, last_name, email) VALUES ('Rita', 'Repeatable', 'rita@example.test')$$) AS c \gset
SELECT dblink_exec('rr1', 'COMMIT') AS c \gset
SELECT throws_ok($$SELECT dblink_exec('rr2', 'INSERT INTO patients (first_name, last_name) VALUES (''RITA'', ''repeatable'')')$$,
				 '23505', NULL, 'REPEATABLE READ: a concurrent duplicate name is refused by the unique index');
SELECT dblink_exec('rr2', 'ROLLBACK') AS c \gset
SELECT dblink_exec('rr2', 'BEGIN ISOLATION LEVEL REPEATABLE READ') AS c \gset
SELECT v AS c FROM dblink('rr2', 'SELECT count(*)::text FROM patients') AS t(v text) \gset
SELECT dblink_exec('rr1', $$INSERT INTO patients (first_name, last_name, email) VALUES ('Ruth', 'Repeatable', 'ruth@example.test')$$) AS c \gset
SELECT throws_ok($$SELECT dblink_exec('rr2', 'INSERT INTO patients (first_name, last_name, email) VALUES (''Other'', ''Name'', ''RUTH@example.test'')')$$,
				 '23505', NULL, 'REPEATABLE READ: a concurrent duplicate email is refused by the unique index');
SELECT dblink_exec('rr2', 'ROLLBACK') AS c \gset
SELECT dblink_disconnect('rr1') AS c \gset
SELECT dblink_disconnect('rr2') AS c \gset
SELECT is(pg_temp.in_clinic(:'fr', $$SELECT count(*)::text FROM patients WHERE last_name = 'Repeatable'$$), '2',
		  'only the first session''s patients exist');

-- A soft-deleted patient no longer blocks.
INSERT INTO clinic.patients (first_name, last_name, email) VALUES ('Zoé', 'Leroy', 'zoe@example.test') RETURNING id AS zoe \gset
DELETE FROM clinic.patients WHERE id = :'zoe';
SELECT lives_ok($$INSERT INTO clinic.patients (first_name, last_name, email) VALUES ('Zoe', 'LEROY', 'zoe@example.test')$$,
				'a soft-deleted patient does not block a new one with the same name and email');

SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name, date_of_birth) VALUES ('Futur', 'Bébé', current_date + 2)$$,
				 '23514', 'date_of_birth may not be in the future', 'date_of_birth in the future is refused');
SELECT lives_ok($$INSERT INTO clinic.patients (first_name, last_name, date_of_birth)
				  VALUES ('Nouveau', 'Né', (now() AT TIME ZONE 'Europe/Paris')::date)$$,
				'date_of_birth today (clinic time) is accepted');
SELECT throws_ok(format($$UPDATE clinic.patients SET date_of_birth = current_date + 30 WHERE id = %L$$, :'jean'),
				 '23514', 'date_of_birth may not be in the future', 'an update to a future date_of_birth is refused');

-- Social security numbers, checked for the clinic's country.
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('Nir', 'Faux', '185057512345674')$$,
				 '23514', 'invalid social security number', 'FR: a NIR with a wrong key is refused');
SELECT lives_ok($$INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('Nir', 'Corse', '185052B12345660')$$,
				'FR: a Corsican (2B) NIR is accepted');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('Nuss', 'Espagnol', '281234567840')$$,
				 '23514', 'invalid social security number', 'FR: a Spanish NUSS is not a NIR');
SELECT throws_ok(format($$UPDATE clinic.patients SET social_security_number = '290122A00401254' WHERE id = %L$$, :'jean'),
				 '23514', 'invalid social security number', 'FR: an update to an invalid NIR is refused');
SELECT medpro_reset();

SELECT medpro_authenticate(:'es_admin', true) IS NOT NULL AS a \gset
INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('Hélène', 'Dupont-Durand', '28 12345678 40')
RETURNING id AS es_helene, patient_number AS es_helene_number \gset
SELECT is(:'es_helene_number'::text, 'P000001', 'ES: the other clinic numbers its own patients from 1; the same name is no duplicate there');
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('Nir', 'Francés', '185057512345673')$$,
				 '23514', 'invalid social security number', 'ES: a French NIR is not a NUSS');
SELECT is((SELECT count(*)::int FROM clinic.patients), 1, 'ES sees only its own patient');
SELECT medpro_reset();

-- ============================================================ Scheduling
SELECT medpro_authenticate(:'fr_admin', true) IS NOT NULL AS a \gset
INSERT INTO clinic.practitioners (first_name, last_name, working_hours)
VALUES ('Marie', 'Curie', '{"sunday": [{"start": "00:00", "end": "04:00"}, {"start": "09:00", "end": "11:00"}],
							"monday": [{"start": "08:30", "end": "10:00"}]}')
RETURNING id AS doc \gset
INSERT INTO clinic.practitioners (first_name, last_name) VALUES ('Louis', 'Pasteur') RETURNING id AS doc2 \gset
SELECT is(pg_temp.in_clinic(:'fr', $$SELECT extname FROM pg_extension WHERE extname = 'btree_gist'$$), 'btree_gist',
		  'btree_gist is installed in the clinic database');
INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
VALUES (:'helene', :'doc', '2026-06-01 08:30+02', '2026-06-01 09:00+02') RETURNING id AS appt \gset
SELECT throws_ok(format($$INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
						  VALUES (%L, %L, '2026-06-01 08:45+02', '2026-06-01 09:15+02')$$, :'jean', :'doc'),
				 '23P01', 'conflicting key value violates exclusion constraint "appointments_no_overlap"',
				 'an overlapping appointment of the same practitioner is refused');
SELECT throws_ok(format($$INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
						  VALUES (%L, %L, '2026-06-01 06:00+00', '2026-06-01 07:00+00')$$, :'jean', :'doc'),
				 '23P01', NULL, 'overlap is on instants, whatever the offset the times are written in');
SELECT lives_ok(format($$INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
						 VALUES (%L, %L, '2026-06-01 09:00+02', '2026-06-01 09:30+02')$$, :'jean', :'doc'),
				'an appointment starting when the previous ends does not overlap ([) ranges)');
SELECT lives_ok(format($$INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
						 VALUES (%L, %L, '2026-06-01 08:30+02', '2026-06-01 09:00+02')$$, :'jean', :'doc2'),
				'another practitioner may have the same time');
SELECT throws_ok(format($$INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
						  VALUES (%L, %L, '2026-06-02 10:00+02', '2026-06-02 10:00+02')$$, :'jean', :'doc'),
				 '23514', 'new row for relation "appointments" violates check constraint "appointments_time_order"',
				 'end_time must be after start_time');
SELECT throws_ok(format($$INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
						  VALUES (%L, %L, '-infinity', 'infinity')$$, :'jean', :'doc2'),
				 '23514', 'new row for relation "appointments" violates check constraint "appointments_time_finite_check"',
				 'an appointment from -infinity to infinity is refused');
SELECT throws_ok(format($$INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
						  VALUES (%L, %L, '2026-06-02 10:00+02', 'infinity')$$, :'jean', :'doc2'),
				 '23514', NULL, 'an appointment without end is refused');
SELECT throws_ok(format($$UPDATE clinic.appointments SET start_time = '2026-06-01 09:10+02', end_time = '2026-06-01 09:40+02'
						  WHERE practitioner_id = %L AND start_time = '2026-06-01 08:30+02'$$, :'doc'),
				 '23P01', NULL, 'moving an appointment onto another is refused');
UPDATE clinic.appointments SET status = 'cancelled', cancellation_reason = 'patient ill' WHERE id = :'appt';
SELECT lives_ok(format($$INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
						 VALUES (%L, %L, '2026-06-01 08:30+02', '2026-06-01 08:50+02')$$, :'jean', :'doc'),
				'a cancelled appointment does not block its time');
SELECT is(pg_temp.in_clinic(:'fr', $$SELECT data_type FROM information_schema.columns
									   WHERE table_name = 'appointments' AND column_name = 'start_time'$$),
		  'timestamp with time zone', 'appointment times are timestamptz');
SELECT is(pg_temp.in_clinic(:'fr', 'SELECT timezone FROM medpro_settings'), 'Europe/Paris', 'the clinic''s IANA zone is stored');

-- Free slots across the 2026 DST changes (Paris: 29 March 02:00 -> 03:00,
-- 25 October 03:00 -> 02:00).  Sunday hours 00:00-04:00 and 09:00-11:00.
SELECT is(ARRAY(SELECT start_time FROM medpro_free_slots(:'doc', '2026-03-22', '1 hour')),
		  ARRAY['2026-03-21 23:00Z', '2026-03-22 00:00Z', '2026-03-22 01:00Z', '2026-03-22 02:00Z',
				'2026-03-22 08:00Z', '2026-03-22 09:00Z']::timestamptz[],
		  'free slots on an ordinary winter Sunday: 4 night hours, 09:00 and 10:00 at UTC+1');
SELECT is(ARRAY(SELECT start_time FROM medpro_free_slots(:'doc', '2026-03-29', '1 hour')),
		  ARRAY['2026-03-28 23:00Z', '2026-03-29 00:00Z', '2026-03-29 01:00Z',
				'2026-03-29 07:00Z', '2026-03-29 08:00Z']::timestamptz[],
		  '29 March 2026: 00:00-04:00 lasts 3 hours, and 09:00 local is 07:00 UTC');
SELECT is(ARRAY(SELECT to_char(start_time AT TIME ZONE 'Europe/Paris', 'HH24:MI')
				  FROM medpro_free_slots(:'doc', '2026-03-29', '1 hour')),
		  ARRAY['00:00', '01:00', '03:00', '09:00', '10:00'],
		  '29 March 2026 in local time: 02:00 does not exist');
SELECT is(ARRAY(SELECT start_time FROM medpro_free_slots(:'doc', '2026-10-25', '1 hour')),
		  ARRAY['2026-10-24 22:00Z', '2026-10-24 23:00Z', '2026-10-25 00:00Z', '2026-10-25 01:00Z',
				'2026-10-25 02:00Z', '2026-10-25 08:00Z', '2026-10-25 09:00Z']::timestamptz[],
		  '25 October 2026: 00:00-04:00 lasts 5 hours (02:00 twice), and 09:00 local is 08:00 UTC');
SELECT is(ARRAY(SELECT to_char(start_time AT TIME ZONE 'Europe/Paris', 'HH24:MI')
				  FROM medpro_free_slots(:'doc', '2026-10-25', '1 hour')),
		  ARRAY['00:00', '01:00', '02:00', '02:00', '03:00', '09:00', '10:00'],
		  '25 October 2026 in local time: 02:00 comes twice, as two distinct instants');
INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
VALUES (:'helene', :'doc', '2026-03-29 09:15+02', '2026-03-29 09:45+02');
SELECT is(ARRAY(SELECT to_char(start_time AT TIME ZONE 'Europe/Paris', 'HH24:MI')
				  FROM medpro_free_slots(:'doc', '2026-03-29', '30 minutes') WHERE start_time > '2026-03-29 06:00Z'),
		  ARRAY['10:00', '10:30'], 'a booked appointment takes the slots it overlaps');
SELECT is(ARRAY(SELECT to_char(start_time AT TIME ZONE 'Europe/Paris', 'HH24:MI')
				  FROM medpro_free_slots(:'doc', '2026-06-01', '30 minutes')),
		  ARRAY['09:30'], 'Monday 1 June: 08:30 and 09:00 are taken, cancelled appointments are not counted');
SELECT is((SELECT count(*)::int FROM medpro_free_slots(:'doc2', '2026-03-29', '30 minutes')), 0,
		  'no working hours: no slot');
SELECT is((SELECT count(*)::int FROM medpro_free_slots(:'doc', '2026-03-24', '30 minutes')), 0,
		  'a weekday without hours: no slot');
SELECT throws_ok(format($$SELECT * FROM medpro_free_slots(%L, '2026-03-29', '0 minutes')$$, :'doc'),
				 '22023', 'slot must be between 1 minute and 24 hours', 'a zero slot is refused');
SELECT throws_ok(format($$SELECT * FROM medpro_free_slots(%L, '2026-03-29', '1 day')$$, :'doc'),
				 '22023', 'slot must be between 1 minute and 24 hours', 'a slot of a calendar day is refused');
SELECT throws_ok(format($$SELECT * FROM medpro_free_slots(%L, 'infinity', '30 minutes')$$, :'doc'),
				 '22023', 'day must be a finite date', 'an infinite day is refused');
SELECT throws_ok(format($$SELECT * FROM medpro_free_slots(%L, '2026-03-29', NULL)$$, :'doc'),
				 '22023', 'practitioner, day and slot must not be null', 'a NULL slot is refused');
SELECT throws_ok(format($$SELECT * FROM medpro_free_slots(%L, '2026-03-29', '-30 minutes')$$, :'doc'),
				 '22023', 'slot must be between 1 minute and 24 hours', 'a negative slot is refused');
SELECT throws_ok($$SELECT * FROM medpro_free_slots('00000000-0000-4000-8000-000000000000', '2026-03-29', '30 minutes')$$,
				 '22023', 'practitioner 00000000-0000-4000-8000-000000000000 does not exist', 'an unknown practitioner');
UPDATE clinic.practitioners SET working_hours = '{"sunday": [{"start": "25:00", "end": "26:00"}]}' WHERE id = :'doc2';
SELECT throws_ok(format($$SELECT * FROM medpro_free_slots(%L, '2026-03-29', '30 minutes')$$, :'doc2'),
				 '22023', 'working_hours of sunday has an invalid time', 'bad working hours are reported');
UPDATE clinic.practitioners SET working_hours = '{}' WHERE id = :'doc2';
SELECT medpro_reset();
SELECT throws_ok(format($$SELECT * FROM medpro_free_slots(%L, '2026-03-29', '30 minutes')$$, :'doc'),
				 '42501', 'no clinic selected', 'free slots need a tenant context');

-- The Canary Islands (WET/WEST) change at the same instant, one hour behind.
SELECT medpro_authenticate(:'es_admin', true) IS NOT NULL AS a \gset
SELECT throws_ok(format($$SELECT * FROM medpro_free_slots(%L, '2026-03-29', '30 minutes')$$, :'doc'),
				 '22023', NULL, 'another clinic''s practitioner does not exist here');
INSERT INTO clinic.practitioners (first_name, last_name, working_hours)
VALUES ('Santiago', 'Ramón', '{"monday": [{"start": "09:00", "end": "10:00"}]}') RETURNING id AS es_doc \gset
SELECT is(ARRAY(SELECT start_time FROM medpro_free_slots(:'es_doc', '2026-03-23', '1 hour')),
		  ARRAY['2026-03-23 09:00Z']::timestamptz[], 'Canary, Monday 23 March: 09:00 WET is 09:00 UTC');
SELECT is(ARRAY(SELECT start_time FROM medpro_free_slots(:'es_doc', '2026-03-30', '1 hour')),
		  ARRAY['2026-03-30 08:00Z']::timestamptz[], 'Canary, Monday 30 March: 09:00 WEST is 08:00 UTC');
SELECT is(ARRAY(SELECT start_time FROM medpro_free_slots(:'es_doc', '2026-10-26', '1 hour')),
		  ARRAY['2026-10-26 09:00Z']::timestamptz[], 'Canary, Monday 26 October: back to UTC+0');
SELECT medpro_reset();

-- ============================================================ Documents
SELECT medpro_authenticate(:'fr_admin', true) IS NOT NULL AS a \gset
SELECT extract(year FROM now() AT TIME ZONE 'Europe/Paris')::int AS year \gset
INSERT INTO clinic.product_services (name, price, tax_rate, is_medical) VALUES ('Crème solaire', 12.50, 20, false)
RETURNING id AS cream \gset
INSERT INTO clinic.product_services (name, price, tax_rate) VALUES ('Consultation', 30, 20) RETURNING id AS consult \gset

INSERT INTO clinic.documents (document_type, patient_id, items, subtotal, tax_amount, total)
VALUES ('invoice', :'helene', '[{"description": "Consultation", "quantity": 1, "unit_price": 25},
								  {"description": "Pansements", "quantity": 3, "unit_price": 3.333, "tax_rate": 20, "is_medical": false}]',
		1, 1, 1)
RETURNING id AS inv1, document_number IS NULL AS inv1_unnumbered, subtotal || '/' || tax_amount || '/' || total AS inv1_totals,
		  legal_mention AS inv1_mention \gset
SELECT ok(:'inv1_unnumbered', 'a draft has no number');
SELECT is(:'inv1_totals'::text, '35.00/2.00/37.00', 'totals are computed (25 exempt + 3 x 3.333 = 10.00 + 20 % VAT 2.00), the client''s ignored');
SELECT is(:'inv1_mention'::text, 'TVA non applicable, article 261-4-1° du CGI', 'FR: the VAT-exemption mention is set for a medical line');
SELECT is((SELECT items -> 0 ->> 'tax_rate' || ' ' || (items -> 0 ->> 'vat_exempt') FROM clinic.documents WHERE id = :'inv1'),
		  '0 true', 'a medical service defaults to VAT-exempt');
SELECT is((SELECT items -> 1 ->> 'subtotal' || ' ' || (items -> 1 ->> 'tax_amount') || ' ' || (items -> 1 ->> 'total')
			 FROM clinic.documents WHERE id = :'inv1'), '10.00 2.00 12.00', 'each line carries its rounded amounts');

INSERT INTO clinic.documents (document_type, patient_id, items, legal_mention)
VALUES ('invoice', :'jean', '[{"description": "Consultation", "quantity": 1, "unit_price": 25}]', '  ')
RETURNING legal_mention AS blank_mention, id AS blank_mention_doc \gset
SELECT is(:'blank_mention'::text, 'TVA non applicable, article 261-4-1° du CGI', 'a blank legal mention is replaced by the exemption mention');
SELECT is((SELECT legal_mention FROM clinic.documents WHERE id = :'blank_mention_doc'), 'TVA non applicable, article 261-4-1° du CGI',
		  'and stored so');
INSERT INTO clinic.documents (document_type, patient_id, items, legal_mention)
VALUES ('invoice', :'jean', '[{"description": "Consultation", "quantity": 1, "unit_price": 25}]', 'Payable à réception.')
RETURNING legal_mention AS own_mention \gset
SELECT is(:'own_mention'::text, E'Payable à réception.\nTVA non applicable, article 261-4-1° du CGI',
		  'a client''s own legal mention is completed with the exemption mention');
DELETE FROM clinic.documents WHERE document_type = 'invoice' AND patient_id = :'jean' AND status = 'draft';
INSERT INTO clinic.documents (document_type, patient_id, items)
VALUES ('quote', :'helene', '[{"description": "a", "quantity": 1, "unit_price": 0.333, "tax_rate": 20},
							   {"description": "b", "quantity": 1, "unit_price": 0.333, "tax_rate": 20},
							   {"description": "c", "quantity": 1, "unit_price": 0.333, "tax_rate": 20}]')
RETURNING id AS quote1, subtotal || '/' || tax_amount || '/' || total AS q_totals, legal_mention IS NULL AS q_no_mention \gset
SELECT is(:'q_totals'::text, '0.99/0.21/1.20', 'rounding to cents is per line, then summed (not 1.00/0.20)');
SELECT ok(:'q_no_mention', 'no exempt line, no exemption mention');

INSERT INTO clinic.documents (document_type, patient_id, items)
VALUES ('invoice', :'helene', format('[{"product_service_id": "%s", "quantity": 2}, {"product_service_id": "%s", "quantity": 1}]',
									 :'cream', :'consult')::jsonb)
RETURNING id AS inv2, subtotal || '/' || tax_amount || '/' || total AS inv2_totals,
		  items -> 0 ->> 'description' AS inv2_desc \gset
SELECT is(:'inv2_totals'::text, '55.00/5.00/60.00', 'product lines take price and rate from the catalogue; a medical product is exempt');
SELECT is(:'inv2_desc'::text, 'Crème solaire', 'a product line takes its description from the catalogue');

-- Bad items: 22023.
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": "x", "quantity": -1, "unit_price": 10}]')$$, :'helene'),
				 '22023', 'item 1: quantity must be positive and below 100000000', 'a negative quantity');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": "x", "quantity": 1, "unit_price": 10}, {"description": "y", "quantity": 0, "unit_price": 1}]')$$, :'helene'),
				 '22023', 'item 2: quantity must be positive and below 100000000', 'a zero quantity on line 2');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": "x", "quantity": "2", "unit_price": 10}]')$$, :'helene'),
				 '22023', 'item 1: quantity must be a number', 'a quantity as a string');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, jsonb_build_array(jsonb_build_object('description', 'x', 'quantity', 'NaN'::numeric, 'unit_price', 1)))$$, :'helene'),
				 '22023', 'item 1: quantity must be a number', 'a NaN quantity (jsonb holds it as a string)');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, jsonb_build_array(jsonb_build_object('description', 'x', 'quantity', 1, 'unit_price', 'Infinity'::numeric)))$$, :'helene'),
				 '22023', 'item 1: unit_price must be a number', 'an infinite price');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": "x", "quantity": 1e400, "unit_price": 1}]')$$, :'helene'),
				 '22023', 'item 1: quantity must be positive and below 100000000', 'a huge quantity');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": "x", "quantity": 1}]')$$, :'helene'),
				 '22023', 'item 1: unit_price is required without a product or service', 'a missing price');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": "x", "quantity": 1, "unit_price": -5}]')$$, :'helene'),
				 '22023', 'item 1: unit_price must be between 0 and 9999999999.99', 'a negative price');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": "x", "quantity": 1, "unit_price": 5, "tax_rate": 150}]')$$, :'helene'),
				 '22023', 'item 1: tax_rate must be between 0 and 100', 'a rate above 100');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": "x", "quantity": 1, "price": 5}]')$$, :'helene'),
				 '22023', 'item 1: unknown field "price"', 'an unknown field');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": "x", "quantity": 99999999, "unit_price": 9999999999}]')$$, :'helene'),
				 '22023', 'document total must be below 10000000000', 'a total too large for the money columns');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '["x"]')$$, :'helene'),
				 '22023', 'item 1 must be a JSON object', 'a line that is not an object');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"quantity": 1, "unit_price": 5}]')$$, :'helene'),
				 '22023', 'item 1: description is required without a product or service', 'no description');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"product_service_id": "00000000-0000-4000-8000-000000000000", "quantity": 1}]')$$, :'helene'),
				 '22023', 'item 1: product or service does not exist', 'an unknown product');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '{"description": "x"}')$$, :'helene'),
				 '22023', 'items must be a JSON array', 'items that are not an array');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, document_number, items)
						  VALUES ('invoice', %L, 'FAC-2026-999999', '[]')$$, :'helene'),
				 '22023', 'document_number is assigned when the document is issued', 'a client-chosen number is refused');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, status, patient_id, items) VALUES ('invoice', 'sent', %L, '[]')$$, :'helene'),
				 '22023', 'an issued document needs at least one item', 'an empty invoice cannot be issued');

-- Issuing assigns the next number of the (type, year) counter.
UPDATE clinic.documents SET status = 'sent' WHERE id = :'inv1'
RETURNING document_number AS inv1_number, issue_date = (now() AT TIME ZONE 'Europe/Paris')::date AS dated,
		  issued_at IS NOT NULL AS stamped \gset
SELECT is(:'inv1_number'::text, format('FAC-%s-000001', :'year'), 'the first issued invoice is FAC-<year>-000001');
SELECT ok(:'dated' AND :'stamped', 'issuing sets issue_date (clinic''s today) and issued_at');
INSERT INTO clinic.documents (document_type, status, patient_id, items)
VALUES ('invoice', 'sent', :'jean', '[{"description": "Acte", "quantity": 1, "unit_price": 40}]')
RETURNING id AS inv3, document_number AS inv3_number \gset
SELECT is(:'inv3_number'::text, format('FAC-%s-000002', :'year'), 'an invoice inserted as sent is numbered at once, next in line');
UPDATE clinic.documents SET status = 'sent' WHERE id = :'quote1' RETURNING document_number AS q_number \gset
SELECT is(:'q_number'::text, format('DEV-%s-000001', :'year'), 'quotes have their own counter and prefix');
SELECT is((SELECT document_number FROM clinic.documents WHERE id = :'inv2'), NULL, 'the remaining draft is still unnumbered');
-- A number handed out inside a savepoint that is rolled back is handed out
-- again: no gap.
BEGIN;
SAVEPOINT before_invoice;
INSERT INTO clinic.documents (document_type, status, patient_id, items)
VALUES ('invoice', 'sent', :'jean', '[{"description": "Acte", "quantity": 1, "unit_price": 10}]')
RETURNING document_number AS sp_first \gset
ROLLBACK TO SAVEPOINT before_invoice;
INSERT INTO clinic.documents (document_type, status, patient_id, items)
VALUES ('invoice', 'sent', :'jean', '[{"description": "Acte", "quantity": 1, "unit_price": 10}]')
RETURNING document_number AS sp_second \gset
COMMIT;
SELECT is(:'sp_first' || ' ' || :'sp_second', format('FAC-%s-000003 FAC-%s-000003', :'year', :'year'),
		  'a number given back by ROLLBACK TO SAVEPOINT is the next one issued');

-- Issued documents do not change.
SELECT throws_ok(format($$UPDATE clinic.documents SET notes = 'corrigé' WHERE id = %L$$, :'inv1'),
				 '55000', 'an issued invoice cannot be changed', 'editing an issued invoice is refused');
SELECT is(pg_temp.hint_of(format($$UPDATE clinic.documents SET items = '[]' WHERE id = %L$$, :'inv1')),
		  '55000 Issue a credit note (document_type credit_note, credit_for_id = this invoice) to cancel or correct it.',
		  'the hint says to issue a credit note');
SELECT throws_ok(format($$UPDATE clinic.documents SET document_number = 'FAC-2026-000042' WHERE id = %L$$, :'inv1'),
				 '55000', 'an issued invoice cannot be changed', 'renumbering is refused');
SELECT throws_ok(format($$DELETE FROM clinic.documents WHERE id = %L$$, :'inv1'),
				 '55000', 'an issued invoice cannot be deleted', 'deleting an issued invoice is refused');
SELECT is(pg_temp.in_clinic(:'fr', format($$SELECT count(*)::text FROM documents WHERE id = %L AND deleted_at IS NULL$$, :'inv1')),
		  '1', 'the invoice is still there');
SELECT throws_ok(format($$SELECT pg_temp.in_clinic(%L, 'DELETE FROM documents WHERE id = ''%s'' RETURNING ''x''')$$, :'fr', :'inv1'),
				 '55000', 'an issued invoice cannot be deleted', 'not even a superuser in the clinic database can delete it');
-- Nor can a superuser in the clinic database move the counters or
-- truncate the issued documents.
SELECT throws_ok(format($$SELECT pg_temp.in_clinic(%L, 'UPDATE medpro_document_counters SET last_value = last_value + 5 RETURNING ''x''')$$, :'fr'),
				 '55000', 'document counters change only when a document is issued', 'a counter cannot be moved on (a gap)');
SELECT throws_ok(format($$SELECT pg_temp.in_clinic(%L, 'DELETE FROM medpro_document_counters RETURNING ''x''')$$, :'fr'),
				 '55000', 'document counters change only when a document is issued', 'a counter cannot be deleted (numbers again from 1)');
SELECT throws_ok(format($$SELECT pg_temp.in_clinic(%L, 'INSERT INTO medpro_document_counters VALUES (''invoice'', 2099, 41) RETURNING ''x''')$$, :'fr'),
				 '55000', 'document counters change only when a document is issued', 'a counter cannot be preset');
SELECT throws_ok(format($$SELECT pg_temp.in_clinic(%L, 'TRUNCATE medpro_document_counters')$$, :'fr'),
				 '55000', 'document counters change only when a document is issued', 'the counters cannot be truncated');
SELECT throws_ok(format($$SELECT pg_temp.in_clinic(%L, 'TRUNCATE documents CASCADE')$$, :'fr'),
				 '55000', 'issued documents cannot be deleted', 'issued documents cannot be truncated');
SELECT throws_ok(format($$UPDATE clinic.documents SET status = 'cancelled' WHERE id = %L$$, :'inv1'),
				 '55000', 'an issued invoice is cancelled by a credit note', 'cancelling without a credit note is refused');
SELECT lives_ok(format($$UPDATE clinic.documents SET status = 'paid' WHERE id = %L$$, :'inv3'), 'sent -> paid is allowed');
SELECT throws_ok(format($$UPDATE clinic.documents SET status = 'sent' WHERE id = %L$$, :'inv3'),
				 '23514', 'an issued invoice cannot go from paid to sent', 'paid -> sent is refused');
SELECT throws_ok(format($$UPDATE clinic.documents SET status = 'cancelled' WHERE id = %L$$, :'inv2'),
				 '23514', 'a draft is deleted, not cancelled', 'a draft is not cancelled');
SELECT lives_ok(format($$DELETE FROM clinic.documents WHERE id = %L$$, :'inv2'), 'a draft can be deleted');

-- Credit notes.
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('credit_note', %L, '[{"description": "x", "quantity": 1, "unit_price": 1}]')$$, :'helene'),
				 '23514', 'new row for relation "documents" violates check constraint "documents_credit_note_invoice_check"',
				 'a credit note references an invoice');
INSERT INTO clinic.documents (document_type, patient_id, items)
VALUES ('invoice', :'helene', '[{"description": "x", "quantity": 1, "unit_price": 1}]') RETURNING id AS draft_inv \gset
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, credit_for_id) VALUES ('credit_note', %L)$$, :'draft_inv'),
				 '23514', 'a credit note must reference an issued invoice', 'a draft invoice cannot be credited');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, status, credit_for_id, items)
						  VALUES ('credit_note', 'sent', %L, '[{"description": "Trop", "quantity": 1, "unit_price": 38}]')$$, :'inv1'),
				 '23514', 'credit notes would exceed the total of the invoice', 'a credit note above the invoice total');
INSERT INTO clinic.documents (document_type, status, credit_for_id, items)
VALUES ('credit_note', 'sent', :'inv1', '[{"description": "Geste commercial", "quantity": 1, "unit_price": 5, "is_medical": false, "tax_rate": 0}]')
RETURNING document_number AS cn1_number \gset
SELECT is(:'cn1_number'::text, format('AVO-%s-000001', :'year'), 'a credit note is numbered AVO-<year>-000001');
SELECT is((SELECT status FROM clinic.documents WHERE id = :'inv1'), 'sent', 'a partial credit note leaves the invoice issued');
INSERT INTO clinic.documents (document_type, status, credit_for_id, items)
VALUES ('credit_note', 'sent', :'inv1', '[{"description": "Solde", "quantity": 1, "unit_price": 32, "is_medical": false, "tax_rate": 0}]')
RETURNING patient_id AS cn2_patient \gset
SELECT is((SELECT status FROM clinic.documents WHERE id = :'inv1'), 'cancelled', 'credit notes reaching the total cancel the invoice');
SELECT is(:'cn2_patient'::uuid, :'helene'::uuid, 'a credit note is for the invoice''s patient');
INSERT INTO clinic.documents (document_type, status, credit_for_id) VALUES ('credit_note', 'sent', :'inv3')
RETURNING total AS cn3_total, jsonb_array_length(items) AS cn3_lines \gset
SELECT is(:'cn3_total' || '/' || :'cn3_lines', '40.00/1', 'a credit note without lines credits the whole invoice');
SELECT is((SELECT status FROM clinic.documents WHERE id = :'inv3'), 'cancelled', 'a paid invoice credited in full is cancelled');
SELECT throws_ok(format($$UPDATE clinic.documents SET status = 'cancelled' WHERE document_type = 'credit_note' AND credit_for_id = %L$$, :'inv3'),
				 '23514', NULL, 'a credit note cannot be cancelled');
-- A product deleted from the catalogue after it was invoiced: the invoice
-- can still be credited (the lines carry their price); a new line naming it
-- without a price is refused.
INSERT INTO clinic.product_services (name, price, tax_rate) VALUES ('Acte retiré', 45, 20) RETURNING id AS retired \gset
INSERT INTO clinic.documents (document_type, status, patient_id, items)
VALUES ('invoice', 'sent', :'jean', format('[{"product_service_id": "%s", "quantity": 1}]', :'retired')::jsonb)
RETURNING id AS inv_retired \gset
DELETE FROM clinic.product_services WHERE id = :'retired';
SELECT lives_ok(format($$INSERT INTO clinic.documents (document_type, status, credit_for_id) VALUES ('credit_note', 'sent', %L)$$, :'inv_retired'),
				'an invoice of a product deleted since can be credited in full');
SELECT is((SELECT status FROM clinic.documents WHERE id = :'inv_retired'), 'cancelled', 'and is then cancelled');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"product_service_id": "%s", "quantity": 1}]')$$, :'jean', :'retired'),
				 '22023', 'item 1: product or service does not exist', 'a deleted product cannot price a new line');
SELECT throws_ok(format($$INSERT INTO clinic.documents (document_type, patient_id, items)
						  VALUES ('invoice', %L, '[{"description": {"text": "x"}, "quantity": 1, "unit_price": 1}]')$$, :'jean'),
				 '22023', 'item 1: description must be a string', 'a description that is not a string');
SELECT medpro_reset();

-- The Spanish clinic: its own counters, its exemption mention, its formats.
SELECT pg_temp.in_clinic(:'es', $$UPDATE medpro_settings SET document_prefixes = '{"invoice": "F", "quote": "P", "credit_note": "R"}',
								   document_number_digits = 4 RETURNING 'ok'$$) AS ok \gset
SELECT throws_ok($$SELECT pg_temp.in_clinic((SELECT id FROM medpro.clinics WHERE name = 'Clínica Dominio'),
											'UPDATE medpro_settings SET document_prefixes = ''{"invoice": "F"}'' RETURNING ''x''')$$,
				 '23514', NULL, 'prefixes must name all three document types');
SELECT throws_ok($$SELECT pg_temp.in_clinic((SELECT id FROM medpro.clinics WHERE name = 'Clínica Dominio'),
											'UPDATE medpro_settings SET document_prefixes = ''{"invoice": "F", "quote": "P", "credit_note": "F"}'' RETURNING ''x''')$$,
				 '23514', 'new row for relation "medpro_settings" violates check constraint "medpro_settings_document_prefixes_distinct_check"',
				 'two document types cannot share a prefix (an invoice and a credit note would have the same number)');
SELECT medpro_authenticate(:'es_admin', true) IS NOT NULL AS a \gset
INSERT INTO clinic.documents (document_type, status, patient_id, items)
VALUES ('invoice', 'sent', :'es_helene', '[{"description": "Consulta", "quantity": 1, "unit_price": 50}]')
RETURNING document_number AS es_number, legal_mention AS es_mention \gset
SELECT is(:'es_number'::text, format('F-%s-0001', extract(year FROM now() AT TIME ZONE 'Atlantic/Canary')),
		  'ES: the clinic''s own prefix and digits, and its own counter');
SELECT is(:'es_mention'::text, 'Exento de IVA en virtud del artículo 20.Uno.3.º de la Ley 37/1992', 'ES: the Spanish exemption mention');
SELECT is((SELECT count(*)::int FROM clinic.documents), 1, 'ES sees only its own documents');
WITH u AS (UPDATE clinic.documents SET notes = 'x' WHERE id = :'inv3' RETURNING 1)
SELECT is(count(*)::int, 0, 'ES cannot even reach the French invoice') FROM u;
SELECT medpro_reset();
SELECT is(pg_temp.in_clinic(:'fr', format($$SELECT coalesce(notes, 'untouched') FROM documents WHERE id = %L$$, :'inv3')),
		  'untouched', 'the French invoice was not touched');

-- ============================================================ Consents
SELECT medpro_authenticate(:'fr_admin', true) IS NOT NULL AS a \gset
INSERT INTO clinic.consent_templates (name, type, language, content)
VALUES ('Newsletter', 'marketing', 'fr', 'J''accepte de recevoir les actualités du cabinet.') RETURNING id AS mkt \gset
INSERT INTO clinic.consent_templates (name, type, language, content)
VALUES ('Inutilisé', 'photo', 'fr', 'Jamais signé.') RETURNING id AS unused \gset
SELECT id AS gdpr FROM clinic.consent_templates WHERE type = 'gdpr' \gset
SELECT set_config('request.headers', '{"x-forwarded-for": "203.0.113.7, 10.0.0.1", "user-agent": "Mozilla/5.0 (Tablet)"}', false) IS NOT NULL AS h \gset
SELECT medpro_consent_sign(:'helene', :'gdpr', 'electronic') AS c1 \gset
SELECT set_config('request.headers', '', false) IS NOT NULL AS h \gset
SELECT is((SELECT status || ' ' || signature_method || ' ' || host(ip_address) || ' ' || device_info
			 FROM clinic.consents WHERE id = :'c1'),
		  'accepted electronic 203.0.113.7 Mozilla/5.0 (Tablet)',
		  'signing records the method, the first forwarded address and the user agent');
SELECT ok((SELECT signed_at IS NOT NULL AND content_snapshot = (SELECT content FROM clinic.consent_templates WHERE id = :'gdpr')
			 FROM clinic.consents WHERE id = :'c1'), 'signed_at is set and the template text is kept');
SELECT medpro_consent_sign(:'helene', :'mkt', 'handwritten', 'paper form') AS c2 \gset
SELECT is((SELECT device_info FROM clinic.consents WHERE id = :'c2'), 'paper form', 'an explicit device_info wins');
INSERT INTO clinic.consents (patient_id, consent_template_id) VALUES (:'jean', :'gdpr') RETURNING id AS pending \gset
SELECT throws_ok(format($$UPDATE clinic.consents SET status = 'accepted' WHERE id = %L$$, :'pending'),
				 '23514', 'a signed consent needs a signature_method', 'accepting without a signature method is refused');
SELECT is(medpro_consent_sign(:'jean', :'gdpr', 'verbal'), :'pending'::uuid, 'signing completes the pending consent');
SELECT throws_ok(format($$INSERT INTO clinic.consents (patient_id, consent_template_id, status, signature_method, signed_at)
						  VALUES (%L, %L, 'accepted', 'electronic', now() + interval '1 day')$$, :'jean', :'mkt'),
				 '23514', 'signed_at may not be in the future', 'a future signature time is refused');
SELECT throws_ok(format($$UPDATE clinic.consents SET signature_method = 'verbal' WHERE id = %L$$, :'c1'),
				 '55000', 'a signed consent cannot be changed', 'a signed consent cannot be edited');
UPDATE clinic.consents SET status = 'revoked' WHERE id = :'c1' RETURNING revoked_at IS NOT NULL AS revoked \gset
SELECT ok(:'revoked', 'an accepted consent can be revoked; revoked_at is set');
SELECT throws_ok(format($$DELETE FROM clinic.consent_templates WHERE id = %L$$, :'gdpr'),
				 '23503', 'consent template is in use', 'a template in use cannot be deleted');
SELECT lives_ok(format($$UPDATE clinic.consent_templates SET is_active = false WHERE id = %L$$, :'gdpr'),
				'a template in use can be deactivated');
SELECT throws_ok(format($$SELECT medpro_consent_sign(%L, %L, 'electronic')$$, :'helene', :'gdpr'),
				 '23514', 'consent template is not active', 'an inactive template cannot be signed');
INSERT INTO clinic.consent_templates (name, type, language, content)
VALUES ('Photos v1', 'photo', 'fr', 'J''accepte les photos (v1).') RETURNING id AS photo1 \gset
INSERT INTO clinic.consents (patient_id, consent_template_id) VALUES (:'jean', :'photo1') RETURNING id AS photo_pending \gset
UPDATE clinic.consent_templates SET is_active = false WHERE id = :'photo1';
SELECT throws_ok(format($$SELECT medpro_consent_sign(%L, %L, 'electronic')$$, :'jean', :'photo1'),
				 '23514', 'consent template is not active', 'a pending consent of a template deactivated since cannot be signed');
SELECT is((SELECT status FROM clinic.consents WHERE id = :'photo_pending'), 'pending', 'the consent stays pending');
SELECT lives_ok(format($$DELETE FROM clinic.consent_templates WHERE id = %L$$, :'unused'), 'an unused template can be deleted');
SELECT medpro_reset();

-- ============================================================ GDPR
SELECT medpro_authenticate(:'fr_sec', true) IS NOT NULL AS a \gset
SELECT throws_ok(format('SELECT medpro_patient_export(%L)', :'helene'), '42501', 'permission denied to export patient data',
				 'a secretary cannot export');
SELECT medpro_reset();
SELECT medpro_authenticate(:'fr_doc', true) IS NOT NULL AS a \gset
SELECT medpro_patient_export(:'helene') AS export \gset
SELECT is((:'export')::jsonb -> 'patient' ->> 'id', :'helene', 'the export holds the patient');
SELECT is((:'export')::jsonb -> 'patient' ->> 'social_security_number', '285057800608936',
		  'a doctor''s export has the social security number in clear');
SELECT is(jsonb_array_length((:'export')::jsonb -> 'appointments'), 2,
		  'the export has every appointment of the patient (the cancelled one included)');
SELECT is(jsonb_array_length((:'export')::jsonb -> 'documents'), 6,
		  'the export has the patient''s documents (the deleted draft and the credit notes included)');
SELECT is(jsonb_array_length((:'export')::jsonb -> 'consents'), 2, 'the export has the patient''s consents');
SELECT is((SELECT count(*)::int FROM medpro.audit_log WHERE action = 'patient_export' AND entity_id = :'helene'
			 AND clinic_id = :'fr'), 1, 'the export is audited');
SELECT throws_ok(format('SELECT medpro_patient_erase(%L, %L)', :'helene', 'x'), '42501', 'permission denied to erase patient data',
				 'a doctor cannot erase');
SELECT medpro_reset();

SELECT medpro_authenticate(:'es_admin', true) IS NOT NULL AS a \gset
SELECT throws_ok(format('SELECT medpro_patient_export(%L)', :'helene'), '22023', NULL,
				 'another clinic''s patient does not exist for the Spanish admin');
SELECT throws_ok(format('SELECT medpro_patient_erase(%L, %L)', :'helene', 'x'), '22023', NULL,
				 'nor can it be erased from there');
SELECT medpro_reset();

SELECT medpro_authenticate(:'fr_admin', true) IS NOT NULL AS a \gset
SELECT pg_temp.in_clinic(:'fr', format($$INSERT INTO email_verifications (patient_id, email, token_hash, expires_at)
										  VALUES (%L, 'helene.dupont@example.test', sha256('t'), now() + interval '1 day')
										  RETURNING 'ok'$$, :'helene')) AS ok \gset
SELECT throws_ok(format('SELECT medpro_patient_erase(%L, %L)', :'helene', ' '), '22023', 'reason must not be empty',
				 'an erasure needs a reason');
SELECT medpro_patient_erase(:'helene', 'demande écrite du 2 mars') AS report \gset
SELECT is((:'report')::jsonb -> 'retention' ->> 'years', '20', 'FR: 20 years of retention');
SELECT is((:'report')::jsonb -> 'retention' ->> 'expired', 'false', 'the last visit is recent: retention runs');
SELECT is((:'report')::jsonb ->> 'marketing_consents_revoked', '1', 'the marketing consent is revoked at once');
SELECT ok((:'report')::jsonb -> 'kept' @> '[{"data": "documents"}]'
		  AND (:'report')::jsonb -> 'erased' ? 'email', 'the report says what was erased and what was kept');
SELECT ok((SELECT bool_and(k ? 'reason' AND k ? 'until') FROM jsonb_array_elements((:'report')::jsonb -> 'kept') k),
		  'every kept item says why and until when');
SELECT is((SELECT coalesce(email, '-') || ' ' || coalesce(phone, '-') || ' ' || address::text || ' ' || last_name || ' ' || medical_history
			 FROM clinic.patients WHERE id = :'helene'),
		  '- - {} Dupont-Durand asthme', 'contact data is gone; identity and medical data are kept');
SELECT is((SELECT status FROM clinic.consents WHERE id = :'c2'), 'revoked', 'the marketing consent row is revoked');
SELECT is(pg_temp.in_clinic(:'fr', format('SELECT count(*)::text FROM email_verifications WHERE patient_id = %L', :'helene')),
		  '0', 'the pending email verification (which holds the address) is gone');
SELECT is((SELECT count(*)::int FROM medpro.audit_log WHERE action = 'patient_erase' AND entity_id = :'helene'
			 AND new_data -> 'retention' ->> 'years' = '20'), 1, 'the erasure is audited with its report');
-- A soft-deleted patient is refused with its own error, not "does not exist".
INSERT INTO clinic.patients (first_name, last_name, email) VALUES ('Parti', 'Ailleurs', 'parti@example.test')
RETURNING id AS parti \gset
DELETE FROM clinic.patients WHERE id = :'parti';
SELECT throws_ok(format('SELECT medpro_patient_erase(%L, %L)', :'parti', 'demande après suppression'),
				 '55000', format('patient %s is deleted', :'parti'), 'a soft-deleted patient is reported as deleted');
SELECT medpro_reset();

-- ES: 5 years; a patient last seen in 2020 is anonymised; retention is
-- configurable.
SELECT medpro_authenticate(:'es_admin', true) IS NOT NULL AS a \gset
INSERT INTO clinic.patients (first_name, last_name, email, medical_history) VALUES ('Pilar', 'Antigua', 'pilar@example.test', 'hipertensión')
RETURNING id AS pilar \gset
INSERT INTO clinic.patients (first_name, last_name, email) VALUES ('Pedro', 'Antiguo', 'pedro@example.test') RETURNING id AS pedro \gset
INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time, status, notes)
VALUES (:'pilar', :'es_doc', '2020-01-10 10:00+00', '2020-01-10 10:30+00', 'completed', 'control'),
	   (:'pedro', :'es_doc', '2020-01-10 11:00+00', '2020-01-10 11:30+00', 'completed', 'control');
SELECT medpro_patient_erase(:'pilar', 'solicitud del paciente') AS report \gset
SELECT is((:'report')::jsonb -> 'retention' ->> 'years' || ' ' || ((:'report')::jsonb -> 'retention' ->> 'expired'),
		  '5 true', 'ES: 5 years from the last visit (2020) have passed');
SELECT is((SELECT count(*)::int FROM clinic.patients WHERE id = :'pilar'), 0, 'the patient is anonymised and removed');
SELECT is(pg_temp.in_clinic(:'es', format($$SELECT first_name || ' ' || coalesce(medical_history, '-') || ' ' || coalesce(email, '-')
											 FROM patients WHERE id = %L$$, :'pilar')),
		  'erased - -', 'the clinic database keeps no identity, medical or contact data');
SELECT is(pg_temp.in_clinic(:'es', format($$SELECT coalesce(notes, '-') FROM appointments WHERE patient_id = %L$$, :'pilar')),
		  '-', 'appointment notes are erased');
SELECT throws_ok(format('SELECT medpro_patient_erase(%L, %L)', :'pilar', 'segunda solicitud'),
				 '55000', format('patient %s is deleted', :'pilar'), 'an erased patient cannot be erased again');
-- An anonymised patient's signed consents are kept, and the report says so.
INSERT INTO clinic.patients (first_name, last_name, email) VALUES ('Pablo', 'Antiguo', 'pablo@example.test') RETURNING id AS pablo \gset
INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time, status)
VALUES (:'pablo', :'es_doc', '2019-05-10 10:00+00', '2019-05-10 10:30+00', 'completed');
SELECT medpro_consent_sign(:'pablo', (SELECT id FROM clinic.consent_templates WHERE type = 'gdpr' LIMIT 1), 'handwritten') AS c \gset
SELECT ok(EXISTS (SELECT 1 FROM jsonb_array_elements(medpro_patient_erase(:'pablo', 'solicitud') -> 'kept') k
				   WHERE k ->> 'data' LIKE 'consents%' AND (k ->> 'count')::int = 1 AND k ? 'reason'),
		  'after the retention, the kept consents are reported with a reason');
UPDATE medpro.retention_policies SET years = 10 WHERE country = 'ES';
SELECT medpro_patient_erase(:'pedro', 'solicitud del paciente') AS report \gset
UPDATE medpro.retention_policies SET years = 5 WHERE country = 'ES';
SELECT is((:'report')::jsonb -> 'retention' ->> 'kept_until', '2030-01-10',
		  'with the retention set to 10 years, the records are kept until 2030-01-10');
SELECT is((SELECT last_name || ' ' || coalesce(email, '-') FROM clinic.patients WHERE id = :'pedro'), 'Antiguo -',
		  'and the patient keeps identity, losing contact data');
SELECT medpro_reset();


-- Bulk loads (an import): in one statement into an empty table, each row
-- probes the unique indexes (no sequential scan of patients per row, which
-- made such a load quadratic: with 6000 distinct patients, no existing row
-- is read at all) and takes no advisory lock (they used to exhaust the lock
-- table).  The counters are those of the inserting
-- transaction (pg_stat_xact_user_tables, pg_locks).
SELECT medpro_register_clinic('Cabinet Import', 'FR', 'admin@import.test', 'domain import paris 2026') AS imp \gset
SELECT pg_temp.in_clinic(:'imp', $$
	INSERT INTO patients (first_name, last_name, patient_number)
	SELECT 'Prénom' || n, 'Nom' || n, 'I' || n FROM generate_series(1, 3000) n;
	INSERT INTO patients (first_name, last_name, email)
	SELECT 'Auto' || n, 'Généré' || n, 'auto' || n || '@example.test' FROM generate_series(1, 3000) n;
	SELECT format('seq=%s read=%s ins=%s advisory=%s', s.seq_scan, s.seq_tup_read + s.idx_tup_fetch, s.n_tup_ins,
				  (SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()))
	  FROM pg_stat_xact_user_tables s WHERE s.relname = 'patients'$$) AS bulk \gset
SELECT is(:'bulk'::text, 'seq=0 read=0 ins=6000 advisory=0',
		  'bulk load of 6000 patients into an empty table: no scan of patients reads a row, no advisory lock');
SELECT is(pg_temp.in_clinic(:'imp', $$SELECT count(DISTINCT patient_number) || ' ' || max(patient_number) FILTER (WHERE patient_number LIKE 'P%')
										FROM patients$$),
		  '6000 P003000', 'bulk load: every generated number is distinct and in sequence');
-- Through clinic.*: INSERT ... SELECT is sent in batches; one duplicate in
-- the batch refuses the whole statement.
SELECT medpro_login('admin@import.test', 'domain import paris 2026') AS imp_admin \gset
SELECT medpro_authenticate(:'imp_admin', true) IS NOT NULL AS authenticated \gset
INSERT INTO clinic.patients (first_name, last_name)
SELECT 'Routé' || n, 'Import' || n FROM generate_series(1, 1000) n;
SELECT throws_ok($$INSERT INTO clinic.patients (first_name, last_name)
				   SELECT 'Double' || n, 'Import' || n FROM generate_series(1, 500) n
				   UNION ALL SELECT 'ROUTÉ7', 'import7'$$,
				 '23505', NULL, 'bulk insert through clinic.patients with one duplicate (by folded name) is refused');
SELECT is((SELECT count(*)::int FROM clinic.patients WHERE first_name LIKE 'Double%'), 0,
		  'and none of its rows is kept');
SELECT is((SELECT count(*)::int FROM clinic.patients), 7000, 'the import clinic holds its 7000 patients');
SELECT medpro_reset();
SELECT medpro_authenticate(:'es_admin', true) IS NOT NULL AS authenticated \gset
SELECT is((SELECT count(*)::int FROM clinic.patients WHERE last_name LIKE 'Import%' OR last_name LIKE 'Nom%'), 0,
		  'isolation: the other clinics see none of the imported patients');
SELECT medpro_reset();

SELECT * FROM finish();
