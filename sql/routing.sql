--
-- routing: clinic.* relations served by medpro_fdw from the current
-- clinic's database.  Ids are random: they are kept in psql variables and
-- only booleans and counts are printed.
--
\set VERBOSITY terse
-- Run a query in a clinic database as the superuser.
CREATE FUNCTION pg_temp.in_clinic(clinic uuid, query text) RETURNS SETOF record LANGUAGE sql AS $$
	SELECT * FROM dblink(format('host=%s port=%s dbname=%s user=postgres',
								split_part(current_setting('unix_socket_directories'), ',', 1),
								current_setting('port'),
								(SELECT db_name FROM medpro.clinics WHERE id = clinic)), query) AS t(v text)
$$;
-- The practitioners' last names the caller sees, from PL/pgSQL (cached plan).
CREATE FUNCTION pg_temp.practitioner_names() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN (SELECT string_agg(last_name, ',' ORDER BY last_name) FROM clinic.practitioners);
END
$$;
-- The number of rows of a clinic relation with a given id.
CREATE FUNCTION pg_temp.count_id(rel text, id uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM clinic.%I WHERE id = $1', rel) INTO n USING id;
	RETURN n;
END
$$;

-- The wrapper, its server, the foreign tables and the views.
SELECT fdwname, fdwhandler::regproc, fdwvalidator::regproc, fdwacl FROM pg_foreign_data_wrapper
 WHERE fdwname = 'medpro_fdw';
SELECT srvname, srvoptions, srvacl FROM pg_foreign_server WHERE srvname = 'medpro_clinics';
SELECT c.relname, ft.ftoptions, c.relacl FROM pg_foreign_table ft JOIN pg_class c ON c.oid = ft.ftrelid
 WHERE c.relnamespace = 'medpro'::regnamespace ORDER BY 1;
SELECT attname, attfdwoptions FROM pg_attribute
 WHERE attrelid = 'medpro.ft_patients'::regclass AND attfdwoptions IS NOT NULL ORDER BY attnum;
SELECT table_name, is_updatable, is_insertable_into FROM information_schema.views
 WHERE table_schema = 'clinic' ORDER BY 1;
SELECT c.relname, c.reloptions FROM pg_class c
 WHERE c.relnamespace = 'clinic'::regnamespace AND c.relname = 'patients';
SELECT count(*) AS api_privileges_on_views FROM information_schema.role_table_grants
 WHERE grantee = 'medpro_api' AND table_schema = 'clinic';
-- Bad options.
SELECT regress_try($$ALTER SERVER medpro_clinics OPTIONS (SET schema_version 'x')$$);
SELECT regress_try($$ALTER SERVER medpro_clinics OPTIONS (ADD host 'elsewhere')$$);
SELECT regress_try($$ALTER FOREIGN TABLE medpro.ft_patients ALTER COLUMN notes OPTIONS (ADD mask 'first2')$$);
SELECT regress_try($$ALTER FOREIGN TABLE medpro.ft_patients ALTER COLUMN notes OPTIONS (ADD validate 'iban')$$);
SELECT regress_try($$ALTER FOREIGN TABLE medpro.ft_patients OPTIONS (SET soft_delete 'maybe')$$);

-- Two clinics with a doctor and a secretary each.
SELECT medpro_key_rotate() IS NOT NULL AS key_rotated;
SELECT medpro_register_clinic('Routage A', 'FR', 'admin@rt-a.test', 'routing alpha 2026') AS ca \gset
SELECT medpro_register_clinic('Enrutado B', 'ES', 'admin@rt-b.test', 'routing bravo 2026') AS cb \gset
SELECT medpro_create_user('doc@rt-a.test', 'routing doctor a1', 'doctor', 'Ana', 'Roux', :'ca') IS NOT NULL AS doctor_a;
SELECT medpro_create_user('sec@rt-a.test', 'routing secretary a1', 'secretary', 'Sam', 'Petit', :'ca') IS NOT NULL AS secretary_a;
SELECT medpro_create_user('doc@rt-b.test', 'routing doctor b1', 'doctor', 'Bea', 'Ruiz', :'cb') IS NOT NULL AS doctor_b;
SELECT medpro_create_user('sec@rt-b.test', 'routing secretary b1', 'secretary', 'Pio', 'Sanz', :'cb') IS NOT NULL AS secretary_b;
-- A schema where the application may create objects, to show it still cannot
-- make foreign tables with medpro_fdw.
CREATE SCHEMA regress_routing_scratch;
GRANT USAGE, CREATE ON SCHEMA regress_routing_scratch TO regress_app;

SET ROLE regress_app;
SELECT medpro_login('admin@rt-a.test', 'routing alpha 2026') AS a_admin \gset
SELECT medpro_login('doc@rt-a.test', 'routing doctor a1') AS a_doc \gset
SELECT medpro_login('sec@rt-a.test', 'routing secretary a1') AS a_sec \gset
SELECT medpro_login('admin@rt-b.test', 'routing bravo 2026') AS b_admin \gset
SELECT medpro_login('doc@rt-b.test', 'routing doctor b1') AS b_doc \gset
SELECT medpro_login('sec@rt-b.test', 'routing secretary b1') AS b_sec \gset

-- Without a tenant context nothing is routed.
SELECT regress_try('SELECT count(*) FROM clinic.patients');
SELECT regress_try($$INSERT INTO clinic.categories (name) VALUES ('x')$$);
SELECT regress_try('UPDATE clinic.categories SET name = name');
SELECT regress_try('DELETE FROM clinic.categories');
-- The application cannot use the foreign tables, the wrapper or the server.
SELECT regress_try('SELECT count(*) FROM medpro.ft_patients');
SELECT regress_try($$INSERT INTO medpro.ft_categories (name) VALUES ('x')$$);
SELECT regress_try('CREATE FOREIGN TABLE regress_routing_scratch.x (id uuid) SERVER medpro_clinics');
SELECT regress_try('CREATE USER MAPPING FOR regress_app SERVER medpro_clinics');
SELECT regress_try('CREATE SERVER regress_other FOREIGN DATA WRAPPER medpro_fdw');
SELECT regress_try('ALTER SERVER medpro_clinics OPTIONS (SET schema_version ''0'')');
-- Nor dblink.
SELECT regress_try($$SELECT dblink_connect('dbname=postgres')$$);

-- Clinic A: every relation gets rows. -----------------------------------------
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
INSERT INTO clinic.practitioners (first_name, last_name, specialty, working_hours)
VALUES ('Paul', 'Martin', 'généraliste', '{"monday": [{"start": "09:00", "end": "12:00"}]}')
RETURNING first_name, last_name, company_id = :'ca' AS own_company, is_active, working_hours,
		  created_at IS NOT NULL AS has_created_at, deleted_at;
SELECT id AS a_prac FROM clinic.practitioners WHERE last_name = 'Martin' \gset
INSERT INTO clinic.patients (first_name, last_name, email, date_of_birth, social_security_number, medical_history, allergies)
VALUES ('Jeanne', 'Durand', 'jeanne@rt-a.test', '1985-05-17', '285057800608936', 'asthme', 'pollen'),
	   ('Louis', 'Bernard', NULL, '1990-01-02', '190017500001812', 'diabète', NULL),
	   ('Marc', 'Colin', NULL, NULL, NULL, NULL, NULL)
RETURNING first_name, last_name, social_security_number, medical_history, address, is_active;
SELECT id AS a_pat FROM clinic.patients WHERE last_name = 'Durand' \gset
SELECT id AS a_pat2 FROM clinic.patients WHERE last_name = 'Bernard' \gset
INSERT INTO clinic.product_services (name, price, tax_rate, duration_minutes)
VALUES ('Consultation', 25.00, 0, 20) RETURNING name, type, price, is_medical;
SELECT id AS a_ps FROM clinic.product_services \gset
INSERT INTO clinic.categories (name, color) VALUES ('Soins', '#3366FF') RETURNING name, color;
SELECT id AS a_cat FROM clinic.categories \gset
INSERT INTO clinic.product_categories (product_service_id, category_id) VALUES (:'a_ps', :'a_cat')
RETURNING product_service_id = :'a_ps' AS ps, category_id = :'a_cat' AS cat;
SELECT id AS a_pc FROM clinic.product_categories \gset
INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time, title)
VALUES (:'a_pat', :'a_prac', '2026-03-02 09:00+01', '2026-03-02 09:30+01', 'Consultation')
RETURNING status, title, start_time < end_time AS ordered;
SELECT id AS a_appt FROM clinic.appointments \gset
INSERT INTO clinic.appointment_items (appointment_id, product_service_id, unit_price, quantity)
VALUES (:'a_appt', :'a_ps', 25.00, 2) RETURNING quantity, unit_price, tax_rate;
SELECT id AS a_item FROM clinic.appointment_items \gset
INSERT INTO clinic.documents (document_type, patient_id, appointment_id, items)
VALUES ('quote', :'a_pat', :'a_appt', '[{"description": "Consultation", "quantity": 1, "unit_price": 25, "tax_rate": 0}]')
RETURNING document_type, status, currency, jsonb_array_length(items) AS lines;
SELECT id AS a_doc_id FROM clinic.documents \gset
INSERT INTO clinic.consent_templates (name, type, language, content)
VALUES ('Téléconsultation', 'telehealth', 'fr', 'J''accepte la téléconsultation.') RETURNING name, version, is_required;
SELECT id AS a_tpl FROM clinic.consent_templates WHERE type = 'telehealth' \gset
INSERT INTO clinic.consents (patient_id, consent_template_id, status, signed_at, signature_method, ip_address)
VALUES (:'a_pat', :'a_tpl', 'accepted', '2026-03-02 09:05+01', 'electronic', '192.0.2.10')
RETURNING status, signature_method, ip_address;
SELECT id AS a_consent FROM clinic.consents \gset

