-- medpro install script, part 55: operating many clinics (docs/operators.md).
--
-- Operators' own migrations, the rollout to every clinic (medpro_migrate_all,
-- src/rollout.c), keeping clinic.* in step with the clinic schema, and the
-- clinic lifecycle after registration: suspend, reactivate, drop.

-- Clinic tables that never appear in clinic.*: medpro's own (medpro_*),
-- these, and any whose COMMENT starts with 'medpro:internal'.
CREATE FUNCTION medpro.hidden_clinic_tables() RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ARRAY['email_verifications']::text[] $$;
COMMENT ON FUNCTION medpro.hidden_clinic_tables()
	IS 'internal: clinic tables medpro_refresh_relations() never exposes in clinic.* (besides medpro_* and tables commented medpro:internal)';
REVOKE ALL ON FUNCTION medpro.hidden_clinic_tables() FROM PUBLIC;

CREATE FUNCTION medpro.template_columns(OUT table_name text, OUT column_name text, OUT attnum integer,
										OUT type text, OUT medical boolean, OUT internal boolean)
RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'medpro_template_columns' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION medpro.template_columns()
	IS 'internal: the columns of the template database''s tables at the latest version, with the medpro:medical and medpro:internal comment marks';
REVOKE ALL ON FUNCTION medpro.template_columns() FROM PUBLIC;

-- Operators' migrations. -----------------------------------------------------

