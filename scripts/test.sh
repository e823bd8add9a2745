#!/usr/bin/env bash
# scripts/test.sh: run every medpro test on a throwaway cluster.
#
#   1. install missing packages, build with -Werror, install;
#      then the JOSE parser alone (test/fuzz/run.sh): its unit tests under
#      ASan and UBSan, and libFuzzer for $MEDPRO_FUZZ_SECONDS (default 60);
#   2. start a fresh cluster (scripts/cluster.sh), as an unprivileged user
#      when run as root;
#   3. pg_regress: `make installcheck` from a copy of the tree that the
#      server's user can write;
#   4. pgTAP: pg_prove on test/*.sql, in a database of its own.
#
# Exits non-zero on any failure.  The cluster is removed at the end unless
# MEDPRO_KEEP_CLUSTER=1.  With PG_CONFIG set, that PostgreSQL's binaries
# are used (and medpro is installed there) instead of the one on PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -n "${PG_CONFIG:-}" ] && export PATH="$("$PG_CONFIG" --bindir):$PATH"

export MEDPRO_CLUSTER=${MEDPRO_CLUSTER:-/tmp/medpro-test-cluster}
export MEDPRO_PGPORT=${MEDPRO_PGPORT:-54330}
OSUSER=${MEDPRO_PGUSER_OS:-postgres}

"$ROOT"/scripts/deps.sh
"$ROOT"/scripts/build.sh

# Public test vectors: ../shared/vectors beside the checkout, or $MEDPRO_VECTORS.
VECTORS=${MEDPRO_VECTORS:-$ROOT/../shared/vectors}
[ -f "$VECTORS/jwt_public.json" ] || { echo "test vectors not found in $VECTORS" >&2; exit 1; }

status=0
# The JOSE parser outside PostgreSQL: sanitizer unit tests, then libFuzzer
# for $MEDPRO_FUZZ_SECONDS (default 60).  Needs no server.
echo "== parser (ASan + UBSan tests, libFuzzer)"
if ! MEDPRO_VECTORS="$VECTORS" "$ROOT"/test/fuzz/run.sh; then
	status=1
fi

"$ROOT"/scripts/cluster.sh destroy
"$ROOT"/scripts/cluster.sh start
cleanup() {
	if [ "${MEDPRO_KEEP_CLUSTER:-0}" != 1 ]; then
		"$ROOT"/scripts/cluster.sh destroy || true
	fi
	cd /
	[ -n "${WORK:-}" ] && rm -rf "$WORK"
	return 0
}
trap cleanup EXIT
eval "$("$ROOT"/scripts/cluster.sh env)"

# A copy of the tree the server's user can write (pg_regress writes results/).
WORK=$(mktemp -d /tmp/medpro-test-XXXXXX)
cp -a "$ROOT/." "$WORK/tree"
mkdir -p "$WORK/tree/vectors"
cp "$VECTORS"/*.json "$WORK/tree/vectors/"
chmod -R a+rX "$WORK"
run() {
	cd "$WORK/tree"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$OSUSER" "$WORK"
		runuser -u "$OSUSER" -- env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER="$PGUSER" \
			MEDPRO_VECTORS="$WORK/tree/vectors" MEDPRO_CLUSTER="$MEDPRO_CLUSTER" PATH="$PATH" "$@"
	else
		env MEDPRO_VECTORS="$WORK/tree/vectors" "$@"
	fi
}

echo "== pg_regress"
if ! run make -C "$WORK/tree" -s installcheck; then
	status=1
	[ -f "$WORK/tree/regression.diffs" ] && head -n 300 "$WORK/tree/regression.diffs"
fi

echo "== pgTAP"
run psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS medpro_tap" -c "CREATE DATABASE medpro_tap"
run psql -X -q -v ON_ERROR_STOP=1 -d medpro_tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION medpro CASCADE"
if ! run pg_prove -d medpro_tap --failures test/*.sql; then
	status=1
fi

if [ $status -eq 0 ]; then echo "all tests passed"; else echo "TESTS FAILED" >&2; fi
exit $status
