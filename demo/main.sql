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

\echo '== a wrong password, a forged token and no token at all'
\set ON_ERROR_STOP 0
SELECT medpro_login('root@medpro.example', 'not the password');
SELECT medpro_authenticate(split_part(:'token', '.', 1) || '.' ||
       'eyJzdWIiOiJhdHRhY2tlciIsInJvbGUiOiJzdXBlcl9hZG1pbiJ9' || '.' || split_part(:'token', '.', 3));
SELECT medpro_current_role();
\set ON_ERROR_STOP 1
