#!/usr/bin/env bash
# datatrove for the side-by-side benchmark, in a virtualenv of its own: it needs dill >= 0.4,
# which Apache Beam 2.62 (dill < 0.3.2) cannot share a virtualenv with.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/work/venv-datatrove"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  # [processing] and spacy: its MinHash stage tokenizes words with spaCy's blank English pipeline.
  "$venv/bin/pip" install --quiet "datatrove[io,processing]==0.10.1" "spacy>=3.7" regex "pyarrow>=16"
fi
"$venv/bin/python" -c "import datatrove, pyarrow; print('datatrove', datatrove.__version__ if hasattr(datatrove, '__version__') else '0.10.1')"
