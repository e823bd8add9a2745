-- medpro install script, part 70: routing (DESIGN §5.5, docs/routing.md).
--
-- medpro_fdw serves the clinic tables from the database of the clinic the
-- tenant context selects, chosen when a scan or modify begins.  The foreign
-- tables medpro.ft_<table> belong to the extension owner and nobody else
-- may use them; the views clinic.<table> over them are what medpro_api
-- uses.  The views are owned by the extension owner too, so the executor
-- checks the foreign tables' privileges as that owner.
--
-- No one but the owner has USAGE on the wrapper or the server, so no other
-- role can create foreign tables or user mappings with them.  No user
-- mapping is used: the clinic credentials come from medpro.clinics (sealed)
-- and are opened only in C (src/remote.c).

CREATE FUNCTION medpro.fdw_handler() RETURNS fdw_handler
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'medpro_fdw_handler';
COMMENT ON FUNCTION medpro.fdw_handler() IS 'internal: handler of the medpro_fdw foreign-data wrapper';
REVOKE ALL ON FUNCTION medpro.fdw_handler() FROM PUBLIC;

CREATE FUNCTION medpro.fdw_validator(text[], oid) RETURNS void
LANGUAGE C STRICT
AS 'MODULE_PATHNAME', 'medpro_fdw_validator';
COMMENT ON FUNCTION medpro.fdw_validator(text[], oid) IS 'internal: option validator of the medpro_fdw foreign-data wrapper';
REVOKE ALL ON FUNCTION medpro.fdw_validator(text[], oid) FROM PUBLIC;

-- The routing cache (src/routecache.c): each backend keeps the clinics'
-- routing rows, the latest schema version and the result of its session
-- check until one of these tables changes; the trigger tells every backend.
CREATE FUNCTION medpro.routing_changed() RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'medpro_routing_changed';
COMMENT ON FUNCTION medpro.routing_changed() IS 'internal: statement trigger that drops every backend''s routing cache when the routing catalog changes';
REVOKE ALL ON FUNCTION medpro.routing_changed() FROM PUBLIC;
CREATE TRIGGER routing_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON medpro.clinics
	FOR EACH STATEMENT EXECUTE FUNCTION medpro.routing_changed();
CREATE TRIGGER routing_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON medpro.servers
	FOR EACH STATEMENT EXECUTE FUNCTION medpro.routing_changed();
CREATE TRIGGER routing_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON medpro.users
	FOR EACH STATEMENT EXECUTE FUNCTION medpro.routing_changed();
CREATE TRIGGER routing_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON medpro.migrations
	FOR EACH STATEMENT EXECUTE FUNCTION medpro.routing_changed();

CREATE FOREIGN DATA WRAPPER medpro_fdw
	HANDLER medpro.fdw_handler VALIDATOR medpro.fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER medpro_fdw IS 'medpro routing: tenant-scoped relations served from the current clinic''s database';

-- schema_version 'latest': the clinic database must be at the highest
-- version of medpro.migrations (read once per transaction), else 55000.
CREATE SERVER medpro_clinics FOREIGN DATA WRAPPER medpro_fdw
	OPTIONS (schema_version 'latest');
COMMENT ON SERVER medpro_clinics IS 'the database of the clinic selected by the tenant context';

-- Foreign tables: the clinic tables' columns, same names and types. ----------

CREATE FOREIGN TABLE medpro.ft_patients (
	id						uuid,
	company_id				uuid,
	patient_number			text,
	first_name				text,
	last_name				text,
	email					text,
	phone					text,
	date_of_birth			date,
	gender					text,
	address					jsonb,
	social_security_number	text OPTIONS (mask 'last2', validate 'ssn'),
	medical_history			text OPTIONS (mask 'hide'),
	allergies				text,
	notes					text,
	is_active				boolean,
	created_at				timestamptz,
	updated_at				timestamptz,
	deleted_at				timestamptz,
	email_verified_at		timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'patients', soft_delete 'true');

CREATE FOREIGN TABLE medpro.ft_practitioners (
	id				uuid,
	company_id		uuid,
	user_id			uuid,
	first_name		text,
	last_name		text,
	email			text,
	phone			text,
	specialty		text,
	license_number	text,
	working_hours	jsonb,
	color			text,
	is_active		boolean,
	created_at		timestamptz,
	updated_at		timestamptz,
	deleted_at		timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'practitioners', soft_delete 'true');

CREATE FOREIGN TABLE medpro.ft_appointments (
	id					uuid,
	company_id			uuid,
	patient_id			uuid,
	practitioner_id		uuid,
	start_time			timestamptz,
	end_time			timestamptz,
	status				text,
	type				text,
	title				text,
	notes				text,
	cancellation_reason text,
	created_at			timestamptz,
	updated_at			timestamptz,
	deleted_at			timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'appointments', soft_delete 'true');

CREATE FOREIGN TABLE medpro.ft_appointment_items (
	id					uuid,
	company_id			uuid,
	appointment_id		uuid,
	product_service_id	uuid,
	description			text,
	quantity			numeric(10,2),
	unit_price			numeric(12,2),
	tax_rate			numeric(5,2),
	created_at			timestamptz,
	updated_at			timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'appointment_items', soft_delete 'false');

