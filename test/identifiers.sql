-- pgTAP: medpro_valid_business_number, medpro_valid_vat_number and
-- medpro_valid_ssn against the public vectors ($MEDPRO_VECTORS/identifiers.json,
-- default ../shared/vectors), every one of which is asserted, then cases of
-- our own for each rule (separators, case, La Poste, Corsica, CIF control
-- forms, the old NUSS numbering), bad arguments, and the checks that
-- medpro_register_clinic makes with them.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
BEGIN;

\set vectors `cat "${MEDPRO_VECTORS:-../shared/vectors}/identifiers.json"`
CREATE TEMP TABLE vec AS
	SELECT c.key AS country, k.key AS kind, x.value AS value, x.expected
	  FROM jsonb_each((:'vectors')::jsonb) c,
		   jsonb_each(c.value) k,
		   LATERAL (SELECT v, true FROM jsonb_array_elements_text(k.value -> 'valid') v
					UNION ALL
					SELECT v, false FROM jsonb_array_elements_text(k.value -> 'invalid') v) x(value, expected)
	 WHERE c.key IN ('FR', 'ES');

-- The checker of each kind of vector.
CREATE FUNCTION pg_temp.check(country text, kind text, value text) RETURNS boolean LANGUAGE sql AS $$
	SELECT CASE WHEN kind IN ('siren', 'siret', 'dni', 'nie', 'cif') THEN medpro_valid_business_number(country, value)
				WHEN kind = 'vat' THEN medpro_valid_vat_number(value)
				WHEN kind IN ('nir', 'nuss') THEN medpro_valid_ssn(country, value) END
$$;

-- Our own cases: function, country, value, expected, why.
CREATE TEMP TABLE own(fn text, country text, value text, expected boolean, why text);
INSERT INTO own VALUES
	('business', 'FR', '123 456 782', true, 'SIREN with spaces'),
	('business', 'FR', '000000000', true, 'SIREN of zeros passes Luhn'),
	('business', 'FR', '12345678a', false, 'SIREN with a letter'),
	('business', 'FR', '', false, 'empty SIREN'),
	('business', 'FR', '1234567820', false, 'ten digits are neither SIREN nor SIRET'),
	('business', 'FR', '123-456-782-00010', true, 'SIRET with hyphens'),
	('business', 'FR', '35600000000048', true, 'La Poste head office (passes Luhn)'),
	('business', 'FR', '35600000000010', true, 'La Poste establishment: digit sum 15, fails Luhn, valid'),
	('business', 'FR', '35600000000011', false, 'La Poste establishment: digit sum 16 and no Luhn'),
	('business', 'FR', '12345678200011', false, 'digit sum 40 does not rescue a SIRET outside La Poste'),
	('business', 'FR', '12345678900007', false, 'SIRET passing Luhn whose SIREN 123456789 does not'),
	('business', 'FR', '35600000000014', false, 'La Poste establishment passing Luhn, digit sum 18: invalid'),
	('business', 'FR', '12345678Z', false, 'a Spanish DNI is not a French business number'),
	('business', 'ES', '12345678-z', true, 'DNI, lower-case letter and hyphen'),
	('business', 'ES', '00000001R', true, 'DNI 1 has letter R'),
	('business', 'ES', 'Z1234567R', true, 'NIE with Z (counts as 2)'),
	('business', 'ES', 'Z1234567L', false, 'NIE with Z and the letter of X'),
	('business', 'ES', 'P1234567D', true, 'CIF of a public body: control letter'),
	('business', 'ES', 'P12345674', false, 'CIF of a public body with a control digit'),
	('business', 'ES', 'B1234567D', false, 'CIF of an SL with a control letter'),
	('business', 'ES', 'C1234567D', true, 'CIF letter C: control letter accepted'),
	('business', 'ES', 'C12345674', true, 'CIF letter C: control digit accepted'),
	('business', 'ES', '123456782', false, 'a SIREN is not a Spanish NIF'),
	('business', 'ES', 'M1234567L', true, 'NIF M (foreigner without NIE): the DNI letter of 1234567'),
	('business', 'ES', 'k-1234567-l', true, 'NIF K (Spaniard under 14), lower case and hyphens'),
	('business', 'ES', 'L1234567L', true, 'NIF L (Spaniard abroad)'),
	('business', 'ES', 'M1234567D', false, 'NIF M with the CIF control letter instead of the DNI letter'),
	('business', 'ES', 'K12345674', false, 'NIF K with a control digit'),
	('vat', NULL, 'fr 11 123456782', true, 'FR VAT with spaces, lower case'),
	('vat', NULL, 'FR11123456789', false, 'FR VAT whose SIREN fails Luhn'),
	('vat', NULL, 'FR12000000000', true, 'FR VAT of SIREN 000000000 has key 12'),
	('vat', NULL, 'FRXX123456782', false, 'FR VAT with a letter key'),
	('vat', NULL, 'ESX1234567L', true, 'ES VAT of a NIE'),
	('vat', NULL, 'ESP1234567D', true, 'ES VAT of a CIF with a control letter'),
	('vat', NULL, 'ESM1234567L', true, 'ES VAT of a NIF M'),
	('vat', NULL, 'DE123456789', false, 'other countries are not validated'),
	('vat', NULL, '123456782', false, 'no country prefix'),
	('ssn', 'FR', '1 85 05 75 123 456 73', true, 'NIR with spaces'),
	('ssn', 'FR', '185052B12345660', true, 'NIR born in Haute-Corse (2B counts as 18)'),
	('ssn', 'FR', '185052A12345633', true, 'NIR born in Corse-du-Sud (2A counts as 19)'),
	('ssn', 'FR', '185052a12345633', true, 'NIR with lower-case 2a'),
	('ssn', 'FR', '185052B12345633', false, 'the 2A key under 2B'),
	('ssn', 'FR', '185052C12345633', false, 'no department 2C'),
	('ssn', 'FR', '585057512345673', false, 'first digit 5 is no sex code'),
	('ssn', 'FR', '18505751234567', false, 'NIR without the second key digit'),
	('ssn', 'FR', '281234567840', false, 'a NUSS is not a NIR'),
	('ssn', 'ES', '28/12345678/40', true, 'NUSS with slashes'),
	('ssn', 'ES', '2812345678', false, 'NUSS without control digits'),
	('ssn', 'ES', '185057512345673', false, 'a NIR is not a NUSS');

