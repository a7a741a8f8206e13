#!/usr/bin/env bash
# Makes a private SoftHSM2 configuration and token store under DIR, so tests
# and the demo never touch the system token store (/var/lib/softhsm) and
# need no root. Idempotent: an existing DIR is reused as it is.
#
#   eval "$(scripts/softhsm-env.sh /tmp/demo/hsm)"   # exports SOFTHSM2_CONF
#   sealtap keys init ...                           # creates token and KEK
#
# Layout (the same as `sealtap keys init` with kms.softhsm_dir = DIR):
#   DIR/softhsm2.conf   directories.tokendir = DIR/tokens, file backend
#   DIR/tokens/         one subdirectory per token, mode 0700
#
# Prints the export line on stdout, what it did on stderr. Exit 0, or 2 on
# bad usage, 1 when DIR cannot be made.
set -euo pipefail

usage() {
	echo "usage: $0 DIR    (prints: export SOFTHSM2_CONF=DIR/softhsm2.conf)" >&2
	exit 2
}
[[ $# -eq 1 && $1 != -* ]] || usage

umask 077
mkdir -p "$1/tokens" || { echo "softhsm-env: cannot create $1/tokens" >&2; exit 1; }
dir=$(cd "$1" && pwd -P)
conf=$dir/softhsm2.conf
if [[ ! -f $conf ]]; then
	cat >"$conf" <<EOF
# SoftHSM2 configuration made by scripts/softhsm-env.sh (development only).
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
	echo "softhsm-env: created $conf" >&2
else
	echo "softhsm-env: using $conf" >&2
fi
printf 'export SOFTHSM2_CONF=%q\n' "$conf"
