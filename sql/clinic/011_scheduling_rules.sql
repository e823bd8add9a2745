-- medpro clinic migration 011: scheduling rules
--
-- A practitioner's live, non-cancelled appointments never overlap: an
-- exclusion constraint over the half-open range [start_time, end_time), so
-- that it also holds for concurrent inserts (23P01).  It needs btree_gist
-- (for = on uuid in a GiST index), a contrib extension created here by the
-- migration runner, which connects as a superuser; this is the one
-- exception to "no CREATE EXTENSION in migrations" (docs/domain.md).
-- end_time > start_time is appointments_time_order (migration 005); both
-- times are finite (an appointment from -infinity to infinity would block
-- its practitioner for ever).

CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;

ALTER TABLE appointments
    ADD CONSTRAINT appointments_no_overlap
    EXCLUDE USING gist (practitioner_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&)
    WHERE (status <> 'cancelled' AND deleted_at IS NULL);

COMMENT ON CONSTRAINT appointments_no_overlap ON appointments IS
    'A practitioner cannot have two overlapping live appointments unless one is cancelled (23P01).';

ALTER TABLE appointments
    ADD CONSTRAINT appointments_time_finite_check
    CHECK (isfinite(start_time) AND isfinite(end_time));

COMMENT ON CONSTRAINT appointments_time_finite_check ON appointments IS
    'Appointment times are real instants, not -infinity or infinity (23514).';
