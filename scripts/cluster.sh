#!/usr/bin/env bash
# scripts/cluster.sh: a throwaway PostgreSQL 15 cluster for the demo, the tests
# and the benchmarks.
#
#   scripts/cluster.sh start   create (if needed) and start the cluster
#   scripts/cluster.sh stop    stop it
#   scripts/cluster.sh destroy stop it and remove its directory
#   scripts/cluster.sh env     print the PG* variables that reach it
#
# The cluster lives in $MEDPRO_CLUSTER (default /tmp/medpro-cluster), listens
# only on its own Unix socket directory and on port $MEDPRO_PGPORT (default
# 54329).  PostgreSQL refuses to run as root, so when invoked as root every
# server command runs as the unprivileged user $MEDPRO_PGUSER_OS (postgres).
# A fresh 256-bit master key is written to $MEDPRO_CLUSTER/master.key (mode
# 0600, outside the data directory) and set as medpro.master_key_file.
set -euo pipefail

: "${MEDPRO_CLUSTER:=/tmp/medpro-cluster}"
: "${MEDPRO_PGPORT:=54329}"
: "${MEDPRO_PGUSER_OS:=postgres}"
PGBIN=${MEDPRO_PGBIN:-$(pg_config --bindir)}
DATA="$MEDPRO_CLUSTER/data"

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		# from /, which the unprivileged user can always enter
		(cd / && runuser -u "$MEDPRO_PGUSER_OS" -- "$@")
	else
		"$@"
	fi
}

start() {
	if [ ! -f "$DATA/PG_VERSION" ]; then
		mkdir -p "$MEDPRO_CLUSTER"
		[ "$(id -u)" -eq 0 ] && chown "$MEDPRO_PGUSER_OS" "$MEDPRO_CLUSTER"
		as_owner "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 >"$MEDPRO_CLUSTER/initdb.log" 2>&1
		as_owner sh -c "umask 077 && od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' > '$MEDPRO_CLUSTER/master.key'"
		as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<CONF
# medpro throwaway cluster
listen_addresses = ''
port = $MEDPRO_PGPORT
unix_socket_directories = '$MEDPRO_CLUSTER'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
medpro.master_key_file = '$MEDPRO_CLUSTER/master.key'
CONF
	fi
	if ! as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
		as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$MEDPRO_CLUSTER/server.log" -w -t 60 start >/dev/null
	fi
}

stop() {
	if [ -f "$DATA/PG_VERSION" ] && as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
		as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
	fi
}

case "${1:-}" in
	start) start ;;
	stop) stop ;;
	destroy) stop; rm -rf "$MEDPRO_CLUSTER" ;;
	env) printf 'export PGHOST=%s PGPORT=%s PGUSER=postgres\n' "$MEDPRO_CLUSTER" "$MEDPRO_PGPORT" ;;
	*) echo "usage: $0 start|stop|destroy|env" >&2; exit 2 ;;
esac