SELECT plan((SELECT count(*) FROM vec)::int + (SELECT count(*) FROM own)::int + 19);

SELECT is(pg_temp.check(country, kind, value), expected,
		  format('vector %s %s %s is %s', country, kind, value, CASE WHEN expected THEN 'valid' ELSE 'invalid' END))
  FROM vec ORDER BY country, kind, expected DESC, value;

SELECT is(CASE fn WHEN 'business' THEN medpro_valid_business_number(country, value)
				  WHEN 'vat' THEN medpro_valid_vat_number(value)
				  ELSE medpro_valid_ssn(country, value) END,
		  expected, format('%s %s %s: %s', fn, coalesce(country, ''), value, why))
  FROM own;

-- Every vector kind is covered (a renamed kind would be skipped silently).
SELECT is((SELECT count(DISTINCT country || kind)::int FROM vec), 9, 'the vectors of all 9 kinds were checked');

SELECT is((SELECT string_agg(DISTINCT provolatile::text, ',') FROM pg_proc
			WHERE proname IN ('medpro_valid_business_number', 'medpro_valid_vat_number', 'medpro_valid_ssn')),
		  'i', 'the three checkers are IMMUTABLE');
SELECT ok(medpro_valid_ssn('FR', NULL) IS NULL AND medpro_valid_vat_number(NULL) IS NULL, 'NULL in, NULL out');
SELECT ok(medpro_valid_ssn('fr', '185057512345673'), 'the country is case-insensitive');
SELECT throws_ok($$SELECT medpro_valid_ssn('DE', '185057512345673')$$, '22023', 'unsupported country "DE"',
				 'another country is refused');
SELECT throws_ok($$SELECT medpro_valid_business_number('', '123456782')$$, '22023', 'unsupported country ""',
				 'an empty country is refused');
SELECT ok(NOT medpro_valid_ssn('FR', repeat('1', 10000)), 'a very long value is invalid, not an error');
SELECT ok(NOT medpro_valid_business_number('FR', '１２３４５６７８２'), 'full-width digits are not digits');
SELECT ok(NOT medpro_valid_ssn('FR', E'1850575123456\u00a073'), 'a no-break space is not a separator');
SELECT ok(NOT medpro_valid_ssn('FR', ''), 'an empty value is invalid, not an error');
-- The country is cut to 16 bytes in the message, never inside a character.
SELECT throws_ok($$SELECT medpro_valid_ssn('ＦＲＦＲＦＲ', '185057512345673')$$, '22023', 'unsupported country "ＦＲＦＲＦ"',
				 'a long country is cut at a character boundary in the message');

-- medpro_register_clinic checks the numbers for its country (before
-- creating anything).
SELECT throws_ok($$SELECT medpro_register_clinic('Ident FR', 'FR', 'admin@ident-fr.test', 'ident password 2026',
												  business_number => '123456789')$$,
				 '22023', 'invalid business number for country FR', 'register: bad SIREN');
SELECT throws_ok($$SELECT medpro_register_clinic('Ident FR', 'FR', 'admin@ident-fr.test', 'ident password 2026',
												  business_number => '123456782', vat_number => 'FR12123456782')$$,
				 '22023', 'invalid VAT number for country FR', 'register: bad FR VAT key');
SELECT throws_ok($$SELECT medpro_register_clinic('Ident FR', 'FR', 'admin@ident-fr.test', 'ident password 2026',
												  vat_number => 'ESB12345674')$$,
				 '22023', 'invalid VAT number for country FR', 'register: a valid Spanish VAT number for a French clinic');
SELECT throws_ok($$SELECT medpro_register_clinic('Ident ES', 'ES', 'admin@ident-es.test', 'ident password 2026',
												  business_number => '123456782')$$,
				 '22023', 'invalid business number for country ES', 'register: a SIREN for a Spanish clinic');
SELECT throws_ok($$SELECT medpro_register_clinic('Ident ES', 'ES', 'admin@ident-es.test', 'ident password 2026',
												  business_number => 'B12345674', vat_number => 'ESB12345675')$$,
				 '22023', 'invalid VAT number for country ES', 'register: bad ES VAT control');
SELECT throws_ok($$SELECT medpro_register_clinic('Ident FR', 'FR', 'admin@ident-fr.test', 'ident password 2026',
												  business_number => '123 456 782 00010', vat_number => 'FR14987654324')$$,
				 '22023', 'VAT number does not match the business number', 'register: FR VAT of another SIREN');
SELECT throws_ok($$SELECT medpro_register_clinic('Ident ES', 'ES', 'admin@ident-es.test', 'ident password 2026',
												  business_number => 'B12345674', vat_number => 'ES12345678Z')$$,
				 '22023', 'VAT number does not match the business number', 'register: ES VAT of another NIF');
SELECT is((SELECT count(*)::int FROM medpro.clinics WHERE name LIKE 'Ident %'), 0, 'no clinic row was left');

SELECT * FROM finish();
ROLLBACK;