-- SELECT with WHERE, ORDER BY and LIMIT.
SELECT first_name, last_name, date_of_birth FROM clinic.patients
 WHERE date_of_birth >= '1980-01-01' ORDER BY last_name LIMIT 1;
SELECT first_name FROM clinic.patients WHERE email IS NULL ORDER BY first_name;
SELECT first_name FROM clinic.patients WHERE is_active AND last_name <> 'Colin' ORDER BY first_name DESC;
SELECT name, language FROM clinic.consent_templates WHERE language = 'fr' ORDER BY name;
SELECT p.last_name, a.title, i.quantity * i.unit_price AS amount
  FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id
  JOIN clinic.appointment_items i ON i.appointment_id = a.id;
-- medpro.fetch_size rows per round trip: more rows than one batch.
SET medpro.fetch_size = 2;
SELECT string_agg(first_name, ',' ORDER BY first_name) FROM clinic.patients;
RESET medpro.fetch_size;

-- UPDATE and DELETE with RETURNING.
UPDATE clinic.patients SET phone = '+33 4 00 00 00 00', notes = 'rappel' WHERE id = :'a_pat'
RETURNING first_name, phone, notes, updated_at >= created_at AS touched;
UPDATE clinic.appointments SET status = 'confirmed' WHERE practitioner_id = :'a_prac' RETURNING status;
-- Soft delete: the row leaves the view but stays in the clinic database.
DELETE FROM clinic.patients WHERE id = :'a_pat2' RETURNING first_name, deleted_at IS NOT NULL AS deleted;
SELECT count(*) AS bernard_visible FROM clinic.patients WHERE id = :'a_pat2';
-- Deleting again finds nothing.
WITH d AS (DELETE FROM clinic.patients WHERE id = :'a_pat2' RETURNING 1) SELECT count(*) AS deleted_again FROM d;
-- Hard delete where the table does not soft-delete.
DELETE FROM clinic.product_categories WHERE id = :'a_pc' RETURNING category_id = :'a_cat' AS cat;
INSERT INTO clinic.product_categories (product_service_id, category_id) VALUES (:'a_ps', :'a_cat');
SELECT id AS a_pc FROM clinic.product_categories \gset

