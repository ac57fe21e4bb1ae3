#!/usr/bin/env bash
# A separate virtualenv with the tools people read hybridmix's Parquet with: pyarrow, Polars, DuckDB,
# pandas and Hugging Face `datasets`, at their current releases (datasets needs a newer pyarrow than
# hybridmix pins, which is the point: the files must open in the readers' own environments).
# Prints the venv's python; tests/pipelines/test_readers.py uses it through HYBRIDMIX_READERS_PYTHON.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${HYBRIDMIX_READERS_HOME:-$HERE/readers}/venv"
PINS="pyarrow==26.0.1 polars==2.1.0 duckdb==2.0.1 pandas==3.1.1 datasets==5.2.0"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.pins" 2>/dev/null)" != "$PINS" ]]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --upgrade pip >&2
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet $PINS >&2
  echo "$PINS" > "$VENV/.pins"
fi
echo "$VENV/bin/python"
