#!/usr/bin/env bash
# car22 on a Prefect server (README "Running on a Prefect server"): PostgreSQL, the server on loopback, the
# work pool, the deployments of prefect.yaml and a worker, in the foreground; Ctrl-C stops all it started.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/prefect-server.sh [--data-dir DIR] [--port N] [--logs DIR]
                                 [--database-url URL | --pgdata DIR [--pg-port N] | --sqlite]

Runs car22 on a Prefect server until Ctrl-C (or SIGTERM), then stops everything it started:
  1. PostgreSQL: a private cluster (initdb in --pgdata on the first run, then started on 127.0.0.1:--pg-port),
     or the one given by --database-url; --sqlite uses Prefect's SQLite file instead (quick local trial only:
     under a worker's heartbeats it logs "database is locked" errors).
  2. `prefect server start` on 127.0.0.1:--port, analytics off (PREFECT_SERVER_ANALYTICS_ENABLED=false).
  3. the work pool "car22" (process) and `prefect deploy --all` (prefect.yaml: "nightly" at 02:00 New York,
     "reingest" on demand).
  4. a worker on the pool, with CAR22_HOME (this checkout) and CAR22_DATA_DIR (--data-dir).
When it prints "ready", run the night on demand from another shell:
  PREFECT_API_URL=http://127.0.0.1:4200/api .venv/bin/prefect deployment run 'car22-nightly/reingest'

options:
  --data-dir DIR       the worker's CAR22_DATA_DIR (default: $CAR22_DATA_DIR, else ./data); its inbox must exist
  --port N             the server's port on 127.0.0.1 (default 4200)
  --database-url URL   an existing PostgreSQL database: postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB
  --pgdata DIR         the private cluster's folder (default $PREFECT_HOME/postgres; as root the cluster
                       runs as user postgres, which must be able to reach DIR)
  --pg-port N          the private cluster's port on 127.0.0.1 (default 5433)
  --sqlite             no PostgreSQL: Prefect's SQLite database in PREFECT_HOME
  --logs DIR           postgres.log, server.log, deploy.log, worker.log (default $PREFECT_HOME/logs)
  -h, --help           this help

environment: PREFECT_HOME (default ~/.prefect: settings, SQLite, default folders), CAR22_DATA_DIR,
CAR22_INBOX and the other CAR22_* paths (README "Paths and settings") are passed on to the worker.
EOF
}

say() { echo "$(date +%T) prefect-server: $*"; }
die() { say "$*" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=4200 pg_port=5433 database_url="" pgdata="" sqlite=false logs=""
data_dir=${CAR22_DATA_DIR:-$PWD/data}
while (($#)); do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --data-dir) data_dir=${2:?--data-dir needs a folder}; shift ;;
        --port) port=${2:?--port needs a number}; shift ;;
        --database-url) database_url=${2:?--database-url needs a URL}; shift ;;
        --pgdata) pgdata=${2:?--pgdata needs a folder}; shift ;;
        --pg-port) pg_port=${2:?--pg-port needs a number}; shift ;;
        --sqlite) sqlite=true ;;
        --logs) logs=${2:?--logs needs a folder}; shift ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done
