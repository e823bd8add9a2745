--
-- auth: the keyring, users, passwords, login, lockout and revocation.
--
-- Clinic rows are inserted directly here (provisioning is tested elsewhere):
-- two active clinics A and B and a suspended one.
INSERT INTO medpro.clinics (id, name, country, email, status) VALUES
	('aaaaaaaa-0000-4000-8000-000000000001', 'Clinique A', 'FR', 'a@clinic.test', 'active'),
	('bbbbbbbb-0000-4000-8000-000000000002', 'Clínica B', 'ES', 'b@clinic.test', 'active'),
	('cccccccc-0000-4000-8000-000000000003', 'Clinique C', 'FR', 'c@clinic.test', 'suspended');

-- Keys: only operators may rotate; the kid goes into token headers.
SET ROLE regress_app;
SELECT regress_try($$SELECT medpro_key_rotate()$$);
SELECT regress_try($$SELECT medpro_key_import('legacy', 'HS256', 'x')$$);
SELECT regress_try($$SELECT medpro_create_super_admin('root@medpro.test', 'correct horse battery')$$);
RESET ROLE;
SET ROLE regress_nobody;
SELECT regress_try($$SELECT medpro_login('a@b.c', 'x')$$);
RESET ROLE;

SET ROLE regress_op;
SELECT regress_try($$SELECT medpro_key_rotate('none')$$);
-- (an unknown name; asymmetric rotation is the keyring's, issue 5 item 2)
SELECT regress_try($$SELECT medpro_key_rotate('RS1024')$$);
SELECT regress_try($$SELECT medpro_key_rotate(NULL)$$);
SELECT medpro_key_rotate() ~ '^mp[0-9a-f]{18}$' AS kid_format;
SELECT medpro_key_rotate('HS512') ~ '^mp[0-9a-f]{18}$' AS kid_format;
RESET ROLE;
-- One active key; the previous one keeps verifying; material is sealed.
SELECT algorithm, status, source, length(secret_sealed) AS sealed_len
  FROM medpro.keys ORDER BY created_at;

-- Operators cannot read sealed material.
SET ROLE regress_op;
SELECT regress_try($$SELECT secret_sealed FROM medpro.keys$$);
SELECT regress_try($$SELECT password_hash FROM medpro.users$$);
SELECT count(*) AS keys_operator_sees FROM (SELECT kid, status FROM medpro.keys) k;
RESET ROLE;

-- Imported keys: the legacy issuer's secret, refused when too short.  Only
-- superusers import: whoever chooses the secret can mint tokens.
SET ROLE regress_op;
SELECT regress_try($$SELECT medpro_key_import('legacy-node', 'HS256', 'legacy-node-backend-secret-0123456789')$$);
RESET ROLE;
SELECT regress_try($$SELECT medpro_key_import('legacy-node', 'HS256', 'short')$$);
SELECT regress_try($$SELECT medpro_key_import('bad kid!', 'HS256', repeat('k', 32))$$);
SELECT regress_try($$SELECT medpro_key_import(NULL, 'HS256', repeat('k', 32))$$);
SELECT regress_try($$SELECT medpro_key_import('legacy-node', 'HS256', NULL)$$);
SELECT medpro_key_import('legacy-node', 'HS256', 'legacy-node-backend-secret-0123456789');
SELECT regress_try($$SELECT medpro_key_import('legacy-node', 'HS256', 'legacy-node-backend-secret-0123456789')$$);
RESET ROLE;
SELECT kid, algorithm, status, source FROM medpro.keys WHERE source = 'imported';

-- Super admin and clinic users.
SET ROLE regress_op;
SELECT regress_try($$SELECT medpro_create_super_admin('not-an-email', 'correct horse battery')$$);
SELECT regress_try($$SELECT medpro_create_super_admin('root@medpro.test', 'short')$$);
SELECT regress_try($$SELECT medpro_create_super_admin('root@medpro.test', NULL)$$);
SELECT regress_try($$SELECT medpro_create_super_admin(NULL, 'correct horse battery')$$);
SELECT regress_try($$SELECT medpro_create_super_admin('root@medpro.test', 'root-is-my-password')$$);
SELECT regress_try($$SELECT medpro_create_super_admin('root@medpro.test', repeat('x', 2000))$$);
SELECT medpro_create_super_admin('Root@Medpro.test', 'correct horse battery') IS NOT NULL AS created;
SELECT regress_try($$SELECT medpro_create_super_admin('root@medpro.test', 'correct horse battery')$$);
SELECT medpro_create_user('admin@a.test', 'alpha clinic pw 1', 'admin', 'Anne', 'Martin',
						  'aaaaaaaa-0000-4000-8000-000000000001') IS NOT NULL AS created;
SELECT medpro_create_user('admin@b.test', 'bravo clinic pw 2', 'admin', 'Bruno', 'García',
						  'bbbbbbbb-0000-4000-8000-000000000002') IS NOT NULL AS created;
SELECT medpro_create_user('doc@c.test', 'doctor c password', 'doctor', NULL, NULL,
						  'cccccccc-0000-4000-8000-000000000003') IS NOT NULL AS created;
SELECT regress_try($$SELECT medpro_create_user('x@a.test', 'a fine password', 'super_admin', NULL, NULL, 'aaaaaaaa-0000-4000-8000-000000000001')$$);
SELECT regress_try($$SELECT medpro_create_user('x@a.test', 'a fine password', 'nurse', NULL, NULL, 'aaaaaaaa-0000-4000-8000-000000000001')$$);
SELECT regress_try($$SELECT medpro_create_user('x@a.test', 'a fine password', 'doctor')$$);
SELECT regress_try($$SELECT medpro_create_user('x@a.test', 'a fine password', 'doctor', NULL, NULL, '99999999-0000-4000-8000-000000000009')$$);
RESET ROLE;

-- Passwords are Argon2id PHC strings with the OWASP parameters, never as given.
SELECT email, role, password_hash ~ '^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$' AS argon2id,
	   position('password' IN password_hash) = 0 AS not_plain
  FROM medpro.users ORDER BY email;

-- Login: claims of DESIGN 5.3, header carries the active kid.
SET ROLE regress_app;
SELECT medpro_login('admin@a.test', 'alpha clinic pw 1') AS tok_a \gset
RESET ROLE;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(payload) k) AS claims,
	   payload->>'iss' AS iss, payload->>'role' AS role, payload->>'email' AS email,
	   payload->>'clinic_id' AS clinic_id, payload->'ver' AS ver,
	   (payload->>'exp')::bigint - (payload->>'iat')::bigint AS lifetime,
	   abs((payload->>'iat')::bigint - extract(epoch FROM now())::bigint) < 60 AS iat_now,
	   header->>'alg' AS alg, header->>'typ' AS typ,
	   header->>'kid' = (SELECT kid FROM medpro.keys WHERE status = 'active') AS active_kid
  FROM (SELECT regress_jwt_part(:'tok_a', 1) AS header, regress_jwt_part(:'tok_a', 2) AS payload) t;
