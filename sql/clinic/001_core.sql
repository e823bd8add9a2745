-- medpro clinic migration 001: core schema (clinic settings, clinic id, shared trigger functions)
--
-- Applied by medpro's migration runner, as a superuser connected to the clinic
-- database, inside one transaction.  Everything lives in schema public.  UUIDs
-- come from core gen_random_uuid() (PostgreSQL 13+): no extension is needed.
-- No privileges are granted here: the runner owns that.
--
-- The single medpro_settings row is inserted by the provisioning code; the
-- template database has none, and every tenant-scoped insert fails with
-- 55000 "clinic settings are missing" until it exists.

CREATE TABLE medpro_settings (
    id                 boolean       PRIMARY KEY DEFAULT true
                                     CONSTRAINT medpro_settings_single_row CHECK (id),
    clinic_id          uuid          NOT NULL,
    country            text          NOT NULL
                                     CONSTRAINT medpro_settings_country_check CHECK (country IN ('FR', 'ES')),
    timezone           text          NOT NULL,
    currency           text          NOT NULL DEFAULT 'EUR'
                                     CONSTRAINT medpro_settings_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    default_tax_rate   numeric(5,2)  NOT NULL
                                     CONSTRAINT medpro_settings_default_tax_rate_check
                                     CHECK (default_tax_rate >= 0 AND default_tax_rate <= 100),
    medical_vat_exempt boolean       NOT NULL DEFAULT true,
    vat_exempt_mention text,
    document_prefixes  jsonb         NOT NULL
                                     DEFAULT '{"invoice": "FAC", "quote": "DEV", "credit_note": "AVO"}'
                                     CONSTRAINT medpro_settings_document_prefixes_check
                                     CHECK (jsonb_typeof(document_prefixes) = 'object'),
    created_at         timestamptz   NOT NULL DEFAULT now(),
    updated_at         timestamptz   NOT NULL DEFAULT now()
);

COMMENT ON TABLE medpro_settings IS
    'The clinic''s own settings: exactly one row (id = true), inserted by provisioning.';
COMMENT ON COLUMN medpro_settings.clinic_id IS
    'Id of this clinic in the central database (medpro.clinics.id); every company_id must equal it. Cannot change once set.';
COMMENT ON COLUMN medpro_settings.timezone IS
    'IANA time zone name, as listed in pg_timezone_names (checked by trigger medpro_settings_check).';
COMMENT ON COLUMN medpro_settings.default_tax_rate IS
    'Default VAT rate in percent (0..100) for new products and services.';
COMMENT ON COLUMN medpro_settings.medical_vat_exempt IS
    'Medical acts are VAT-exempt (FR CGI art. 261-4-1, ES Ley 37/1992 art. 20.Uno.3).';
COMMENT ON COLUMN medpro_settings.vat_exempt_mention IS
    'Legal mention printed on documents when VAT-exempt lines are present.';
COMMENT ON COLUMN medpro_settings.document_prefixes IS
    'Document number prefix per document_type: {"invoice": ..., "quote": ..., "credit_note": ...}.';

-- medpro_clinic_id(): the clinic this database belongs to.
CREATE FUNCTION medpro_clinic_id() RETURNS uuid
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_clinic uuid;
BEGIN
    SELECT s.clinic_id INTO v_clinic FROM public.medpro_settings AS s WHERE s.id;
    IF v_clinic IS NULL THEN
        RAISE EXCEPTION 'clinic settings are missing'
            USING ERRCODE = '55000',
                  HINT = 'The clinic database has not been provisioned (no row in medpro_settings).';
    END IF;
    RETURN v_clinic;
END
$$;

COMMENT ON FUNCTION medpro_clinic_id() IS
    'The clinic id of this database (medpro_settings.clinic_id); raises 55000 "clinic settings are missing" when the settings row is absent.';

-- medpro_set_updated_at(): BEFORE UPDATE trigger keeping updated_at current.
CREATE FUNCTION medpro_set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    NEW.updated_at := pg_catalog.now();
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION medpro_set_updated_at() IS
    'BEFORE UPDATE row trigger: sets NEW.updated_at to now() (transaction start time).';

-- medpro_check_company(): BEFORE INSERT OR UPDATE trigger on every tenant-scoped
-- table.  A missing company_id becomes this clinic's id; any other value is
-- refused.  The error names the table and column but never echoes a value.
CREATE FUNCTION medpro_check_company() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_clinic uuid := public.medpro_clinic_id();
BEGIN
    NEW.company_id := coalesce(NEW.company_id, v_clinic);
    IF NEW.company_id <> v_clinic THEN
        RAISE EXCEPTION 'company_id does not belong to this clinic'
            USING ERRCODE = '23514',
                  SCHEMA = TG_TABLE_SCHEMA,
                  TABLE = TG_TABLE_NAME,
                  COLUMN = 'company_id';
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION medpro_check_company() IS
    'BEFORE INSERT OR UPDATE row trigger: NULL company_id becomes medpro_clinic_id(); any other clinic id raises 23514 "company_id does not belong to this clinic".';

-- medpro_settings_check(): what a CHECK constraint cannot express on
-- medpro_settings: the time zone must be known to this server, and the clinic
-- id never changes once the row exists (every company_id depends on it).
CREATE FUNCTION medpro_settings_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.clinic_id IS DISTINCT FROM OLD.clinic_id THEN
        RAISE EXCEPTION 'clinic_id of a clinic database cannot be changed'
            USING ERRCODE = '23514',
                  SCHEMA = TG_TABLE_SCHEMA,
                  TABLE = TG_TABLE_NAME,
                  COLUMN = 'clinic_id',
                  CONSTRAINT = 'medpro_settings_clinic_id_immutable';
    END IF;
    IF NEW.timezone IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.timezone IS DISTINCT FROM OLD.timezone)
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names AS z
                       WHERE z.name = NEW.timezone) THEN
        RAISE EXCEPTION 'invalid time zone: "%"', NEW.timezone
            USING ERRCODE = '23514',
                  SCHEMA = TG_TABLE_SCHEMA,
                  TABLE = TG_TABLE_NAME,
                  COLUMN = 'timezone',
                  CONSTRAINT = 'medpro_settings_timezone_check',
                  HINT = 'Use a name listed in pg_timezone_names, e.g. Europe/Paris or Europe/Madrid.';
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION medpro_settings_check() IS
    'BEFORE INSERT OR UPDATE trigger on medpro_settings: timezone must be in pg_timezone_names, clinic_id is immutable (23514).';

CREATE TRIGGER medpro_settings_check
    BEFORE INSERT OR UPDATE ON medpro_settings
    FOR EACH ROW EXECUTE FUNCTION medpro_settings_check();

CREATE TRIGGER medpro_settings_updated_at
    BEFORE UPDATE ON medpro_settings
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();
