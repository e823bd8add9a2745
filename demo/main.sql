-- The main job, run as demo_app: a login role that holds only medpro_api.
\pset footer off
\echo '== login and authentication (as an application role with medpro_api only)'
SELECT current_user AS "connected as",
       (SELECT string_agg(b.rolname, ', ') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
         WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)) AS "member of";

SELECT medpro_login('root@medpro.example', 'demo super admin password') AS token \gset
BEGIN;
SELECT claims ->> 'email' AS email, claims ->> 'role' AS role, claims ->> 'iss' AS issuer,
       to_timestamp((claims ->> 'exp')::bigint) - to_timestamp((claims ->> 'iat')::bigint) AS lifetime
  FROM medpro_authenticate(:'token') AS claims;
SELECT medpro_current_role() AS "current role";
COMMIT;

\echo '== clinic admins create their staff (each in their own clinic only)'
SELECT medpro_login('claire@dupont.example', 'Lyon cabinet 2026') AS fr_admin \gset
SELECT medpro_login('lucia@sol.example', 'Sevilla clinica 2026') AS es_admin \gset
BEGIN;
SELECT medpro_authenticate(:'fr_admin') ->> 'email' AS "authenticated as";
SELECT medpro_create_user('paul@dupont.example', 'Lyon doctor 2026', 'doctor', 'Paul', 'Durand') IS NOT NULL AS "FR doctor";
SELECT medpro_create_user('lea@dupont.example', 'Lyon front desk 2026', 'secretary', 'Léa', 'Martin') IS NOT NULL AS "FR secretary";
-- only admins manage the catalogue of products and services
INSERT INTO clinic.product_services (name, type, price, tax_rate, is_medical)
VALUES ('Consultation', 'service', 30.00, 0, true) RETURNING name, price AS "FR service";
COMMIT;
BEGIN;
SELECT medpro_authenticate(:'es_admin') ->> 'email' AS "authenticated as";
SELECT medpro_create_user('jorge@sol.example', 'Sevilla doctor 2026', 'doctor', 'Jorge', 'Ruiz') IS NOT NULL AS "ES doctor";
SELECT medpro_create_user('ana@sol.example', 'Sevilla front desk 26', 'secretary', 'Ana', 'Torres') IS NOT NULL AS "ES secretary";
INSERT INTO clinic.product_services (name, type, price, tax_rate, is_medical)
VALUES ('Consultation', 'service', 30.00, 0, true) RETURNING name, price AS "ES service";
COMMIT;
BEGIN;
SELECT claims ->> 'role' AS role, medpro_current_clinic() = (claims ->> 'clinic_id')::uuid AS "own clinic selected"
  FROM medpro_authenticate(medpro_login('paul@dupont.example', 'Lyon doctor 2026')) AS claims;
COMMIT;

\echo '== a wrong password, a forged token and no token at all'
\set ON_ERROR_STOP 0
SELECT medpro_login('root@medpro.example', 'not the password');
SELECT medpro_authenticate(split_part(:'token', '.', 1) || '.' ||
       'eyJzdWIiOiJhdHRhY2tlciIsInJvbGUiOiJzdXBlcl9hZG1pbiJ9' || '.' || split_part(:'token', '.', 3));
-- a token the legacy backend issued yesterday, for Paul: expired
SELECT medpro_authenticate(medpro_jwt_sign(jsonb_build_object(
	'userId', (SELECT claims ->> 'sub' FROM medpro_jwt_decode(medpro_login('paul@dupont.example', 'Lyon doctor 2026'),
	                                                          repeat('x', 32)) AS d(h, claims, v, r)),
	'exp', extract(epoch FROM now() - interval '1 day')::bigint),
	'the-legacy-node-backend-jwt-secret!!'));
SELECT medpro_current_role();
\set ON_ERROR_STOP 1
