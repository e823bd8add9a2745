-- medpro install script, part 40: keys, users, login and the tenant context.
--
-- Privileged work happens in SECURITY DEFINER functions with a pinned
-- search_path; every object they touch is schema-qualified.  Who may call
-- what is decided twice: by EXECUTE grants (medpro_api, medpro_operator) and,
-- inside, by the caller's database role (operators) or the verified tenant
-- context (clinic admins, super admins).

-- Internal C helpers (not callable by PUBLIC). ------------------------------

CREATE FUNCTION medpro.caller_is_operator() RETURNS boolean
	AS 'MODULE_PATHNAME', 'medpro_caller_is_operator' LANGUAGE C STABLE;
COMMENT ON FUNCTION medpro.caller_is_operator()
	IS 'internal: whether the session''s current role (outside any SECURITY DEFINER function) is a superuser or has medpro_operator''s privileges';

CREATE FUNCTION medpro.context(OUT clinic_id uuid, OUT user_id uuid, OUT role text)
	AS 'MODULE_PATHNAME', 'medpro_context' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION medpro.context()
	IS 'internal: the verified tenant context, NULLs when there is none';

CREATE FUNCTION medpro.password_hash(password text, email text) RETURNS text
	AS 'MODULE_PATHNAME', 'medpro_password_hash' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION medpro.password_hash(text, text)
	IS 'internal: checks the password policy and returns an Argon2id PHC string';

