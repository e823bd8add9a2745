#!/usr/bin/env bash
# scripts/deps.sh: install the Debian 12 packages medpro needs to build and
# test, skipping those already installed.  Needs root (or sudo) only when
# something is missing.
set -euo pipefail
PKGS="postgresql-15 postgresql-contrib postgresql-server-dev-15 postgresql-15-pgtap
libtap-parser-sourcehandler-pgtap-perl libssl-dev libargon2-dev make gcc openssl python3
clang-14 libclang-rt-14-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
