#!/usr/bin/env bash
# Static checks, each reported, all run (exit 1 if any failed): the linter and formatter (ruff), the
# type checker (basedpyright, config in pyproject.toml [tool.pyright]) and the documentation site
# (mkdocs build --strict). Needs the venv of ./scripts/setup.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
export NO_MKDOCS_2_WARNING=1  # mkdocs-material's end-of-life banner on every build
code=0
step() {
  local name=$1; shift
  echo "=== $name: $*"
  "$@" || { echo "=== $name FAILED (exit $?): $*" >&2; code=1; }
}
step lint .venv/bin/ruff check .
step format .venv/bin/ruff format --check .
step types .venv/bin/basedpyright
if [ -f mkdocs.yml ]; then
  site=$(mktemp -d -t latentfleet-site-XXXXXX)
  step docs .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
  rm -rf "$site"
fi
exit "$code"