CREATE FUNCTION medpro_add_migration(version integer, name text, sql text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_old medpro.migrations;
	v_latest integer;
BEGIN
	IF NOT medpro.caller_is_operator() THEN
		RAISE EXCEPTION 'permission denied to add migrations' USING ERRCODE = 'insufficient_privilege',
			HINT = 'Only members of medpro_operator may do this.';
	END IF;
	IF version IS NULL OR version < 1000 THEN
		RAISE EXCEPTION 'operator migrations have versions from 1000' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'Versions below 1000 belong to the extension''s own migrations.';
	END IF;
	IF name IS NULL OR btrim(name) = '' OR length(name) > 200 THEN
		RAISE EXCEPTION 'migration name must be 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF sql IS NULL OR btrim(sql) = '' THEN
		RAISE EXCEPTION 'migration text must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- one registration at a time, so versions stay in order
	PERFORM pg_advisory_xact_lock(hashtext('medpro.migrations'));
	SELECT * INTO v_old FROM medpro.migrations m WHERE m.version = medpro_add_migration.version;
	IF FOUND THEN
		IF v_old.checksum = encode(sha256(convert_to(sql, 'UTF8')), 'hex') AND v_old.name = btrim(name) THEN
			RETURN;		-- the same migration again: nothing to do
		END IF;
		RAISE EXCEPTION 'migration % has changed since it was applied', version
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = format('Migration %s ("%s") is registered with another name or text.', version, v_old.name),
				  HINT = 'An applied migration is never edited; add a new migration instead.';
	END IF;
	SELECT coalesce(max(m.version), 0) INTO v_latest FROM medpro.migrations m;
	IF version <= v_latest THEN
		RAISE EXCEPTION 'migration version % is out of order', version USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('The latest migration is version %s; a new one must come after it.', v_latest);
	END IF;
	INSERT INTO medpro.migrations (version, name, sql, source)
	VALUES (medpro_add_migration.version, btrim(name), medpro_add_migration.sql, 'operator');
	-- The template first: invalid SQL fails here, before any clinic sees it.
	PERFORM medpro.ensure_template();
	PERFORM @extschema@.medpro_refresh_relations();
	PERFORM medpro.audit_append(NULL, NULL, 'migration_add', 'migration', version::text, NULL,
								jsonb_build_object('name', btrim(name)), NULL);
END
$$;
COMMENT ON FUNCTION medpro_add_migration(integer, text, text)
	IS 'registers an operator''s clinic-schema migration (version 1000 and up, checksummed), applies it to the template and updates clinic.*; medpro_migrate_all() rolls it out (operators)';

CREATE FUNCTION medpro_migrate_all(parallel integer DEFAULT 2)
RETURNS TABLE(clinic_id uuid, from_version integer, to_version integer, status text, error text, duration interval)
	AS 'MODULE_PATHNAME', 'medpro_migrate_all'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION medpro_migrate_all(integer)
	IS 'migrates the template, then every active or suspended clinic behind the latest version, at most parallel at a time, one transaction per clinic and migration; failures are recorded and reported, the others go on (operators)';

-- clinic.* after the clinic schema changed. ---------------------------------

CREATE FUNCTION medpro_refresh_relations() RETURNS TABLE(relation text, change text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t record;
	c record;
	v_ft text;
	v_oid oid;
	v_cols text;
	v_changed boolean;
	v_view regclass;
	v_soft boolean;
BEGIN
	IF NOT medpro.caller_is_operator() THEN
		RAISE EXCEPTION 'permission denied to refresh relations' USING ERRCODE = 'insufficient_privilege',
			HINT = 'Only members of medpro_operator may do this.';
	END IF;
	IF to_regclass('pg_temp.medpro_template_columns') IS NOT NULL THEN
		DROP TABLE pg_temp.medpro_template_columns;
	END IF;
	CREATE TEMP TABLE medpro_template_columns ON COMMIT DROP AS SELECT * FROM medpro.template_columns();
	IF NOT EXISTS (SELECT 1 FROM pg_temp.medpro_template_columns) THEN
		RAISE EXCEPTION 'the template database has no tables' USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;

	FOR t IN
		SELECT tc.table_name, bool_or(tc.internal) AS internal,
			   bool_or(tc.column_name = 'deleted_at') AS soft
		  FROM pg_temp.medpro_template_columns tc GROUP BY tc.table_name ORDER BY tc.table_name
	LOOP
		CONTINUE WHEN t.table_name LIKE 'medpro\_%' OR t.table_name = ANY (medpro.hidden_clinic_tables())
			OR t.internal OR length(t.table_name) > 60;
		v_ft := 'ft_' || t.table_name;
		v_oid := to_regclass(format('medpro.%I', v_ft));
		v_view := to_regclass(format('clinic.%I', t.table_name));
		v_changed := false;
		IF v_oid IS NULL THEN
			SELECT string_agg(format('%I %s%s', tc.column_name, tc.type,
									 CASE WHEN tc.medical THEN ' OPTIONS (mask ''hide'')' ELSE '' END),
							  ', ' ORDER BY tc.attnum)
			  INTO v_cols FROM pg_temp.medpro_template_columns tc WHERE tc.table_name = t.table_name;
			EXECUTE format('CREATE FOREIGN TABLE medpro.%I (%s) SERVER medpro_clinics OPTIONS (table_name %L, soft_delete %L)',
						   v_ft, v_cols, t.table_name, t.soft::text);
			EXECUTE format('ALTER EXTENSION medpro ADD FOREIGN TABLE medpro.%I', v_ft);
			EXECUTE format('REVOKE ALL ON medpro.%I FROM PUBLIC', v_ft);
			EXECUTE format('COMMENT ON FOREIGN TABLE medpro.%I IS %L', v_ft,
						   format('internal: the current clinic''s %s table (use clinic.%s)', t.table_name, t.table_name));
			v_oid := to_regclass(format('medpro.%I', v_ft));
			relation := 'medpro.' || v_ft;
			change := 'created';
			RETURN NEXT;
			v_changed := true;
		ELSE
			-- Columns gone or retyped: the view must go first.
			FOR c IN
				SELECT a.attname, tc.type AS want
				  FROM pg_attribute a
				  LEFT JOIN pg_temp.medpro_template_columns tc
						 ON tc.table_name = t.table_name AND tc.column_name = a.attname
				 WHERE a.attrelid = v_oid AND a.attnum > 0 AND NOT a.attisdropped
				   AND (tc.column_name IS NULL OR tc.type <> format_type(a.atttypid, a.atttypmod))
				 ORDER BY a.attnum
			LOOP
				IF v_view IS NOT NULL THEN
					EXECUTE format('ALTER EXTENSION medpro DROP VIEW clinic.%I', t.table_name);
					EXECUTE format('DROP VIEW clinic.%I', t.table_name);
					v_view := NULL;
				END IF;
				IF c.want IS NULL THEN
					EXECUTE format('ALTER FOREIGN TABLE medpro.%I DROP COLUMN %I', v_ft, c.attname);
					change := format('column %s dropped', c.attname);
				ELSE
					EXECUTE format('ALTER FOREIGN TABLE medpro.%I ALTER COLUMN %I TYPE %s', v_ft, c.attname, c.want);
					change := format('column %s is now %s', c.attname, c.want);
				END IF;
				relation := 'medpro.' || v_ft;
				RETURN NEXT;
				v_changed := true;
			END LOOP;
			FOR c IN
				SELECT tc.column_name, tc.type, tc.medical
				  FROM pg_temp.medpro_template_columns tc
				 WHERE tc.table_name = t.table_name
				   AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = v_oid
									  AND a.attname = tc.column_name AND NOT a.attisdropped)
				 ORDER BY tc.attnum
			LOOP
				EXECUTE format('ALTER FOREIGN TABLE medpro.%I ADD COLUMN %I %s%s', v_ft, c.column_name, c.type,
							   CASE WHEN c.medical THEN ' OPTIONS (mask ''hide'')' ELSE '' END);
				relation := 'clinic.' || t.table_name;
				change := format('column %s added%s', c.column_name,
								 CASE WHEN c.medical THEN ' (medical: hidden from secretaries)' ELSE '' END);
				RETURN NEXT;
				v_changed := true;
			END LOOP;
		END IF;

		CONTINUE WHEN NOT v_changed AND v_view IS NOT NULL;
		SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO v_cols
		  FROM pg_attribute a WHERE a.attrelid = v_oid AND a.attnum > 0 AND NOT a.attisdropped;
		SELECT 'soft_delete=true' = ANY (ft.ftoptions) INTO v_soft FROM pg_foreign_table ft WHERE ft.ftrelid = v_oid;
		-- new columns come last, so CREATE OR REPLACE keeps the view's grants;
		-- a plain view, as in 70_routing.sql: medpro_fdw itself hides the
		-- soft-deleted rows of a soft_delete table (docs/routing.md)
		EXECUTE format('CREATE OR REPLACE VIEW clinic.%I AS SELECT %s FROM medpro.%I',
					   t.table_name, v_cols, v_ft);
		IF v_view IS NULL THEN
			v_view := to_regclass(format('clinic.%I', t.table_name));
			EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON clinic.%I TO medpro_api', t.table_name);
			EXECUTE format('COMMENT ON VIEW clinic.%I IS %L', t.table_name,
						   format('the current clinic''s %s%s', replace(t.table_name, '_', ' '),
								  CASE WHEN v_soft THEN ' (DELETE is a soft delete; deleted rows are hidden)' ELSE '' END));
			IF NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
							 AND d.objid = v_view AND d.deptype = 'e') THEN
				EXECUTE format('ALTER EXTENSION medpro ADD VIEW clinic.%I', t.table_name);
			END IF;
			relation := 'clinic.' || t.table_name;
			change := 'view created';
			RETURN NEXT;
		END IF;
	END LOOP;
	DROP TABLE pg_temp.medpro_template_columns;
