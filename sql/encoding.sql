--
-- encoding: arguments that are not valid UTF-8, in a SQL_ASCII database,
-- give clean errors (never a crash); 8-bit passwords still work.
--
CREATE DATABASE medpro_regress_ascii ENCODING SQL_ASCII TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C';
\c medpro_regress_ascii
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never
SELECT medpro_key_rotate() IS NOT NULL AS rotated;
SELECT medpro_create_super_admin(E'r\xffoot@x.test', 'a long password 1');
SELECT medpro_create_super_admin('root@x.test', E'a long p\xffssword 1') IS NOT NULL AS created_with_8bit_password;
SELECT medpro_login(E'ro\xffot@x.test', 'a long password 1');
SELECT medpro_login('root@x.test', E'a long p\xffssword 1') IS NOT NULL AS logged_in;
SELECT medpro_login('root@x.test', E'a long p\xfessword 1');
SELECT medpro_authenticate(E'eyJ\xff.e30.x');
SELECT medpro_authenticate(E'\xff\xfe\xfd');
SELECT medpro_jwt_sign('{"a":1}', E'\xff' || repeat('k', 40));
SELECT medpro_jwt_verify(E'eyJhbGciOiJIUzI1NiJ9.\xff.x', repeat('k', 40));
SELECT valid, reason FROM medpro_jwt_decode(E'\xff', repeat('k', 40));
SELECT medpro_jwt_verify(medpro_jwt_sign('{"sub":"ascii only","exp":4102444800}', repeat('k', 40)), repeat('k', 40));
-- PEM keys (EdDSA): a round trip, and an 8-bit byte in a text key.
\set ed_key `cat test/keys/ed25519_rfc8037.key`
\set ed_pub `cat test/keys/ed25519_rfc8037.pub`
SELECT medpro_jwt_verify(medpro_jwt_sign('{"sub":"ascii only","exp":4102444800}', :'ed_key', 'EdDSA'), :'ed_pub', 'EdDSA');
SELECT medpro_jwt_verify('a.b.c', E'\xff' || :'ed_pub', 'EdDSA');
SELECT medpro_jwt_verify('a.b.c', convert_to(:'ed_pub', 'SQL_ASCII') || '\xff'::bytea, 'EdDSA');
\c postgres
DROP DATABASE medpro_regress_ascii;
