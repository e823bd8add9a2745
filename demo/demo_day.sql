-- One clinic's day, as the doctor whose token is in :tok, for the patient
-- :pfirst :plast with social security number :ssn (included twice by
-- demo/routing.sql).
BEGIN;
SELECT medpro_authenticate(:'tok') ->> 'email' AS "authenticated as";
INSERT INTO clinic.practitioners (first_name, last_name, specialty, working_hours)
VALUES ('Dr', 'Demo', 'general practice', '{"monday": [{"start": "09:00", "end": "12:30"}]}')
RETURNING id AS practitioner_id \gset
INSERT INTO clinic.patients (first_name, last_name, email, date_of_birth, social_security_number, medical_history)
VALUES (:'pfirst', :'plast', NULL, '1985-05-12', :'ssn', 'asthma since childhood')
RETURNING id AS patient_id \gset
SELECT id AS service_id FROM clinic.product_services WHERE name = 'Consultation' \gset
INSERT INTO clinic.appointments (patient_id, practitioner_id, start_time, end_time, title)
VALUES (:'patient_id', :'practitioner_id', '2026-12-07 09:00+01', '2026-12-07 09:30+01', 'first visit')
RETURNING id AS appointment_id \gset
INSERT INTO clinic.appointment_items (appointment_id, product_service_id, quantity, unit_price, tax_rate)
VALUES (:'appointment_id', :'service_id', 1, 30.00, 0);
INSERT INTO clinic.documents (document_type, patient_id, appointment_id, status, items, subtotal, tax_amount, total)
VALUES ('quote', :'patient_id', :'appointment_id', 'draft',
		jsonb_build_array(jsonb_build_object('description', 'Consultation', 'quantity', 1, 'unit_price', 30, 'tax_rate', 0)), 30, 0, 30),
	   ('invoice', :'patient_id', :'appointment_id', 'sent',
		jsonb_build_array(jsonb_build_object('description', 'Consultation', 'quantity', 1, 'unit_price', 30, 'tax_rate', 0)), 30, 0, 30);
INSERT INTO clinic.consents (patient_id, consent_template_id, status, signed_at, signature_method)
SELECT :'patient_id', t.id, 'accepted', now(), 'electronic'
  FROM clinic.consent_templates t WHERE t.type = 'gdpr';
COMMIT;
