-- medpro clinic migration 005: appointments

CREATE TABLE appointments (
    id                  uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id          uuid         NOT NULL,
    patient_id          uuid         NOT NULL
                        CONSTRAINT appointments_patient_id_fkey REFERENCES patients (id),
    practitioner_id     uuid         NOT NULL
                        CONSTRAINT appointments_practitioner_id_fkey REFERENCES practitioners (id),
    start_time          timestamptz  NOT NULL,
    end_time            timestamptz  NOT NULL,
    status              text         NOT NULL DEFAULT 'scheduled'
                        CONSTRAINT appointments_status_check
                        CHECK (status IN ('scheduled', 'confirmed', 'completed', 'cancelled', 'no_show')),
    type                text,
    title               text,
    notes               text,
    cancellation_reason text,
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now(),
    deleted_at          timestamptz,
    CONSTRAINT appointments_time_order CHECK (end_time > start_time)
);

COMMENT ON TABLE appointments IS
    'Appointments of a patient with a practitioner (soft-deleted).';
COMMENT ON COLUMN appointments.type IS
    'Free-form kind of appointment, e.g. consultation, follow_up.';
COMMENT ON COLUMN appointments.cancellation_reason IS
    'Why the appointment was cancelled (status cancelled).';

-- These also serve the foreign keys on practitioner_id and patient_id.
CREATE INDEX appointments_practitioner_id_start_time_idx
    ON appointments (practitioner_id, start_time);

CREATE INDEX appointments_patient_id_start_time_idx
    ON appointments (patient_id, start_time);

CREATE TRIGGER appointments_company
    BEFORE INSERT OR UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER appointments_updated_at
    BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();
