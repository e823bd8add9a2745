-- medpro install script, part 50: clinic provisioning, migrations, repair.

-- Country defaults written into a new clinic database; superusers may edit
-- these rows.
CREATE TABLE medpro.country_defaults (
	country			text PRIMARY KEY CHECK (country IN ('FR', 'ES')),
	timezone		text NOT NULL,
	default_tax_rate numeric(5,2) NOT NULL,
	vat_exempt_mention text NOT NULL
);
COMMENT ON TABLE medpro.country_defaults IS 'per-country defaults for new clinic databases: time zone, VAT rate, VAT-exemption mention';
INSERT INTO medpro.country_defaults VALUES
	('FR', 'Europe/Paris', 20.00, 'TVA non applicable, article 261-4-1° du CGI'),
	('ES', 'Europe/Madrid', 21.00, 'Exento de IVA en virtud del artículo 20.Uno.3.º de la Ley 37/1992');

CREATE TABLE medpro.consent_template_defaults (
	country			text NOT NULL REFERENCES medpro.country_defaults (country),
	name			text NOT NULL,
	type			text NOT NULL,
	language		text NOT NULL,
	content			text NOT NULL,
	is_required		boolean NOT NULL DEFAULT false,
	PRIMARY KEY (country, name)
);
COMMENT ON TABLE medpro.consent_template_defaults IS 'consent templates written into a new clinic database of each country';
INSERT INTO medpro.consent_template_defaults VALUES
	('FR', 'Consentement RGPD', 'gdpr', 'fr',
	 'J''accepte que mes données personnelles et de santé soient traitées par le cabinet pour la gestion de mes soins, conformément au RGPD. Je peux exercer mes droits d''accès, de rectification et d''effacement auprès du cabinet.', true),
	('FR', 'Consentement aux soins', 'treatment', 'fr',
	 'J''ai reçu une information claire sur les soins proposés, leurs bénéfices et leurs risques, et j''y consens librement.', true),
	('FR', 'Droit à l''image', 'photo', 'fr',
	 'J''autorise le cabinet à réaliser des photographies à des fins strictement médicales.', false),
	('ES', 'Consentimiento RGPD', 'gdpr', 'es',
	 'Acepto que la clínica trate mis datos personales y de salud para la gestión de mi atención sanitaria, conforme al RGPD y a la LOPDGDD. Puedo ejercer mis derechos de acceso, rectificación y supresión ante la clínica.', true),
	('ES', 'Consentimiento informado', 'treatment', 'es',
	 'He recibido información clara sobre el tratamiento propuesto, sus beneficios y sus riesgos, y lo acepto libremente.', true),
	('ES', 'Derechos de imagen', 'photo', 'es',
	 'Autorizo a la clínica a tomar fotografías con fines exclusivamente médicos.', false);
-- Not configuration tables: this script fills them, so pg_dump leaves them
-- to CREATE EXTENSION on restore (edits to them must be made again).
GRANT SELECT ON medpro.country_defaults, medpro.consent_template_defaults TO medpro_operator;

-- Checksums of migration texts, computed here so no caller can get them wrong.
CREATE FUNCTION medpro.migrations_checksum() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	NEW.checksum := encode(sha256(convert_to(NEW.sql, 'UTF8')), 'hex');
	-- a first line "-- medpro:no-transaction" runs the text outside a transaction block
	NEW.transactional := NEW.sql !~ '^-- medpro:no-transaction[ \t\r]*(\n|$)';
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION medpro.migrations_checksum() IS 'trigger: sets medpro.migrations.checksum to the SHA-256 of the migration text, and transactional from its first line';

-- The comment of a template database at the latest migration.
CREATE FUNCTION medpro.template_marker() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT 'medpro template at version ' || coalesce(max(m.version), 0)
		   || coalesce(' checksum ' || left((SELECT l.checksum FROM medpro.migrations l ORDER BY l.version DESC LIMIT 1), 16), '')
	  FROM medpro.migrations m
$$;
COMMENT ON FUNCTION medpro.template_marker()
	IS 'internal: the comment the template database carries when it is at the latest migration (version and checksum prefix)';
REVOKE ALL ON FUNCTION medpro.template_marker() FROM PUBLIC;
CREATE TRIGGER migrations_checksum BEFORE INSERT OR UPDATE ON medpro.migrations
	FOR EACH ROW EXECUTE FUNCTION medpro.migrations_checksum();

-- This server, reached over the Unix socket as the bootstrap superuser.
INSERT INTO medpro.servers (name, conninfo_sealed, is_default) VALUES ('local', NULL, true);

