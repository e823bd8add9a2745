-- medpro clinic migration 002: patients

CREATE TABLE patients (
    id                     uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id             uuid         NOT NULL,
    patient_number         text,
    first_name             text         NOT NULL,
    last_name              text         NOT NULL,
    email                  text,
    phone                  text,
    date_of_birth          date,
    gender                 text
                           CONSTRAINT patients_gender_check
                           CHECK (gender IN ('male', 'female', 'other', 'unknown')),
    address                jsonb        NOT NULL DEFAULT '{}'
                           CONSTRAINT patients_address_check CHECK (jsonb_typeof(address) = 'object'),
    social_security_number text,
    medical_history        text,
    allergies              text,
    notes                  text,
    is_active              boolean      NOT NULL DEFAULT true,
    created_at             timestamptz  NOT NULL DEFAULT now(),
    updated_at             timestamptz  NOT NULL DEFAULT now(),
    deleted_at             timestamptz
);

COMMENT ON TABLE patients IS
    'Patients of the clinic (soft-deleted through deleted_at).';
COMMENT ON COLUMN patients.company_id IS
    'Always medpro_clinic_id(); filled in when omitted (trigger patients_company).';
COMMENT ON COLUMN patients.patient_number IS
    'Clinic-wide patient number, unique among non-deleted patients.';
COMMENT ON COLUMN patients.address IS
    'Postal address as a JSON object, e.g. {"street", "city", "postal_code", "country"}.';
COMMENT ON COLUMN patients.social_security_number IS
    'FR NIR / ES NUSS. Sensitive: masked for secretaries.';
COMMENT ON COLUMN patients.medical_history IS
    'Medical data: never shown to secretaries.';
COMMENT ON COLUMN patients.deleted_at IS
    'Soft-delete time; NULL while the row is live.';

CREATE UNIQUE INDEX patients_patient_number_key
    ON patients (patient_number)
    WHERE deleted_at IS NULL AND patient_number IS NOT NULL;

CREATE INDEX patients_name_idx
    ON patients (last_name, first_name)
    WHERE deleted_at IS NULL;

CREATE INDEX patients_email_idx
    ON patients (lower(email));

CREATE TRIGGER patients_company
    BEFORE INSERT OR UPDATE ON patients
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER patients_updated_at
    BEFORE UPDATE ON patients
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();
