#!/usr/bin/env bash
# usage: launch/with_storage_password.sh FILE COMMAND [ARGS...]
# Runs COMMAND with DSGKD_STORAGE_PASSWORD set to the first line of FILE, a file on the head node that only
# its owner may read; dsgkd puts it into the Optuna storage URL when it connects. launch/submit.sh makes this
# the job's entrypoint when DSGKD_STORAGE_PASSWORD_FILE is set. Why a file: Ray keeps a job's entrypoint and
# its runtime_env (env_vars included) in plain text in its job table (`ray job list`, the dashboard), so the
# password goes in neither; only FILE's path is recorded. Errors: one line on stderr, exit 2.
set -euo pipefail

die() { echo "with_storage_password.sh: $*" >&2; exit 2; }

[[ $# -ge 2 ]] || die "usage: launch/with_storage_password.sh FILE COMMAND [ARGS...]"
file=$1
shift
[[ -f $file ]] || die "$file: no such file on $(hostname) (copy the storage password there, mode 600)"
[[ -O $file ]] || die "$file belongs to another user: it must be $(id -un)'s own, mode 600"
mode=$(stat -L -c %a "$file")
(( (8#$mode & 8#077) == 0 )) || die "$file is readable by others (mode $mode): chmod 600 $file"
password=
IFS= read -r password <"$file" || true
password=${password%$'\r'}
[[ -n $password ]] || die "$file is empty: its first line is the storage password"
export DSGKD_STORAGE_PASSWORD=$password
unset password
exec "$@"