SELECT last_login_at IS NOT NULL AS logged_in FROM medpro.users WHERE email = 'admin@a.test';

-- Email is matched case-insensitively.
SET ROLE regress_app;
SELECT medpro_login('ADMIN@a.test', 'alpha clinic pw 1') IS NOT NULL AS case_insensitive;

-- Unknown email and wrong password: the same 28P01 error.
SELECT regress_try($$SELECT medpro_login('nobody@a.test', 'alpha clinic pw 1')$$);
SELECT regress_try($$SELECT medpro_login('admin@a.test', 'wrong password!!')$$);
SELECT regress_try($$SELECT medpro_login('admin@a.test', '')$$);
SELECT regress_try($$SELECT medpro_login('admin@a.test', repeat('p', 100000))$$);
SELECT regress_try($$SELECT medpro_login(repeat('e', 100000), 'x')$$);
SELECT regress_try($$SELECT medpro_login(NULL, 'x')$$);
SELECT regress_try($$SELECT medpro_login('admin@a.test', NULL)$$);
-- A suspended clinic's user cannot log in.
SELECT regress_try($$SELECT medpro_login('doc@c.test', 'doctor c password')$$);
RESET ROLE;

-- Failures survive the caller's rollback: counter and audit rows.
SELECT failed_logins, locked_until IS NULL AS unlocked FROM medpro.users WHERE email = 'admin@a.test';
SELECT action, new_data->>'reason' AS reason, left(new_data->>'email', 24) AS email, length(new_data->>'email') AS len
  FROM medpro.audit_log WHERE action IN ('login', 'login_failed') ORDER BY id;

