--
-- routing_pushdown: what medpro_fdw sends to the clinic database (WHERE,
-- ORDER BY, LIMIT / OFFSET, parameters), checked against local evaluation.
--
-- The differential test runs random queries (fixed seed) over clinic.patients
-- and over a local copy of the clinic's live rows, and compares the rows.
-- Two clinics: every remote statement stays in the current clinic's database.
--
\set VERBOSITY terse
CREATE FUNCTION pg_temp.in_clinic(clinic uuid, query text) RETURNS SETOF record LANGUAGE sql AS $$
	SELECT * FROM dblink(format('host=%s port=%s dbname=%s user=postgres',
								split_part(current_setting('unix_socket_directories'), ',', 1),
								current_setting('port'),
								(SELECT db_name FROM medpro.clinics WHERE id = clinic)), query) AS t(v text)
$$;

SELECT medpro_key_rotate() IS NOT NULL AS key_rotated;
SELECT medpro_register_clinic('Pushdown A', 'FR', 'admin@pd-a.test', 'orchard alpha 2026') AS ca \gset
SELECT medpro_register_clinic('Pushdown B', 'FR', 'admin@pd-b.test', 'orchard bravo 2026') AS cb \gset
SELECT medpro_create_user('sec@pd-a.test', 'orchard secretary 7', 'secretary', 'Sam', 'Petit', :'ca') IS NOT NULL AS secretary_a;

-- Estimates use the clinic's reltuples once read: keep it unset (-1) here,
-- so that the plans below do not depend on when autovacuum runs.  Clinic
-- A's patients are loaded without its duplicate checks (the trigger
-- patients_rules, the unique index patients_fold_name_idx): equal and
-- case-folded equal names are the point of this data set.
SELECT count(*) AS settings FROM pg_temp.in_clinic(:'ca', $$
	ALTER TABLE patients SET (autovacuum_enabled = false);
	ALTER TABLE appointments SET (autovacuum_enabled = false);
	ALTER TABLE patients DISABLE TRIGGER patients_rules;
	DROP INDEX patients_fold_name_idx;
	SELECT 'x'
$$) AS t(v text);
-- Clinic A: 400 patients with duplicates, NULLs, mixed case and accents
-- (text order depends on the collation), 10% soft-deleted.  Clinic B: other
-- names, so a row of B in A's results would show.  The social security
-- numbers (valid NIRs, pd_ssn) are written later through clinic.patients,
-- which encrypts them: the clinic database refuses them in clear.
CREATE FUNCTION pg_temp.pd_ssn(n int) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
	SELECT b || lpad((97 - b::bigint % 97)::text, 2, '0')
	  FROM (SELECT (ARRAY['1', '2'])[1 + n % 2] || lpad(((n::bigint * 7919) % 1000000000000)::text, 12, '0') AS b) s
	 WHERE n % 5 <> 0
$f$;
SELECT count(*) AS inserted_a FROM pg_temp.in_clinic(:'ca', $$
	INSERT INTO patients (first_name, last_name, patient_number, email, gender, date_of_birth,
						  medical_history, allergies, notes, is_active,
						  created_at, deleted_at)
	SELECT (ARRAY['Anne', 'anne', 'Élodie', 'Zoé', 'Jean', 'jean-Luc', 'Ömer', 'Bob', 'Émile'])[1 + n % 9],
		   (ARRAY['Durand', 'durand', 'Dupont', 'Éric', 'Martin', 'martin', 'O''Brien', 'van Dijk', 'Zola', 'Abel', 'Dupont-Moretti'])[1 + (n * 7) % 11],
		   'P' || lpad(n::text, 5, '0'),
		   CASE WHEN n % 4 = 0 THEN NULL ELSE 'p' || n || '@ex.test' END,
		   (ARRAY['female', 'male', 'other', NULL])[1 + n % 4],
		   CASE WHEN n % 13 = 0 THEN NULL ELSE date '1940-01-01' + (n * 97) % 25000 END,
		   CASE WHEN n % 3 = 0 THEN 'secret ' || n END,
		   (ARRAY['pollen', 'Pollen', NULL, 'lait'])[1 + n % 4],
		   CASE WHEN n % 6 = 0 THEN NULL ELSE repeat('x', n % 8) || 'n' || n END,
		   n % 7 <> 0,
		   timestamptz '2026-01-01 00:00+00' + n * interval '37 minutes',
		   CASE WHEN n % 10 = 3 THEN now() END
	  FROM generate_series(1, 400) n
	RETURNING 'x'
$$) AS t(v text);
SELECT count(*) AS inserted_b FROM pg_temp.in_clinic(:'cb', $$
	INSERT INTO patients (first_name, last_name, patient_number, email)
	SELECT 'Other' || n, 'Clinic B ' || n, 'P' || lpad(n::text, 5, '0'), 'b' || n || '@ex.test'
	  FROM generate_series(1, 50) n
	RETURNING 'x'
$$) AS t(v text);

-- Clinic A: a practitioner and appointments for every third patient (soft
-- deleted ones included), some of them soft-deleted themselves.
SELECT count(*) AS inserted_appointments FROM pg_temp.in_clinic(:'ca', $$
	WITH pr AS (INSERT INTO practitioners (first_name, last_name) VALUES ('Paul', 'Martin') RETURNING id)
	INSERT INTO appointments (patient_id, practitioner_id, start_time, end_time, status, title, deleted_at)
	SELECT p.id, pr.id, timestamptz '2026-03-01 08:00+00' + n * interval '1 hour',
		   timestamptz '2026-03-01 08:30+00' + n * interval '1 hour',
		   (ARRAY['scheduled', 'confirmed', 'completed', 'cancelled'])[1 + n % 4],
		   CASE WHEN n % 5 = 0 THEN NULL ELSE 'visit ' || n END,
		   CASE WHEN n % 11 = 0 THEN now() END
	  FROM (SELECT id, row_number() OVER (ORDER BY patient_number) AS n FROM patients) p, pr
	 WHERE p.n % 3 = 0
	RETURNING 'x'
$$) AS t(v text);
SELECT v AS rules_back FROM pg_temp.in_clinic(:'ca', $$
	ALTER TABLE patients ENABLE TRIGGER patients_rules;
	SELECT 'enabled'
$$) AS t(v text);

