#!/usr/bin/env bash
# Celery's side of tools/bench row 6: N tasks of `true` through Celery's SQS transport on one worker.
#
# Usage: celery.sh N SQS_ENDPOINT
# Key from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (else TOUCHSTONE_SQS_ACCESS_KEY_ID/..._SECRET_ACCESS_KEY).
# Prints exactly one JSON line on stdout, {"peer":"celery","tasks":N,"seconds":S,"tasks_per_s":R,"version":...}
# or {"peer":"celery","tasks":N,"error":"why"}; exits 0 either way (2 on a usage error). Logs go to stderr.
# The measurement itself is celery_bench.py (see its docstring). Celery runs from .venv-celery at the repository's
# root, which tools/bootstrap creates; if it is missing or has other versions, celery-venv.sh installs the versions
# pinned in celery-requirements.txt (from PyPI, with pip).
set -uo pipefail
cd "$(dirname "$0")/../../.."

if [ $# -ne 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: celery.sh N SQS_ENDPOINT (N >= 1 tasks)" >&2
  exit 2
fi

if ! tools/lib/bench-peers/celery-venv.sh; then
  python3 -c 'import json, sys; print(json.dumps({"peer": "celery", "tasks": int(sys.argv[1]),
    "error": "cannot install celery[sqs] into .venv-celery with pip"}))' "$1"
  exit 0
fi
exec .venv-celery/bin/python tools/lib/bench-peers/celery_bench.py "$1" "$2"
