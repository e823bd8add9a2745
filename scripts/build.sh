#!/usr/bin/env bash
# scripts/build.sh: build medpro with -Werror and install it into the
# PostgreSQL found by pg_config.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -ne 0 ] && [ ! -w "$(pg_config --pkglibdir)" ] && SUDO=sudo
make -s clean >/dev/null
make -s PG_CFLAGS="-Werror" >/dev/null
$SUDO make -s install >/dev/null
