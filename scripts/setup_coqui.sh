#!/usr/bin/env bash
# .venv-coqui: a second venv in which coqui-tts imports, for the coqui ops and `make test-coqui`.
# The main .venv keeps the CPU torch 2.13, for which no torchaudio/torchcodec build exists that
# coqui-tts 0.28 can import; torch 2.9.1 + torchaudio 2.9 + torchcodec (coqui-tts[codec]) can.
# torch 2.9.1 comes from PyPI as its CUDA build (~7 GB with its nvidia wheels); it runs on CPU too.
# Idempotent: does nothing while .venv-coqui/.setup-stamp holds the hash of this script and
# pyproject.toml and coqui still imports.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV_COQUI:-.venv-coqui}
STAMP="$VENV/.setup-stamp"
TORCH="torch==2.9.1"
TORCHAUDIO="torchaudio==2.9.*"
COQUI="coqui-tts[codec]==0.28.*"

key=$(cat "$0" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$key" ] \
    && "$VENV/bin/python" -c "import TTS.utils.synthesizer, intervox" >/dev/null 2>&1; then
  echo "setup_coqui: $VENV is up to date"
  exit 0
fi
rm -f "$STAMP"  # a run that fails half-way must not look finished

# Fail before installing, with the numbers, rather than half-way with pip's "No space left".
check_free_disk() {  # <path> <GiB needed>
  local free_gib
  free_gib=$(df -Pk "$(dirname "$1")" | awk 'NR == 2 {printf "%d", $4 / 1048576}')
  if [ "$free_gib" -lt "$2" ]; then
    echo "setup_coqui: $2 GiB free needed for the torch 2.9.1 stack in $1; $(dirname "$1") has $free_gib GiB" >&2
    exit 1
  fi
}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
echo "*" > "$VENV/.gitignore"  # keep the venv out of git without touching the repo's .gitignore
# No pip cache: it would keep a second copy (~4 GB) of the CUDA wheels on a disk that CI shares.
PIP="$VENV/bin/python -m pip --no-cache-dir"
$PIP install -q --upgrade pip 'setuptools>=77.0.3,<81' wheel

# The torch stack is ~8 GB installed. pip downloads every wheel of a request before it installs
# any, so one request would need the ~4 GB of downloads on disk beside it. Resolve it once, then
# install the pinned wheels one at a time: the peak is the venv plus one wheel.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  check_free_disk "$VENV" 9
  echo "setup_coqui: installing $TORCH $TORCHAUDIO one wheel at a time (~8 GB on first run)"
  report="$VENV/torch-report.json"
  $PIP install -q --dry-run --ignore-installed --report "$report" "$TORCH" "$TORCHAUDIO"
  for pin in $("$VENV/bin/python" -c '
import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    print(item["metadata"]["name"] + "==" + item["metadata"]["version"])' "$report"); do
    $PIP install -q --no-deps "$pin"
  done
fi
# Two steps, torch pinned in both: coqui-tts alone would pull the newest torch/torchaudio pair.
echo "setup_coqui: installing $TORCH $TORCHAUDIO (checked), then $COQUI"
$PIP install -q "$TORCH" "$TORCHAUDIO"
$PIP install -q "$TORCH" "$COQUI"

# intervox and its extras next, with the torch stack frozen as installed (intervox asks only for
# torch>=2.4,<2.15, which pip could otherwise satisfy by moving torch and breaking torchaudio).
constraints="$VENV/torch-constraints.txt"
$PIP freeze | grep -iE '^(torch|torchaudio|torchcodec)==' > "$constraints"
$PIP install -q -c "$constraints" -e '.[dev,coqui]'

"$VENV/bin/python" - <<'EOF'
import torch, torchaudio, TTS.utils.synthesizer, intervox  # noqa: F401  (the import the ops need)
from importlib.metadata import version
print(f"setup_coqui: intervox {intervox.__version__}, torch {torch.__version__}, "
      f"torchaudio {torchaudio.__version__}, coqui-tts {version('coqui-tts')}")
EOF
echo "$key" > "$STAMP"