END
$$;
COMMENT ON FUNCTION medpro_refresh_relations()
	IS 'brings medpro.ft_* and the clinic.* views in line with the clinic schema at the latest version (new tables and columns; columns marked medpro:medical are hidden from secretaries) and returns what changed (operators)';

-- The clinic lifecycle. ------------------------------------------------------

-- A clinic row by id, for the lifecycle functions: 22023 when unknown.
CREATE FUNCTION medpro.lifecycle_clinic(clinic uuid) RETURNS medpro.clinics
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v medpro.clinics;
BEGIN
	IF clinic IS NULL THEN
		RAISE EXCEPTION 'clinic must not be null' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('medpro.clinic'), hashtext(clinic::text));
	SELECT * INTO v FROM medpro.clinics c WHERE c.id = clinic;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'clinic % does not exist', clinic USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN v;
END
$$;
COMMENT ON FUNCTION medpro.lifecycle_clinic(uuid)
	IS 'internal: locks a clinic (advisory lock) and returns its row; 22023 when it does not exist';
REVOKE ALL ON FUNCTION medpro.lifecycle_clinic(uuid) FROM PUBLIC;

CREATE FUNCTION medpro_suspend_clinic(clinic uuid, reason text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v medpro.clinics;
BEGIN
	PERFORM medpro.require_lifecycle_privilege('suspend clinics');
	v := medpro.lifecycle_clinic(clinic);
	IF v.status = 'dropped' THEN
		RAISE EXCEPTION 'clinic % does not exist', clinic USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF reason IS NULL OR btrim(reason) = '' OR length(reason) > 500 THEN
		RAISE EXCEPTION 'reason must be 1 to 500 characters' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF v.status NOT IN ('active', 'suspended') THEN
		RAISE EXCEPTION 'clinic % is not active', clinic USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = format('Its status is "%s".', v.status);
	END IF;
	UPDATE medpro.clinics c SET status = 'suspended', status_reason = btrim(reason), updated_at = now()
	 WHERE c.id = clinic;
	IF EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = v.db_name)
	   AND EXISTS (SELECT 1 FROM pg_roles a WHERE a.rolname = v.db_role) THEN
		EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM %I', v.db_name, v.db_role);
	END IF;
	-- Routed connections of every backend: their sessions end now.
	PERFORM pg_terminate_backend(a.pid) FROM pg_stat_activity a
	 WHERE a.datname = v.db_name AND a.pid <> pg_backend_pid();
	PERFORM medpro.audit_append(clinic, (medpro.context()).user_id, 'clinic_suspend', 'clinic', clinic::text,
								jsonb_build_object('status', v.status),
								jsonb_build_object('status', 'suspended', 'reason', btrim(reason)), NULL);
