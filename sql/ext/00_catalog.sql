-- medpro install script, part 00: the central catalog and the roles.
--
-- Assembled by the Makefile from sql/ext/NN_*.sql into medpro--<version>.sql.
-- Catalog tables live in schema medpro and are extension configuration
-- tables, so pg_dump keeps their rows.  No secret is stored in plain text:
-- key material and clinic credentials are sealed under the master key
-- (see docs/master-key.md).

\echo Use "CREATE EXTENSION medpro CASCADE" to load this file. \quit

DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'medpro_api') THEN
		CREATE ROLE medpro_api NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'medpro_operator') THEN
		CREATE ROLE medpro_operator NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
	END IF;
END
$roles$;

CREATE SCHEMA medpro;
COMMENT ON SCHEMA medpro IS 'medpro central catalog: servers, clinics, users, keys, migrations, audit trail';
REVOKE ALL ON SCHEMA medpro FROM PUBLIC;
GRANT USAGE ON SCHEMA medpro TO medpro_api, medpro_operator;

-- PostgreSQL servers that hold clinic databases.
CREATE TABLE medpro.servers (
	name			text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
	conninfo_sealed bytea,			-- NULL: this server, over the Unix socket
	is_default		boolean NOT NULL DEFAULT false,
	created_at		timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX servers_one_default ON medpro.servers ((true)) WHERE is_default;
COMMENT ON TABLE medpro.servers IS 'PostgreSQL servers holding clinic databases; connection strings are sealed';

CREATE TABLE medpro.clinics (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name			text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 200),
	country			text NOT NULL CHECK (country IN ('FR', 'ES')),
	business_number text,
	vat_number		text,
	email			text,
	phone			text,
	address			jsonb NOT NULL DEFAULT '{}',
	timezone		text,
	status			text NOT NULL DEFAULT 'provisioning'
		CHECK (status IN ('provisioning', 'active', 'suspended', 'dropping', 'dropped', 'failed')),
	status_reason	text,
	server			text REFERENCES medpro.servers (name),
	db_name			text UNIQUE,
	db_role			text UNIQUE,
	db_password_sealed bytea,
	schema_version	integer NOT NULL DEFAULT 0,
	last_error		text,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	deleted_at		timestamptz
);
CREATE UNIQUE INDEX clinics_email_key ON medpro.clinics (lower(email)) WHERE deleted_at IS NULL;
COMMENT ON TABLE medpro.clinics IS 'one row per clinic; status is the provisioning state machine';

CREATE TABLE medpro.users (
	id				uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	clinic_id		uuid REFERENCES medpro.clinics (id),
	email			text NOT NULL CHECK (length(email) <= 254),
	password_hash	text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
	role			text NOT NULL CHECK (role IN ('super_admin', 'admin', 'doctor', 'secretary')),
	first_name		text,
	last_name		text,
	is_active		boolean NOT NULL DEFAULT true,
	token_version	integer NOT NULL DEFAULT 1,
	failed_logins	integer NOT NULL DEFAULT 0,
	locked_until	timestamptz,
	last_login_at	timestamptz,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	deleted_at		timestamptz,
	CONSTRAINT users_clinic_by_role CHECK ((role = 'super_admin') = (clinic_id IS NULL))
);
CREATE UNIQUE INDEX users_email_key ON medpro.users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_clinic_idx ON medpro.users (clinic_id);
COMMENT ON TABLE medpro.users IS 'application users; passwords are Argon2id PHC strings, never stored as given';

-- Signing and verification keys.  secret_sealed holds the HMAC secret (or a
-- private key) sealed under the master key with context 'medpro.keys:<kid>'.
CREATE TABLE medpro.keys (
	kid				text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9._-]{1,64}$'),
	algorithm		text NOT NULL,
	secret_sealed	bytea,
	public_pem		text,
	issuer			text,			-- iss required of tokens this key verifies; NULL = not checked
	status			text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'verify', 'retired')),
	source			text NOT NULL CHECK (source IN ('generated', 'imported')),
	created_at		timestamptz NOT NULL DEFAULT now(),
	retired_at		timestamptz
);
CREATE UNIQUE INDEX keys_one_active ON medpro.keys ((true)) WHERE status = 'active';
COMMENT ON TABLE medpro.keys IS 'JWT keyring: one active signing key, older keys verify until retired';

