-- medpro install script, part 60: this backend's clinic connections.
--
-- Routing keeps, per backend, a small LRU cache of libpq connections to
-- clinic databases (medpro.max_cached_connections, src/remote.c).  The view
-- shows the calling backend's cache only: connections are private to the
-- backend that made them.

CREATE FUNCTION medpro.connections_internal(
	OUT clinic_id uuid,
	OUT db_name text,
	OUT in_transaction boolean,
	OUT last_used timestamptz,
	OUT alive boolean)
RETURNS SETOF record
LANGUAGE C VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'medpro_connections_internal';
COMMENT ON FUNCTION medpro.connections_internal()
	IS 'internal: this backend''s cached clinic connections, for medpro.connections';
REVOKE ALL ON FUNCTION medpro.connections_internal() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION medpro.connections_internal() TO medpro_operator;

CREATE VIEW medpro.connections AS
SELECT c.clinic_id, c.db_name, c.in_transaction, c.last_used, c.alive
  FROM medpro.connections_internal() c;
COMMENT ON VIEW medpro.connections
	IS 'this backend''s cached clinic connections (least recently used are closed first): clinic, database, whether the current transaction uses it, last use, whether its server is still there';
GRANT SELECT ON medpro.connections TO medpro_operator;
