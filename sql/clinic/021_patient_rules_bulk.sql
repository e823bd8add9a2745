-- medpro clinic migration 021: patient rules that scale to bulk loads
--
-- Migration 010's trigger took two transaction-level advisory locks per
-- inserted patient and looked duplicates up with one query whose plan was
-- cached by PL/pgSQL.  In one statement that loads an empty table (an
-- import), that plan was made while the table was empty, so it scanned the
-- whole table and folded every name again for each new row (5 000 rows:
-- three minutes), and 100 000 rows exhausted the lock table.
--
-- Now:
-- - each lookup is a probe of one unique index (patients_patient_number_key,
--   patients_live_email_idx, patients_fold_name_idx), and the function runs
--   with sequential and bitmap scans disabled so that a plan made on an
--   empty table still probes the index: each row costs the same whatever the
--   table holds;
-- - no advisory lock: a concurrent insert of the same person that the
--   trigger's snapshot cannot see yet is refused by the unique index when
--   the row is inserted (it waits for the other transaction, then raises
--   23505 naming the index), so the rule holds under every isolation level
--   and a transaction may insert any number of patients.

CREATE OR REPLACE FUNCTION medpro_patients_rules() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
    SET enable_seqscan = off
    SET enable_bitmapscan = off
AS $$
DECLARE
    v_settings public.medpro_settings;
    v_today date;
    v_n bigint;
    v_fold_first text;
    v_fold_last text;
    v_by_email text;
    v_by_email_at timestamptz;
    v_by_name text;
    v_by_name_at timestamptz;
BEGIN
    SELECT * INTO v_settings FROM public.medpro_settings AS s WHERE s.id;

    -- An email is stored without surrounding white space; a blank one is none.
    NEW.email := nullif(btrim(NEW.email, E' \t\r\n'), '');

    v_today := (pg_catalog.now() AT TIME ZONE v_settings.timezone)::date;
    IF NEW.date_of_birth IS NOT NULL AND NEW.date_of_birth > v_today
       AND (TG_OP = 'INSERT' OR NEW.date_of_birth IS DISTINCT FROM OLD.date_of_birth) THEN
        RAISE EXCEPTION 'date_of_birth may not be in the future'
            USING ERRCODE = '23514',
                  SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = 'date_of_birth',
                  CONSTRAINT = 'patients_date_of_birth_check',
                  DETAIL = 'Dates of birth are compared with today in the clinic''s time zone.';
    END IF;

    -- A patient keeps a number: generated on insert, kept on update.
    IF NEW.patient_number IS NULL AND TG_OP = 'UPDATE' THEN
        NEW.patient_number := OLD.patient_number;
    END IF;
    IF NEW.patient_number IS NULL THEN
        LOOP
            v_n := pg_catalog.nextval('public.patients_number_seq');
            NEW.patient_number := v_settings.patient_number_prefix
                || CASE WHEN length(v_n::text) >= 6 THEN v_n::text ELSE lpad(v_n::text, 6, '0') END;
            EXIT WHEN NOT EXISTS (SELECT 1 FROM public.patients AS p
                                   WHERE p.patient_number = NEW.patient_number
                                     AND p.patient_number IS NOT NULL
                                     AND p.deleted_at IS NULL);
        END LOOP;
    ELSIF btrim(NEW.patient_number) = '' THEN
        RAISE EXCEPTION 'patient_number must not be empty'
            USING ERRCODE = '23514',
                  SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME, COLUMN = 'patient_number',
                  CONSTRAINT = 'patients_patient_number_check',
                  HINT = 'Leave it out to have one generated.';
    END IF;

    -- Duplicates among live patients; a soft-deleted patient blocks nothing.
    IF NEW.deleted_at IS NOT NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL
       AND NEW.email IS NOT DISTINCT FROM OLD.email
       AND NEW.first_name IS NOT DISTINCT FROM OLD.first_name
       AND NEW.last_name IS NOT DISTINCT FROM OLD.last_name THEN
        RETURN NEW;
    END IF;

    -- At most one live patient per email and one per folded name (the
    -- unique indexes); the older of the two is named.
    IF NEW.email IS NOT NULL THEN
        SELECT p.patient_number, p.created_at INTO v_by_email, v_by_email_at
          FROM public.patients AS p
         WHERE lower(p.email) = lower(NEW.email)
           AND p.email IS NOT NULL AND p.deleted_at IS NULL
           AND p.id <> NEW.id;
    END IF;
    v_fold_first := public.medpro_fold_name(NEW.first_name);
    v_fold_last := public.medpro_fold_name(NEW.last_name);
    SELECT p.patient_number, p.created_at INTO v_by_name, v_by_name_at
      FROM public.patients AS p
     WHERE public.medpro_fold_name(p.last_name) = v_fold_last
       AND public.medpro_fold_name(p.first_name) = v_fold_first
       AND p.deleted_at IS NULL
       AND p.id <> NEW.id;
    IF v_by_email_at IS NOT NULL OR v_by_name_at IS NOT NULL THEN
        RAISE EXCEPTION 'duplicate patient: patient % has the same email or name',
                CASE WHEN v_by_name_at IS NULL
                       OR (v_by_email_at IS NOT NULL AND v_by_email_at <= v_by_name_at)
                     THEN v_by_email ELSE v_by_name END
            USING ERRCODE = '23505',
                  SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  CONSTRAINT = 'patients_duplicate_check',
                  HINT = 'Use the existing patient record.';
    END IF;
    RETURN NEW;
END
$$;