[[ $sqlite == true && -n $database_url ]] && die "--sqlite and --database-url exclude each other"
[[ -n $database_url && $database_url != postgresql+asyncpg://* ]] \
    && die "--database-url must start with postgresql+asyncpg:// (Prefect's PostgreSQL driver)"

export PREFECT_HOME=${PREFECT_HOME:-$HOME/.prefect}
export PREFECT_SERVER_ANALYTICS_ENABLED=false GX_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export PREFECT_API_URL=http://127.0.0.1:$port/api
export CAR22_HOME=$root
data_dir=$(mkdir -p "$data_dir" && cd "$data_dir" && pwd)
export CAR22_DATA_DIR=$data_dir
logs=${logs:-$PREFECT_HOME/logs}
mkdir -p "$PREFECT_HOME" "$logs"
logs=$(cd "$logs" && pwd)
prefect=$root/.venv/bin/prefect
[[ -x $prefect ]] || prefect=$(command -v prefect) || die "no prefect: run \`make setup\` first"
python=$(dirname "$prefect")/python

# Everything started is recorded here and stopped in reverse order, however the script ends.
server_pid="" worker_pid="" pg_started=false interrupted=false
gone_within() {  # PID SECONDS: true when the process has ended within that time
    for _ in $(seq $(($2 * 2))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.5; done
    return 1
}
stop_all() {
    trap - EXIT INT TERM
    # Ctrl-C reached the worker too: give it the time to stop by itself, since Prefect answers a second signal
    # with SIGKILL. Then the server, with its process group (uvicorn).
    if [[ -n $worker_pid ]]; then
        { $interrupted && gone_within "$worker_pid" 15; } \
            || { kill -TERM "$worker_pid" 2>/dev/null && gone_within "$worker_pid" 30; } \
            || kill -KILL "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    if [[ -n $server_pid ]]; then
        { kill -TERM "$server_pid" 2>/dev/null && gone_within "$server_pid" 30; } \
            || kill -KILL -- "-$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        rm -f "$PREFECT_HOME/server.pid"
    fi
    if $pg_started; then as_pg "$pg_bin/pg_ctl" -D "$pgdata" stop -m fast -w -t 60 >/dev/null 2>&1 || true; fi
    say "stopped"
}
trap stop_all EXIT
trap 'interrupted=true; exit 130' INT
trap 'exit 143' TERM

# Waits a bounded time for a command to succeed while PID runs; says what failed and where its log is otherwise.
wait_for() {
    local what=$1 seconds=$2 log=$3 pid=$4; shift 4
    for _ in $(seq $((seconds * 2))); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    say "$what did not start (waited up to ${seconds}s); last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 1
}

# --- 1. the database ---------------------------------------------------------------------------------------
if $sqlite; then
    unset PREFECT_API_DATABASE_CONNECTION_URL
    say "SQLite in $PREFECT_HOME (quick local path; use PostgreSQL for a server that runs every night)"
elif [[ -n $database_url ]]; then
    export PREFECT_API_DATABASE_CONNECTION_URL=$database_url
    say "PostgreSQL at ${database_url#*@}"
else
    # Debian keeps the server programs out of PATH, in /usr/lib/postgresql/VERSION/bin.
    initdb=$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
    pg_bin=$(dirname "$(readlink -f "${initdb:-/nonexistent}")")
    [[ -x $pg_bin/initdb && -x $pg_bin/postgres && -x $pg_bin/psql ]] \
        || die "no PostgreSQL server programs: apt-get install postgresql (Debian), or pass --database-url"
    pgdata=${pgdata:-$PREFECT_HOME/postgres}
    mkdir -p "$pgdata"
    pgdata=$(cd "$pgdata" && pwd)
    # PostgreSQL refuses to run as root: then the cluster belongs to the system user postgres.
    if ((EUID == 0)); then
        id postgres >/dev/null 2>&1 || die "running as root, and there is no user postgres to own the cluster"
        as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
        [[ -f $pgdata/PG_VERSION ]] || chown postgres: "$pgdata"
        as_pg test -w "$pgdata" -a -x "$pgdata" \
            || die "user postgres cannot reach $pgdata: choose --pgdata in a folder it can reach"
    else
        as_pg() { "$@"; }
    fi
    chmod 700 "$pgdata"
    password_file=$pgdata/car22-prefect.password
    if [[ ! -f $pgdata/PG_VERSION ]]; then
        say "new PostgreSQL cluster in $pgdata"
        as_pg "$pg_bin/initdb" -D "$pgdata" --auth-local=peer --auth-host=scram-sha-256 -E UTF8 \
            --locale=C >"$logs/initdb.log" 2>&1 || { cat "$logs/initdb.log" >&2; die "initdb failed"; }
    fi
    # Loopback TCP for Prefect (password), a socket inside the cluster's folder for its owner (peer). The log
    # is opened here, so that it can live where the cluster's owner could not write.
    as_pg "$pg_bin/pg_ctl" -D "$pgdata" -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdata" \
        start >>"$logs/postgres.log" 2>&1 \
        || { tail -n 20 "$logs/postgres.log" >&2; die "PostgreSQL did not start (is port $pg_port taken?)"; }
    pg_started=true
    psql_pg() { as_pg "$pg_bin/psql" -h "$pgdata" -p "$pg_port" -d postgres -qAtX -v ON_ERROR_STOP=1 "$@"; }
    if [[ ! -s $password_file ]]; then
        password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
        verb=CREATE
        [[ -z $(psql_pg <<<"SELECT 1 FROM pg_roles WHERE rolname = 'prefect'") ]] || verb=ALTER
        # On standard input, not the command line: `ps` shows command lines to every user.
        psql_pg <<<"$verb ROLE prefect LOGIN PASSWORD '$password';"
        printf '%s\n' "$password" | as_pg sh -c 'umask 077 && cat >"$1"' sh "$password_file"
    fi
    [[ -n $(psql_pg <<<"SELECT 1 FROM pg_database WHERE datname = 'prefect'") ]] \
        || psql_pg <<<"CREATE DATABASE prefect OWNER prefect;"
    password=$(as_pg cat "$password_file")
    export PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://prefect:$password@127.0.0.1:$pg_port/prefect
    say "PostgreSQL on 127.0.0.1:$pg_port ($pgdata), log $logs/postgres.log"
fi

# --- 2. the server -----------------------------------------------------------------------------------------
# In a session of its own, out of reach of Ctrl-C: the server must outlive the worker, whose last events it
# receives; stop_all stops it after the worker (its process group; its pid is in $PREFECT_HOME/server.pid).
setsid "$prefect" server start --host 127.0.0.1 --port "$port" >"$logs/server.log" 2>&1 &
server_pid=$!
echo "$server_pid" >"$PREFECT_HOME/server.pid"
wait_for "the Prefect server" 180 "$logs/server.log" "$server_pid" \
    "$python" -c "import urllib.request; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=5)"
say "server at http://127.0.0.1:$port (UI), log $logs/server.log"

# --- 3. work pool and deployments --------------------------------------------------------------------------
# Only the server needs the database's password: not the CLI, the worker or the flow runs it starts.
unset PREFECT_API_DATABASE_CONNECTION_URL
cd "$root"
{
    "$prefect" work-pool inspect car22 >/dev/null 2>&1 || "$prefect" work-pool create car22 --type process
    "$prefect" --no-prompt deploy --all
} >"$logs/deploy.log" 2>&1 || { cat "$logs/deploy.log" >&2; die "work pool or deployments failed"; }
say "work pool car22, deployments car22-nightly/nightly and car22-nightly/reingest"

# --- 4. the worker -----------------------------------------------------------------------------------------
[[ -d ${CAR22_INBOX:-$data_dir/inbox} ]] \
    || say "warning: no inbox at ${CAR22_INBOX:-$data_dir/inbox}: runs will fail until it exists" >&2
# A shell without job control starts background commands with SIGINT ignored; Prefect's worker stops cleanly
# on SIGINT (and turns SIGTERM into one), so give it back.
env --default-signal=INT "$prefect" worker start --pool car22 >"$logs/worker.log" 2>&1 &
worker_pid=$!
wait_for "the worker" 120 "$logs/worker.log" "$worker_pid" grep -q "started!" "$logs/worker.log"
say "worker on pool car22 (CAR22_DATA_DIR=$data_dir), log $logs/worker.log"
say "ready; Ctrl-C stops the worker, the server and the database"
while kill -0 "$server_pid" 2>/dev/null && kill -0 "$worker_pid" 2>/dev/null; do sleep 1; done
say "the server or the worker stopped by itself; see $logs" >&2
exit 1
