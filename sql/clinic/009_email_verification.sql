-- medpro clinic migration 009: email verification

CREATE TABLE email_verifications (
    id          uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id  uuid         NOT NULL,
    patient_id  uuid
                CONSTRAINT email_verifications_patient_id_fkey
                REFERENCES patients (id) ON DELETE CASCADE,
    email       text         NOT NULL,
    token_hash  bytea        NOT NULL
                CONSTRAINT email_verifications_token_hash_key UNIQUE
                CONSTRAINT email_verifications_token_hash_check CHECK (octet_length(token_hash) >= 16),
    expires_at  timestamptz  NOT NULL,
    verified_at timestamptz,
    created_at  timestamptz  NOT NULL DEFAULT now()
);

COMMENT ON TABLE email_verifications IS
    'Pending and used email verification tokens; only a hash of each token is stored.';
COMMENT ON COLUMN email_verifications.patient_id IS
    'Patient whose email is being verified, if any; the row goes when the patient is deleted.';
COMMENT ON COLUMN email_verifications.token_hash IS
    'Hash (at least 16 bytes, e.g. SHA-256) of the token sent by email; never the token itself.';
COMMENT ON COLUMN email_verifications.verified_at IS
    'When the token was used; NULL while pending.';

CREATE INDEX email_verifications_patient_id_idx
    ON email_verifications (patient_id);

CREATE INDEX email_verifications_expires_at_idx
    ON email_verifications (expires_at)
    WHERE verified_at IS NULL;

CREATE TRIGGER email_verifications_company
    BEFORE INSERT OR UPDATE ON email_verifications
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();


ALTER TABLE patients
    ADD COLUMN email_verified_at timestamptz;

COMMENT ON COLUMN patients.email_verified_at IS
    'When the patient''s current email address was last verified.';