-- A remote error aborts the local statement with the remote SQLSTATE.
SELECT regress_try(format($$INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
	VALUES (%L, %L, '2026-03-03 10:00+01', '2026-03-03 09:00+01')$$, :'a_pat', :'a_prac'));
-- company_id is the clinic's own: another clinic's id is refused.
SELECT regress_try(format($$INSERT INTO clinic.categories (company_id, name) VALUES (%L, 'Intrus')$$, :'cb'));
SELECT regress_try(format($$UPDATE clinic.categories SET company_id = %L$$, :'cb'));
SELECT regress_try('INSERT INTO clinic.categories (name) VALUES (''x'') ON CONFLICT DO NOTHING');

-- Local transactions: ROLLBACK undoes the remote write; savepoints.
BEGIN;
INSERT INTO clinic.categories (name) VALUES ('Annulée');
SELECT count(*) AS inside FROM clinic.categories WHERE name = 'Annulée';
ROLLBACK;
SELECT count(*) AS after_rollback FROM clinic.categories WHERE name = 'Annulée';
BEGIN;
INSERT INTO clinic.categories (name) VALUES ('Gardée 1');
SAVEPOINT s1;
INSERT INTO clinic.categories (name) VALUES ('Défaite');
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
VALUES (:'a_pat', :'a_prac', '2026-03-03 10:00+01', '2026-03-03 09:00+01');
ROLLBACK TO SAVEPOINT s2;
INSERT INTO clinic.categories (name) VALUES ('Gardée 2');
COMMIT;
SELECT string_agg(name, ',' ORDER BY name) AS categories FROM clinic.categories;
-- An error without a savepoint aborts the whole transaction, remote write included.
BEGIN;
INSERT INTO clinic.categories (name) VALUES ('Perdue');
INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time)
VALUES (:'a_pat', :'a_prac', '2026-03-03 10:00+01', '2026-03-03 09:00+01');
COMMIT;
SELECT count(*) AS lost FROM clinic.categories WHERE name = 'Perdue';
-- An EXCEPTION block in PL/pgSQL rolls back its remote work.
DO $$
BEGIN
	INSERT INTO clinic.categories (name) VALUES ('Bloc');
	INSERT INTO clinic.categories (name) VALUES ('Bloc');
