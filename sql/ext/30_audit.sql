-- medpro install script, part 30: appending to the audit trail.

CREATE FUNCTION medpro.audit_append(clinic_id uuid, user_id uuid, action text,
									entity text, entity_id text,
									old_data jsonb, new_data jsonb, ip inet)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	INSERT INTO medpro.audit_log (clinic_id, user_id, action, entity, entity_id,
								  old_data, new_data, ip)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8);
$$;
COMMENT ON FUNCTION medpro.audit_append(uuid, uuid, text, text, text, jsonb, jsonb, inet)
	IS 'internal: appends one row to medpro.audit_log (callers strip secrets first)';
REVOKE ALL ON FUNCTION medpro.audit_append(uuid, uuid, text, text, text, jsonb, jsonb, inet) FROM PUBLIC;
