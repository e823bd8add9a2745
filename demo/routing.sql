-- The main job, part two (run as demo_app, a role with only medpro_api):
-- each clinic's staff work through clinic.*, which routes every statement
-- to that clinic's own database.
\pset footer off
\set ON_ERROR_STOP 1

-- One clinic's day: a practitioner, a patient, an appointment with an item,
-- a quote and an invoice, and a signed consent (demo/demo_day.sql).
\echo '== Cabinet Dupont (FR), as its doctor'
SELECT medpro_login('paul@dupont.example', 'Lyon doctor 2026') AS tok \gset
\set pfirst 'Hélène'
\set plast 'Dupont-Durand'
\set ssn '185057512345673'
\ir demo_day.sql
\echo '== Clínica Sol (ES), as its doctor'
SELECT medpro_login('jorge@sol.example', 'Sevilla doctor 2026') AS tok \gset
\set pfirst 'María'
\set plast 'López'
\set ssn '281234567840'
\ir demo_day.sql

\echo '== isolation: each clinic sees only its own rows'
BEGIN;
SELECT medpro_authenticate(medpro_login('paul@dupont.example', 'Lyon doctor 2026')) IS NOT NULL AS "FR doctor";
SELECT string_agg(first_name || ' ' || last_name, ', ') AS "patients seen by FR" FROM clinic.patients;
COMMIT;
BEGIN;
SELECT medpro_authenticate(medpro_login('jorge@sol.example', 'Sevilla doctor 2026')) IS NOT NULL AS "ES doctor";
SELECT string_agg(first_name || ' ' || last_name, ', ') AS "patients seen by ES" FROM clinic.patients;
COMMIT;

\echo '== a secretary sees masked fields'
BEGIN;
SELECT medpro_authenticate(medpro_login('lea@dupont.example', 'Lyon front desk 2026')) ->> 'role' AS role;
SELECT first_name, last_name, social_security_number, medical_history FROM clinic.patients;
COMMIT;
BEGIN;
SELECT medpro_authenticate(medpro_login('paul@dupont.example', 'Lyon doctor 2026')) ->> 'role' AS role;
SELECT first_name, last_name, social_security_number, medical_history FROM clinic.patients;
COMMIT;

\echo '== summary: rows per clinic (each counted through its own doctor''s token)'
CREATE TEMP TABLE summary (clinic text, relation text, n bigint);
BEGIN;
SELECT medpro_authenticate(medpro_login('paul@dupont.example', 'Lyon doctor 2026')) IS NOT NULL AS "FR doctor";
INSERT INTO summary
SELECT 'Cabinet Dupont', r, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM clinic.%I', r), false, true, '')))[1]::text::bigint
  FROM unnest(ARRAY['practitioners', 'patients', 'appointments', 'appointment_items', 'product_services',
					'documents', 'consents', 'consent_templates']) AS r;
COMMIT;
BEGIN;
SELECT medpro_authenticate(medpro_login('jorge@sol.example', 'Sevilla doctor 2026')) IS NOT NULL AS "ES doctor";
INSERT INTO summary
SELECT 'Clínica Sol', r, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM clinic.%I', r), false, true, '')))[1]::text::bigint
  FROM unnest(ARRAY['practitioners', 'patients', 'appointments', 'appointment_items', 'product_services',
					'documents', 'consents', 'consent_templates']) AS r;
COMMIT;
SELECT relation, max(n) FILTER (WHERE clinic = 'Cabinet Dupont') AS "Cabinet Dupont",
	   max(n) FILTER (WHERE clinic = 'Clínica Sol') AS "Clínica Sol"
  FROM summary GROUP BY relation ORDER BY relation;
