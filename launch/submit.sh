#!/usr/bin/env bash
# Submit a `dsgkd search` to the Ray cluster of cluster.yaml (AWS) or launch/onprem.yaml as a Ray job.
# See launch/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: launch/submit.sh SPACE [dsgkd search args ...]
       launch/submit.sh --help

Submits `dsgkd search --space SPACE --out RUN --address auto [args]` with
`ray job submit --working-dir <repository root>`: the job runs on the head node of the cluster
started by `ray up cluster.yaml` (or `ray up launch/onprem.yaml`), with the code of this checkout.

  SPACE   a search-space YAML inside this repository, e.g. search_spaces/pairs.yaml
  args    passed on to `dsgkd search`, e.g. --num-samples 64, --resume,
          --set data.path=/mnt/shared/data/ped.csv (the data must be on the shared storage)

Environment:
  RAY_ADDRESS           Jobs API of the cluster (default http://127.0.0.1:8265, i.e. the tunnel
                        that `ray dashboard cluster.yaml` keeps open; the dashboard is never public)
  RAY_AUTH_MODE         default token: the request carries "Authorization: Bearer <token>"
  RAY_AUTH_TOKEN        the cluster's token, or
  RAY_AUTH_TOKEN_PATH   a file holding it; default ~/.ray/auth_token (the file `ray up` copied to
                        the nodes; fetch it with: ray rsync-down cluster.yaml '~/.ray/auth_token' FILE)
  DSGKD_SHARED          shared storage mounted on every node (default /mnt/shared)
  DSGKD_RUN             RUN directory (default $DSGKD_SHARED/runs/<SPACE name>); --out in args wins
  DSGKD_OPTUNA_STORAGE  Optuna RDB URL (default: SQLite on the head's own disk,
                        sqlite:///$DSGKD_HEAD_HOME/dsgkd-optuna/<RUN name>.db; or a postgresql:// URL);
                        --optuna-storage in args wins. Keep the same one for --resume. Never with a
                        password in it (refused, as in any argument): Ray keeps a job's command line
                        and runtime_env in plain text (ray job list, the dashboard). The password:
  DSGKD_STORAGE_PASSWORD_FILE
                        a file ON THE HEAD holding the storage password, owned by the SSH user, mode
                        600 (once: chmod 600 pw; ray rsync-up cluster.yaml pw
                        '~/.dsgkd-storage-password'; launch/README.md, section 5).
                        The job runs launch/with_storage_password.sh FILE dsgkd search ..., which
                        reads it into DSGKD_STORAGE_PASSWORD for dsgkd alone: only the path is recorded.
  DSGKD_HEAD_HOME       the SSH user's home on the head (default /home/ubuntu, cluster.yaml's user;
                        launch/onprem.yaml: /home/<auth.ssh_user>)
  DSGKD_SUBMISSION_ID   job id (default dsgkd-<RUN name>-<UTC time>)
  DSGKD_WAIT=1          stream the job's logs until it ends (default: submit and return)
  DSGKD_DRY_RUN=1       print the `ray job submit` command instead of running it

The upload leaves out what .gitignore and .rayignore name: data files (*.csv, *.parquet, *.jsonl,
*.tsv, ...), runs/, data/, caches, weights. Data reaches the cluster only when you copy it to the
shared storage: ray rsync-up cluster.yaml data/ped.csv /mnt/shared/data/ped.csv

Then: ray job logs -f <id> | ray job status <id> | ray job stop <id>   (same RAY_ADDRESS and token)
EOF
}

die() { echo "submit.sh: $*" >&2; exit 2; }

if [[ $# -lt 1 ]]; then usage >&2; exit 2; fi
case "$1" in
    -h|--help) usage; exit 0 ;;
    -*) die "the first argument is the search-space YAML (see --help), not '$1'" ;;
esac