END
$$;
COMMENT ON FUNCTION medpro_suspend_clinic(uuid, text)
	IS 'suspends a clinic: its users cannot log in or authenticate (42501 clinic is suspended), its routed connections are closed and its role loses CONNECT (operators and super admins)';

CREATE FUNCTION medpro_reactivate_clinic(clinic uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v medpro.clinics;
BEGIN
	PERFORM medpro.require_lifecycle_privilege('reactivate clinics');
	v := medpro.lifecycle_clinic(clinic);
	IF v.status = 'dropped' THEN
		RAISE EXCEPTION 'clinic % does not exist', clinic USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF v.status = 'active' THEN
		RETURN;
	END IF;
	IF v.status <> 'suspended' THEN
		RAISE EXCEPTION 'clinic % is not suspended', clinic USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = format('Its status is "%s".', v.status);
	END IF;
	EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', v.db_name, v.db_role);
	UPDATE medpro.clinics c SET status = 'active', status_reason = NULL, updated_at = now() WHERE c.id = clinic;
	PERFORM medpro.audit_append(clinic, (medpro.context()).user_id, 'clinic_reactivate', 'clinic', clinic::text,
								jsonb_build_object('status', 'suspended', 'reason', v.status_reason),
								jsonb_build_object('status', 'active'), NULL);
END
$$;
COMMENT ON FUNCTION medpro_reactivate_clinic(uuid)
	IS 'reverses medpro_suspend_clinic: CONNECT granted again, the clinic active (operators and super admins)';

-- The steps of a drop after the row says 'dropping'; each one idempotent.
CREATE FUNCTION medpro.finish_drop(clinic uuid) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v medpro.clinics;
BEGIN
	SELECT * INTO STRICT v FROM medpro.clinics c WHERE c.id = clinic;
	IF EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = v.db_name) THEN
		-- only the database medpro made for this clinic: owned by its role
		IF NOT EXISTS (SELECT 1 FROM pg_database d JOIN pg_roles a ON a.oid = d.datdba
						WHERE d.datname = v.db_name AND a.rolname = v.db_role) THEN
			RAISE EXCEPTION 'database "%" does not belong to clinic %', v.db_name, clinic
				USING ERRCODE = 'object_not_in_prerequisite_state',
					  HINT = 'It is left as it is; drop or rename it by hand, then call medpro_repair().';
		END IF;
		-- WITH (FORCE) ends the sessions still connected to it
		PERFORM medpro.autonomous(format('DROP DATABASE IF EXISTS %I WITH (FORCE)', v.db_name));
	END IF;
	IF EXISTS (SELECT 1 FROM pg_roles a WHERE a.rolname = v.db_role) THEN
		PERFORM medpro.autonomous(format('DROP ROLE IF EXISTS %I', v.db_role));
	END IF;
	PERFORM medpro.autonomous(format(
		$q$UPDATE medpro.clinics SET status = 'dropped', deleted_at = coalesce(deleted_at, now()),
		   db_password_sealed = NULL, updated_at = now() WHERE id = %L::uuid$q$, clinic));
	PERFORM medpro.autonomous(format(
		$q$UPDATE medpro.users SET is_active = false, deleted_at = coalesce(deleted_at, now()),
		   updated_at = now() WHERE clinic_id = %L::uuid AND deleted_at IS NULL$q$, clinic));
END
$$;
COMMENT ON FUNCTION medpro.finish_drop(uuid)
	IS 'internal: drops a dropping clinic''s database and role and marks the row dropped, each step committed on its own';
REVOKE ALL ON FUNCTION medpro.finish_drop(uuid) FROM PUBLIC;

