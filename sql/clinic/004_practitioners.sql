-- medpro clinic migration 004: practitioners

CREATE TABLE practitioners (
    id             uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id     uuid         NOT NULL,
    user_id        uuid,
    first_name     text         NOT NULL,
    last_name      text         NOT NULL,
    email          text,
    phone          text,
    specialty      text,
    license_number text,
    working_hours  jsonb        NOT NULL DEFAULT '{}'
                   CONSTRAINT practitioners_working_hours_check
                   CHECK (jsonb_typeof(working_hours) = 'object'),
    color          text,
    is_active      boolean      NOT NULL DEFAULT true,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    updated_at     timestamptz  NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);

COMMENT ON TABLE practitioners IS
    'Practitioners (doctors, therapists) who see patients in this clinic (soft-deleted).';
COMMENT ON COLUMN practitioners.user_id IS
    'The practitioner''s user in the central database (medpro.users.id), if any; no foreign key: that database is elsewhere.';
COMMENT ON COLUMN practitioners.license_number IS
    'Professional registration: RPPS number in France, colegiado number in Spain.';
COMMENT ON COLUMN practitioners.working_hours IS
    'Weekly schedule: weekday name -> list of {"start": "09:00", "end": "12:30"} in the clinic time zone, e.g. {"monday": [{"start": "09:00", "end": "12:30"}]}.';
COMMENT ON COLUMN practitioners.color IS
    'Calendar display colour, e.g. #3366FF.';

-- A central user is at most one live practitioner of the clinic.
CREATE UNIQUE INDEX practitioners_user_id_key
    ON practitioners (user_id)
    WHERE deleted_at IS NULL AND user_id IS NOT NULL;

CREATE INDEX practitioners_name_idx
    ON practitioners (last_name, first_name)
    WHERE deleted_at IS NULL;

CREATE TRIGGER practitioners_company
    BEFORE INSERT OR UPDATE ON practitioners
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER practitioners_updated_at
    BEFORE UPDATE ON practitioners
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();