space_arg=$1
shift

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
[[ -f $space_arg ]] || die "no such search space: $space_arg"
space_abs="$(cd "$(dirname "$space_arg")" && pwd -P)/$(basename "$space_arg")"
case "$space_abs" in
    "$repo"/*) space="${space_abs#"$repo"/}" ;;  # relative to the working dir the job runs in
    *) die "$space_arg is outside $repo: the job only sees files of the uploaded working dir" ;;
esac

name=$(basename "$space")
name=${name%.*}

# Caller's own --out / --optuna-storage win over the defaults.
has_out=0 has_storage=0 out_value=
prev=
for a in "$@"; do
    case "$a" in
        --out=*) has_out=1; out_value=${a#--out=} ;;
        --out) has_out=1 ;;
        --optuna-storage|--optuna-storage=*) has_storage=1 ;;
    esac
    if [[ $prev == --out ]]; then out_value=$a; fi
    prev=$a
done

shared=${DSGKD_SHARED:-/mnt/shared}
shared=${shared%/}
extra=()
if [[ $has_out == 1 ]]; then
    run=$out_value
else
    run=${DSGKD_RUN:-$shared/runs/$name}
    extra+=(--out "$run")
fi
[[ -n $run ]] || die "--out needs a value"
case "$run" in
    /*) ;;
    *://*) die "RUN=$run: dsgkd search writes RUN with local file paths; use the shared mount ($shared/...)" ;;
    *) die "RUN=$run is relative: it would land in the job's temporary working dir on the head; use $shared/..." ;;
esac
run_name=$(basename "${run%/}")
if [[ $has_storage == 0 ]]; then
    head_home=${DSGKD_HEAD_HOME:-/home/ubuntu}
    extra+=(--optuna-storage "${DSGKD_OPTUNA_STORAGE:-sqlite:///${head_home%/}/dsgkd-optuna/$run_name.db}")
fi

# No password travels with the job: Ray keeps the entrypoint and the runtime_env (env_vars too) in its job
# table, shown by `ray job list` and the dashboard. So no word of the command may carry one: URL userinfo as
# SQLAlchemy parses it (user:password@, the password up to the first @), or a password query parameter
# (the Optuna storage, an MLflow URI, a --set value).
userinfo='^(.*[A-Za-z0-9+._-]+://[^:/]*):[^@]*@(.*)$'
query='[?&](password|passwd|pwd)='
shopt -s nocasematch
for word in ${extra[@]+"${extra[@]}"} "$@"; do
    if [[ $word =~ $userinfo || $word =~ $query ]]; then
        shown=$word
        if [[ $shown =~ $query ]]; then shown="${shown%%\?*}?***"; fi
        if [[ $shown =~ $userinfo ]]; then shown="${BASH_REMATCH[1]}:***@${BASH_REMATCH[2]}"; fi
        die "$shown: a password in the job's command line would be kept in plain text by Ray;" \
            "give the URL without it (the Optuna storage's password: DSGKD_STORAGE_PASSWORD_FILE, see --help)"
    fi
done
shopt -u nocasematch
password_file=${DSGKD_STORAGE_PASSWORD_FILE:-}
if [[ -n ${DSGKD_STORAGE_PASSWORD:-} && -z $password_file ]]; then
    die "DSGKD_STORAGE_PASSWORD is not sent to the cluster (Ray would keep it in plain text with the job):" \
        "put the password in a file on the head, mode 600, and set DSGKD_STORAGE_PASSWORD_FILE to its path there"
fi
case "$password_file" in
    ""|/*) ;;
    *) die "DSGKD_STORAGE_PASSWORD_FILE=$password_file is relative: give the file's absolute path on the head" ;;
esac

# Token authentication. The client only sends the token when RAY_AUTH_MODE=token; the token is read
# from RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token.
export RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
if [[ $RAY_AUTH_MODE == token ]]; then
    if [[ -n ${RAY_AUTH_TOKEN:-} ]]; then
        :
    elif [[ -n ${RAY_AUTH_TOKEN_PATH:-} ]]; then
        [[ -s $RAY_AUTH_TOKEN_PATH ]] || die "RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH is missing or empty"
    elif [[ ! -s $HOME/.ray/auth_token ]]; then
        die "no Ray auth token: the cluster runs with RAY_AUTH_MODE=token. Use the token 'ray up' put
on the nodes: on the machine that ran 'ray up' it is ~/.ray/auth_token; elsewhere
  ray rsync-down cluster.yaml '~/.ray/auth_token' ~/.ray/auth_token && chmod 600 ~/.ray/auth_token
(launch/onprem.yaml in place of cluster.yaml for the on-premise cluster)
or set RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH (see --help)"
    fi
fi

submission_id=${DSGKD_SUBMISSION_ID:-dsgkd-$run_name-$(date -u +%Y%m%dT%H%M%SZ)}

# Job environment: the tiny stand-ins and their tokenizers must be built once and shared (a rebuilt
# WordPiece vocabulary can differ), so DSGKD_CACHE lives on the shared storage.
# What the upload leaves out is .gitignore's and .rayignore's business (Ray reads both, and leaves .git out):
# one list, the same for `ray up`'s rsync (cluster.yaml's rsync_filter) and for a hand-typed `ray job submit`.
runtime_env='{"env_vars": {"DSGKD_CACHE": "'"$shared"'/cache/dsgkd", "TOKENIZERS_PARALLELISM": "false"}}'

cmd=(ray job submit
     --address "$RAY_ADDRESS"
     --submission-id "$submission_id"
     --working-dir "$repo"
     --runtime-env-json "$runtime_env")
if [[ ${DSGKD_WAIT:-0} != 1 ]]; then cmd+=(--no-wait); fi
cmd+=(--)
if [[ -n $password_file ]]; then cmd+=(bash launch/with_storage_password.sh "$password_file"); fi
cmd+=(dsgkd search --space "$space" ${extra[@]+"${extra[@]}"} --address auto "$@")

if [[ ${DSGKD_DRY_RUN:-0} == 1 ]]; then
    printf '%q ' "${cmd[@]}"
    echo
    exit 0
fi

command -v ray >/dev/null || die "the ray CLI is not on PATH (pip install 'ray[default]==2.60.0')"
"${cmd[@]}"
if [[ ${DSGKD_WAIT:-0} != 1 ]]; then
    cat <<EOF

submitted $submission_id   RUN=$run
  follow:  ray job logs -f $submission_id
  status:  ray job status $submission_id
  stop:    ray job stop $submission_id
EOF
fi