-- Internal C entry points (not executable by PUBLIC). ------------------------

CREATE FUNCTION medpro.provision(clinic uuid) RETURNS integer
	AS 'MODULE_PATHNAME', 'medpro_provision' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION medpro.provision(uuid)
	IS 'internal: creates or completes a clinic''s role and database and activates it; returns its schema version';
CREATE FUNCTION medpro.autonomous(sql text) RETURNS void
	AS 'MODULE_PATHNAME', 'medpro_autonomous' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION medpro.autonomous(text)
	IS 'internal: runs one statement in its own transaction over the loopback connection';
CREATE FUNCTION medpro.ensure_template() RETURNS text
	AS 'MODULE_PATHNAME', 'medpro_ensure_template' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION medpro.ensure_template()
	IS 'internal: creates or migrates the template database to the latest version; returns its name';
REVOKE ALL ON FUNCTION medpro.provision(uuid), medpro.autonomous(text), medpro.ensure_template() FROM PUBLIC;

-- Authorisation shared by the lifecycle functions: operators, or a verified
-- super_admin context.
CREATE FUNCTION medpro.require_lifecycle_privilege(what text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT medpro.caller_is_operator()
	   AND (medpro.context()).role IS DISTINCT FROM 'super_admin' THEN
		RAISE EXCEPTION 'permission denied to %', what
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only members of medpro_operator and super admins may do this.';
	END IF;
END
$$;
COMMENT ON FUNCTION medpro.require_lifecycle_privilege(text)
	IS 'internal: raises 42501 unless the caller is an operator or a super admin';
REVOKE ALL ON FUNCTION medpro.require_lifecycle_privilege(text) FROM PUBLIC;

-- Lifecycle. ------------------------------------------------------------------

CREATE FUNCTION medpro_register_clinic(name text, country text, admin_email text, admin_password text,
									   business_number text DEFAULT NULL, vat_number text DEFAULT NULL,
									   email text DEFAULT NULL, phone text DEFAULT NULL,
									   address jsonb DEFAULT '{}', admin_first_name text DEFAULT NULL,
									   admin_last_name text DEFAULT NULL, server text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id uuid := gen_random_uuid();
	v_db text;
	v_server text;
	v_country text := upper(btrim(country));
	v_vat_id text;
	v_business_id text;
BEGIN
	PERFORM medpro.require_lifecycle_privilege('register clinics');
	IF name IS NULL OR btrim(name) = '' THEN
		RAISE EXCEPTION 'clinic name must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF length(name) > 200 THEN
		RAISE EXCEPTION 'clinic name is too long' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'Clinic names have at most 200 characters.';
	END IF;
	IF v_country IS NULL OR NOT EXISTS (SELECT 1 FROM medpro.country_defaults d WHERE d.country = v_country) THEN
		RAISE EXCEPTION 'unknown country "%"', left(country, 16) USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Supported countries are FR and ES.';
	END IF;
	IF business_number IS NOT NULL
	   AND NOT @extschema@.medpro_valid_business_number(v_country, business_number) THEN
		RAISE EXCEPTION 'invalid business number for country %', v_country USING ERRCODE = 'invalid_parameter_value',
			HINT = CASE v_country WHEN 'FR' THEN 'Give a SIREN (9 digits) or SIRET (14 digits).'
				   ELSE 'Give a NIF: CIF, DNI or NIE.' END;
	END IF;
	IF vat_number IS NOT NULL
	   AND (NOT @extschema@.medpro_valid_vat_number(vat_number)
			OR upper(left(regexp_replace(vat_number, '[ ./-]', '', 'g'), 2)) <> v_country) THEN
		RAISE EXCEPTION 'invalid VAT number for country %', v_country USING ERRCODE = 'invalid_parameter_value',
			HINT = format('Give the clinic''s intra-EU VAT number, starting with %s.', v_country);
	END IF;
	-- The VAT number is built on the business number: FR + key + SIREN (the
	-- first 9 digits of a SIRET), ES + NIF.
	IF business_number IS NOT NULL AND vat_number IS NOT NULL THEN
		v_vat_id := upper(regexp_replace(vat_number, '[ ./-]', '', 'g'));
		v_business_id := upper(regexp_replace(business_number, '[ ./-]', '', 'g'));
		IF v_country = 'FR' THEN
			v_vat_id := substr(v_vat_id, 5);
			v_business_id := left(v_business_id, 9);
		ELSE
			v_vat_id := substr(v_vat_id, 3);
		END IF;
		IF v_vat_id <> v_business_id THEN
			RAISE EXCEPTION 'VAT number does not match the business number' USING ERRCODE = 'invalid_parameter_value',
				DETAIL = CASE v_country WHEN 'FR' THEN 'A French VAT number is FR, a two-digit key and the SIREN (the first 9 digits of the SIRET).'
						 ELSE 'A Spanish VAT number is ES followed by the NIF.' END;
		END IF;
	END IF;
	IF address IS NOT NULL AND jsonb_typeof(address) <> 'object' THEN
		RAISE EXCEPTION 'address must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM medpro.check_email(admin_email);
	IF email IS NOT NULL THEN
		PERFORM medpro.check_email(email);
	END IF;
	SELECT s.name INTO v_server FROM medpro.servers s
	 WHERE s.name = coalesce(medpro_register_clinic.server, s.name)
	   AND (medpro_register_clinic.server IS NOT NULL OR s.is_default);
	IF NOT FOUND THEN
		RAISE EXCEPTION 'server "%" does not exist', server USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF (SELECT s.conninfo_sealed IS NOT NULL FROM medpro.servers s WHERE s.name = v_server) THEN
		RAISE EXCEPTION 'clinic databases on other servers are not supported yet'
			USING ERRCODE = 'feature_not_supported';
	END IF;

	v_db := 'medpro_clinic_' || replace(v_id::text, '-', '_');
	PERFORM pg_advisory_xact_lock(hashtext('medpro.clinic'), hashtext(v_id::text));
	BEGIN
		INSERT INTO medpro.clinics (id, name, country, business_number, vat_number, email, phone,
									address, status, server, db_name, db_role)
		VALUES (v_id, btrim(name), v_country, business_number, vat_number, lower(email), phone,
				coalesce(address, '{}'), 'provisioning', v_server, v_db, v_db);
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'a clinic with this email already exists' USING ERRCODE = 'unique_violation';
	END;
	PERFORM @extschema@.medpro_create_user(admin_email, admin_password, 'admin',
										   admin_first_name, admin_last_name, v_id);
	PERFORM medpro.provision(v_id);
	PERFORM medpro.audit_append(v_id, (medpro.context()).user_id, 'clinic_register', 'clinic', v_id::text,
								NULL, jsonb_build_object('name', btrim(name), 'country', v_country,
														 'server', v_server, 'db_name', v_db), NULL);
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION medpro_register_clinic(text, text, text, text, text, text, text, text, jsonb, text, text, text)
	IS 'creates a clinic: its row, its admin user, its login role and its database at the current schema version, all or nothing (operators and super admins)';

CREATE FUNCTION medpro_provision_clinic(clinic uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_status text;
BEGIN
	PERFORM medpro.require_lifecycle_privilege('provision clinics');
	IF clinic IS NULL THEN
		RAISE EXCEPTION 'clinic must not be null' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('medpro.clinic'), hashtext(clinic::text));
	SELECT c.status INTO v_status FROM medpro.clinics c WHERE c.id = clinic AND c.deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'clinic % does not exist', clinic USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF v_status IN ('dropping', 'dropped') THEN
		RAISE EXCEPTION 'clinic % is being dropped', clinic USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	PERFORM medpro.provision(clinic);
	PERFORM medpro.audit_append(clinic, (medpro.context()).user_id, 'clinic_provision', 'clinic',
								clinic::text, NULL, NULL, NULL);
END
$$;
COMMENT ON FUNCTION medpro_provision_clinic(uuid)
	IS 'creates whatever a clinic is missing (role, database, privileges, defaults, migrations); harmless when nothing is (operators and super admins)';

CREATE FUNCTION medpro_migrate_clinic(clinic uuid, target integer DEFAULT NULL) RETURNS integer
	AS 'MODULE_PATHNAME', 'medpro_migrate_clinic'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION medpro_migrate_clinic(uuid, integer)
	IS 'applies pending migrations (up to target) to one clinic database, each in its own transaction; returns the new version (operators)';

CREATE FUNCTION medpro_repair() RETURNS TABLE(problem text, object text, action text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
	v_clinic uuid;
	v_mine text;
	v_tpl text;
BEGIN
	IF NOT medpro.caller_is_operator() THEN
		RAISE EXCEPTION 'permission denied to repair clinics' USING ERRCODE = 'insufficient_privilege';
	END IF;

	-- Drops that a crash interrupted: finish them (every step is idempotent).
	FOR r IN
		SELECT c.id FROM medpro.clinics c WHERE c.status = 'dropping' ORDER BY c.updated_at
	LOOP
		CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtext('medpro.clinic'), hashtext(r.id::text));
		PERFORM medpro.finish_drop(r.id);
		problem := 'clinic drop not finished';
		object := r.id::text;
		action := 'dropped';
		RETURN NEXT;
	END LOOP;

	-- Databases and roles named like clinics with no live clinic here.
	FOR r IN
		SELECT 'database' AS kind, d.datname AS objname, shobj_description(d.oid, 'pg_database') AS note
		  FROM pg_database d WHERE d.datname ~ '^medpro_clinic_[0-9a-f]{8}(_[0-9a-f]{4}){3}_[0-9a-f]{12}$'
		UNION ALL
		SELECT 'role', a.rolname, shobj_description(a.oid, 'pg_authid')
		  FROM pg_roles a WHERE a.rolname ~ '^medpro_clinic_[0-9a-f]{8}(_[0-9a-f]{4}){3}_[0-9a-f]{12}$'
		ORDER BY 1, 2
	LOOP
		v_clinic := replace(substr(r.objname, 15), '_', '-')::uuid;
		v_mine := 'medpro clinic ' || v_clinic || ' of ' || current_database();
		-- another central database's clinic: not ours to judge
		CONTINUE WHEN r.note IS NOT NULL AND r.note LIKE 'medpro clinic % of %' AND r.note <> v_mine;
		CONTINUE WHEN EXISTS (SELECT 1 FROM medpro.clinics c
							   WHERE c.id = v_clinic AND c.status <> 'dropped');
		-- being provisioned right now by another backend
		CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtext('medpro.clinic'), hashtext(v_clinic::text));
		IF r.kind = 'database' THEN
			PERFORM medpro.autonomous(format('DROP DATABASE %I WITH (FORCE)', r.objname));
		ELSE
			PERFORM medpro.autonomous(format('DROP ROLE %I', r.objname));
		END IF;
		problem := 'orphan ' || r.kind;
		object := r.objname;
		action := 'dropped';
		RETURN NEXT;
	END LOOP;

	-- Spare databases left unmarked by a crash (CREATE DATABASE then
	-- COMMENT), or marked for this central database at an older version.
	FOR r IN
		SELECT d.datname, shobj_description(d.oid, 'pg_database') AS note
		  FROM pg_database d WHERE d.datname LIKE 'medpro\_spare\_%' ORDER BY d.datname
	LOOP
		CONTINUE WHEN r.note IS NOT NULL AND NOT starts_with(r.note, 'medpro spare of ' || current_database() || ' at ');
		CONTINUE WHEN r.note = 'medpro spare of ' || current_database() || ' at ' || medpro.template_marker();
		CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtext('medpro.spare'), hashtext(r.datname::text));
		PERFORM medpro.autonomous(format('DROP DATABASE IF EXISTS %I WITH (FORCE)', r.datname));
		problem := CASE WHEN r.note IS NULL THEN 'unmarked spare database' ELSE 'stale spare database' END;
		object := r.datname;
		action := 'dropped';
		RETURN NEXT;
	END LOOP;

	-- Clinics whose provisioning did not finish, or whose database is gone.
	FOR r IN
		SELECT c.id, c.db_name, c.status,
			   NOT EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = c.db_name) AS no_db
		  FROM medpro.clinics c
		 WHERE c.deleted_at IS NULL AND c.status IN ('provisioning', 'active', 'failed')
		 ORDER BY c.created_at
	LOOP
		CONTINUE WHEN r.status = 'active' AND NOT r.no_db;
		CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtext('medpro.clinic'), hashtext(r.id::text));
		problem := CASE WHEN r.no_db THEN 'clinic without database' ELSE 'clinic not fully provisioned' END;
		object := r.id::text;
		BEGIN
			PERFORM medpro.provision(r.id);
			action := 'provisioned';
		EXCEPTION WHEN OTHERS THEN
			action := 'failed: ' || SQLERRM;
			UPDATE medpro.clinics c SET last_error = SQLERRM, updated_at = now() WHERE c.id = r.id;
		END;
		RETURN NEXT;
	END LOOP;

	-- CONNECT must match the status: granted when active, revoked when suspended.
	FOR r IN
		SELECT c.id, c.db_name, c.db_role, c.status
		  FROM medpro.clinics c
		  JOIN pg_database d ON d.datname = c.db_name
		  JOIN pg_roles a ON a.rolname = c.db_role
		 WHERE c.deleted_at IS NULL AND c.status IN ('active', 'suspended')
		   AND has_database_privilege(a.oid, d.oid, 'CONNECT') <> (c.status = 'active')
		 ORDER BY c.created_at
	LOOP
		CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtext('medpro.clinic'), hashtext(r.id::text));
		object := r.id::text;
		IF r.status = 'active' THEN
			EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', r.db_name, r.db_role);
			problem := 'active clinic without CONNECT';
			action := 'granted';
		ELSE
			EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM %I', r.db_name, r.db_role);
			problem := 'suspended clinic with CONNECT';
			action := 'revoked';
		END IF;
		RETURN NEXT;
	END LOOP;

	-- The template, when new clinics are cloned from it.
	IF current_setting('medpro.clinic_template')::boolean THEN
		v_tpl := 'medpro_template_' || current_database();
		IF NOT EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = v_tpl
						 AND shobj_description(d.oid, 'pg_database') = medpro.template_marker()) THEN
			PERFORM medpro.ensure_template();
			problem := 'template missing or out of date';
			object := v_tpl;
			action := 'migrated';
			RETURN NEXT;
		END IF;
	END IF;
	PERFORM medpro.audit_append(NULL, NULL, 'repair', NULL, NULL, NULL, NULL, NULL);