EXCEPTION WHEN unique_violation THEN
	RAISE NOTICE 'caught %', SQLSTATE;
END
$$;
SELECT count(*) AS bloc FROM clinic.categories WHERE name = 'Bloc';

-- Roles: a doctor sees everything, a secretary sees masked columns. ----------
SELECT medpro_authenticate(:'a_doc', true) ->> 'role' AS role;
SELECT first_name, social_security_number, medical_history FROM clinic.patients ORDER BY first_name;
SELECT count(*) AS asthma FROM clinic.patients WHERE medical_history = 'asthme';
SELECT medpro_authenticate(:'a_sec', true) ->> 'role' AS role;
SELECT first_name, social_security_number, medical_history, allergies FROM clinic.patients ORDER BY first_name;
-- Quals on masked columns see the masked value only.
SELECT count(*) AS asthma FROM clinic.patients WHERE medical_history = 'asthme';
SELECT count(*) AS by_ssn FROM clinic.patients WHERE social_security_number = '285057800608936';
SELECT count(*) AS by_masked_ssn FROM clinic.patients WHERE social_security_number LIKE '%36';
-- ... and RETURNING is masked too.
UPDATE clinic.patients SET phone = '+33 4 11 11 11 11' WHERE id = :'a_pat'
RETURNING phone, social_security_number, medical_history;
-- A secretary cannot write masked columns.
SELECT regress_try(format($$UPDATE clinic.patients SET medical_history = 'rien' WHERE id = %L$$, :'a_pat'));
SELECT regress_try(format($$UPDATE clinic.patients SET social_security_number = NULL WHERE id = %L$$, :'a_pat'));
SELECT regress_try($$INSERT INTO clinic.patients (first_name, last_name, social_security_number) VALUES ('X', 'Y', '1')$$);
SELECT regress_try($$INSERT INTO clinic.patients (first_name, last_name, medical_history) VALUES ('X', 'Y', 'z')$$);
INSERT INTO clinic.patients (first_name, last_name) VALUES ('Zoé', 'Leroy')
RETURNING first_name, social_security_number, medical_history;
SELECT medpro_authenticate(:'a_doc', true) ->> 'role' AS role;
SELECT first_name, social_security_number IS NULL AS no_ssn, medical_history FROM clinic.patients
 WHERE id = :'a_pat';