CREATE FUNCTION medpro.check_email(email text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF email IS NULL OR length(email) > 254
	   OR email !~ '^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$' THEN
		RAISE EXCEPTION 'invalid email address' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN lower(email);
END
$$;
COMMENT ON FUNCTION medpro.check_email(text)
	IS 'internal: validates an email address and returns it in lower case (22023 when invalid)';

CREATE FUNCTION medpro.login_failed(user_id uuid, email text, reason text, ip inet,
									max_failures integer, lockout_seconds integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_clinic uuid;
	v_failures integer;
BEGIN
	IF user_id IS NOT NULL THEN
		-- An expired lock starts a new count; attempts during a lock do not
		-- extend it (so nobody can keep an account locked for ever).
		UPDATE medpro.users u
		   SET failed_logins = CASE WHEN u.locked_until <= clock_timestamp() THEN 1
									ELSE u.failed_logins + 1 END,
			   locked_until = CASE WHEN u.locked_until > clock_timestamp() THEN u.locked_until
								   WHEN u.locked_until IS NULL AND u.failed_logins + 1 >= max_failures
								   THEN clock_timestamp() + make_interval(secs => lockout_seconds)
								   WHEN u.locked_until IS NOT NULL AND 1 >= max_failures
								   THEN clock_timestamp() + make_interval(secs => lockout_seconds)
								   WHEN u.locked_until IS NOT NULL THEN NULL
								   ELSE u.locked_until END
		 WHERE u.id = user_id
		RETURNING u.clinic_id, u.failed_logins INTO v_clinic, v_failures;
	END IF;
	PERFORM medpro.audit_append(v_clinic, user_id, 'login_failed', 'user', user_id::text, NULL,
								jsonb_build_object('email', email, 'reason', reason,
												   'failed_logins', v_failures), ip);
	IF v_failures = max_failures THEN
		PERFORM medpro.audit_append(v_clinic, user_id, 'account_locked', 'user', user_id::text, NULL,
									jsonb_build_object('until', clock_timestamp() + make_interval(secs => lockout_seconds)), ip);
	END IF;
END
$$;
COMMENT ON FUNCTION medpro.login_failed(uuid, text, text, inet, integer, integer)
	IS 'internal: records a failed login (counter, lockout, audit); runs autonomously over the loopback connection';

CREATE FUNCTION medpro.login_succeeded(user_id uuid, clinic_id uuid, email text, kid text, ip inet)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	UPDATE medpro.users u
	   SET failed_logins = 0, locked_until = NULL, last_login_at = clock_timestamp()
	 WHERE u.id = user_id;
	PERFORM medpro.audit_append(clinic_id, user_id, 'login', 'user', user_id::text, NULL,
								jsonb_build_object('email', email, 'kid', kid), ip);
END
$$;
COMMENT ON FUNCTION medpro.login_succeeded(uuid, uuid, text, text, inet)
	IS 'internal: records a successful login (counter reset, audit); runs autonomously over the loopback connection';

REVOKE ALL ON FUNCTION medpro.login_succeeded(uuid, uuid, text, text, inet) FROM PUBLIC;
REVOKE ALL ON FUNCTION medpro.caller_is_operator(), medpro.context(),
	medpro.password_hash(text, text), medpro.check_email(text),
	medpro.login_failed(uuid, text, text, inet, integer, integer) FROM PUBLIC;

-- Keys. ---------------------------------------------------------------------

CREATE FUNCTION medpro_key_rotate(algorithm text DEFAULT 'HS256') RETURNS text
	AS 'MODULE_PATHNAME', 'medpro_key_rotate'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION medpro_key_rotate(text)
	IS 'makes a new active signing key (stored sealed) and returns its kid; older keys keep verifying until retired (operators)';

CREATE FUNCTION medpro_key_import(kid text, algorithm text, key text, issuer text DEFAULT NULL)
RETURNS void
	AS 'MODULE_PATHNAME', 'medpro_key_import'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION medpro_key_import(text, text, text, text)
	IS 'imports a verify-only key of an existing issuer: an HMAC secret (stored sealed) or a PEM public key; issuer, when given, is required as iss (superusers only)';

CREATE FUNCTION medpro_key_retire(kid text) RETURNS void
	AS 'MODULE_PATHNAME', 'medpro_key_retire'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION medpro_key_retire(text)
	IS 'retires a key: tokens it signed stop verifying and its sealed material is erased (operators)';

CREATE FUNCTION medpro_jwks() RETURNS jsonb
	AS 'MODULE_PATHNAME', 'medpro_jwks'
	LANGUAGE C STABLE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION medpro_jwks()
	IS 'the RFC 7517 JWK Set of the public keys of every non-retired RSA, EC and Ed25519 key (never an HMAC secret)';

-- Users. --------------------------------------------------------------------

CREATE FUNCTION medpro_create_super_admin(email text, password text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_email text;
	v_id uuid;
BEGIN
	IF NOT medpro.caller_is_operator() THEN
		RAISE EXCEPTION 'permission denied to create a super admin'
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only members of medpro_operator may create super admins.';
	END IF;
	v_email := medpro.check_email(email);
	BEGIN
		INSERT INTO medpro.users (email, password_hash, role)
		VALUES (v_email, medpro.password_hash(password, v_email), 'super_admin')
		RETURNING id INTO v_id;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'a user with this email already exists' USING ERRCODE = 'unique_violation';
	END;
	PERFORM medpro.audit_append(NULL, v_id, 'user_create', 'user', v_id::text, NULL,
								jsonb_build_object('email', v_email, 'role', 'super_admin'), NULL);
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION medpro_create_super_admin(text, text)
	IS 'creates a super_admin user, not bound to any clinic (operators)';

CREATE FUNCTION medpro_create_user(email text, password text, role text,
								   first_name text DEFAULT NULL, last_name text DEFAULT NULL,
								   clinic_id uuid DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_ctx record;
	v_clinic uuid := clinic_id;
	v_email text;
	v_status text;
	v_id uuid;
BEGIN
	IF role IS NULL OR role NOT IN ('admin', 'doctor', 'secretary') THEN
		RAISE EXCEPTION 'invalid role "%"', role
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'The role must be admin, doctor or secretary; use medpro_create_super_admin() for super admins.';
	END IF;
	IF NOT medpro.caller_is_operator() THEN
		v_ctx := medpro.context();
		IF v_ctx.role IS NULL THEN
			RAISE EXCEPTION 'no clinic selected' USING ERRCODE = 'insufficient_privilege';
		ELSIF v_ctx.role = 'admin' THEN
			IF v_clinic IS NULL THEN
				v_clinic := v_ctx.clinic_id;
			ELSIF v_clinic IS DISTINCT FROM v_ctx.clinic_id THEN
				RAISE EXCEPTION 'permission denied to create users in another clinic'
					USING ERRCODE = 'insufficient_privilege';
			END IF;
		ELSIF v_ctx.role <> 'super_admin' THEN
			RAISE EXCEPTION 'permission denied to create users'
				USING ERRCODE = 'insufficient_privilege',
					  HINT = 'Only clinic admins and super admins manage users.';
		END IF;
	END IF;
	IF v_clinic IS NULL THEN
		RAISE EXCEPTION 'clinic_id is required' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT c.status INTO v_status FROM medpro.clinics c
	 WHERE c.id = v_clinic AND c.deleted_at IS NULL;
	IF NOT FOUND OR v_status IN ('dropping', 'dropped', 'failed') THEN
		RAISE EXCEPTION 'clinic % does not exist', v_clinic USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_email := medpro.check_email(email);
	BEGIN
		INSERT INTO medpro.users (clinic_id, email, password_hash, role, first_name, last_name)
		VALUES (v_clinic, v_email, medpro.password_hash(password, v_email, v_clinic), role,
				first_name, last_name)
		RETURNING id INTO v_id;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'a user with this email already exists' USING ERRCODE = 'unique_violation';
	END;
	PERFORM medpro.audit_append(v_clinic, (medpro.context()).user_id, 'user_create', 'user',
								v_id::text, NULL,
								jsonb_build_object('email', v_email, 'role', role,
												   'first_name', first_name, 'last_name', last_name),
								NULL);
	RETURN v_id;
END
$$;
COMMENT ON FUNCTION medpro_create_user(text, text, text, text, text, uuid)
	IS 'creates a clinic user (admin, doctor or secretary): clinic admins for their own clinic, super admins and operators for any';

CREATE FUNCTION medpro_revoke_tokens(user_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_ctx record;
	v_clinic uuid;
BEGIN
	IF user_id IS NULL THEN
		RAISE EXCEPTION 'user_id must not be null' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT u.clinic_id INTO v_clinic FROM medpro.users u WHERE u.id = user_id;
	IF NOT medpro.caller_is_operator() THEN
		v_ctx := medpro.context();
		IF v_ctx.role IS NULL THEN
			RAISE EXCEPTION 'no clinic selected' USING ERRCODE = 'insufficient_privilege';
		END IF;
		-- coalesce: a NULL comparison (a super admin has no clinic) must deny
		IF NOT coalesce(v_ctx.role = 'super_admin'
						OR v_ctx.user_id = user_id
						OR (v_ctx.role = 'admin' AND v_clinic IS NOT NULL
							AND v_clinic = v_ctx.clinic_id), false) THEN
			RAISE EXCEPTION 'permission denied to revoke this user''s tokens'
				USING ERRCODE = 'insufficient_privilege';
		END IF;
	END IF;
	UPDATE medpro.users u SET token_version = u.token_version + 1, updated_at = now()
	 WHERE u.id = user_id;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'user % does not exist', user_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM medpro.audit_append(v_clinic, (medpro.context()).user_id, 'tokens_revoke', 'user',
								user_id::text, NULL, NULL, NULL);
END
$$;
COMMENT ON FUNCTION medpro_revoke_tokens(uuid)
	IS 'makes every token issued so far to this user fail (the user, their clinic admin, super admins, operators)';

-- Login and the tenant context. ---------------------------------------------

CREATE FUNCTION medpro_login(email text, password text) RETURNS text
	AS 'MODULE_PATHNAME', 'medpro_login'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION medpro_login(text, text)
	IS 'checks email and password and returns an access token signed with the active key; 28P01 on any failure';

CREATE FUNCTION medpro_authenticate(token text, session boolean DEFAULT false) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'medpro_authenticate'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION medpro_authenticate(text, boolean)
	IS 'verifies a token against the keyring, the user and the clinic, then sets the tenant context (until transaction end, or for the session) and returns the claims';

CREATE FUNCTION medpro_pre_request() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_headers jsonb;
	v_auth text;
BEGIN
	PERFORM @extschema@.medpro_reset();
	BEGIN
		v_headers := nullif(current_setting('request.headers', true), '')::jsonb;
	EXCEPTION WHEN invalid_text_representation THEN
		RAISE EXCEPTION 'invalid token: malformed request headers'
			USING ERRCODE = 'invalid_authorization_specification';
	END;
	IF v_headers IS NULL OR jsonb_typeof(v_headers) <> 'object' THEN
		RETURN;
	END IF;
	v_auth := v_headers ->> 'authorization';
	IF v_auth IS NULL THEN
		RETURN;
	END IF;
	IF v_auth !~* '^bearer [A-Za-z0-9._-]+$' THEN
		RAISE EXCEPTION 'invalid token: malformed authorization header'
			USING ERRCODE = 'invalid_authorization_specification';
	END IF;
	PERFORM @extschema@.medpro_authenticate(substr(v_auth, 8), false);
END
$$;
COMMENT ON FUNCTION medpro_pre_request()
	IS 'for PostgREST db-pre-request: authenticates the bearer token of request.headers (no header: no context)';

CREATE FUNCTION medpro_current_clinic() RETURNS uuid
	AS 'MODULE_PATHNAME', 'medpro_current_clinic' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION medpro_current_clinic() IS 'the clinic of the tenant context; 42501 without one';
CREATE FUNCTION medpro_current_user_id() RETURNS uuid
	AS 'MODULE_PATHNAME', 'medpro_current_user_id' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION medpro_current_user_id() IS 'the user of the tenant context; 42501 without one';
CREATE FUNCTION medpro_current_role() RETURNS text
	AS 'MODULE_PATHNAME', 'medpro_current_role' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION medpro_current_role() IS 'the application role of the tenant context; 42501 without one';
CREATE FUNCTION medpro_reset() RETURNS void
	AS 'MODULE_PATHNAME', 'medpro_reset' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION medpro_reset() IS 'clears the tenant context';

-- Grants. -------------------------------------------------------------------

REVOKE ALL ON FUNCTION medpro_key_rotate(text), medpro_key_import(text, text, text, text),
	medpro_key_retire(text), medpro_jwks(), medpro_create_super_admin(text, text),
	medpro_create_user(text, text, text, text, text, uuid), medpro_revoke_tokens(uuid),
	medpro_login(text, text), medpro_authenticate(text, boolean), medpro_pre_request(),
	medpro_current_clinic(), medpro_current_user_id(), medpro_current_role(), medpro_reset()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro_login(text, text), medpro_authenticate(text, boolean),
	medpro_pre_request(), medpro_current_clinic(), medpro_current_user_id(),
	medpro_current_role(), medpro_reset(), medpro_jwks(),
	medpro_create_user(text, text, text, text, text, uuid), medpro_revoke_tokens(uuid)
	TO medpro_api, medpro_operator;
GRANT EXECUTE ON FUNCTION medpro_key_rotate(text),
	medpro_key_retire(text), medpro_create_super_admin(text, text)
	TO medpro_operator;
