-- medpro clinic migration 013: consent rules
--
-- A consent is given against an active template and keeps the text shown;
-- accepting or refusing records signed_at (now() unless given, never in the
-- future) and needs a signature method; a signed consent does not change
-- except to be revoked (revoked_at).  A template that consents refer to
-- cannot be deleted, only deactivated.  The IP address and device come from
-- the central medpro_consent_sign(), which reads request.headers.

ALTER TABLE consents
    ADD CONSTRAINT consents_signed_check
        CHECK (status NOT IN ('accepted', 'refused', 'revoked')
               OR (signed_at IS NOT NULL AND signature_method IS NOT NULL)),
    ADD CONSTRAINT consents_revoked_check
        CHECK ((status = 'revoked') = (revoked_at IS NOT NULL));

CREATE FUNCTION medpro_consents_rules() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_template public.consent_templates;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status IN ('accepted', 'refused', 'revoked') THEN
        IF (to_jsonb(NEW) - 'status' - 'revoked_at' - 'updated_at' - 'deleted_at')
           IS DISTINCT FROM (to_jsonb(OLD) - 'status' - 'revoked_at' - 'updated_at' - 'deleted_at')
           OR (NEW.status IS DISTINCT FROM OLD.status
               AND NOT (OLD.status = 'accepted' AND NEW.status = 'revoked')) THEN
            RAISE EXCEPTION 'a signed consent cannot be changed'
                USING ERRCODE = '55000',
                      HINT = 'An accepted consent can be revoked (status revoked); record a new consent otherwise.';
        END IF;
        IF NEW.status = 'revoked' AND OLD.status = 'accepted' THEN
            NEW.revoked_at := pg_catalog.now();
        END IF;
        RETURN NEW;
    END IF;

    IF NEW.status = 'revoked' THEN
        RAISE EXCEPTION 'only an accepted consent can be revoked'
            USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  COLUMN = 'status', CONSTRAINT = 'consents_revoked_check';
    END IF;
    NEW.revoked_at := NULL;

    -- The template must be active when the consent is recorded, changed to
    -- another template, or signed (a pending consent of a template
    -- deactivated since cannot be signed).
    IF NEW.consent_template_id IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.consent_template_id IS DISTINCT FROM OLD.consent_template_id
            OR NEW.status IN ('accepted', 'refused')) THEN
        SELECT * INTO v_template FROM public.consent_templates AS t
         WHERE t.id = NEW.consent_template_id AND t.deleted_at IS NULL;
        IF NOT FOUND OR NOT v_template.is_active THEN
            RAISE EXCEPTION 'consent template is not active'
                USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                      COLUMN = 'consent_template_id', CONSTRAINT = 'consents_template_active_check';
        END IF;
        NEW.content_snapshot := coalesce(NEW.content_snapshot, v_template.content);
    END IF;

    IF NEW.status IN ('accepted', 'refused') THEN
        IF NEW.signature_method IS NULL THEN
            RAISE EXCEPTION 'a signed consent needs a signature_method'
                USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                      COLUMN = 'signature_method', CONSTRAINT = 'consents_signed_check',
                      HINT = 'Use handwritten, electronic or verbal.';
        END IF;
        IF NEW.content_snapshot IS NULL THEN
            RAISE EXCEPTION 'a signed consent needs the text the patient was shown'
                USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                      COLUMN = 'content_snapshot', CONSTRAINT = 'consents_signed_check';
        END IF;
        IF NEW.signed_at IS NULL THEN
            NEW.signed_at := pg_catalog.now();
        ELSIF NEW.signed_at > pg_catalog.now() THEN
            RAISE EXCEPTION 'signed_at may not be in the future'
                USING ERRCODE = '23514', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                      COLUMN = 'signed_at', CONSTRAINT = 'consents_signed_check';
        END IF;
    ELSE
        NEW.signed_at := NULL;
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION medpro_consents_rules() IS
    'BEFORE INSERT OR UPDATE trigger on consents: active template, text snapshot, signed_at and signature method when signed, signed consents only revoked (55000 otherwise).';

CREATE TRIGGER consents_rules
    BEFORE INSERT OR UPDATE ON consents
    FOR EACH ROW EXECUTE FUNCTION medpro_consents_rules();

CREATE FUNCTION medpro_consent_templates_rules() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    IF NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL
       AND EXISTS (SELECT 1 FROM public.consents AS c
                    WHERE c.consent_template_id = OLD.id AND c.deleted_at IS NULL) THEN
        RAISE EXCEPTION 'consent template is in use'
            USING ERRCODE = '23503', SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  CONSTRAINT = 'consents_consent_template_id_fkey',
                  HINT = 'Deactivate it instead (is_active = false); the consents keep their text.';
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION medpro_consent_templates_rules() IS
    'BEFORE UPDATE trigger on consent_templates: a template that live consents refer to cannot be soft-deleted (23503), only deactivated.';

CREATE TRIGGER consent_templates_rules
    BEFORE UPDATE ON consent_templates
    FOR EACH ROW EXECUTE FUNCTION medpro_consent_templates_rules();