-- Clinic B sees none of A's rows, and cannot change them. --------------------
SELECT medpro_authenticate(:'b_admin', true) ->> 'role' AS role;
SELECT rel, pg_temp.count_id(rel, id) AS a_rows_seen_by_b
  FROM (VALUES ('patients', :'a_pat'::uuid), ('practitioners', :'a_prac'), ('appointments', :'a_appt'),
			   ('appointment_items', :'a_item'), ('product_services', :'a_ps'), ('categories', :'a_cat'),
			   ('product_categories', :'a_pc'), ('documents', :'a_doc_id'),
			   ('consent_templates', :'a_tpl'), ('consents', :'a_consent')) AS v(rel, id)
 ORDER BY rel;
SELECT (SELECT count(*) FROM clinic.patients) AS patients, (SELECT count(*) FROM clinic.practitioners) AS practitioners,
	   (SELECT count(*) FROM clinic.appointments) AS appointments, (SELECT count(*) FROM clinic.appointment_items) AS items,
	   (SELECT count(*) FROM clinic.product_services) AS products, (SELECT count(*) FROM clinic.categories) AS categories,
	   (SELECT count(*) FROM clinic.product_categories) AS product_categories, (SELECT count(*) FROM clinic.documents) AS documents,
	   (SELECT count(*) FROM clinic.consents) AS consents,
	   (SELECT string_agg(language, ',' ORDER BY language) FROM (SELECT DISTINCT language FROM clinic.consent_templates) l) AS template_languages;
