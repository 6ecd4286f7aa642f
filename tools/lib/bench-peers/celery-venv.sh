#!/usr/bin/env bash
# Makes .venv-celery (at the repository's root) hold exactly the versions pinned in celery-requirements.txt;
# installs only when something differs. Run by tools/bootstrap and, if needed, by celery.sh. Logs go to stderr.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../.."
requirements="$here/celery-requirements.txt"
if [ ! -x .venv-celery/bin/python ]; then
  echo "celery-venv: creating .venv-celery" >&2
  python3 -m venv .venv-celery
fi
if ! .venv-celery/bin/python - "$requirements" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
pins = [line.split("==") for line in open(sys.argv[1]) if "==" in line and not line.startswith("#")]
sys.exit(any(version(name.split("[")[0]) != wanted.strip() for name, wanted in pins))
PY
then
  echo "celery-venv: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into .venv-celery" >&2
  .venv-celery/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
fi