END
$$;
COMMENT ON FUNCTION medpro_repair()
	IS 'finds and fixes what a crash can leave: clinic databases and roles without a clinic, clinics without a database or not fully provisioned, a stale template (operators)';

-- pg_database_size() needs CONNECT on the database, which operators lack.
CREATE FUNCTION medpro.database_size(db name) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_database_size(db) WHERE db LIKE 'medpro\_clinic\_%' $$;
COMMENT ON FUNCTION medpro.database_size(name) IS 'internal: the size of a clinic database, for medpro.clinic_status';
REVOKE ALL ON FUNCTION medpro.database_size(name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro.database_size(name) TO medpro_operator;

CREATE VIEW medpro.clinic_status AS
SELECT c.id, c.name, c.country, c.status, c.server, c.db_name, c.schema_version,
	   (SELECT coalesce(max(m.version), 0) FROM medpro.migrations m) AS latest_version,
	   CASE WHEN d.oid IS NOT NULL THEN medpro.database_size(d.datname) END AS size_bytes,
	   c.last_error,
	   c.status_reason,
	   (SELECT count(*) FROM medpro.migrations m WHERE m.version > c.schema_version) AS pending_migrations,
	   (SELECT min(cm.version) FROM medpro.clinic_migrations cm
		 WHERE cm.clinic_id = c.id AND cm.status = 'failed') AS failed_version,
	   (SELECT max(cm.applied_at) FROM medpro.clinic_migrations cm
		 WHERE cm.clinic_id = c.id AND cm.status = 'applied') AS last_migrated_at,
	   c.updated_at
  FROM medpro.clinics c
  LEFT JOIN pg_database d ON d.datname = c.db_name
 WHERE c.deleted_at IS NULL;
COMMENT ON VIEW medpro.clinic_status IS 'each clinic''s status, size, schema version against the latest, pending migrations and last error';

-- Per clinic and migration: applied or failed, attempts, error, duration.
CREATE VIEW medpro.clinic_migration_history AS
SELECT cm.clinic_id, c.name AS clinic_name, cm.version, m.name AS migration, m.source,
	   m.transactional, cm.status, cm.attempts, cm.error, cm.applied_at AS at, cm.duration
  FROM medpro.clinic_migrations cm
  JOIN medpro.clinics c ON c.id = cm.clinic_id
  JOIN medpro.migrations m ON m.version = cm.version;
COMMENT ON VIEW medpro.clinic_migration_history
	IS 'every migration each clinic applied or failed: status, attempts, last error, when, how long (dropped clinics included)';
GRANT SELECT ON medpro.clinic_migration_history TO medpro_operator;
GRANT SELECT ON medpro.clinic_status TO medpro_operator;

REVOKE ALL ON FUNCTION medpro_register_clinic(text, text, text, text, text, text, text, text, jsonb, text, text, text),
	medpro_provision_clinic(uuid), medpro_migrate_clinic(uuid, integer), medpro_repair() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro_register_clinic(text, text, text, text, text, text, text, text, jsonb, text, text, text),
	medpro_provision_clinic(uuid) TO medpro_operator, medpro_api;
GRANT EXECUTE ON FUNCTION medpro_migrate_clinic(uuid, integer), medpro_repair() TO medpro_operator;
