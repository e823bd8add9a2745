-- The operator's part of the demo, run as a role holding medpro_operator:
-- a signing key, a super admin, and a French and a Spanish clinic.
\pset footer off
\echo '== operator: signing key, super admin, two clinics'
SELECT medpro_key_rotate('HS256') AS "new signing key (kid)";
SELECT medpro_create_super_admin('root@medpro.example', 'demo super admin password') IS NOT NULL AS "super admin created";
SELECT medpro_register_clinic('Cabinet Dupont', 'FR', 'claire@dupont.example', 'Lyon cabinet 2026',
                              email => 'contact@dupont.example',
                              admin_first_name => 'Claire', admin_last_name => 'Dupont') IS NOT NULL AS "FR clinic";
SELECT medpro_register_clinic('Clínica Sol', 'ES', 'lucia@sol.example', 'Sevilla clinica 2026',
                              email => 'hola@sol.example',
                              admin_first_name => 'Lucía', admin_last_name => 'García') IS NOT NULL AS "ES clinic";
SELECT name, country, status, db_name, schema_version, latest_version, pg_size_pretty(size_bytes) AS size
  FROM medpro.clinic_status ORDER BY country DESC;
