#!/usr/bin/env bash
# scripts/demo.sh: the demo.  Installs what is missing, builds and installs
# medpro, starts a throwaway cluster and runs the main job (demo/main.sql) on
# it as an application role that holds only medpro_api.
#
# MEDPRO_KEEP_CLUSTER=1 leaves the cluster running afterwards (see
# `scripts/cluster.sh env` to reach it).  With PG_CONFIG set, that
# PostgreSQL is used instead of the one on PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -n "${PG_CONFIG:-}" ] && export PATH="$("$PG_CONFIG" --bindir):$PATH"
export MEDPRO_CLUSTER=${MEDPRO_CLUSTER:-/tmp/medpro-demo-cluster}
export MEDPRO_PGPORT=${MEDPRO_PGPORT:-54331}

scripts/deps.sh
scripts/build.sh
scripts/cluster.sh destroy
scripts/cluster.sh start
[ "${MEDPRO_KEEP_CLUSTER:-0}" = 1 ] || trap 'scripts/cluster.sh destroy' EXIT
eval "$(scripts/cluster.sh env)"

# The operator's part: the central database, the extension, a login role for
# the application (medpro_api only) and one for operations (medpro_operator).
psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
CREATE DATABASE medpro_central;
\c medpro_central
SET client_min_messages = warning;
CREATE EXTENSION medpro CASCADE;
CREATE ROLE demo_app LOGIN;
GRANT medpro_api TO demo_app;
CREATE ROLE demo_ops LOGIN;
GRANT medpro_operator TO demo_ops;
-- the legacy Node backend's JWT_SECRET, so its tokens keep working (superusers import keys)
SELECT medpro_key_import('legacy-node', 'HS256', 'the-legacy-node-backend-jwt-secret!!');
SQL

psql -X -q -v ON_ERROR_STOP=1 -d medpro_central -f demo/setup_operator.sql -U demo_ops
psql -X -q -v ON_ERROR_STOP=1 -d medpro_central -f demo/main.sql -U demo_app
psql -X -q -v ON_ERROR_STOP=1 -d medpro_central -f demo/routing.sql -U demo_app
psql -X -q -v ON_ERROR_STOP=1 -d medpro_central -f demo/summary_operator.sql -U demo_ops

if [ "${MEDPRO_KEEP_CLUSTER:-0}" = 1 ]; then
	echo "== done; the cluster is kept: eval \"\$(MEDPRO_CLUSTER=$MEDPRO_CLUSTER MEDPRO_PGPORT=$MEDPRO_PGPORT scripts/cluster.sh env)\"; psql -d medpro_central"
else
	echo "== done; the throwaway cluster is removed (MEDPRO_KEEP_CLUSTER=1 keeps it)"
fi