WITH u AS (UPDATE clinic.patients SET notes = 'B' WHERE id = :'a_pat' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE clinic.practitioners SET specialty = 'B' WHERE id = :'a_prac' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE clinic.appointments SET title = 'B' WHERE id = :'a_appt' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE clinic.appointment_items SET description = 'B' WHERE id = :'a_item' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE clinic.product_services SET name = 'B' WHERE id = :'a_ps' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE clinic.categories SET name = 'B' WHERE id = :'a_cat' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE clinic.product_categories SET updated_at = now() WHERE id = :'a_pc' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE clinic.documents SET notes = 'B' WHERE id = :'a_doc_id' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE clinic.consent_templates SET content = 'B' WHERE id = :'a_tpl' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH u AS (UPDATE clinic.consents SET status = 'revoked' WHERE id = :'a_consent' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH d AS (DELETE FROM clinic.patients WHERE id = :'a_pat' RETURNING 1) SELECT count(*) AS deleted FROM d;
WITH d AS (DELETE FROM clinic.practitioners WHERE id = :'a_prac' RETURNING 1) SELECT count(*) AS deleted FROM d;
WITH d AS (DELETE FROM clinic.appointments WHERE id = :'a_appt' RETURNING 1) SELECT count(*) AS deleted FROM d;
WITH d AS (DELETE FROM clinic.appointment_items WHERE id = :'a_item' RETURNING 1) SELECT count(*) AS deleted FROM d;
WITH d AS (DELETE FROM clinic.product_services WHERE id = :'a_ps' RETURNING 1) SELECT count(*) AS deleted FROM d;
WITH d AS (DELETE FROM clinic.categories WHERE id = :'a_cat' RETURNING 1) SELECT count(*) AS deleted FROM d;
WITH d AS (DELETE FROM clinic.product_categories WHERE id = :'a_pc' RETURNING 1) SELECT count(*) AS deleted FROM d;
WITH d AS (DELETE FROM clinic.documents WHERE id = :'a_doc_id' RETURNING 1) SELECT count(*) AS deleted FROM d;
WITH d AS (DELETE FROM clinic.consent_templates WHERE id = :'a_tpl' RETURNING 1) SELECT count(*) AS deleted FROM d;
WITH d AS (DELETE FROM clinic.consents WHERE id = :'a_consent' RETURNING 1) SELECT count(*) AS deleted FROM d;
-- Clinic B's own rows.
INSERT INTO clinic.practitioners (first_name, last_name) VALUES ('Lucía', 'García') RETURNING last_name, company_id = :'cb' AS own_company;
SELECT id AS b_prac FROM clinic.practitioners \gset
INSERT INTO clinic.categories (name) VALUES ('Soins') RETURNING name;
SELECT regress_try(format($$INSERT INTO clinic.categories (company_id, name) VALUES (%L, 'Intrusa')$$, :'ca'));
-- A cannot touch B's rows either.
SELECT medpro_authenticate(:'a_doc', true) ->> 'role' AS role;
WITH u AS (UPDATE clinic.practitioners SET specialty = 'A' WHERE id = :'b_prac' RETURNING 1) SELECT count(*) AS updated FROM u;
WITH d AS (DELETE FROM clinic.practitioners WHERE id = :'b_prac' RETURNING 1) SELECT count(*) AS deleted FROM d;
-- A's data is untouched.
SELECT (SELECT notes FROM clinic.patients WHERE id = :'a_pat') AS patient_notes,
	   (SELECT specialty FROM clinic.practitioners WHERE id = :'a_prac') AS specialty,
	   (SELECT title FROM clinic.appointments WHERE id = :'a_appt') AS title,
	   (SELECT name FROM clinic.categories WHERE id = :'a_cat') AS category,
	   (SELECT status FROM clinic.consents WHERE id = :'a_consent') AS consent,
	   (SELECT count(*) FROM clinic.product_categories WHERE id = :'a_pc') AS product_categories,
	   (SELECT count(*) FROM clinic.appointment_items WHERE id = :'a_item') AS items,
	   (SELECT count(*) FROM clinic.documents WHERE id = :'a_doc_id') AS documents,
	   (SELECT count(*) FROM clinic.consent_templates WHERE id = :'a_tpl') AS templates,
	   (SELECT count(*) FROM clinic.product_services WHERE id = :'a_ps') AS products;

-- Cached plans cross clinics. -----------------------------------------------
SET plan_cache_mode = force_generic_plan;
PREPARE names AS SELECT string_agg(last_name, ',' ORDER BY last_name) FROM clinic.practitioners;
PREPARE by_name(text) AS SELECT count(*) FROM clinic.practitioners WHERE last_name = $1;
PREPARE rename(uuid, text) AS UPDATE clinic.practitioners SET specialty = $2 WHERE id = $1 RETURNING specialty;
EXECUTE names;
EXECUTE by_name('Martin');
EXECUTE rename(:'a_prac', 'médecine générale');
SELECT pg_temp.practitioner_names();
SELECT medpro_authenticate(:'b_doc', true) ->> 'role' AS role;
EXECUTE names;
EXECUTE by_name('Martin');
EXECUTE by_name('García');
EXECUTE rename(:'a_prac', 'B');
EXECUTE rename(:'b_prac', 'medicina general');
SELECT pg_temp.practitioner_names();
SELECT medpro_authenticate(:'a_doc', true) ->> 'role' AS role;
EXECUTE names;
SELECT pg_temp.practitioner_names();
SELECT specialty FROM clinic.practitioners WHERE id = :'a_prac';
-- A plan made for a doctor masks for a secretary.
PREPARE history AS SELECT medical_history FROM clinic.patients WHERE id = $1;
EXECUTE history(:'a_pat');
SELECT medpro_authenticate(:'a_sec', true) ->> 'role' AS role;
EXECUTE history(:'a_pat');
DEALLOCATE ALL;
RESET plan_cache_mode;

-- EXPLAIN shows the remote SQL, with the WHERE clauses sent to the clinic. --
EXPLAIN (VERBOSE, COSTS OFF)
SELECT first_name FROM clinic.patients
 WHERE last_name = 'Durand' AND date_of_birth < '2000-01-01' AND medical_history IS NULL AND lower(email) = 'x';
EXPLAIN (VERBOSE, COSTS OFF)
SELECT count(*) FROM clinic.appointment_items WHERE appointment_id = '00000000-0000-4000-8000-000000000000';
EXPLAIN (VERBOSE, COSTS OFF)
UPDATE clinic.categories SET name = 'x' WHERE id = '00000000-0000-4000-8000-000000000000';
EXPLAIN (VERBOSE, COSTS OFF)
DELETE FROM clinic.patients WHERE id = '00000000-0000-4000-8000-000000000000';
EXPLAIN (VERBOSE, COSTS OFF)
DELETE FROM clinic.product_categories WHERE category_id IS NOT NULL;
EXPLAIN (VERBOSE, COSTS OFF)
INSERT INTO clinic.categories (name, color) VALUES ('x', 'y');
PREPARE p(uuid) AS SELECT id FROM clinic.practitioners WHERE id = $1;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE p('00000000-0000-4000-8000-000000000000');
DEALLOCATE p;
RESET plan_cache_mode;

SELECT medpro_reset();
SELECT regress_try('SELECT count(*) FROM clinic.categories');
RESET ROLE;

-- In the clinic databases: the soft-deleted row is still there. --------------
SELECT * FROM pg_temp.in_clinic(:'ca', format($$SELECT (deleted_at IS NOT NULL)::text FROM patients WHERE id = %L$$, :'a_pat2')) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'ca', $$SELECT count(*)::text FROM patients$$) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'ca', $$SELECT string_agg(name, ',' ORDER BY name) FROM categories$$) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'cb', $$SELECT string_agg(name, ',' ORDER BY name) FROM categories$$) AS t(v text);
SELECT * FROM pg_temp.in_clinic(:'ca', $$SELECT count(*)::text FROM product_categories$$) AS t(v text);

