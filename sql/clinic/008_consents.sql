-- medpro clinic migration 008: consent templates and patient consents

CREATE TABLE consent_templates (
    id          uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id  uuid         NOT NULL,
    name        text         NOT NULL,
    type        text         NOT NULL,
    language    text         NOT NULL
                CONSTRAINT consent_templates_language_check CHECK (language IN ('fr', 'es')),
    content     text         NOT NULL,
    version     integer      NOT NULL DEFAULT 1
                CONSTRAINT consent_templates_version_check CHECK (version >= 1),
    is_required boolean      NOT NULL DEFAULT false,
    is_active   boolean      NOT NULL DEFAULT true,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

COMMENT ON TABLE consent_templates IS
    'Texts patients consent to (GDPR, treatment, photos, marketing), per language and version (soft-deleted).';
COMMENT ON COLUMN consent_templates.type IS
    'Kind of consent, e.g. gdpr, treatment, photo, marketing.';
COMMENT ON COLUMN consent_templates.is_required IS
    'Every patient must have accepted this template.';

CREATE INDEX consent_templates_type_language_idx
    ON consent_templates (type, language)
    WHERE deleted_at IS NULL;

CREATE TRIGGER consent_templates_company
    BEFORE INSERT OR UPDATE ON consent_templates
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER consent_templates_updated_at
    BEFORE UPDATE ON consent_templates
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();


CREATE TABLE consents (
    id                  uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id          uuid         NOT NULL,
    patient_id          uuid         NOT NULL
                        CONSTRAINT consents_patient_id_fkey REFERENCES patients (id),
    consent_template_id uuid
                        CONSTRAINT consents_consent_template_id_fkey REFERENCES consent_templates (id),
    status              text         NOT NULL DEFAULT 'pending'
                        CONSTRAINT consents_status_check
                        CHECK (status IN ('pending', 'accepted', 'refused', 'revoked')),
    content_snapshot    text,
    signed_at           timestamptz,
    signature_method    text
                        CONSTRAINT consents_signature_method_check
                        CHECK (signature_method IN ('handwritten', 'electronic', 'verbal')),
    ip_address          inet,
    device_info         text,
    revoked_at          timestamptz,
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);

COMMENT ON TABLE consents IS
    'A patient''s answer to a consent template (soft-deleted).';
COMMENT ON COLUMN consents.content_snapshot IS
    'The exact text the patient was shown, kept even if the template changes.';
COMMENT ON COLUMN consents.signature_method IS
    'handwritten, electronic or verbal; NULL while unsigned.';
COMMENT ON COLUMN consents.ip_address IS
    'Address the electronic signature came from.';

CREATE INDEX consents_patient_id_idx
    ON consents (patient_id);

CREATE INDEX consents_consent_template_id_idx
    ON consents (consent_template_id);

CREATE TRIGGER consents_company
    BEFORE INSERT OR UPDATE ON consents
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER consents_updated_at
    BEFORE UPDATE ON consents
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();