-- Lockout: after medpro.login_max_failures failures even the right password fails.
SET medpro.login_max_failures = 3;
SET ROLE regress_app;
SELECT regress_try($$SELECT medpro_login('admin@b.test', 'wrong')$$) FROM generate_series(1, 3);
SELECT regress_try($$SELECT medpro_login('admin@b.test', 'bravo clinic pw 2')$$);
RESET ROLE;
RESET medpro.login_max_failures;
SELECT failed_logins, locked_until > now() AS locked FROM medpro.users WHERE email = 'admin@b.test';
SELECT action, new_data->>'reason' AS reason FROM medpro.audit_log
 WHERE user_id = (SELECT id FROM medpro.users WHERE email = 'admin@b.test') ORDER BY id;
-- When the lock expires the right password works again and resets the counter.
UPDATE medpro.users SET locked_until = now() - interval '1 second' WHERE email = 'admin@b.test';
SET ROLE regress_app;
SELECT medpro_login('admin@b.test', 'bravo clinic pw 2') IS NOT NULL AS unlocked;
RESET ROLE;
SELECT failed_logins FROM medpro.users WHERE email = 'admin@b.test';
-- Attempts during a lock do not extend it, and an expired lock starts a new count.
UPDATE medpro.users SET failed_logins = 5, locked_until = now() + interval '1 hour' WHERE email = 'admin@b.test';
SELECT locked_until AS lock_before FROM medpro.users WHERE email = 'admin@b.test' \gset
SET ROLE regress_app;
SELECT regress_try($$SELECT medpro_login('admin@b.test', 'wrong')$$);
RESET ROLE;
SELECT locked_until = :'lock_before' AS lock_not_extended, failed_logins FROM medpro.users WHERE email = 'admin@b.test';
UPDATE medpro.users SET locked_until = now() - interval '1 second' WHERE email = 'admin@b.test';
SET ROLE regress_app;
SELECT regress_try($$SELECT medpro_login('admin@b.test', 'wrong')$$);
RESET ROLE;
SELECT failed_logins, locked_until IS NULL AS unlocked FROM medpro.users WHERE email = 'admin@b.test';
UPDATE medpro.users SET failed_logins = 0 WHERE email = 'admin@b.test';

-- No audit row holds a password, a token or key material.
SELECT count(*) AS leaking_rows FROM medpro.audit_log
 WHERE concat(new_data::text, old_data::text) ~ '(alpha clinic pw|bravo clinic pw|wrong password!!|"wrong"|pppp|eyJ|argon2)';

