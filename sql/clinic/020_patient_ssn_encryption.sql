-- medpro clinic migration 020: social security numbers stored encrypted
--
-- The central database encrypts social_security_number before it is sent
-- here (src/fieldcrypt.c): this database holds only the AES-256-GCM
-- ciphertext, a keyed blind index for equality searches and the clinic key
-- version; the plaintext column stays NULL for every new write.

ALTER TABLE patients
    ADD COLUMN social_security_number_enc         bytea,
    ADD COLUMN social_security_number_bidx        text,
    ADD COLUMN social_security_number_key_version integer;

-- Rows written before this migration keep their value until
-- medpro_rotate_clinic_key() encrypts them; no new row may add one.
ALTER TABLE patients
    ADD CONSTRAINT patients_ssn_encrypted_check
    CHECK (social_security_number IS NULL) NOT VALID;
ALTER TABLE patients
    ADD CONSTRAINT patients_ssn_enc_complete_check
    CHECK ((social_security_number_enc IS NULL) = (social_security_number_bidx IS NULL)
           AND (social_security_number_enc IS NULL) = (social_security_number_key_version IS NULL));

CREATE INDEX patients_ssn_bidx_idx
    ON patients (social_security_number_bidx)
    WHERE social_security_number_bidx IS NOT NULL;

COMMENT ON COLUMN patients.social_security_number IS
    'Legacy plaintext, NULL for every row written by medpro 0.1 (see social_security_number_enc).';
COMMENT ON COLUMN patients.social_security_number_enc IS
    'medpro:internal (never exposed through clinic.*): AES-256-GCM ciphertext of the normalised number under the clinic data key, bound to clinic, table, column, row id and key version.';
COMMENT ON COLUMN patients.social_security_number_bidx IS
    'medpro:internal (never exposed through clinic.*): HMAC-SHA256 blind index of the normalised number under the clinic index key (hex), for equality searches.';
COMMENT ON COLUMN patients.social_security_number_key_version IS
    'medpro:internal (never exposed through clinic.*): Version of the clinic data key (central medpro.clinic_keys) the ciphertext was made with.';
