-- medpro install script, part 75: encrypted clinic columns (src/fieldcrypt.c).
--
-- Each clinic has data keys: 64 random bytes (an AES-256-GCM key and a
-- blind-index HMAC key) sealed under the master key, one version active.
-- patients.social_security_number is encrypted before it reaches the
-- clinic database (clinic migration 020); medpro_rotate_clinic_key()
-- re-encrypts a clinic's rows under a new version, in resumable batches.

CREATE TABLE medpro.clinic_keys (
	clinic_id	uuid NOT NULL REFERENCES medpro.clinics (id),
	version		integer NOT NULL CHECK (version > 0),
	key_sealed	bytea,			-- NULL once retired: the key is erased
	status		text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retiring', 'retired')),
	created_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (clinic_id, version),
	CHECK ((status = 'retired') = (key_sealed IS NULL))
);
CREATE UNIQUE INDEX clinic_keys_one_active ON medpro.clinic_keys (clinic_id) WHERE status = 'active';
COMMENT ON TABLE medpro.clinic_keys IS 'per-clinic data keys for encrypted columns, sealed under the master key';
SELECT pg_catalog.pg_extension_config_dump('medpro.clinic_keys', '');
REVOKE ALL ON medpro.clinic_keys FROM PUBLIC;
GRANT SELECT (clinic_id, version, status, created_at) ON medpro.clinic_keys TO medpro_operator;

ALTER FOREIGN TABLE medpro.ft_patients
	ALTER COLUMN social_security_number OPTIONS (ADD encrypted 'true');

CREATE FUNCTION medpro_rotate_clinic_key(clinic uuid, batch_size integer DEFAULT 500) RETURNS bigint
	AS 'MODULE_PATHNAME', 'medpro_rotate_clinic_key'
	LANGUAGE C VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION medpro_rotate_clinic_key(uuid, integer)
	IS 'starts or continues the rotation of a clinic''s data key: re-encrypts up to batch_size rows and returns how many remain (0: done, the old key is erased) (operators)';
REVOKE ALL ON FUNCTION medpro_rotate_clinic_key(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro_rotate_clinic_key(uuid, integer) TO medpro_operator;
