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

-- The hash chain (docs/security.md, "Audit trail"). ---------------------------
--
-- Every audit row is linked into the chain of its clinic (clinic_id NULL:
-- the chain 00000000-0000-0000-0000-000000000000) when its transaction
-- commits: a row trigger remembers the row, and audit.c's pre-commit
-- callback takes a transaction-level advisory lock on the chain and appends
-- the row after the chain's head (medpro.audit_heads), reading the head with
-- the latest snapshot (as RI triggers do, so REPEATABLE READ writers work
-- too): concurrent writers take turns and never fork the chain, and the
-- lock is held only from the commit's start to its end.  (A deferred
-- constraint trigger cannot be queued inside the routing FDW's
-- security-restricted audit writes.)  The link is the row's columns
-- chain_seq, prev_hash and row_hash: sealing them is the only UPDATE the
-- append-only trigger lets through; a restored dump keeps them as they were.
-- row_hash = sha256(prev_hash || canonical text of the row), over
-- values that round-trip exactly (epoch with microseconds, jsonb text).
-- Pruning replaces a prefix of a chain by a checkpoint signed with an HMAC
-- key derived from the master key.

CREATE TABLE medpro.audit_heads (
	chain		uuid PRIMARY KEY,
	seq			bigint NOT NULL,
	head_hash	bytea NOT NULL
);
COMMENT ON TABLE medpro.audit_heads IS 'the last link of each audit chain; locked FOR UPDATE to append';

CREATE TABLE medpro.audit_checkpoints (
	chain		uuid NOT NULL,
	seq			bigint NOT NULL,
	row_hash	bytea NOT NULL,
	pruned_rows bigint NOT NULL,
	created_at	timestamptz NOT NULL,
	signature	bytea NOT NULL,
	PRIMARY KEY (chain, seq)
);
COMMENT ON TABLE medpro.audit_checkpoints IS 'signed checkpoints that replace pruned prefixes of the audit chains';
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON medpro.audit_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION medpro.audit_log_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON medpro.audit_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION medpro.audit_log_refuse_change();

SELECT pg_catalog.pg_extension_config_dump('medpro.audit_heads', '');
SELECT pg_catalog.pg_extension_config_dump('medpro.audit_checkpoints', '');
REVOKE ALL ON medpro.audit_heads, medpro.audit_checkpoints FROM PUBLIC;

CREATE FUNCTION medpro.audit_chain_of(clinic_id uuid) RETURNS uuid
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce($1, '00000000-0000-0000-0000-000000000000'::uuid) $$;
COMMENT ON FUNCTION medpro.audit_chain_of(uuid) IS 'internal: the audit chain of a clinic (the zero uuid for rows without clinic)';

CREATE FUNCTION medpro.audit_genesis(chain uuid) RETURNS bytea
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT sha256(convert_to('medpro-audit-v1:' || $1::text, 'UTF8')) $$;
COMMENT ON FUNCTION medpro.audit_genesis(uuid) IS 'internal: the prev_hash of the first link of a chain';

-- One field of the canonical text: <length>:<text>, or - for NULL.
CREATE FUNCTION medpro.audit_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN $1 IS NULL THEN '-' ELSE length($1)::text || ':' || $1 END $$;
COMMENT ON FUNCTION medpro.audit_field(text) IS 'internal: one length-prefixed field of an audit row''s canonical text';

CREATE FUNCTION medpro.audit_row_hash(prev_hash bytea, seq bigint, r medpro.audit_log) RETURNS bytea
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT sha256($1 || convert_to(concat_ws('|', 'v1', $2::text, $3.id::text,
		medpro.audit_field($3.clinic_id::text), medpro.audit_field($3.user_id::text),
		medpro.audit_field($3.action), medpro.audit_field($3.entity), medpro.audit_field($3.entity_id),
		medpro.audit_field($3.old_data::text), medpro.audit_field($3.new_data::text),
		medpro.audit_field($3.ip::text), medpro.audit_field(extract(epoch FROM $3.at)::text)),
		getdatabaseencoding()))
$$;
COMMENT ON FUNCTION medpro.audit_row_hash(bytea, bigint, medpro.audit_log)
	IS 'internal: sha256 of the previous link and the canonical text of an audit row (epoch with microseconds, jsonb text), in the database encoding';

CREATE FUNCTION medpro.audit_log_inserted() RETURNS trigger
	AS 'MODULE_PATHNAME', 'medpro_audit_log_inserted' LANGUAGE C;
COMMENT ON FUNCTION medpro.audit_log_inserted()
	IS 'internal: trigger that remembers a new audit row, to link it when its transaction commits';