-- Audit: one row per written row, in the writer's transaction, no secrets.
SELECT c.name AS clinic, a.action, a.entity, count(*)
  FROM medpro.audit_log a JOIN medpro.clinics c ON c.id = a.clinic_id
 WHERE a.clinic_id IN (:'ca', :'cb') AND a.entity IS NOT NULL AND a.action IN ('insert', 'update', 'delete')
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT count(*) AS with_secrets FROM medpro.audit_log
 WHERE clinic_id IN (:'ca', :'cb')
   AND (coalesce(new_data, '{}') ?| ARRAY['social_security_number', 'medical_history']
		OR coalesce(old_data, '{}') ?| ARRAY['social_security_number', 'medical_history']);
SELECT count(*) AS rolled_back_audited FROM medpro.audit_log
 WHERE clinic_id = :'ca' AND new_data ->> 'name' IN ('Annulée', 'Défaite', 'Perdue', 'Bloc');
-- A soft delete: old_data is the row before (deleted_at null), new_data after.
SELECT a.entity_id = :'a_pat2' AS entity, a.old_data ->> 'first_name' AS first_name,
	   a.old_data ? 'deleted_at' AND a.old_data ->> 'deleted_at' IS NULL AS live_before,
	   a.new_data ->> 'deleted_at' IS NOT NULL AS deleted, u.email
  FROM medpro.audit_log a JOIN medpro.users u ON u.id = a.user_id
 WHERE a.clinic_id = :'ca' AND a.action = 'delete' AND a.entity = 'patients';
