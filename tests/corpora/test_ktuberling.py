"""The KTuberling cohort: real words of ktuberling-data written as an unlabelled folder corpus."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from intervox.corpora import ktuberling
from intervox.errors import AudioError, ManifestError


def rows_of(out: Path) -> list[dict]:
    with (out / "panel.tsv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def word(path: Path, sr: int, freq: float, fmt: str = "WAV") -> None:
    """0.5 s of silence, 0.4 s of a tone, 0.5 s of silence (what the trim must cut to ~0.5 s)."""
    t = np.arange(int(0.4 * sr)) / sr
    pad = np.zeros(int(0.5 * sr), dtype=np.float32)
    sf.write(str(path), np.concatenate([pad, 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32), pad]),
             sr, format=fmt)


@pytest.fixture
def sounds(tmp_path: Path) -> Path:
    root = tmp_path / "sounds"
    for lang in ("en", "de", "sr", "ca"):
        (root / lang).mkdir(parents=True)
    word(root / "en" / "ball.wav", 44100, 220.0)
    word(root / "en" / "hat.wav", 8000, 330.0)
    shutil.copy(root / "en" / "hat.wav", root / "en" / "hat_again.wav")  # the same file twice
    word(root / "de" / "hut.ogg", 22050, 440.0, fmt="OGG")
    word(root / "sr" / "kapa.wav", 22050, 550.0)
    shutil.copytree(root / "sr", root / "sr@latin")  # a script variant holding the same files
    word(root / "ca" / "barret.wav", 22050, 660.0)
    (root / "en.soundtheme").write_text("<language code=\"en\"/>\n")  # themes are files, not voices
    (root / "de" / "notes.txt").write_text("not audio\n")
    return root


def test_every_distinct_word_is_written_once_with_its_voice(sounds: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    ktuberling.build_ktuberling(out, root=sounds)
    rows = rows_of(out)
    assert sorted(r["id"] for r in rows) == ["ktuberling/de/hut", "ktuberling/en/ball", "ktuberling/en/hat",
                                             "ktuberling/sr/kapa"]
    assert {r["split"] for r in rows} == {"cohort"}
    assert {r["id"]: r["speaker"] for r in rows}["ktuberling/de/hut"] == "ktuberling:de"
    info = json.loads((out / "panel.json").read_text())
    assert info["duplicate_files_skipped"] == 2  # en/hat_again and sr@latin/kapa
    assert set(info["excluded"]) == {"ca"} and "CAM++" in info["excluded"]["ca"]
    assert info["splits"]["cohort"]["speakers"] == 3
    for r in rows:
        audio, sr = sf.read(str(out / r["path"]), dtype="float32")
        assert sr == 16000 and audio.ndim == 1
        assert 0.4 * sr <= audio.size <= 0.55 * sr  # the tone and 50 ms either side


def test_the_cohort_is_a_folder_corpus_the_evaluation_reads(sounds: Path, tmp_path: Path) -> None:
    from intervox.evaluation.cohort import cohort_rows
    from intervox.evaluation.real import load_panel

    out = tmp_path / "cohort"
    ktuberling.build_ktuberling(out, root=sounds, exclude=())
    panel = load_panel(out, tmp_path / "work")
    assert len(cohort_rows(panel.splits, "cohort", out)) == 5  # ca kept when nothing is excluded
    with pytest.raises(Exception, match="no clips in split 'dev'.*splits: cohort"):
        cohort_rows(panel.splits, "dev", out)


def test_bad_inputs_are_clear_errors(sounds: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="is ktuberling-data installed"):
        ktuberling.build_ktuberling(tmp_path / "a", root=tmp_path / "missing")
    empty = tmp_path / "empty"
    (empty / "en").mkdir(parents=True)
    with pytest.raises(ManifestError, match="no .ogg/.wav/.opus files"):
        ktuberling.build_ktuberling(tmp_path / "b", root=empty)
    (sounds / "en" / "broken.wav").write_bytes(b"RIFF-not-a-wav")
    with pytest.raises(AudioError, match="broken.wav"):
        ktuberling.build_ktuberling(tmp_path / "c", root=sounds)


def test_the_installed_package_reads_each_serbian_recording_once(tmp_path: Path) -> None:
    root = ktuberling.KTUBERLING_ROOT
    if not root.is_dir():
        pytest.fail(f"{root} is missing: run `make setup` (apt-get install ktuberling-data)")
    voices = sorted(p.name for p in root.iterdir() if p.is_dir())
    keep = {"en", "sr", "sr@latin", "sr@ijekavian", "sr@ijekavianlatin"}
    ktuberling.build_ktuberling(tmp_path / "kt", exclude=tuple(v for v in voices if v not in keep))
    speakers = {r["speaker"] for r in rows_of(tmp_path / "kt")}
    assert speakers == {"ktuberling:en", "ktuberling:sr"}  # the script variants hold the same files
