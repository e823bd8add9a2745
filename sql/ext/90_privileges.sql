-- medpro install script, part 90: closing what the privilege model forbids.
--
-- dblink is medpro's declared dependency, for operator-only autonomous work.
-- Its functions are executable by PUBLIC by default; in a medpro database no
-- one but superusers (and roles they grant it to explicitly) may open
-- connections with it, so that medpro_api cannot reach a clinic database.
DO $dblink$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure
		  FROM pg_catalog.pg_proc p
		  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass
									 AND d.objid = p.oid AND d.deptype = 'e'
		  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'dblink'
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END
$dblink$;

-- No internal function in schema medpro is executable by PUBLIC, trigger
-- functions included (a trigger fires without EXECUTE; only CREATE TRIGGER
-- needs it).  Functions meant for medpro_api or operators are in the
-- extension's schema and granted where they are defined.
DO $internal$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure
		  FROM pg_catalog.pg_proc p
		  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass
									 AND d.objid = p.oid AND d.deptype = 'e'
		  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'medpro'
		 WHERE p.pronamespace = 'medpro'::regnamespace
	LOOP
		EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END
$internal$;