-- Clinic schema migrations known to the central database.
CREATE TABLE medpro.migrations (
	version			integer PRIMARY KEY CHECK (version > 0),
	name			text NOT NULL,
	checksum		text NOT NULL,
	sql				text NOT NULL,
	source			text NOT NULL DEFAULT 'extension' CHECK (source IN ('extension', 'operator')),
	transactional	boolean NOT NULL DEFAULT true,
	created_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE medpro.migrations IS 'clinic-schema migrations, checksummed';

CREATE TABLE medpro.clinic_migrations (
	clinic_id		uuid NOT NULL REFERENCES medpro.clinics (id),
	version			integer NOT NULL REFERENCES medpro.migrations (version),
	checksum		text,
	status			text NOT NULL CHECK (status IN ('applied', 'failed')),
	error			text,
	attempts		integer NOT NULL DEFAULT 1,
	applied_at		timestamptz NOT NULL DEFAULT now(),
	duration		interval,
	PRIMARY KEY (clinic_id, version)
);
COMMENT ON TABLE medpro.clinic_migrations IS 'which migration reached which clinic, and how';

-- The audit trail: append-only.  Rows carry no password, token or key.
CREATE TABLE medpro.audit_log (
	id				bigserial PRIMARY KEY,
	clinic_id		uuid,
	user_id			uuid,
	action			text NOT NULL,
	entity			text,
	entity_id		text,
	old_data		jsonb,
	new_data		jsonb,
	ip				inet,
	at				timestamptz NOT NULL DEFAULT clock_timestamp(),
	-- the hash chain of the clinic (30_audit.sql), set when the row commits
	chain_seq		bigint,
	prev_hash		bytea,
	row_hash		bytea
);
CREATE UNIQUE INDEX audit_log_chain_key ON medpro.audit_log
	((coalesce(clinic_id, '00000000-0000-0000-0000-000000000000'::uuid)), chain_seq)
	WHERE chain_seq IS NOT NULL;
CREATE INDEX audit_log_clinic_idx ON medpro.audit_log (clinic_id, at);
COMMENT ON TABLE medpro.audit_log IS 'append-only audit trail of logins, authentication failures, writes and lifecycle actions';

CREATE FUNCTION medpro.audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	-- The one change allowed: sealing a new row into its hash chain
	-- (src/audit.c, at commit), which sets only the link columns.
	IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_log' AND TG_LEVEL = 'ROW' THEN
		IF OLD.row_hash IS NULL AND NEW.row_hash IS NOT NULL
		   AND (NEW.id, NEW.clinic_id, NEW.user_id, NEW.action, NEW.entity, NEW.entity_id,
				NEW.old_data, NEW.new_data, NEW.ip, NEW.at)
			   IS NOT DISTINCT FROM
			   (OLD.id, OLD.clinic_id, OLD.user_id, OLD.action, OLD.entity, OLD.entity_id,
				OLD.old_data, OLD.new_data, OLD.ip, OLD.at) THEN
			RETURN NEW;
		END IF;
	END IF;
	RAISE EXCEPTION '%.% is append-only', TG_TABLE_SCHEMA, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege';
END
$$;
COMMENT ON FUNCTION medpro.audit_log_refuse_change() IS 'trigger: refuses UPDATE, DELETE and TRUNCATE on the append-only audit tables (except sealing a new audit row into its chain)';
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON medpro.audit_log
	FOR EACH ROW EXECUTE FUNCTION medpro.audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON medpro.audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION medpro.audit_log_refuse_change();

-- the 'local' row is made by this script, so a restore must not copy it again
SELECT pg_catalog.pg_extension_config_dump('medpro.servers', $$WHERE name <> 'local'$$);
SELECT pg_catalog.pg_extension_config_dump('medpro.clinics', '');
SELECT pg_catalog.pg_extension_config_dump('medpro.users', '');
SELECT pg_catalog.pg_extension_config_dump('medpro.keys', '');
SELECT pg_catalog.pg_extension_config_dump('medpro.migrations', $$WHERE source = 'operator'$$);
SELECT pg_catalog.pg_extension_config_dump('medpro.clinic_migrations', '');
SELECT pg_catalog.pg_extension_config_dump('medpro.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('medpro.audit_log_id_seq', '');

-- Nothing in the catalog is readable by PUBLIC or medpro_api: they go through
-- functions.  Operators read the tables that hold no secret material.
REVOKE ALL ON ALL TABLES IN SCHEMA medpro FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA medpro FROM PUBLIC;
GRANT SELECT ON medpro.migrations, medpro.clinic_migrations TO medpro_operator;

-- Operators see who did what, not the data: old_data/new_data can hold
-- health data (allergies, notes).  The full rows are for superusers.
CREATE VIEW medpro.audit_trail AS
SELECT id, clinic_id, user_id, action, entity, entity_id, ip, at FROM medpro.audit_log;
COMMENT ON VIEW medpro.audit_trail IS 'the audit trail without its data columns, for operators';
GRANT SELECT ON medpro.audit_trail TO medpro_operator;
GRANT SELECT (id, name, country, business_number, vat_number, email, phone, address, timezone,
			  status, status_reason, server, db_name, schema_version, last_error,
			  created_at, updated_at, deleted_at) ON medpro.clinics TO medpro_operator;
GRANT SELECT (id, clinic_id, email, role, first_name, last_name, is_active, token_version,
			  failed_logins, locked_until, last_login_at, created_at, updated_at, deleted_at)
	ON medpro.users TO medpro_operator;
GRANT SELECT (kid, algorithm, public_pem, issuer, status, source, created_at, retired_at)
	ON medpro.keys TO medpro_operator;
GRANT SELECT (name, is_default, created_at) ON medpro.servers TO medpro_operator;