CREATE FOREIGN TABLE medpro.ft_product_services (
	id					uuid,
	company_id			uuid,
	name				text,
	description			text,
	type				text,
	price				numeric(12,2),
	tax_rate			numeric(5,2),
	duration_minutes	integer,
	is_medical			boolean,
	is_active			boolean,
	created_at			timestamptz,
	updated_at			timestamptz,
	deleted_at			timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'product_services', soft_delete 'true', writers 'admin');

CREATE FOREIGN TABLE medpro.ft_categories (
	id				uuid,
	company_id		uuid,
	name			text,
	description		text,
	color			text,
	created_at		timestamptz,
	updated_at		timestamptz,
	deleted_at		timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'categories', soft_delete 'true', writers 'admin');

CREATE FOREIGN TABLE medpro.ft_product_categories (
	id					uuid,
	company_id			uuid,
	product_service_id	uuid,
	category_id			uuid,
	created_at			timestamptz,
	updated_at			timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'product_categories', soft_delete 'false', writers 'admin');

CREATE FOREIGN TABLE medpro.ft_documents (
	id				uuid,
	company_id		uuid,
	document_type	text,
	document_number text,
	patient_id		uuid,
	appointment_id	uuid,
	credit_for_id	uuid,
	status			text,
	issue_date		date,
	due_date		date,
	items			jsonb,
	subtotal		numeric(12,2),
	tax_amount		numeric(12,2),
	total			numeric(12,2),
	currency		text,
	notes			text,
	legal_mention	text,
	issued_at		timestamptz,
	created_at		timestamptz,
	updated_at		timestamptz,
	deleted_at		timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'documents', soft_delete 'true');

CREATE FOREIGN TABLE medpro.ft_consent_templates (
	id			uuid,
	company_id	uuid,
	name		text,
	type		text,
	language	text,
	content		text,
	version		integer,
	is_required boolean,
	is_active	boolean,
	created_at	timestamptz,
	updated_at	timestamptz,
	deleted_at	timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'consent_templates', soft_delete 'true', writers 'admin');

CREATE FOREIGN TABLE medpro.ft_consents (
	id					uuid,
	company_id			uuid,
	patient_id			uuid,
	consent_template_id uuid,
	status				text,
	content_snapshot	text,
	signed_at			timestamptz,
	signature_method	text,
	ip_address			inet,
	device_info			text,
	revoked_at			timestamptz,
	created_at			timestamptz,
	updated_at			timestamptz,
	deleted_at			timestamptz
) SERVER medpro_clinics OPTIONS (table_name 'consents', soft_delete 'true');

-- The tenant-scoped relations. -----------------------------------------------

CREATE SCHEMA clinic;
COMMENT ON SCHEMA clinic IS 'tenant-scoped relations: the current clinic''s data (DESIGN §5.5)';
REVOKE ALL ON SCHEMA clinic FROM PUBLIC;
GRANT USAGE ON SCHEMA clinic TO medpro_api;

-- One view per foreign table, listing every column.  Soft-deleted rows are
-- hidden by medpro_fdw itself (table option soft_delete): every remote scan
-- of such a table has deleted_at IS NULL, so no local function, leaky or
-- not, ever sees a soft-deleted row, and the only clauses shipped next to it
-- are ones that cannot fail or leak on a row (see docs/routing.md).  Plain
-- views are flattened into the query, so WHERE, ORDER BY and LIMIT reach the
-- foreign scan and can be pushed down.
DO $views$
DECLARE
	t record;
	cols text;
BEGIN
	FOR t IN
		SELECT c.oid, substr(c.relname, 4) AS name,
			   'soft_delete=true' = ANY (ft.ftoptions) AS soft_delete
		  FROM pg_catalog.pg_class c
		  JOIN pg_catalog.pg_foreign_table ft ON ft.ftrelid = c.oid
		 WHERE c.relnamespace = 'medpro'::regnamespace AND c.relname LIKE 'ft\_%'
		 ORDER BY c.relname
	LOOP
		SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
		  FROM pg_catalog.pg_attribute a
		 WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped;
		EXECUTE format('REVOKE ALL ON medpro.%I FROM PUBLIC', 'ft_' || t.name);
		EXECUTE format('CREATE VIEW clinic.%I AS SELECT %s FROM medpro.%I',
					   t.name, cols, 'ft_' || t.name);
		EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON clinic.%I TO medpro_api', t.name);
		EXECUTE format('COMMENT ON FOREIGN TABLE medpro.%I IS %L', 'ft_' || t.name,
					   'internal: the current clinic''s ' || t.name || ' table (use clinic.' || t.name || ')');
		EXECUTE format('COMMENT ON VIEW clinic.%I IS %L', t.name,
					   'the current clinic''s ' || replace(t.name, '_', ' ')
					   || CASE WHEN t.soft_delete THEN ' (DELETE is a soft delete; deleted rows are hidden)' ELSE '' END);
	END LOOP;
END
$views$;
