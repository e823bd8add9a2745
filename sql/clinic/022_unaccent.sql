-- medpro clinic migration 022: unaccent in every clinic database
--
-- So that a query on clinic.* that compares unaccent(column) (the contrib
-- extension, also installed in the central database) runs in the clinic
-- database instead of fetching the table: medpro's routing ships the
-- one-argument unaccent(text) as public.unaccent(...) (docs/routing.md).
-- Created, like btree_gist in migration 011, by the migration runner, which
-- connects as a superuser (unaccent is a trusted extension).

CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;
