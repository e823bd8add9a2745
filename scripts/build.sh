#!/usr/bin/env bash
# scripts/build.sh: build medpro with -Werror and install it into the
# PostgreSQL found by pg_config ($PG_CONFIG when set: its bindir goes first
# on PATH, so a private PostgreSQL copy can be used instead of the system's).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${PG_CONFIG:-}" ] && export PATH="$("$PG_CONFIG" --bindir):$PATH"
SUDO=""
[ "$(id -u)" -ne 0 ] && [ ! -w "$(pg_config --pkglibdir)" ] && SUDO=sudo
make -s clean >/dev/null
make -s PG_CFLAGS="-Werror" >/dev/null
$SUDO make -s install >/dev/null