-- An UPDATE: old_data has the previous values, new_data the new ones, and
-- neither the masked columns (the second UPDATE was a secretary's).
SELECT u.email, a.old_data ? 'phone' AS old_has_phone,
	   a.old_data ->> 'phone' AS old_phone, a.new_data ->> 'phone' AS new_phone,
	   a.old_data ->> 'notes' AS old_notes, a.new_data ->> 'notes' AS new_notes,
	   a.old_data ?| ARRAY['social_security_number', 'medical_history'] AS old_secrets,
	   a.new_data ?| ARRAY['social_security_number', 'medical_history'] AS new_secrets
  FROM medpro.audit_log a JOIN medpro.users u ON u.id = a.user_id
 WHERE a.clinic_id = :'ca' AND a.action = 'update' AND a.entity = 'patients'
   AND a.entity_id = :'a_pat'
 ORDER BY a.id;
-- Every UPDATE audit row has the old row: same columns, same id.
SELECT count(*) AS updates, count(*) FILTER (WHERE old_data IS NULL) AS without_old,
	   count(*) FILTER (WHERE (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(old_data) k) IS DISTINCT FROM
							  (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(new_data) k)) AS other_columns,
	   count(*) FILTER (WHERE old_data ->> 'id' IS DISTINCT FROM entity_id OR
							  new_data ->> 'id' IS DISTINCT FROM entity_id) AS other_row
  FROM medpro.audit_log WHERE clinic_id IN (:'ca', :'cb') AND action = 'update';
-- A doctor changing only masked columns: the audit row shows no change and
-- neither the old nor the new secret values.
SET ROLE regress_app;
SELECT medpro_authenticate(:'a_doc', true) ->> 'role' AS role;
UPDATE clinic.patients SET medical_history = 'asthme léger', social_security_number = '285057800608837'
 WHERE id = :'a_pat' RETURNING medical_history, social_security_number;
SELECT medpro_reset();
RESET ROLE;
SELECT old_data ?| ARRAY['social_security_number', 'medical_history'] AS old_secrets,
	   new_data ?| ARRAY['social_security_number', 'medical_history'] AS new_secrets,
	   concat(old_data::text, new_data::text) ~ '(asthme|285057800608[89])' AS leaked,
	   old_data - 'updated_at' = new_data - 'updated_at' AS same_otherwise
  FROM medpro.audit_log
 WHERE id = (SELECT max(id) FROM medpro.audit_log WHERE clinic_id = :'ca' AND action = 'update');
SELECT new_data ->> 'working_hours' AS working_hours, jsonb_typeof(new_data -> 'is_active') AS is_active_type,
	   jsonb_typeof(new_data -> 'working_hours') AS hours_type
  FROM medpro.audit_log WHERE clinic_id = :'ca' AND action = 'insert' AND entity = 'practitioners';

DROP SCHEMA regress_routing_scratch;

-- Only clinic admins manage products/services, categories and consent
-- templates; doctors and secretaries may read them.
SET ROLE regress_app;
BEGIN;
SELECT medpro_authenticate(:'a_sec') ->> 'role' AS role;
SELECT count(*) > 0 AS secretary_reads_templates FROM clinic.consent_templates;
SELECT regress_try($$INSERT INTO clinic.categories (name) VALUES ('by secretary')$$);
SELECT regress_try($$UPDATE clinic.consent_templates SET name = name || ' (edited)'$$);
SELECT regress_try($$DELETE FROM clinic.product_services$$);
SELECT regress_try($$INSERT INTO clinic.product_categories (product_service_id, category_id) SELECT p.id, c.id FROM clinic.product_services p, clinic.categories c LIMIT 1$$);
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'a_doc') ->> 'role' AS role;
SELECT regress_try($$INSERT INTO clinic.product_services (name, price) VALUES ('by doctor', 1)$$);
COMMIT;
-- A remote error never shows a masked role the failing row: its detail
-- would quote the social security number and the medical history.
BEGIN;
SELECT medpro_authenticate(:'a_sec') ->> 'role' AS role;
-- (psql shows a DETAIL line when the error has one: here it has none)
UPDATE clinic.patients SET gender = 'bogus' WHERE id = :'a_pat';
ROLLBACK;
BEGIN;
SELECT medpro_authenticate(:'a_doc') ->> 'role' AS role;
SELECT regress_try(format($$UPDATE clinic.patients SET gender = 'bogus' WHERE id = %L$$, :'a_pat'));
ROLLBACK;
RESET ROLE;
