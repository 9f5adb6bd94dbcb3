#!/usr/bin/env bash
# Install logpipe, create a demo database, pipe the bundled sample log into it
# exactly as Apache would, and show the rows that arrived.
#   usage: scripts/quickstart.sh [DATABASE]        (default database: logpipe_demo)
set -euo pipefail
cd "$(dirname "$0")/.."
db="${1:-logpipe_demo}"

python3 -m pip install -q -e . 2>&1 | grep -v -i "warning" || true

if ! psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    createdb "$db"
fi
python3 -m logpipe initdb --dsn "dbname=$db"

# The piped logger reads stdin until EOF, then loads what is left and exits.
python3 -m logpipe --dsn "dbname=$db" --source quickstart < scripts/sample/access.log

psql -d "$db" -P pager=off -c "
  SELECT count(*) AS rows, min(time) AS first, max(time) AS last
    FROM access_log WHERE source = 'quickstart';" -c "
  SELECT status, count(*) AS hits FROM access_log
   WHERE source = 'quickstart' GROUP BY status ORDER BY hits DESC;" -c "
  SELECT reason, convert_from(line, 'UTF8') AS line FROM access_log_rejects
   ORDER BY id DESC LIMIT 3;"
