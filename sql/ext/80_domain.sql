-- medpro install script, part 80: clinic domain functions run centrally
-- (DESIGN 5.6, docs/domain.md): identifier check digits, free slots,
-- signing consents, and the GDPR export and erasure.  The rules every write
-- must obey live in the clinic schema (sql/clinic/010-013); the functions
-- here run in the caller's tenant context and reach clinic data only
-- through medpro's routing layer, hence only the current clinic's.

-- Identifiers (src/identifiers.c). -------------------------------------------

CREATE FUNCTION medpro_valid_business_number(country text, value text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'medpro_valid_business_number'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION medpro_valid_business_number(text, text)
	IS 'whether value is a valid business number of country: FR SIREN or SIRET (Luhn, La Poste rule), ES NIF (DNI, NIE, K/L/M, CIF); 22023 for another country';

CREATE FUNCTION medpro_valid_vat_number(value text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'medpro_valid_vat_number'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION medpro_valid_vat_number(text)
	IS 'whether value is a valid FR (FR + key + SIREN) or ES (ES + NIF) VAT number; false for any other country';

CREATE FUNCTION medpro_valid_ssn(country text, value text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'medpro_valid_ssn'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION medpro_valid_ssn(text, text)
	IS 'whether value is a valid social security number of country: FR NIR (key 97 - n mod 97, Corsica 2A/2B), ES NUSS (mod 97); 22023 for another country';

-- Retention of a patient's records after the last visit. --------------------

CREATE TABLE medpro.retention_policies (
	country		text PRIMARY KEY REFERENCES medpro.country_defaults (country),
	years		integer NOT NULL CHECK (years BETWEEN 1 AND 100),
	legal_basis text NOT NULL
);
COMMENT ON TABLE medpro.retention_policies IS 'years a patient''s medical and invoicing records are kept after the last visit, per country (superusers may edit the rows)';
INSERT INTO medpro.retention_policies VALUES
	('FR', 20, 'Code de la santé publique, art. R1112-7: dossier médical kept 20 years from the last visit'),
	('ES', 5, 'Ley 41/2002, art. 17.1: historia clínica kept at least 5 years from the discharge of each care episode');
GRANT SELECT ON medpro.retention_policies TO medpro_operator;

-- The client's address and device, as the request headers give them. --------

CREATE FUNCTION medpro.request_header(name text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_headers jsonb;
BEGIN
	BEGIN
		v_headers := nullif(current_setting('request.headers', true), '')::jsonb;
	EXCEPTION WHEN invalid_text_representation THEN
		RETURN NULL;
	END;
	IF jsonb_typeof(v_headers) IS DISTINCT FROM 'object' THEN
		RETURN NULL;
	END IF;
	RETURN v_headers ->> lower(name);
END
$$;
COMMENT ON FUNCTION medpro.request_header(text) IS 'internal: a header (lower-case name) of request.headers, or NULL';

-- The client address: the first of X-Forwarded-For, else X-Real-IP, else
-- the connection's address; NULL when none parses.
CREATE FUNCTION medpro.request_ip() RETURNS inet
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v text := btrim(split_part(coalesce(medpro.request_header('x-forwarded-for'),
										medpro.request_header('x-real-ip'), ''), ',', 1));
BEGIN
	IF v <> '' THEN
		BEGIN
			RETURN v::inet;
		EXCEPTION WHEN invalid_text_representation THEN
			RETURN NULL;
		END;
	END IF;
	RETURN inet_client_addr();
END
$$;
COMMENT ON FUNCTION medpro.request_ip() IS 'internal: the client address from request.headers (x-forwarded-for, x-real-ip) or the connection';
REVOKE ALL ON FUNCTION medpro.request_header(text), medpro.request_ip() FROM PUBLIC;

-- Free slots. ------------------------------------------------------------------

CREATE FUNCTION medpro_free_slots(practitioner uuid, day date, slot interval)
RETURNS TABLE(start_time timestamptz, end_time timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_clinic uuid := @extschema@.medpro_current_clinic();
	v_tz text;
	v_hours jsonb;
	v_day_hours jsonb;
	v_interval jsonb;
	v_from timestamptz;
	v_to timestamptz;
	v_weekday text;
	v_froms timestamptz[] := '{}';
	v_tos timestamptz[] := '{}';
BEGIN
	IF practitioner IS NULL OR day IS NULL OR slot IS NULL THEN
		RAISE EXCEPTION 'practitioner, day and slot must not be null' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT isfinite(day) THEN
		RAISE EXCEPTION 'day must be a finite date' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF slot < interval '1 minute' OR slot > interval '24 hours'
	   OR extract(day FROM slot) <> 0 OR extract(month FROM slot) <> 0 THEN
		RAISE EXCEPTION 'slot must be between 1 minute and 24 hours' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Give the slot in minutes or hours, e.g. interval ''30 minutes''.';
	END IF;
	SELECT coalesce(c.timezone, d.timezone) INTO v_tz
	  FROM medpro.clinics c JOIN medpro.country_defaults d ON d.country = c.country
	 WHERE c.id = v_clinic;
	SELECT p.working_hours INTO v_hours FROM clinic.practitioners p
	 WHERE p.id = practitioner AND p.is_active;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'practitioner % does not exist', practitioner USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_weekday := (ARRAY['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'])
				 [extract(isodow FROM day)::int];
	v_day_hours := coalesce(v_hours -> v_weekday, '[]');
	IF jsonb_typeof(v_day_hours) <> 'array' THEN
		RAISE EXCEPTION 'working_hours of % is not a list of intervals', v_weekday USING ERRCODE = 'invalid_parameter_value';
	END IF;

	FOR v_interval IN SELECT e FROM jsonb_array_elements(v_day_hours) e LOOP
		BEGIN
			-- local wall-clock times of that day, in the clinic's zone
			v_from := ((day + (v_interval ->> 'start')::time) AT TIME ZONE v_tz);
			v_to := ((day + (v_interval ->> 'end')::time) AT TIME ZONE v_tz);
		EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_text_representation THEN
			RAISE EXCEPTION 'working_hours of % has an invalid time', v_weekday USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Intervals are {"start": "09:00", "end": "12:30"}.';
		END;
		IF v_from IS NULL OR v_to IS NULL OR v_to <= v_from THEN
			RAISE EXCEPTION 'working_hours of % has an interval that does not end after it starts', v_weekday
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		v_froms := v_froms || v_from;
		v_tos := v_tos || v_to;
	END LOOP;
	IF cardinality(v_froms) = 0 THEN
		RETURN;
	END IF;

	RETURN QUERY
	WITH busy AS MATERIALIZED (
		SELECT a.start_time AS s, a.end_time AS e FROM clinic.appointments a
		 WHERE a.practitioner_id = practitioner AND a.status <> 'cancelled'
		   AND a.start_time < (SELECT max(t) FROM unnest(v_tos) t)
		   AND a.end_time > (SELECT min(f) FROM unnest(v_froms) f)
	), slots AS (
		SELECT DISTINCT g AS s, g + slot AS e
		  FROM unnest(v_froms, v_tos) AS h(f, t), generate_series(h.f, h.t - slot, slot) g
	)
	SELECT sl.s, sl.e FROM slots sl
	 WHERE NOT EXISTS (SELECT 1 FROM busy b WHERE b.s < sl.e AND b.e > sl.s)
	 ORDER BY sl.s;
END
$$;
COMMENT ON FUNCTION medpro_free_slots(uuid, date, interval)
	IS 'free slots of a practitioner of the current clinic on a day: the working_hours of that weekday in the clinic''s time zone, cut into slots, minus non-cancelled appointments (times as timestamptz; DST-safe)';

-- Consents. ------------------------------------------------------------------

CREATE FUNCTION medpro_consent_sign(patient uuid, template uuid, signature_method text,
									device_info text DEFAULT NULL, accepted boolean DEFAULT true)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id uuid;
	v_ip inet := medpro.request_ip();
	v_device text := left(coalesce(device_info, medpro.request_header('user-agent')), 500);
	v_status text := CASE WHEN accepted THEN 'accepted' ELSE 'refused' END;
BEGIN
	PERFORM @extschema@.medpro_current_clinic();
	IF patient IS NULL OR template IS NULL OR accepted IS NULL THEN
		RAISE EXCEPTION 'patient, template and accepted must not be null' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- A pending consent for the same template is the one being signed.
	UPDATE clinic.consents c
	   SET status = v_status, signature_method = medpro_consent_sign.signature_method,
		   ip_address = v_ip, device_info = v_device
	 WHERE c.id = (SELECT p.id FROM clinic.consents p
					WHERE p.patient_id = patient AND p.consent_template_id = template
					  AND p.status = 'pending'
					ORDER BY p.created_at LIMIT 1)
	RETURNING c.id INTO v_id;
	IF v_id IS NULL THEN
		INSERT INTO clinic.consents (patient_id, consent_template_id, status, signature_method,
									 ip_address, device_info)
		VALUES (patient, template, v_status, medpro_consent_sign.signature_method, v_ip, v_device)
		RETURNING id INTO v_id;
	END IF;
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION medpro_consent_sign(uuid, uuid, text, text, boolean)
	IS 'records a patient''s answer to a consent template of the current clinic (a pending consent is completed): signed_at, signature method, IP address from request.headers (x-forwarded-for, x-real-ip) or the connection, device from device_info or the user-agent header; returns the consent id';

-- GDPR. ------------------------------------------------------------------------

CREATE FUNCTION medpro_patient_export(patient uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_clinic uuid := @extschema@.medpro_current_clinic();
	v_role text := @extschema@.medpro_current_role();
	v_patient jsonb;
	v_doc jsonb;
BEGIN
	IF v_role NOT IN ('admin', 'doctor') THEN
		RAISE EXCEPTION 'permission denied to export patient data'
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only clinic admins and doctors may export a patient''s data.';
	END IF;
	IF patient IS NULL THEN
		RAISE EXCEPTION 'patient must not be null' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- The foreign tables, not the views: soft-deleted rows are the
	-- patient's data too (each row shows its deleted_at).
	SELECT to_jsonb(p) INTO v_patient FROM medpro.ft_patients p WHERE p.id = patient;
	IF v_patient IS NULL THEN
		RAISE EXCEPTION 'patient % does not exist', patient USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_doc := jsonb_build_object(
		'format', 'medpro.patient_export.v1',
		'exported_at', now(),
		'clinic_id', v_clinic,
		'patient', v_patient,
		'appointments', (SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.start_time), '[]')
						   FROM medpro.ft_appointments a WHERE a.patient_id = patient),
		'appointment_items', (SELECT coalesce(jsonb_agg(to_jsonb(i) ORDER BY i.created_at), '[]')
								FROM medpro.ft_appointment_items i
							   WHERE i.appointment_id IN (SELECT a.id FROM medpro.ft_appointments a
														   WHERE a.patient_id = patient)),
		'documents', (SELECT coalesce(jsonb_agg(to_jsonb(d) ORDER BY d.created_at), '[]')
						FROM medpro.ft_documents d WHERE d.patient_id = patient),
		'consents', (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.created_at), '[]')
					   FROM medpro.ft_consents c WHERE c.patient_id = patient));
	PERFORM medpro.audit_append(v_clinic, @extschema@.medpro_current_user_id(), 'patient_export', 'patients',
								patient::text, NULL,
								jsonb_build_object('appointments', jsonb_array_length(v_doc -> 'appointments'),
												   'documents', jsonb_array_length(v_doc -> 'documents'),
												   'consents', jsonb_array_length(v_doc -> 'consents')),
								medpro.request_ip());
	RETURN v_doc;
END
$$;
COMMENT ON FUNCTION medpro_patient_export(uuid)
	IS 'every piece of a patient''s data in the current clinic (patient, appointments and their items, documents, consents, soft-deleted rows included) as one jsonb document; admins and doctors; audited';

CREATE FUNCTION medpro_patient_erase(patient uuid, reason text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_clinic uuid := @extschema@.medpro_current_clinic();
	v_country text;
	v_tz text;
	v_policy medpro.retention_policies;
	v_created timestamptz;
	v_last timestamptz;
	v_until date;
	v_today date;
	v_expired boolean;
	v_marketing integer;
	v_documents integer;
	v_appointments integer;
	v_consents integer;
	v_deleted boolean;
	v_report jsonb;
	v_erased text[] := ARRAY['email', 'phone', 'address', 'email_verified_at', 'marketing consents'];
	v_kept jsonb := '[]';
BEGIN
	IF @extschema@.medpro_current_role() <> 'admin' THEN
		RAISE EXCEPTION 'permission denied to erase patient data'
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only clinic admins may erase a patient''s data.';
	END IF;
	IF patient IS NULL THEN
		RAISE EXCEPTION 'patient must not be null' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF reason IS NULL OR btrim(reason) = '' THEN
		RAISE EXCEPTION 'reason must not be empty' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Say why the data is erased, e.g. the date and channel of the patient''s request.';
	END IF;
	SELECT c.country, coalesce(c.timezone, d.timezone) INTO v_country, v_tz
	  FROM medpro.clinics c JOIN medpro.country_defaults d ON d.country = c.country
	 WHERE c.id = v_clinic;
	SELECT * INTO v_policy FROM medpro.retention_policies r WHERE r.country = v_country;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no retention policy for country %', v_country USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Add a row to medpro.retention_policies.';
	END IF;

	SELECT p.created_at, p.deleted_at IS NOT NULL INTO v_created, v_deleted
	  FROM medpro.ft_patients p WHERE p.id = patient;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'patient % does not exist', patient USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- clinic.* never writes a soft-deleted row (nor, therefore, this function).
	IF v_deleted THEN
		RAISE EXCEPTION 'patient % is deleted', patient USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = 'An erased or soft-deleted patient cannot be written through clinic.*.',
			HINT = 'Erase a patient before deleting it; an erasure after the retention period also deletes the patient.';
	END IF;

	-- The last visit: the latest appointment that took place (not
	-- cancelled, started) or document issued; the record's creation when
	-- there is neither.
	SELECT max(a.start_time), count(*) INTO v_last, v_appointments FROM medpro.ft_appointments a
	 WHERE a.patient_id = patient AND a.status <> 'cancelled' AND a.start_time <= now();
	SELECT greatest(v_last, max(d.issued_at)), count(*) INTO v_last, v_documents FROM medpro.ft_documents d
	 WHERE d.patient_id = patient;
	v_last := coalesce(v_last, v_created);
	v_today := (now() AT TIME ZONE v_tz)::date;
	v_until := ((v_last AT TIME ZONE v_tz)::date + make_interval(years => v_policy.years))::date;
	v_expired := v_today >= v_until;

	-- Contact and marketing data go at once.
	UPDATE medpro.ft_consents c SET status = 'revoked'
	 WHERE c.patient_id = patient AND c.status = 'accepted'
	   AND c.consent_template_id IN (SELECT t.id FROM medpro.ft_consent_templates t WHERE t.type = 'marketing');
	GET DIAGNOSTICS v_marketing = ROW_COUNT;

	IF v_expired THEN
		UPDATE medpro.ft_patients p
		   SET email = NULL, phone = NULL, address = '{}', email_verified_at = NULL, is_active = false,
			   first_name = 'erased', last_name = 'erased', date_of_birth = NULL, gender = NULL,
			   social_security_number = NULL, medical_history = NULL, allergies = NULL, notes = NULL,
			   deleted_at = coalesce(p.deleted_at, now())
		 WHERE p.id = patient;
		UPDATE medpro.ft_appointments a
		   SET title = NULL, notes = NULL, cancellation_reason = NULL
		 WHERE a.patient_id = patient;
		v_erased := v_erased || ARRAY['first_name', 'last_name', 'date_of_birth', 'gender',
									   'social_security_number', 'medical_history', 'allergies', 'notes',
									   'appointment titles and notes'];
		IF v_documents > 0 THEN
			v_kept := v_kept || jsonb_build_object(
				'data', 'documents',
				'count', v_documents,
				'reason', 'issued quotes, invoices and credit notes are accounting records that are never altered; they hold no contact data',
				'until', NULL);
		END IF;
		SELECT count(*) INTO v_consents FROM medpro.ft_consents c WHERE c.patient_id = patient;
		IF v_consents > 0 THEN
			v_kept := v_kept || jsonb_build_object(
				'data', 'consents (text shown, answer, signature time, method, IP address, device)',
				'count', v_consents,
				'reason', 'consents record what the patient was asked and answered; a signed consent is never altered',
				'until', NULL);
		END IF;
	ELSE
		UPDATE medpro.ft_patients p
		   SET email = NULL, phone = NULL, address = '{}', email_verified_at = NULL, is_active = false
		 WHERE p.id = patient;
		v_kept := v_kept || jsonb_build_object(
			'data', 'identity (patient_number, first_name, last_name, date_of_birth, gender, social_security_number)',
			'reason', 'identifies the medical and invoicing records under retention',
			'until', v_until);
		v_kept := v_kept || jsonb_build_object(
			'data', 'medical record (medical_history, allergies, notes, appointments and their items)',
			'count', v_appointments,
			'reason', v_policy.legal_basis,
			'until', v_until);
		v_kept := v_kept || jsonb_build_object(
			'data', 'documents',
			'count', v_documents,
			'reason', 'invoicing records under the same retention (' || v_policy.years || ' years from the last visit)',
			'until', v_until);
		v_kept := v_kept || jsonb_build_object(
			'data', 'consents other than marketing',
			'reason', 'proof of the patient''s consent to care and data processing',
			'until', v_until);
	END IF;

	v_report := jsonb_build_object(
		'patient_id', patient,
		'erased_at', now(),
		'reason', reason,
		'retention', jsonb_build_object('country', v_country, 'years', v_policy.years,
										'last_visit', v_last, 'kept_until', v_until,
										'expired', v_expired),
		'erased', to_jsonb(v_erased),
		'marketing_consents_revoked', v_marketing,
		'kept', v_kept);
	PERFORM medpro.audit_append(v_clinic, @extschema@.medpro_current_user_id(), 'patient_erase', 'patients',
								patient::text, NULL, v_report, medpro.request_ip());
	RETURN v_report;
END
$$;
COMMENT ON FUNCTION medpro_patient_erase(uuid, text)
	IS 'GDPR erasure of a patient of the current clinic: contact and marketing data at once; identity and medical records once the country''s retention (medpro.retention_policies, from the last visit) has passed; returns what was erased and what was kept and why; clinic admins; audited';

REVOKE ALL ON FUNCTION medpro_free_slots(uuid, date, interval),
	medpro_consent_sign(uuid, uuid, text, text, boolean),
	medpro_patient_export(uuid), medpro_patient_erase(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro_free_slots(uuid, date, interval),
	medpro_consent_sign(uuid, uuid, text, text, boolean),
	medpro_patient_export(uuid), medpro_patient_erase(uuid, text) TO medpro_api;
