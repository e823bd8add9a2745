-- The operator's part of the demo, run as a role holding medpro_operator:
-- a signing key and a super admin.
\echo '== operator: signing key and super admin'
SELECT medpro_key_rotate('HS256') AS "new signing key (kid)";
SELECT medpro_create_super_admin('root@medpro.example', 'demo super admin password') IS NOT NULL AS "super admin created";