CREATE FUNCTION medpro_drop_clinic(clinic uuid, confirm_name text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v medpro.clinics;
BEGIN
	PERFORM medpro.require_lifecycle_privilege('drop clinics');
	v := medpro.lifecycle_clinic(clinic);
	IF v.status = 'dropped' THEN
		RAISE NOTICE 'clinic % has already been dropped', clinic;
		RETURN;
	END IF;
	IF confirm_name IS DISTINCT FROM v.name THEN
		RAISE EXCEPTION 'confirmation does not match the clinic name' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'Nothing was dropped.',
			HINT = 'Pass the clinic''s exact name as confirm_name.';
	END IF;
	-- Each step commits on its own (DROP DATABASE cannot be rolled back), so
	-- the row must not be locked by this transaction.
	IF (SELECT c.xmin = pg_current_xact_id_if_assigned()::xid FROM medpro.clinics c WHERE c.id = clinic) THEN
		RAISE EXCEPTION 'clinic % was changed in this transaction', clinic
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Commit first, then drop the clinic in a transaction of its own.';
	END IF;
	PERFORM medpro.autonomous(format(
		$q$UPDATE medpro.clinics SET status = 'dropping', status_reason = 'drop requested', updated_at = now()
		   WHERE id = %L::uuid$q$, clinic));
	PERFORM medpro.autonomous(format(
		'SELECT medpro.audit_append(%L::uuid, %L::uuid, %L, %L, %L, %L::jsonb, %L::jsonb, NULL)',
		clinic, (medpro.context()).user_id, 'clinic_drop', 'clinic', clinic,
		jsonb_build_object('status', v.status, 'name', v.name, 'db_name', v.db_name),
		jsonb_build_object('status', 'dropped')));
	PERFORM medpro.finish_drop(clinic);
END
$$;
COMMENT ON FUNCTION medpro_drop_clinic(uuid, text)
	IS 'drops a clinic''s database and role after confirm_name matched its name; the row stays, soft-deleted, with its audit trail; each step commits on its own and medpro_repair() finishes an interrupted drop (operators and super admins)';

-- Spare databases. -----------------------------------------------------------

CREATE FUNCTION medpro_fill_spare_pool(size integer) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	v_tpl text;
	v_prefix text := 'medpro spare of ' || current_database() || ' at ';
	v_mark text;
	v_have integer := 0;
	v_name text;
BEGIN
	IF NOT medpro.caller_is_operator() THEN
		RAISE EXCEPTION 'permission denied to fill the spare pool' USING ERRCODE = 'insufficient_privilege',
			HINT = 'Only members of medpro_operator may do this.';
	END IF;
	IF size IS NULL OR size < 0 OR size > 100 THEN
		RAISE EXCEPTION 'size must be between 0 and 100' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_tpl := medpro.ensure_template();
	v_mark := v_prefix || medpro.template_marker();
	-- keep up to size spares at the current version; drop stale and surplus ones
	FOR r IN
		SELECT d.datname, shobj_description(d.oid, 'pg_database') AS note
		  FROM pg_database d WHERE d.datname LIKE 'medpro\_spare\_%' ORDER BY d.datname
	LOOP
		CONTINUE WHEN r.note IS NULL OR NOT starts_with(r.note, v_prefix);
		-- a registration is taking it
		CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtext('medpro.spare'), hashtext(r.datname::text));
		IF r.note = v_mark AND v_have < size THEN
			v_have := v_have + 1;
		ELSE
			PERFORM medpro.autonomous(format('DROP DATABASE IF EXISTS %I WITH (FORCE)', r.datname));
		END IF;
	END LOOP;
	WHILE v_have < size LOOP
		v_name := 'medpro_spare_' || replace(gen_random_uuid()::text, '-', '');
		PERFORM medpro.autonomous(format('CREATE DATABASE %I TEMPLATE %I', v_name, v_tpl));
		PERFORM medpro.autonomous(format('COMMENT ON DATABASE %I IS %L', v_name, v_mark));
		PERFORM medpro.autonomous(format('REVOKE ALL ON DATABASE %I FROM PUBLIC', v_name));
		v_have := v_have + 1;
	END LOOP;
	RETURN v_have;
END
$$;
COMMENT ON FUNCTION medpro_fill_spare_pool(integer)
	IS 'keeps size spare clinic databases cloned from the template at the current version, so that a registration renames one instead of copying the template; drops stale ones; returns how many are ready (operators)';

REVOKE ALL ON FUNCTION medpro_fill_spare_pool(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro_fill_spare_pool(integer) TO medpro_operator;

REVOKE ALL ON FUNCTION medpro_add_migration(integer, text, text), medpro_migrate_all(integer),
	medpro_refresh_relations(), medpro_suspend_clinic(uuid, text), medpro_reactivate_clinic(uuid),
	medpro_drop_clinic(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro_add_migration(integer, text, text), medpro_migrate_all(integer),
	medpro_refresh_relations() TO medpro_operator;
GRANT EXECUTE ON FUNCTION medpro_suspend_clinic(uuid, text), medpro_reactivate_clinic(uuid),
	medpro_drop_clinic(uuid, text) TO medpro_operator, medpro_api;
