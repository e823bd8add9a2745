-- medpro install script, part 45: accounts (docs/security.md, "Accounts").
--
-- The password policy (at least 12 characters; not the account's email
-- nor the clinic's name), medpro_change_password for the current user,
-- medpro_set_user_active for admins, and a trigger that revokes every
-- token of a user (token_version + 1) whenever the user is deactivated or
-- deleted, or their password or role changes, by whatever path.
-- Lockout after medpro.login_max_failures failed logins for
-- medpro.login_lockout seconds is in 40_auth.sql (medpro.login_failed).

CREATE FUNCTION medpro.password_hash(password text, email text, clinic_id uuid) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_name text;
	v_pw text := lower(password);
	-- letters and digits only, so "Cabinet-Martin" is found in "cabinetmartin!"
	v_pw_compact text := regexp_replace(lower(password), '[^[:alnum:]]', '', 'g');
	v_name_compact text;
BEGIN
	IF password IS NOT NULL AND email IS NOT NULL AND strpos(v_pw, lower(email)) > 0 THEN
		RAISE EXCEPTION 'password must not contain the account''s email address'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT c.name INTO v_name FROM medpro.clinics c WHERE c.id = password_hash.clinic_id;
	v_name_compact := regexp_replace(lower(coalesce(v_name, '')), '[^[:alnum:]]', '', 'g');
	IF password IS NOT NULL AND length(v_name_compact) >= 4
	   AND (strpos(v_pw, lower(btrim(v_name))) > 0 OR strpos(v_pw_compact, v_name_compact) > 0) THEN
		RAISE EXCEPTION 'password must not contain the clinic''s name'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN medpro.password_hash(password, email);
END
$$;
COMMENT ON FUNCTION medpro.password_hash(text, text, uuid)
	IS 'internal: the password policy for a user of a clinic (length, email, clinic name), then an Argon2id PHC string';

-- Revoke a user's tokens whenever the account changes in a way that must
-- end its sessions.
CREATE FUNCTION medpro.users_revoke_on_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF (OLD.is_active AND NOT NEW.is_active)
	   OR (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
	   OR NEW.password_hash IS DISTINCT FROM OLD.password_hash
	   OR NEW.role IS DISTINCT FROM OLD.role
	   OR NEW.clinic_id IS DISTINCT FROM OLD.clinic_id THEN
		NEW.token_version := greatest(NEW.token_version, OLD.token_version + 1);
	END IF;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION medpro.users_revoke_on_change()
	IS 'trigger: a deactivated or deleted user, or a new password, role or clinic, invalidates every earlier token';
CREATE TRIGGER users_revoke_on_change BEFORE UPDATE ON medpro.users
	FOR EACH ROW EXECUTE FUNCTION medpro.users_revoke_on_change();

CREATE FUNCTION medpro_change_password(old_password text, new_password text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_ctx record := medpro.context();
	v_user record;
BEGIN
	IF v_ctx.user_id IS NULL THEN
		RAISE EXCEPTION 'no clinic selected' USING ERRCODE = 'insufficient_privilege',
			HINT = 'Call medpro_authenticate() with a valid token first.';
	END IF;
	SELECT u.id, u.email, u.clinic_id, u.password_hash,
		   coalesce(u.locked_until > clock_timestamp(), false) AS locked
	  INTO v_user
	  FROM medpro.users u
	 WHERE u.id = v_ctx.user_id AND u.is_active AND u.deleted_at IS NULL;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'invalid token: user inactive' USING ERRCODE = 'invalid_authorization_specification';
	END IF;
	-- The old password counts like a login: failures lock the account.
	-- (No row lock before this point: the failure is recorded by another
	-- connection, which would wait for it.)
	IF old_password IS NULL OR v_user.locked
	   OR NOT medpro.crypto_password_verify(v_user.password_hash, old_password) THEN
		PERFORM medpro.autonomous(format(
			'SELECT medpro.login_failed(%L::uuid, %L, %L, NULL, %L::integer, %L::integer)',
			v_user.id, v_user.email,
			CASE WHEN v_user.locked THEN 'account locked' ELSE 'wrong password (password change)' END,
			current_setting('medpro.login_max_failures')::int,
			extract(epoch FROM current_setting('medpro.login_lockout')::interval)::int));
		RAISE EXCEPTION 'invalid email or password' USING ERRCODE = 'invalid_password';
	END IF;
	IF new_password IS NULL THEN
		RAISE EXCEPTION 'password must not be null' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF new_password = old_password THEN
		RAISE EXCEPTION 'the new password must differ from the old one' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE medpro.users u
	   SET password_hash = medpro.password_hash(new_password, v_user.email, v_user.clinic_id),
		   failed_logins = 0, locked_until = NULL, updated_at = now()
	 WHERE u.id = v_user.id;
	PERFORM medpro.audit_append(v_user.clinic_id, v_user.id, 'password_change', 'user', v_user.id::text,
								NULL, NULL, inet_client_addr());
END
$$;
COMMENT ON FUNCTION medpro_change_password(text, text)
	IS 'changes the current user''s password (the old one is checked like a login) and revokes every earlier token';

CREATE FUNCTION medpro_set_user_active(user_id uuid, active boolean) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_ctx record;
	v_target record;
BEGIN
	IF user_id IS NULL OR active IS NULL THEN
		RAISE EXCEPTION 'user_id and active must not be null' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT u.clinic_id, u.role INTO v_target FROM medpro.users u
	 WHERE u.id = medpro_set_user_active.user_id AND u.deleted_at IS NULL;
	IF NOT medpro.caller_is_operator() THEN
		v_ctx := medpro.context();
		IF v_ctx.role IS NULL THEN
			RAISE EXCEPTION 'no clinic selected' USING ERRCODE = 'insufficient_privilege';
		END IF;
		-- an unknown user and another clinic's user get the same answer
		IF NOT coalesce(v_ctx.role = 'super_admin'
						OR (v_ctx.role = 'admin' AND v_target.clinic_id = v_ctx.clinic_id
							AND v_target.role <> 'super_admin'), false) THEN
			RAISE EXCEPTION 'permission denied to change this user' USING ERRCODE = 'insufficient_privilege',
				HINT = 'Only clinic admins (for their clinic) and super admins manage users.';
		END IF;
		IF v_ctx.user_id = medpro_set_user_active.user_id AND NOT active THEN
			RAISE EXCEPTION 'you cannot deactivate yourself' USING ERRCODE = 'invalid_parameter_value';
		END IF;
	END IF;
	UPDATE medpro.users u SET is_active = active, updated_at = now()
	 WHERE u.id = medpro_set_user_active.user_id AND u.deleted_at IS NULL AND u.is_active IS DISTINCT FROM active;
	IF NOT FOUND AND v_target IS NULL THEN
		RAISE EXCEPTION 'user % does not exist', user_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM medpro.audit_append(v_target.clinic_id, (medpro.context()).user_id,
								CASE WHEN active THEN 'user_activate' ELSE 'user_deactivate' END,
								'user', user_id::text, NULL, NULL, inet_client_addr());
END
$$;
COMMENT ON FUNCTION medpro_set_user_active(uuid, boolean)
	IS 'activates or deactivates a user; deactivating revokes every token at once (clinic admins for their clinic, super admins, operators)';

REVOKE ALL ON FUNCTION medpro.password_hash(text, text, uuid), medpro.users_revoke_on_change(),
	medpro_change_password(text, text), medpro_set_user_active(uuid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro_change_password(text, text), medpro_set_user_active(uuid, boolean)
	TO medpro_api, medpro_operator;
