-- medpro clinic migration 010: patient rules (numbers, duplicates, date of birth)
--
-- patient_number is generated when not given; a new or changed live patient
-- with the same email (case-insensitive, trimmed; a blank email is NULL),
-- or the same first and last name after case and accent folding and
-- hyphen/space normalisation, as another live patient is refused with 23505
-- naming only the existing patient_number; date_of_birth may not be after
-- the clinic's local today.
-- The social security number is checked centrally (medpro's routing layer),
-- where it is still plaintext: docs/domain.md.

ALTER TABLE medpro_settings
    ADD COLUMN patient_number_prefix text NOT NULL DEFAULT 'P'
        CONSTRAINT medpro_settings_patient_number_prefix_check
        CHECK (patient_number_prefix ~ '^[A-Za-z0-9_-]{0,16}$');

COMMENT ON COLUMN medpro_settings.patient_number_prefix IS
    'Prefix of generated patient numbers (P -> P000001).';

CREATE SEQUENCE patients_number_seq;

COMMENT ON SEQUENCE patients_number_seq IS
    'Source of generated patient numbers; numbers already taken are skipped.';

-- medpro_fold_name(text): the form in which two names are the same person's
-- name.  In a UTF-8 database the name is first put in compatibility
-- decomposition (NFKD: ligatures such as the "fi" one and full-width
-- letters become plain letters, no-break and other spaces become spaces,
-- accented letters become a letter and combining marks), combining marks
-- and invisible characters (soft hyphen, zero-width ones) are dropped, and
-- Unicode hyphens, dashes, minus and apostrophes become spaces.  Then:
-- lower case, Latin accents and ligatures removed, runs of spaces, hyphens,
-- apostrophes, dots, commas and underscores made one space, trimmed.
-- 'Hélène Dupont-Durand', ' helene  DUPONT durand' and the same name typed
-- with combining accents, a no-break space or an en dash all give
-- 'helene dupont durand'.
CREATE FUNCTION medpro_fold_name(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, public, pg_temp
AS $$
    SELECT btrim(regexp_replace(
        lower(replace(replace(replace(replace(replace(replace(replace(replace(
            translate(
                CASE WHEN getdatabaseencoding() = 'UTF8'
                     THEN regexp_replace(regexp_replace(normalize(name, NFKD),
                              '[\u0300-\u036f\u00ad\u034f\u180e\u200b-\u200f\u2060-\u2064\ufeff]', '', 'g'),
                          '[\u00a0\u2010-\u2015\u2018\u2019\u201b\u2032\u2212\u02bc\u3000]', ' ', 'g')
                     ELSE name END,
                      'ÀÁÂÃÄÅàáâãäåĀāĂăĄąÇçĆćČčĎďÈÉÊËèéêëĒēĖėĘęĚěÌÍÎÏìíîïĪīĮįÑñŃńŇňÒÓÔÕÖØòóôõöøŌōŐőŔŕŘřŚśŠšŞşŤťÙÚÛÜùúûüŪūŮůŰűÝýÿŸŹźŻżŽžĐđŁłı',
                      'AAAAAAaaaaaaAaAaAaCcCcCcDdEEEEeeeeEeEeEeEeIIIIiiiiIiIiNnNnNnOOOOOOooooooOoOoRrRrSsSsSsTtUUUUuuuuUuUuUuYyyYZzZzZzDdLli'),
            'Œ', 'oe'), 'œ', 'oe'), 'Æ', 'ae'), 'æ', 'ae'), 'ß', 'ss'), 'ẞ', 'ss'), '’', ' '), 'ʼ', ' ')),
        '[[:space:]''._,-]+', ' ', 'g'))
$$;

COMMENT ON FUNCTION medpro_fold_name(text) IS
    'Name folded for duplicate detection: NFKD (UTF-8 databases), lower case, accents, combining marks, invisible characters and ligatures removed, spaces/hyphens/dashes/apostrophes made one space (Hélène Dupont-Durand -> helene dupont durand).';

-- Live patients are unique by folded name and by email.  The trigger below
-- finds a duplicate first, to name it; these indexes make the rule hold
-- under any isolation level, when a concurrent insert is not yet visible to
-- the trigger's snapshot (REPEATABLE READ, SERIALIZABLE).
CREATE UNIQUE INDEX patients_fold_name_idx
    ON patients (medpro_fold_name(last_name), medpro_fold_name(first_name))
    WHERE deleted_at IS NULL;

CREATE UNIQUE INDEX patients_live_email_idx
    ON patients (lower(email))
    WHERE deleted_at IS NULL AND email IS NOT NULL;

-- patients_rules(): BEFORE INSERT OR UPDATE on patients (after
-- patients_company, by name order).
CREATE FUNCTION medpro_patients_rules() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
    v_settings public.medpro_settings;
    v_today date;
    v_n bigint;
    v_existing text;
    v_fold_first text;
    v_fold_last text;
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

    -- Concurrent inserts of the same person wait for each other here; the
    -- check below then sees the committed row (READ COMMITTED).
    v_fold_first := public.medpro_fold_name(NEW.first_name);
    v_fold_last := public.medpro_fold_name(NEW.last_name);
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('medpro.patient_name'),
                                             pg_catalog.hashtext(v_fold_last || ' ' || v_fold_first));
    IF NEW.email IS NOT NULL THEN
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('medpro.patient_email'),
                                                 pg_catalog.hashtext(lower(NEW.email)));
    END IF;

    SELECT p.patient_number INTO v_existing
      FROM public.patients AS p
     WHERE p.deleted_at IS NULL AND p.id <> NEW.id
       AND ((NEW.email IS NOT NULL AND lower(p.email) = lower(NEW.email))
            OR (public.medpro_fold_name(p.last_name) = v_fold_last
                AND public.medpro_fold_name(p.first_name) = v_fold_first))
     ORDER BY p.created_at
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'duplicate patient: patient % has the same email or name', v_existing
            USING ERRCODE = '23505',
                  SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME,
                  CONSTRAINT = 'patients_duplicate_check',
                  HINT = 'Use the existing patient record.';
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION medpro_patients_rules() IS
    'BEFORE INSERT OR UPDATE trigger on patients: generates patient_number, refuses a date_of_birth in the future (23514) and a duplicate live patient by email or folded name (23505, naming only the existing patient_number).';

CREATE TRIGGER patients_rules
    BEFORE INSERT OR UPDATE ON patients
    FOR EACH ROW EXECUTE FUNCTION medpro_patients_rules();

-- A verification sent to an address the patient no longer has is void (and
-- an erased patient keeps no trace of the old address here).
CREATE FUNCTION medpro_patients_email_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
    DELETE FROM public.email_verifications AS v
     WHERE v.patient_id = NEW.id AND v.email IS DISTINCT FROM NEW.email;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION medpro_patients_email_changed() IS
    'AFTER UPDATE OF email trigger on patients: deletes the patient''s email verifications for any other address.';

CREATE TRIGGER patients_email_changed
    AFTER UPDATE OF email ON patients
    FOR EACH ROW WHEN (NEW.email IS DISTINCT FROM OLD.email)
    EXECUTE FUNCTION medpro_patients_email_changed();