-- The local copy: clinic A's live rows, read from the clinic database itself.
CREATE TABLE pd_local AS
SELECT * FROM dblink(format('host=%s port=%s dbname=%s user=postgres',
							split_part(current_setting('unix_socket_directories'), ',', 1),
							current_setting('port'),
							(SELECT db_name FROM medpro.clinics WHERE id = :'ca')),
					 'SELECT id, first_name, last_name, patient_number, email, gender, date_of_birth,
							 social_security_number, allergies, notes, is_active, created_at
						FROM patients WHERE deleted_at IS NULL')
	 AS t(id uuid, first_name text, last_name text, patient_number text, email text, gender text,
		  date_of_birth date, social_security_number text, allergies text, notes text,
		  is_active boolean, created_at timestamptz);
UPDATE pd_local SET social_security_number = pg_temp.pd_ssn(substr(patient_number, 2)::int);
GRANT SELECT ON pd_local TO regress_app;
CREATE TABLE pd_appt AS
SELECT * FROM dblink(format('host=%s port=%s dbname=%s user=postgres',
							split_part(current_setting('unix_socket_directories'), ',', 1),
							current_setting('port'),
							(SELECT db_name FROM medpro.clinics WHERE id = :'ca')),
					 'SELECT id, patient_id, status, title, start_time FROM appointments WHERE deleted_at IS NULL')
	 AS t(id uuid, patient_id uuid, status text, title text, start_time timestamptz);
GRANT SELECT ON pd_appt TO regress_app;
SELECT count(*) AS live_rows_a FROM pd_local;

-- The random query generator.  One query: a WHERE of 1 to 3 predicates
-- (some with values computed locally and sent as parameters: now(), casts
-- that depend on TimeZone, functions of $1)
-- joined by AND / OR (sometimes NOT), an ORDER BY of 0 to 2 columns plus id
-- (a total order), and sometimes LIMIT / OFFSET.  About half of the queries
-- compare to $1: the routed query runs as a prepared statement, so under
-- force_generic_plan $1 travels as a remote parameter.
CREATE FUNCTION pg_temp.pd_pred(use_params boolean) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	names text[] := ARRAY['Durand', 'durand', 'Dupont', 'Éric', 'Martin', 'Zola', 'Abel', 'nobody'];
	pats text[] := ARRAY['Du%', 'du%', '%an%', 'É%', '%t', 'M_rt%', '%', 'z%'];
	k int := floor(random() * 27)::int;
	v text;
BEGIN
	v := quote_literal(names[1 + floor(random() * 8)::int]);
	IF use_params THEN
		v := '$1';
	END IF;
	RETURN CASE k
		WHEN 0 THEN 'last_name = ' || v
		WHEN 1 THEN 'last_name <> ' || v
		WHEN 2 THEN 'last_name < ' || v
		WHEN 3 THEN 'last_name >= ' || v
		WHEN 4 THEN 'last_name LIKE ' || quote_literal(pats[1 + floor(random() * 8)::int])
		WHEN 5 THEN 'last_name ILIKE ' || quote_literal(pats[1 + floor(random() * 8)::int])
		WHEN 6 THEN 'email IS NULL'
		WHEN 7 THEN 'email IS NOT NULL'
		WHEN 8 THEN format('date_of_birth BETWEEN %L AND %L', date '1940-01-01' + floor(random() * 20000)::int,
						   date '1960-01-01' + floor(random() * 20000)::int)
		WHEN 9 THEN format('date_of_birth > %L::date', date '1940-01-01' + floor(random() * 25000)::int)
		WHEN 10 THEN 'is_active'
		WHEN 11 THEN 'NOT is_active'
		WHEN 12 THEN format('patient_number IN (%L, %L, %L)', 'P' || lpad((1 + floor(random() * 400))::text, 5, '0'),
							'P' || lpad((1 + floor(random() * 400))::text, 5, '0'), 'P00003')
		WHEN 13 THEN 'lower(last_name) = ' || lower(v)
		WHEN 14 THEN 'upper(first_name) LIKE ' || quote_literal(upper(pats[1 + floor(random() * 8)::int]))
		WHEN 15 THEN format('created_at >= %L::timestamptz', timestamptz '2026-01-01 00:00+00' + floor(random() * 15000) * interval '1 minute')
		WHEN 16 THEN 'gender = ANY (ARRAY[''female'', ''other''])'
		WHEN 17 THEN 'allergies IS DISTINCT FROM ''pollen'''
		WHEN 18 THEN 'social_security_number LIKE ''1%'''
		WHEN 19 THEN 'length(notes) > 4'
		WHEN 20 THEN 'first_name COLLATE "C" < ''Z'''
		WHEN 21 THEN 'notes::text ~ ''x{3}'''
		WHEN 22 THEN format('first_name = %L', (ARRAY['Anne', 'anne', 'Zoé', 'Ömer'])[1 + floor(random() * 4)::int])
		-- values of constants and parameters only, computed locally
		WHEN 23 THEN format('created_at < now() - %L::interval', floor(random() * 400) || ' days')
		WHEN 24 THEN 'lower(last_name) = lower(' || v || ' || '''')'
		WHEN 25 THEN format('date_of_birth < (%L::timestamptz + interval ''1 year'')::date',
							(date '1940-01-01' + floor(random() * 25000)::int)::text || ' 12:00+00')
		ELSE 'coalesce(allergies, '''') <> ''lait'''
	END;
END
$$;

CREATE FUNCTION pg_temp.pd_query(rel text, use_params boolean, OUT q text, OUT ordered boolean)
LANGUAGE plpgsql AS $$
DECLARE
	cols text[] := ARRAY['last_name', 'first_name', 'email', 'date_of_birth', 'created_at', 'is_active', 'gender', 'patient_number'];
	w text := pg_temp.pd_pred(use_params);
	o text := '';
	n int;
	i int;
BEGIN
	n := floor(random() * 3)::int;
	FOR i IN 1 .. n LOOP
		w := w || CASE WHEN random() < 0.6 THEN ' AND ' ELSE ' OR ' END || pg_temp.pd_pred(use_params);
	END LOOP;
	IF random() < 0.15 THEN
		w := 'NOT (' || w || ')';
	END IF;
	n := floor(random() * 3)::int;
	FOR i IN 1 .. n LOOP
		o := o || cols[1 + floor(random() * 8)::int]
			   || CASE WHEN random() < 0.5 THEN ' DESC' ELSE '' END
			   || CASE floor(random() * 3)::int WHEN 0 THEN ' NULLS FIRST' WHEN 1 THEN ' NULLS LAST' ELSE '' END
			   || ', ';
	END LOOP;
	ordered := random() < 0.8;
	q := format('SELECT concat_ws(''|'', id, first_name, last_name, email, date_of_birth, social_security_number, is_active) FROM %s WHERE %s', rel, w);
	IF ordered THEN
		q := q || ' ORDER BY ' || o || 'id';
		IF random() < 0.7 THEN
			q := q || ' LIMIT ' || floor(random() * 25)::int;
		END IF;
		IF random() < 0.3 THEN
			q := q || ' OFFSET ' || floor(random() * 10)::int;
		END IF;
	END IF;
END
$$;

-- Run n random queries on both sides; return the number of queries, how
-- many pushed a WHERE clause, an ORDER BY, a LIMIT, and the mismatches.
CREATE FUNCTION pg_temp.pd_run(n int, OUT queries int, OUT remote_where int, OUT remote_order int,
							   OUT remote_limit int, OUT remote_params int, OUT other_clinic int,
							   OUT mismatches int)
LANGUAGE plpgsql AS $$
DECLARE
	q record;
	ql text;
	use_params boolean;
	val text;
	remote text[];
	local text[];
	plan text;
	line text;
	sel text;
BEGIN
	queries := 0; remote_where := 0; remote_order := 0; remote_limit := 0; remote_params := 0;
	other_clinic := 0; mismatches := 0;
	FOR i IN 1 .. n LOOP
		use_params := random() < 0.5;
		SELECT * INTO q FROM pg_temp.pd_query('clinic.patients', use_params);
		val := (ARRAY['Durand', 'Dupont', 'Martin', 'Éric', 'nobody'])[1 + floor(random() * 5)::int];
		ql := replace(q.q, 'clinic.patients', 'pd_local');
		IF q.ordered THEN
			sel := 'SELECT array(%s)';
		ELSE
			sel := 'SELECT array(SELECT v FROM (%s) s(v) ORDER BY v COLLATE "C")';
		END IF;
		-- the routed query as a prepared statement (plan_cache_mode decides
		-- whether $1 stays a parameter), the local one directly
		EXECUTE format('PREPARE pd_q(text) AS ' || sel, q.q);
		EXECUTE format('EXECUTE pd_q(%L)', val) INTO remote;
		EXECUTE format(sel, ql) INTO local USING val;
		queries := queries + 1;
		IF remote IS DISTINCT FROM local THEN
			mismatches := mismatches + 1;
			RAISE NOTICE 'mismatch: % (% rows remote, % local)', q.q, cardinality(remote), cardinality(local);
		END IF;
		plan := '';
		FOR line IN EXECUTE format('EXPLAIN (VERBOSE, COSTS OFF) EXECUTE pd_q(%L)', val) LOOP
			IF line LIKE '%Remote SQL:%' THEN
				plan := plan || line;
			END IF;
		END LOOP;
		DEALLOCATE pd_q;
		IF plan LIKE '%IS NULL) AND %' THEN remote_where := remote_where + 1; END IF;
		IF plan LIKE '% ORDER BY %' THEN remote_order := remote_order + 1; END IF;
		IF plan LIKE '% LIMIT %' THEN remote_limit := remote_limit + 1; END IF;
		IF plan LIKE '%$1%' THEN remote_params := remote_params + 1; END IF;
		IF plan NOT LIKE '%FROM public.patients WHERE (deleted_at IS NULL)%' OR plan LIKE '%medpro%' THEN
			other_clinic := other_clinic + 1;
		END IF;
	END LOOP;
END
$$;

SET ROLE regress_app;
SELECT medpro_login('admin@pd-a.test', 'orchard alpha 2026') AS a_admin \gset
SELECT medpro_login('sec@pd-a.test', 'orchard secretary 7') AS a_sec \gset
SELECT medpro_login('admin@pd-b.test', 'orchard bravo 2026') AS b_admin \gset
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
-- the numbers, encrypted by medpro_fdw on their way to the clinic
UPDATE clinic.patients p SET social_security_number = l.social_security_number
  FROM pd_local l WHERE l.id = p.id AND l.social_security_number IS NOT NULL;
SELECT count(*) AS live_rows_routed, count(social_security_number) AS with_ssn FROM clinic.patients;

-- What is shipped, and what is not. ------------------------------------------
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id, last_name FROM clinic.patients
 WHERE last_name ILIKE 'du%' AND date_of_birth BETWEEN '1950-01-01' AND '1990-12-31'
   AND gender IN ('female', 'other') AND email IS NOT NULL AND NOT is_active = false
 ORDER BY last_name DESC, created_at NULLS FIRST LIMIT 20 OFFSET 5;
-- lower/upper, LIKE, OR, casts between built-in types that cannot fail
-- (a timestamptz to date cast depends on TimeZone: it stays local)
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients
 WHERE (lower(last_name) = 'durand' OR upper(first_name) LIKE 'AN%') AND date_of_birth::timestamp > '1950-01-01'
   AND created_at::date = '2026-01-02';
-- Casts are shipped on tables without soft delete.
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.appointment_items WHERE quantity::int > 1 AND description::varchar(3) = 'abc';
-- Not shipped: a masked column, a non-default collation, a cast that can
-- fail on a value (the clinic could evaluate it on a soft-deleted row),
-- a stable function of a column, a user function.
CREATE FUNCTION pg_temp.leaky(t text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN t IS NOT NULL; END $$;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients
 WHERE social_security_number = '1' AND last_name COLLATE "C" < 'b' AND notes::int > 3
   AND created_at::date < '2026-06-01' AND pg_temp.leaky(first_name);
-- Shipped as parameters: values of constants and parameters only, computed
-- here when the scan starts (a stable now(), a cast that may fail, a
-- function of a parameter), whatever the table.
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients
 WHERE created_at < now() - interval '1 day' AND date_of_birth > '1990-01-01 12:00+00'::timestamptz::date
   AND last_name = upper('dur' || 'and');
SELECT (SELECT count(*) FROM clinic.patients WHERE created_at < now() - interval '1 day' AND date_of_birth > '1990-01-01 12:00+00'::timestamptz::date)
	   = (SELECT count(*) FROM pd_local WHERE created_at < now() - interval '1 day' AND date_of_birth > '1990-01-01 12:00+00'::timestamptz::date)
	   AS local_values_same_rows;
-- unaccent(text) of the contrib extension runs in the clinic (every clinic
-- database has it, clinic migration 022); the two-argument form, with a
-- dictionary, stays local.
RESET ROLE;
CREATE EXTENSION IF NOT EXISTS unaccent;
SET ROLE regress_app;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients WHERE unaccent(last_name) ILIKE unaccent('éric%') OR unaccent(first_name) = 'Elodie';
SELECT (SELECT array_agg(id ORDER BY id) FROM clinic.patients WHERE unaccent(last_name) ILIKE unaccent('éric%') OR unaccent(first_name) = 'Elodie')
	   = (SELECT array_agg(id ORDER BY id) FROM pd_local WHERE unaccent(last_name) ILIKE unaccent('éric%') OR unaccent(first_name) = 'Elodie')
	   AS unaccent_same_rows,
	   (SELECT count(*) FROM clinic.patients WHERE unaccent(last_name) ILIKE unaccent('éric%') OR unaccent(first_name) = 'Elodie') > 0
	   AS unaccent_finds_rows;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients WHERE unaccent('unaccent', last_name) = 'Eric';
-- With the central extension in another schema it is still shipped as
-- public.unaccent (where migration 022 put it in the clinic); a user's own
-- unaccent(text) stays local.
RESET ROLE;
CREATE SCHEMA pd_ext;
GRANT USAGE ON SCHEMA pd_ext TO PUBLIC;
ALTER EXTENSION unaccent SET SCHEMA pd_ext;
CREATE FUNCTION public.unaccent(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN upper(t); END $$;
SET ROLE regress_app;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients WHERE pd_ext.unaccent(last_name) = 'Eric';
SELECT (SELECT array_agg(id ORDER BY id) FROM clinic.patients WHERE pd_ext.unaccent(last_name) = 'Eric')
	   = (SELECT array_agg(id ORDER BY id) FROM pd_local WHERE pd_ext.unaccent(last_name) = 'Eric')
	   AS other_schema_same_rows;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients WHERE public.unaccent(last_name) = 'ERIC';
SELECT count(*) AS user_unaccent_rows FROM clinic.patients WHERE public.unaccent(last_name) = 'DURAND';
RESET ROLE;
DROP FUNCTION public.unaccent(text);
ALTER EXTENSION unaccent SET SCHEMA public;
DROP SCHEMA pd_ext;
SET ROLE regress_app;
SELECT id AS first_id FROM pd_local ORDER BY patient_number LIMIT 1 \gset
PREPARE pd_by_text(text) AS SELECT patient_number FROM clinic.patients WHERE id = $1::uuid;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE pd_by_text(:'first_id');
EXECUTE pd_by_text(:'first_id');
SELECT regress_try('EXECUTE pd_by_text(''not a uuid'')');
RESET plan_cache_mode;
DEALLOCATE pd_by_text;
-- A value under a later argument of AND / OR is not computed ahead: local
-- evaluation never reaches $1::date for a name (a search by name or by
-- date of birth, in a generic plan).  The first argument's is.
PREPARE pd_search(text, text) AS SELECT count(*) FROM clinic.patients
 WHERE ($2 = 'name' AND last_name = $1) OR ($2 = 'born' AND date_of_birth = $1::date);
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE pd_search('Durand', 'name');
SELECT born AS pd_born FROM (SELECT date_of_birth::text AS born FROM pd_local WHERE date_of_birth IS NOT NULL ORDER BY patient_number LIMIT 1) s \gset
EXECUTE pd_search('Durand', 'name') \gset by_name_
EXECUTE pd_search(:'pd_born', 'born') \gset by_born_
SELECT :by_name_count AS by_name, :by_name_count = (SELECT count(*) FROM pd_local WHERE last_name = 'Durand') AS by_name_as_local,
	   :by_born_count AS by_born, :by_born_count = (SELECT count(*) FROM pd_local WHERE date_of_birth = :'pd_born'::date) AS by_born_as_local;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT count(*) FROM clinic.patients WHERE created_at > now() - interval '1 day' OR last_name = upper('dur' || 'and');
RESET plan_cache_mode;
DEALLOCATE pd_search;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients ORDER BY last_name COLLATE "C" LIMIT 3;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients ORDER BY social_security_number LIMIT 3;
-- A local clause keeps the LIMIT local (the clinic would cut too early).
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM clinic.patients WHERE pg_temp.leaky(first_name) ORDER BY last_name LIMIT 3;
-- Parameters travel as $n, also in LIMIT.
PREPARE by_name(text, bigint) AS
	SELECT first_name, last_name FROM clinic.patients WHERE last_name = $1 ORDER BY first_name, id LIMIT $2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE by_name('Durand', 3);
-- A lookup by id runs without a cursor; EXPLAIN ANALYZE counts the rows fetched.
EXPLAIN (VERBOSE, COSTS OFF)
SELECT first_name FROM clinic.patients WHERE id = '00000000-0000-4000-8000-000000000000';
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT first_name FROM clinic.patients WHERE last_name LIKE 'D%' ORDER BY created_at DESC LIMIT 7;
-- A lone lookup in an implicit transaction runs in the clinic's own
-- autocommit (no remote START / COMMIT); in a transaction block the
-- lookups share the remote transaction, and so its snapshot.
SELECT id AS rr_id, notes AS rr_notes FROM pd_local WHERE notes IS NOT NULL ORDER BY patient_number LIMIT 1 \gset
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT notes = :'rr_notes' AS before_change FROM clinic.patients WHERE id = :'rr_id';
RESET ROLE;
SELECT count(*) AS changed_in_clinic FROM pg_temp.in_clinic(:'ca', format($$UPDATE patients SET notes = notes || '!' WHERE id = %L RETURNING 'x'$$, :'rr_id')) AS t(v text);
SET ROLE regress_app;
SELECT notes = :'rr_notes' AS same_snapshot FROM clinic.patients WHERE id = :'rr_id';
COMMIT;
SELECT notes = :'rr_notes' || '!' AS next_statement_sees_change FROM clinic.patients WHERE id = :'rr_id';
RESET ROLE;
SELECT count(*) AS restored FROM pg_temp.in_clinic(:'ca', format($$UPDATE patients SET notes = %L WHERE id = %L RETURNING 'x'$$, :'rr_notes', :'rr_id')) AS t(v text);
SET ROLE regress_app;

-- The same rows as local evaluation. -----------------------------------------
SELECT (SELECT array_agg(last_name || '/' || coalesce(first_name, '-')) FROM (SELECT * FROM clinic.patients ORDER BY last_name, first_name NULLS FIRST, id LIMIT 12) s)
	 = (SELECT array_agg(last_name || '/' || coalesce(first_name, '-')) FROM (SELECT * FROM pd_local ORDER BY last_name, first_name NULLS FIRST, id LIMIT 12) s)
	   AS collation_order_matches;
SELECT setseed(0.2026);
SELECT * FROM pg_temp.pd_run(400);
-- Again with a small fetch size (several batches per scan) and a custom plan.
SET medpro.fetch_size = 7;
RESET plan_cache_mode;
SELECT setseed(0.7);
SELECT * FROM pg_temp.pd_run(150);
RESET medpro.fetch_size;

-- Aggregates with GROUP BY on one clinic table: computed by the clinic.
EXPLAIN (VERBOSE, COSTS OFF)
SELECT last_name, count(*), count(email), min(first_name), max(date_of_birth), sum(length(notes))
  FROM clinic.patients WHERE is_active GROUP BY last_name ORDER BY last_name;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT count(*) FROM clinic.patients WHERE last_name LIKE 'D%';
-- not shipped: a local clause, a masked column, DISTINCT, HAVING
EXPLAIN (VERBOSE, COSTS OFF)
SELECT count(*) FROM clinic.patients WHERE pg_temp.leaky(first_name);
EXPLAIN (VERBOSE, COSTS OFF)
SELECT gender, count(medical_history), count(DISTINCT last_name) FROM clinic.patients GROUP BY gender HAVING count(*) > 1;
-- the same results as local evaluation
CREATE FUNCTION pg_temp.pd_agg(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	r text[];
	l text[];
BEGIN
	EXECUTE format('SELECT array(SELECT t::text FROM (%s) t ORDER BY 1)', q) INTO r;
	EXECUTE format('SELECT array(SELECT t::text FROM (%s) t ORDER BY 1)',
				   replace(replace(q, 'clinic.patients', 'pd_local'), 'clinic.appointments', 'pd_appt')) INTO l;
	RETURN r IS NOT DISTINCT FROM l AND cardinality(r) > 0;
END
$$;
SELECT pg_temp.pd_agg('SELECT last_name, count(*), count(email), min(first_name), max(date_of_birth), sum(length(notes)) FROM clinic.patients WHERE is_active GROUP BY last_name') AS by_name,
	   pg_temp.pd_agg('SELECT gender, is_active, count(*), min(created_at), max(patient_number) FROM clinic.patients GROUP BY gender, is_active') AS by_gender_active,
	   pg_temp.pd_agg('SELECT count(*), count(gender), sum(length(last_name)), min(email), max(email) FROM clinic.patients WHERE last_name ILIKE ''d%''') AS no_group,
	   pg_temp.pd_agg('SELECT lower(last_name), count(*) FROM clinic.patients GROUP BY lower(last_name)') AS by_expression,
	   pg_temp.pd_agg('SELECT count(*) FROM clinic.patients WHERE last_name = ''nobody''') AS empty,
	   pg_temp.pd_agg('SELECT gender, count(*) FROM clinic.patients WHERE pg_temp.leaky(first_name) GROUP BY gender') AS local;

-- A join of two tables of the clinic runs as one remote join.
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.last_name, a.status, a.start_time FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id
 WHERE a.status IN ('scheduled', 'confirmed') AND p.last_name LIKE 'D%';
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.id, a.title FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id AND a.status <> 'cancelled'
 WHERE p.last_name = 'Durand';
-- not shipped: a clause that stays local on one side
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.id, a.title FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id WHERE pg_temp.leaky(p.first_name);
SELECT pg_temp.pd_agg('SELECT p.last_name, a.status, a.start_time FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id WHERE a.status IN (''scheduled'', ''confirmed'') AND p.last_name LIKE ''D%''') AS inner_join,
	   pg_temp.pd_agg('SELECT p.id, a.title FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id AND a.status <> ''cancelled''') AS left_join,
	   pg_temp.pd_agg('SELECT p.id, a.title FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id AND a.status <> ''cancelled'' WHERE p.last_name = ''Durand''') AS left_join_pushed,
	   pg_temp.pd_agg('SELECT p.id, a.title FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id WHERE a.id IS NULL') AS anti_join,
	   pg_temp.pd_agg('SELECT p.last_name, count(a.id) FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id GROUP BY p.last_name') AS join_then_count,
	   pg_temp.pd_agg('SELECT p1.id, p2.id FROM clinic.patients p1 JOIN clinic.patients p2 ON p1.last_name = p2.last_name AND p1.first_name = p2.first_name AND p1.id < p2.id WHERE p1.is_active') AS self_join,
	   pg_temp.pd_agg('SELECT p.id, a.title FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id WHERE pg_temp.leaky(p.first_name)') AS local_clause;
-- Aggregates over a pushed-down join run in the clinic: one row per group.
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.last_name, count(a.id), min(a.start_time) FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id GROUP BY p.last_name;
SELECT pg_temp.pd_agg('SELECT p.last_name, count(a.id), min(a.start_time), max(a.title) FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id GROUP BY p.last_name') AS left_join_grouped,
	   pg_temp.pd_agg('SELECT a.status, p.gender, count(*), sum(length(a.title)) FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id WHERE p.is_active GROUP BY a.status, p.gender') AS join_grouped,
	   pg_temp.pd_agg('SELECT count(*), count(a.title) FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id') AS join_count;
-- ORDER BY and LIMIT / OFFSET above a pushed-down join run in the clinic
-- too (a sort with another collation stays local, and so does the LIMIT).
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.last_name, a.start_time FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id
 WHERE a.status <> 'cancelled' ORDER BY p.last_name DESC, a.start_time, a.id LIMIT 7 OFFSET 3;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.id, a.title FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id
 ORDER BY a.title NULLS FIRST, p.id, a.id;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.first_name, a.title FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id
 ORDER BY p.first_name COLLATE "C", a.id LIMIT 9;
SELECT pg_temp.pd_agg('SELECT p.last_name, a.start_time, a.id FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id WHERE a.status <> ''cancelled'' ORDER BY p.last_name DESC, a.start_time, a.id LIMIT 7 OFFSET 3') AS join_limit,
	   pg_temp.pd_agg('SELECT p.id, a.title FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id ORDER BY a.title NULLS FIRST, p.id, a.id LIMIT 25') AS left_join_limit,
	   pg_temp.pd_agg('SELECT p.first_name, a.title, a.id FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id ORDER BY p.first_name COLLATE "C", a.id LIMIT 9') AS join_local_sort;
SELECT (SELECT array_agg(x) FROM (SELECT p.id::text || coalesce(a.title, '-') AS x FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id ORDER BY a.title NULLS FIRST, p.id, a.id) s)
	   = (SELECT array_agg(x) FROM (SELECT p.id::text || coalesce(a.title, '-') AS x FROM pd_local p LEFT JOIN pd_appt a ON a.patient_id = p.id ORDER BY a.title NULLS FIRST, p.id, a.id) s)
	   AS left_join_same_order;
-- a RIGHT join (planned as LEFT with the sides swapped), an OFFSET past
-- the unmatched rows, a LIMIT from a sub-select (a parameter of the remote
-- statement), a sort key computed from a sub-select's value
SELECT pg_temp.pd_agg('SELECT a.id, p.id FROM clinic.appointments a RIGHT JOIN clinic.patients p ON a.patient_id = p.id ORDER BY a.start_time DESC, p.id LIMIT 30 OFFSET 60') AS right_join_limit,
	   pg_temp.pd_agg('SELECT a.id FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id ORDER BY a.id LIMIT (SELECT 3::bigint) OFFSET (SELECT 2::bigint)') AS subselect_limit,
	   pg_temp.pd_agg('SELECT a.id FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id ORDER BY a.start_time - (SELECT max(start_time) FROM pd_appt) DESC, a.id LIMIT 5') AS subselect_sort_key;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT a.id FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id ORDER BY a.id LIMIT (SELECT 3::bigint);
-- A generic plan of a sorted, limited join made for clinic A returns
-- clinic B's rows for B, and A's again for A.
PREPARE pd_join_page(bigint, bigint) AS
SELECT p.patient_number, p.last_name, a.title FROM clinic.patients p LEFT JOIN clinic.appointments a ON a.patient_id = p.id
 ORDER BY p.last_name DESC, a.title NULLS FIRST, p.patient_number LIMIT $1 OFFSET $2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE pd_join_page(3, 1);
EXECUTE pd_join_page(3, 1);
SELECT medpro_authenticate(:'b_admin', true) ->> 'role' AS role;
EXECUTE pd_join_page(3, 1);
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
EXECUTE pd_join_page(3, 1);
RESET plan_cache_mode;
DEALLOCATE pd_join_page;
-- the same page of the local copies
SELECT p.patient_number, p.last_name, a.title FROM pd_local p LEFT JOIN pd_appt a ON a.patient_id = p.id
 ORDER BY p.last_name DESC, a.title NULLS FIRST, p.patient_number LIMIT 3 OFFSET 1;

-- Masking: a secretary's qual on a masked column is evaluated on the masked value.
SELECT social_security_number AS a_ssn FROM clinic.patients WHERE social_security_number IS NOT NULL ORDER BY id LIMIT 1 \gset
SELECT count(*) AS admin_finds FROM clinic.patients WHERE social_security_number = :'a_ssn';
-- the encrypted column: the clinic filters on the blind index for an admin,
-- not at all for a secretary (its answer must not depend on the number)
CREATE FUNCTION pg_temp.fetched(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	l text;
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
		IF l ~ 'Rows Fetched' THEN
			RETURN btrim(l);
		END IF;
	END LOOP;
	RETURN NULL;
END $$;
SELECT pg_temp.fetched(format('SELECT count(*) FROM clinic.patients WHERE social_security_number = %L', :'a_ssn')) AS admin_fetched;
SELECT medpro_authenticate(:'a_sec', true) ->> 'role' AS role;
SELECT count(*) AS secretary_finds FROM clinic.patients WHERE social_security_number = :'a_ssn';
SELECT pg_temp.fetched(format('SELECT count(*) FROM clinic.patients WHERE social_security_number = %L', :'a_ssn')) AS secretary_fetched;
-- masked in a pushed-down join as in a scan
SELECT bool_and(p.social_security_number LIKE '*************__') AS masked_in_join, count(*) > 0 AS some_rows
  FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id WHERE p.social_security_number IS NOT NULL;
-- hidden values are NULL for a secretary, also when counted
SELECT count(medical_history) AS secretary_counts_hidden, count(social_security_number) > 0 AS secretary_counts_last2
  FROM clinic.patients;
SELECT count(*) AS secretary_finds_masked FROM clinic.patients
 WHERE social_security_number = repeat('*', 13) || right(:'a_ssn', 2) AND id = (SELECT id FROM pd_local WHERE social_security_number = :'a_ssn' LIMIT 1);
-- sorted here, on the masked values (the clinic would sort the clear ones)
SELECT array(SELECT social_security_number FROM clinic.patients
			  WHERE social_security_number IS NOT NULL ORDER BY social_security_number DESC, id LIMIT 20)
	 = array(SELECT repeat('*', 13) || right(social_security_number, 2) FROM pd_local
			  WHERE social_security_number IS NOT NULL ORDER BY 1 DESC, id LIMIT 20) AS sorted_masked;
-- in a pushed-down join too: the order by a masked column and the
-- aggregates of one are done here, on the masked values
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.medical_history, a.id FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id
 ORDER BY p.medical_history DESC NULLS LAST, a.id LIMIT 5;
SELECT array(SELECT row(p.medical_history, a.id)::text FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id
			  ORDER BY p.medical_history DESC NULLS LAST, a.id LIMIT 5)
	 = array(SELECT row(NULL::text, a.id)::text FROM pd_local p JOIN pd_appt a ON a.patient_id = p.id
			  ORDER BY a.id LIMIT 5) AS join_sorted_masked;
SELECT count(p.medical_history) AS join_counts_hidden, max(p.medical_history) AS join_max_hidden, count(*) > 0 AS some_rows
  FROM clinic.patients p JOIN clinic.appointments a ON a.patient_id = p.id;

-- A function of the caller, leaky or not, never sees a soft-deleted row.
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
CREATE TEMP TABLE spied (patient_number text);
CREATE FUNCTION pg_temp.spy(t text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO spied VALUES (t);
	RETURN true;
END $$;
SELECT count(*) AS rows_seen FROM clinic.patients WHERE pg_temp.spy(patient_number) AND last_name LIKE '%';
RESET ROLE;
SELECT count(*) AS spied, count(*) FILTER (WHERE patient_number IN (
		SELECT v FROM pg_temp.in_clinic(:'ca', 'SELECT patient_number FROM patients WHERE deleted_at IS NOT NULL') AS t(v text)))
	   AS spied_deleted,
	   (SELECT count(*) FROM pg_temp.in_clinic(:'ca', 'SELECT 1 FROM patients WHERE deleted_at IS NOT NULL') AS t(v text))
	   AS deleted_in_clinic
  FROM spied;
-- the clinic holds the numbers encrypted only: ciphertext and blind index
SELECT * FROM pg_temp.in_clinic(:'ca', $$
	SELECT count(*) FILTER (WHERE social_security_number IS NOT NULL) || ' in clear, '
		   || count(*) FILTER (WHERE social_security_number_enc IS NOT NULL
							   AND social_security_number_bidx IS NOT NULL) || ' encrypted'
	  FROM patients
$$) AS t(ssn_in_clinic text);
SET ROLE regress_app;

-- Isolation: one cached plan, two clinics. -----------------------------------
SET plan_cache_mode = force_generic_plan;
PREPARE page(text) AS
	SELECT last_name FROM clinic.patients WHERE last_name LIKE $1 ORDER BY last_name, id LIMIT 3;
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
EXECUTE page('%');
SELECT medpro_authenticate(:'b_admin', true) ->> 'role' AS role;
EXECUTE page('%');
EXECUTE by_name('Durand', 3);
SELECT count(*) AS b_rows FROM clinic.patients;
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
EXECUTE page('%');
EXECUTE by_name('Durand', 3);
-- One transaction, one clinic, however the statements are planned.
BEGIN;
SELECT medpro_authenticate(:'a_admin') ->> 'role' AS role;
EXECUTE page('Z%');
SELECT medpro_authenticate(:'b_admin') ->> 'role' AS role;
EXECUTE page('%');
ROLLBACK;
DEALLOCATE ALL;
RESET plan_cache_mode;

-- A cursor left open by a scan that stopped early is closed with the next
-- statement; a subtransaction rolled back drops the deferred CLOSE.
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
BEGIN;
SET LOCAL medpro.fetch_size = 5;
SELECT count(*) FROM (SELECT id FROM clinic.patients WHERE last_name LIKE 'D%' AND pg_temp.leaky(last_name) LIMIT 2) s;
SAVEPOINT s1;
SELECT count(*) FROM (SELECT id FROM clinic.patients WHERE pg_temp.leaky(last_name) LIMIT 2) s;
ROLLBACK TO SAVEPOINT s1;
SELECT count(*) = (SELECT count(*) FROM pd_local) AS all_rows FROM clinic.patients;
COMMIT;

-- Multi-row INSERT: medpro.fetch_size rows per remote statement, each row
-- returned and audited; with RETURNING, one row per statement.
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
SET medpro.fetch_size = 4;
EXPLAIN (VERBOSE, COSTS OFF)
INSERT INTO clinic.categories (name, color) SELECT 'batch ' || g, 'c' || g FROM generate_series(1, 10) g;
INSERT INTO clinic.categories (name, color) SELECT 'batch ' || g, 'c' || g FROM generate_series(1, 10) g;
INSERT INTO clinic.categories (name, color) SELECT 'returned ' || g, 'c' FROM generate_series(1, 3) g
RETURNING name, company_id = :'ca' AS own_company;
SELECT count(*) FILTER (WHERE name LIKE 'batch %') AS batched, count(*) FILTER (WHERE name LIKE 'returned %') AS returned
  FROM clinic.categories;
SELECT medpro_authenticate(:'a_sec', true) ->> 'role' AS role;
SELECT regress_try($$INSERT INTO clinic.patients (first_name, last_name, medical_history)
					 SELECT 'F' || g, 'L' || g, CASE WHEN g = 3 THEN 'x' END FROM generate_series(1, 5) g$$);
SELECT count(*) AS none_inserted FROM clinic.patients WHERE first_name ~ '^F[0-9]$';
RESET medpro.fetch_size;
RESET ROLE;
-- rows inserted by one statement share their cmin: 10 rows, 3 statements
SELECT * FROM pg_temp.in_clinic(:'ca', $$SELECT count(DISTINCT cmin::text)::text FROM categories WHERE name LIKE 'batch %'$$) AS t(v text);
SELECT count(*) AS audit_rows, count(DISTINCT a.entity_id) AS distinct_ids,
	   bool_and(a.new_data ->> 'name' LIKE 'batch %') AS audited_names
  FROM medpro.audit_log a
 WHERE a.clinic_id = :'ca' AND a.entity = 'categories' AND a.action = 'insert' AND a.new_data ->> 'name' LIKE 'batch %';
SET ROLE regress_app;

-- The routing cache: no catalog read per statement, but a change committed
-- by another backend is seen by the next transaction here.
RESET ROLE;
CREATE FUNCTION pg_temp.elsewhere(stmt text) RETURNS text LANGUAGE sql AS $$
	SELECT dblink_exec(format('host=%s port=%s dbname=%s user=postgres',
							  split_part(current_setting('unix_socket_directories'), ',', 1),
							  current_setting('port'), current_database()), stmt)
$$;
SET ROLE regress_app;
SELECT count(*) AS a_rows FROM clinic.patients;
RESET ROLE;
SELECT pg_temp.elsewhere(format('UPDATE medpro.clinics SET schema_version = schema_version - 1 WHERE id = %L', :'ca'));
SET ROLE regress_app;
SELECT regress_try('SELECT count(*) FROM clinic.patients');
RESET ROLE;
SELECT pg_temp.elsewhere(format('UPDATE medpro.clinics SET schema_version = schema_version + 1 WHERE id = %L', :'ca'));
SET ROLE regress_app;
SELECT count(*) AS a_rows FROM clinic.patients;
RESET ROLE;
SELECT pg_temp.elsewhere(format('UPDATE medpro.clinics SET status = %L WHERE id = %L', 'suspended', :'ca'));
SET ROLE regress_app;
SELECT regress_try('SELECT count(*) FROM clinic.patients');
RESET ROLE;
-- Estimates: the clinic table's reltuples, read at a scan (cached until
-- the routing catalog changes, or for a few minutes); unset until ANALYZE.
CREATE FUNCTION pg_temp.plan_rows(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	j json;
BEGIN
	EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
	RETURN (j -> 0 -> 'Plan' ->> 'Plan Rows')::float8;
END
$$;
SELECT count(*) AS analyzed FROM pg_temp.in_clinic(:'ca', 'ANALYZE patients; SELECT ''x''') AS t(v text);
SELECT pg_temp.elsewhere(format('UPDATE medpro.clinics SET status = %L WHERE id = %L', 'active', :'ca'));
SET ROLE regress_app;
SELECT medpro_authenticate(:'a_admin', true) ->> 'role' AS role;
SELECT pg_temp.plan_rows('SELECT id FROM clinic.patients') AS rows_before_scan;
SELECT count(*) AS a_rows FROM clinic.patients;
SELECT pg_temp.plan_rows('SELECT id FROM clinic.patients') AS rows_after_scan,
	   pg_temp.plan_rows('SELECT id FROM clinic.appointments') AS appointments_not_scanned_since;
-- In a query that joins relations, the clinic's planner estimates each
-- side and a pushed-down join (EXPLAIN there, with its statistics, without
-- the soft-delete filter); parameters are values it does not know.
CREATE FUNCTION pg_temp.clinic_rows(clinic uuid, q text) RETURNS float8 LANGUAGE sql AS $$
	SELECT (v::json -> 0 -> 'Plan' ->> 'Plan Rows')::float8
	  FROM pg_temp.in_clinic(clinic, 'EXPLAIN (FORMAT JSON) ' || q) AS t(v text)
$$;
RESET ROLE;
CREATE FUNCTION pg_temp.scan_rows(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	j jsonb;
BEGIN
	EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
	RETURN jsonb_path_query_first(j, 'strict $.** ? (@."Node Type" == "Foreign Scan")."Plan Rows"')::float8;
END
$$;
SELECT pg_temp.scan_rows('SELECT p.id FROM clinic.patients p JOIN pd_appt a ON a.patient_id = p.id WHERE p.gender = ''female''')
	   = pg_temp.clinic_rows(:'ca', 'SELECT NULL FROM patients WHERE gender = ''female''') AS side_estimated_by_clinic;
SELECT pg_temp.plan_rows('SELECT p.id FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id WHERE p.gender = ''female''')
	   = pg_temp.clinic_rows(:'ca', 'SELECT NULL FROM appointments a JOIN patients p ON a.patient_id = p.id WHERE p.gender = ''female''') AS join_estimated_by_clinic;
SET medpro.remote_estimates = off;
SELECT pg_temp.scan_rows('SELECT p.id FROM clinic.patients p JOIN pd_appt a ON a.patient_id = p.id WHERE p.gender = ''female''') AS side_rows_without;
RESET medpro.remote_estimates;
PREPARE pd_join_param(text) AS
SELECT count(*) FROM clinic.appointments a JOIN clinic.patients p ON p.id = a.patient_id WHERE p.gender = $1;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE pd_join_param('female');
EXECUTE pd_join_param('female');
RESET plan_cache_mode;
SELECT count(*) AS local_count FROM pd_appt a JOIN pd_local p ON p.id = a.patient_id WHERE p.gender = 'female';
DEALLOCATE pd_join_param;
SET ROLE regress_app;
-- A deactivated user's session context ends at the next transaction.
RESET ROLE;
SELECT pg_temp.elsewhere('UPDATE medpro.users SET is_active = false WHERE email = ''admin@pd-a.test''');
SET ROLE regress_app;
SELECT regress_try('SELECT count(*) FROM clinic.patients');
RESET ROLE;
SELECT pg_temp.elsewhere('UPDATE medpro.users SET is_active = true WHERE email = ''admin@pd-a.test''');

SELECT medpro_reset();
RESET ROLE;
DROP TABLE pd_local, pd_appt;