CREATE TRIGGER audit_log_chain AFTER INSERT ON medpro.audit_log
	FOR EACH ROW EXECUTE FUNCTION medpro.audit_log_inserted();

CREATE FUNCTION medpro.audit_link_pending() RETURNS void
	AS 'MODULE_PATHNAME', 'medpro_audit_link_pending' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION medpro.audit_link_pending()
	IS 'internal: links this transaction''s audit rows now rather than at commit';

CREATE FUNCTION medpro.audit_checkpoint_mac(chain uuid, seq bigint, row_hash bytea, created_at timestamptz)
RETURNS bytea
	AS 'MODULE_PATHNAME', 'medpro_audit_checkpoint_mac' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION medpro.audit_checkpoint_mac(uuid, bigint, bytea, timestamptz)
	IS 'internal: HMAC-SHA256 of a checkpoint under the audit key derived from the master key';
CREATE FUNCTION medpro.audit_checkpoint_valid(chain uuid, seq bigint, row_hash bytea,
											  created_at timestamptz, signature bytea)
RETURNS boolean
	AS 'MODULE_PATHNAME', 'medpro_audit_checkpoint_valid' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION medpro.audit_checkpoint_valid(uuid, bigint, bytea, timestamptz, bytea)
	IS 'internal: whether a checkpoint''s signature is right (constant-time comparison)';