-- Clinic admins create users in their own clinic only.
SET ROLE regress_app;
SELECT regress_try($$SELECT medpro_create_user('doc@a.test', 'doctor a password', 'doctor')$$);
BEGIN;
SELECT medpro_authenticate(:'tok_a') IS NOT NULL AS authenticated;
SELECT medpro_create_user('doc@a.test', 'doctor a password', 'doctor', 'Paul', 'Durand') IS NOT NULL AS created;
SELECT medpro_create_user('sec@a.test', 'secretary a pass', 'secretary') IS NOT NULL AS created;
SELECT regress_try($$SELECT medpro_create_user('doc2@a.test', 'doctor a password', 'doctor', NULL, NULL, 'bbbbbbbb-0000-4000-8000-000000000002')$$);
SELECT regress_try($$SELECT medpro_create_user('admin@b.test', 'doctor a password', 'doctor')$$);
COMMIT;
SELECT medpro_login('doc@a.test', 'doctor a password') AS tok_doc \gset
BEGIN;
SELECT medpro_authenticate(:'tok_doc') IS NOT NULL AS authenticated;
SELECT regress_try($$SELECT medpro_create_user('x@a.test', 'doctor a password', 'doctor')$$);
-- A doctor may revoke their own tokens but not another user's.
SELECT regress_try($$SELECT medpro_revoke_tokens((SELECT medpro_current_user_id()))$$);
COMMIT;
RESET ROLE;
SELECT u.email, u.role, c.name AS clinic FROM medpro.users u LEFT JOIN medpro.clinics c ON c.id = u.clinic_id
 ORDER BY u.email;

-- Revocation: every earlier token of the user fails.
SELECT id AS admin_b FROM medpro.users WHERE email = 'admin@b.test' \gset
SELECT id AS root_id FROM medpro.users WHERE email = 'root@medpro.test' \gset
SET ROLE regress_app;
SELECT medpro_login('admin@a.test', 'alpha clinic pw 1') AS tok_a2 \gset
BEGIN;
SELECT medpro_authenticate(:'tok_a2') IS NOT NULL AS authenticated;
-- an admin cannot revoke another clinic's user, nor a super admin
SELECT regress_try(format('SELECT medpro_revoke_tokens(%L)', :'admin_b'));
SELECT regress_try(format('SELECT medpro_revoke_tokens(%L)', :'root_id'));
COMMIT;
RESET ROLE;
SET ROLE regress_op;
SELECT medpro_revoke_tokens((SELECT id FROM medpro.users WHERE email = 'admin@a.test'));
SELECT regress_try($$SELECT medpro_revoke_tokens('99999999-0000-4000-8000-000000000009')$$);
SELECT regress_try($$SELECT medpro_revoke_tokens(NULL)$$);
RESET ROLE;
SET ROLE regress_app;
SELECT regress_try(format('SELECT medpro_authenticate(%L)', :'tok_a'));
SELECT regress_try(format('SELECT medpro_authenticate(%L)', :'tok_a2'));
SELECT medpro_authenticate(medpro_login('admin@a.test', 'alpha clinic pw 1')) ->> 'ver' AS new_ver;
RESET ROLE;

-- Retiring a key makes its tokens fail and erases its material.
SET ROLE regress_op;
SELECT regress_try($$SELECT medpro_key_retire('no-such-key')$$);
RESET ROLE;
SET ROLE regress_app;
SELECT medpro_login('admin@a.test', 'alpha clinic pw 1') AS tok_a3 \gset
RESET ROLE;
SET ROLE regress_op;
SELECT medpro_key_rotate() AS new_kid \gset
RESET ROLE;
SET ROLE regress_app;
SELECT medpro_authenticate(:'tok_a3') ->> 'email' AS older_key_still_verifies;
RESET ROLE;
SET ROLE regress_op;
SELECT medpro_key_retire(kid) FROM medpro.keys WHERE status = 'verify' AND source = 'generated';
SELECT medpro_key_retire(kid) FROM medpro.keys WHERE status = 'retired';
RESET ROLE;
SET ROLE regress_app;
SELECT regress_try(format('SELECT medpro_authenticate(%L)', :'tok_a3'));
RESET ROLE;
SELECT status, secret_sealed IS NULL AS erased, count(*) FROM medpro.keys GROUP BY 1, 2 ORDER BY 1;
