-- The operator's closing view of the demo: clinics and the audit trail.
\pset footer off
\echo '== operator: clinics and the audit trail'
SELECT name, country, status, schema_version, pg_size_pretty(size_bytes) AS size FROM medpro.clinic_status ORDER BY name;
SELECT count(*) AS "audit trail rows" FROM medpro.audit_trail;
SELECT action, count(*) FROM medpro.audit_trail GROUP BY action ORDER BY count(*) DESC, action;