CREATE FUNCTION medpro_audit_verify(clinic uuid DEFAULT NULL)
RETURNS TABLE(chain uuid, rows_checked bigint, valid boolean, broken_seq bigint,
			  broken_log_id bigint, problem text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_chain uuid;
	cp record;
	r record;
	h record;
	v_prev bytea;
	v_seq bigint;
	v_n bigint;
	v_orphan bigint;
BEGIN
	IF NOT medpro.caller_is_operator() THEN
		RAISE EXCEPTION 'permission denied to verify the audit trail' USING ERRCODE = 'insufficient_privilege';
	END IF;
	-- this transaction's own rows are linked now, so they are checked too
	PERFORM medpro.audit_link_pending();
	FOR v_chain IN
		SELECT x.c FROM (SELECT h2.chain AS c FROM medpro.audit_heads h2
						 UNION SELECT medpro.audit_chain_of(l.clinic_id) FROM medpro.audit_log l) x
		 WHERE clinic IS NULL OR x.c = medpro.audit_chain_of(clinic)
		 ORDER BY 1
	LOOP
		chain := v_chain;
		rows_checked := 0;
		valid := true;
		broken_seq := NULL;
		broken_log_id := NULL;
		problem := NULL;
		SELECT * INTO cp FROM medpro.audit_checkpoints k WHERE k.chain = v_chain ORDER BY k.seq DESC LIMIT 1;
		IF FOUND THEN
			IF NOT medpro.audit_checkpoint_valid(cp.chain, cp.seq, cp.row_hash, cp.created_at, cp.signature) THEN
				valid := false;
				broken_seq := cp.seq;
				problem := 'checkpoint signature does not verify';
				RETURN NEXT;
				CONTINUE;
			END IF;
			v_prev := cp.row_hash;
			v_seq := cp.seq;
		ELSE
			v_prev := medpro.audit_genesis(v_chain);
			v_seq := 0;
		END IF;
		FOR r IN
			SELECT l.chain_seq AS seq, l.id AS log_id, l.prev_hash, l.row_hash, l AS rec
			  FROM medpro.audit_log l
			 WHERE medpro.audit_chain_of(l.clinic_id) = v_chain AND l.chain_seq > v_seq
			 ORDER BY l.chain_seq
		LOOP
			IF r.seq <> v_seq + 1 THEN
				valid := false; broken_seq := v_seq + 1; problem := 'audit row missing';
			ELSIF r.prev_hash <> v_prev THEN
				valid := false; broken_seq := r.seq; broken_log_id := r.log_id; problem := 'link does not follow the previous one';
			ELSIF medpro.audit_row_hash(v_prev, r.seq, r.rec) <> r.row_hash THEN
				valid := false; broken_seq := r.seq; broken_log_id := r.log_id; problem := 'audit row altered';
			END IF;
			EXIT WHEN NOT valid;
			rows_checked := rows_checked + 1;
			v_prev := r.row_hash;
			v_seq := r.seq;
		END LOOP;
		IF valid THEN
			SELECT * INTO h FROM medpro.audit_heads h2 WHERE h2.chain = v_chain;
			IF NOT FOUND OR h.seq <> v_seq OR h.head_hash <> v_prev THEN
				valid := false; broken_seq := v_seq + 1; problem := 'links missing at the end of the chain';
			END IF;
		END IF;
		IF valid THEN
			SELECT min(l.id) INTO v_orphan FROM medpro.audit_log l
			 WHERE medpro.audit_chain_of(l.clinic_id) = v_chain
			   AND (l.row_hash IS NULL OR l.chain_seq <= coalesce(cp.seq, 0));
			IF v_orphan IS NOT NULL THEN
				valid := false; broken_log_id := v_orphan; problem := 'audit row not in the chain';
			END IF;
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION medpro_audit_verify(uuid)
	IS 'checks the audit hash chains (of one clinic, or all) and reports the first broken link of each (operators)';

CREATE FUNCTION medpro_audit_prune(older_than interval DEFAULT NULL)
RETURNS TABLE(chain uuid, pruned bigint, checkpoint_seq bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- the append-only triggers do not fire in replica mode: only here
SET session_replication_role = replica
AS $$
DECLARE
	v_age interval := coalesce(older_than,
							   nullif(current_setting('medpro.audit_retention_days')::int, 0) * interval '1 day');
	v_cutoff timestamptz;
	v_chain uuid;
	v_last bigint;
	v_hash bytea;
	v_now timestamptz := clock_timestamp();
	v_bad record;
BEGIN
	IF NOT medpro.caller_is_operator() THEN
		RAISE EXCEPTION 'permission denied to prune the audit trail' USING ERRCODE = 'insufficient_privilege';
	END IF;
	IF v_age IS NULL THEN
		RETURN;
	END IF;
	IF v_age < interval '0' THEN
		RAISE EXCEPTION 'older_than must not be negative' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_cutoff := v_now - v_age;
	-- this transaction's own rows are linked first
	PERFORM medpro.audit_link_pending();
	FOR v_chain IN SELECT h.chain FROM medpro.audit_heads h ORDER BY 1 FOR UPDATE LOOP
		-- the longest prefix of the chain older than the cutoff
		SELECT min(l.chain_seq) - 1 INTO v_last FROM medpro.audit_log l
		 WHERE medpro.audit_chain_of(l.clinic_id) = v_chain AND l.chain_seq IS NOT NULL AND l.at >= v_cutoff;
		IF v_last IS NULL THEN
			SELECT max(l.chain_seq) INTO v_last FROM medpro.audit_log l
			 WHERE medpro.audit_chain_of(l.clinic_id) = v_chain;
		END IF;
		CONTINUE WHEN v_last IS NULL OR NOT EXISTS
			(SELECT 1 FROM medpro.audit_log l WHERE medpro.audit_chain_of(l.clinic_id) = v_chain
			   AND l.chain_seq <= v_last);
		-- a broken chain is evidence: never prune it away
		SELECT * INTO v_bad FROM @extschema@.medpro_audit_verify(nullif(v_chain, '00000000-0000-0000-0000-000000000000'::uuid)) v
		 WHERE v.chain = v_chain AND NOT v.valid;
		IF FOUND THEN
			RAISE EXCEPTION 'audit chain % is broken at link %', v_chain, v_bad.broken_seq
				USING ERRCODE = 'data_corrupted',
					  HINT = 'Run medpro_audit_verify() and investigate before pruning.';
		END IF;
		SELECT l.row_hash INTO v_hash FROM medpro.audit_log l
		 WHERE medpro.audit_chain_of(l.clinic_id) = v_chain AND l.chain_seq = v_last;
		chain := v_chain;
		checkpoint_seq := v_last;
		DELETE FROM medpro.audit_log l
		 WHERE medpro.audit_chain_of(l.clinic_id) = v_chain AND l.chain_seq <= v_last;
		GET DIAGNOSTICS pruned = ROW_COUNT;
		INSERT INTO medpro.audit_checkpoints (chain, seq, row_hash, pruned_rows, created_at, signature)
		VALUES (v_chain, v_last, v_hash, pruned, v_now,
				medpro.audit_checkpoint_mac(v_chain, v_last, v_hash, v_now));
		RETURN NEXT;
	END LOOP;
	-- the audit row of the pruning itself is chained like any other
	PERFORM set_config('session_replication_role', 'origin', true);
	PERFORM medpro.audit_append(NULL, NULL, 'audit_prune', 'audit_log', NULL, NULL,
								jsonb_build_object('older_than', v_age::text), NULL);
END
$$;
COMMENT ON FUNCTION medpro_audit_prune(interval)
	IS 'deletes audit rows older than older_than (default: medpro.audit_retention_days) and leaves a signed checkpoint per chain (operators)';

REVOKE ALL ON FUNCTION medpro_audit_verify(uuid), medpro_audit_prune(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro_audit_verify(uuid), medpro_audit_prune(interval) TO medpro_operator;
