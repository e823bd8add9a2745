--
-- setup: install medpro into the regression database and create the roles
-- the other regression tests use.
--
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
RESET client_min_messages;

SELECT extname, extversion FROM pg_extension WHERE extname IN ('dblink', 'medpro') ORDER BY 1;
SELECT extrelocatable FROM pg_extension WHERE extname = 'medpro';

-- The two roles of the privilege model exist and hold no attributes.
SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin
  FROM pg_roles WHERE rolname IN ('medpro_api', 'medpro_operator') ORDER BY 1;

-- Every catalog table is an extension configuration table (pg_dump keeps rows).
SELECT c.relname
  FROM pg_extension e, unnest(e.extconfig) AS cfg(oid) JOIN pg_class c ON c.oid = cfg.oid
 WHERE e.extname = 'medpro' ORDER BY 1;

-- Settings and their defaults.
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'medpro.%'
   AND name <> 'medpro.master_key_file' ORDER BY 1;

-- The prefix is reserved: no placeholder can be made under it.
SET medpro.clinic_id = '00000000-0000-0000-0000-000000000001';
SELECT set_config('medpro.clinic', 'x', false);
-- Not settable with ALTER SYSTEM.
ALTER SYSTEM SET medpro.master_key_file = '/tmp/elsewhere';

-- Test roles: an application login (medpro_api only) and an operator.
-- (Roles are cluster-wide, so they may remain from an earlier run.)
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'regress_app') THEN
		CREATE ROLE regress_app LOGIN;
		CREATE ROLE regress_op LOGIN;
		CREATE ROLE regress_nobody LOGIN;
		GRANT medpro_api TO regress_app;
		GRANT medpro_operator TO regress_op;
	END IF;
END $$;

-- Runs a statement and reports its SQLSTATE and message instead of failing.
CREATE FUNCTION public.regress_try(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Decodes segment n (1 = header, 2 = payload) of a compact JWT, unverified.
CREATE FUNCTION public.regress_jwt_part(token text, n int) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT convert_from(decode(rpad(translate(split_part(token, '.', n), '-_', '+/'),
									(length(split_part(token, '.', n)) + 3) / 4 * 4, '='),
							   'base64'), 'UTF8')::jsonb
$$;

-- Unpadded base64url of a text, on one line.
CREATE FUNCTION public.regress_b64url(t text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT rtrim(translate(encode(convert_to(t, 'UTF8'), 'base64'), E'+/\n', '-_'), '=')
$$;
