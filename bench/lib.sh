# bench/lib.sh: sourced by the benchmark scripts.  Installs what is missing,
# builds and installs medpro (unless MEDPRO_SKIP_BUILD=1), and starts a
# throwaway cluster that is removed when the script exits.  With PG_CONFIG
# set, that PostgreSQL is used instead of the one on PATH.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ -n "${PG_CONFIG:-}" ] && export PATH="$("$PG_CONFIG" --bindir):$PATH"
export MEDPRO_CLUSTER=${MEDPRO_CLUSTER:-/tmp/medpro-bench-cluster}
export MEDPRO_PGPORT=${MEDPRO_PGPORT:-54332}
scripts/deps.sh
[ "${MEDPRO_SKIP_BUILD:-0}" = 1 ] || scripts/build.sh
scripts/cluster.sh destroy
scripts/cluster.sh start
trap 'scripts/cluster.sh destroy' EXIT
eval "$(scripts/cluster.sh env)"
