"""Everyday input mistakes: BOM headers, the table hint, symlink loops, empty and fake audio files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import espeak_wav

from intervox.corpora.manifest import Utterance, read_manifest, validate_manifest, write_manifest
from intervox.corpora.prepare import prepare_corpus
from intervox.errors import ManifestError


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    return espeak_wav("Good morning everyone.", tmp_path_factory.mktemp("wav") / "a1.wav")


def corpus(root: Path, wav: Path) -> Path:
    (root / "audio").mkdir(parents=True)
    (root / "audio" / "a1.wav").write_bytes(wav.read_bytes())
    return root


def test_utf8_bom_in_a_csv_header_is_stripped(tmp_path, wav):
    root = corpus(tmp_path / "c", wav)
    # Excel's "CSV UTF-8" starts the file with a BOM, which used to end up in the first column name
    (root / "t.csv").write_text("\ufeffpath,speaker,text\naudio/a1.wav,anna,Good morning everyone.\n",
                                encoding="utf-8")
    (utt,) = read_manifest(prepare_corpus("folder", root, tmp_path / "out"))
    assert utt.speaker == "anna" and utt.id == "audio/a1"


def test_utf8_bom_in_a_manifest_is_stripped(tmp_path, wav):
    utt = Utterance(id="a1", audio=str(wav), speaker="anna", text="Good morning everyone.", language="en",
                    corpus="t")
    path = tmp_path / "manifest.jsonl"
    path.write_text("\ufeff" + json.dumps(utt.to_dict()) + "\n", encoding="utf-8")
    assert read_manifest(path) == [utt] and validate_manifest(path) == []


def test_two_tables_hint_shows_the_working_syntax(tmp_path, wav, capsys):
    from intervox.cli import main

    root = corpus(tmp_path / "c", wav)
    (root / "a.tsv").write_text("path\tspeaker\ttext\naudio/a1.wav\tanna\tGood morning everyone.\n")
    (root / "b.tsv").write_text("x\n")
    with pytest.raises(ManifestError) as err:
        prepare_corpus("folder", root, tmp_path / "o1")
    hint = str(err.value).split("`")[1]
    assert hint == f"intervox corpus prepare folder --root {root} --out OUT table=a.tsv"
    main(hint.replace("OUT", str(tmp_path / "o2")).split()[1:])  # the hint, as given, works
    assert "1 written" in capsys.readouterr().out


def test_symlink_loops_are_reported_as_loops(tmp_path, wav):
    root = corpus(tmp_path / "c", wav)
    os.symlink("loop.wav", root / "audio" / "loop.wav")  # points at itself
    (root / "t.tsv").write_text("path\tspeaker\ttext\naudio/a1.wav\tanna\tHello.\naudio/loop.wav\tbob\tHi.\n")
    prepare_corpus("folder", root, tmp_path / "out")
    (q,) = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert q["reason"] == f"{root / 'audio' / 'loop.wav'}: audio file is a symlink loop"
    os.symlink("self", tmp_path / "self")
    with pytest.raises(ManifestError, match="folder root is a symlink loop"):
        prepare_corpus("folder", tmp_path / "self", tmp_path / "o2")
    os.symlink("gone.tsv", root / "dangling.tsv")
    with pytest.raises(ManifestError, match=r"table is a broken symlink \(to gone\.tsv\)"):
        prepare_corpus("folder", root, tmp_path / "o3", table=str(root / "dangling.tsv"))


def test_corpus_validate_fails_empty_and_fake_wavs_by_name(tmp_path, wav, capsys):
    from intervox.cli import main

    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is a text file with a .wav name\n")
    os.symlink("loop.wav", tmp_path / "loop.wav")
    utts = [Utterance(id=name, audio=audio, speaker="s", text="t", language="en", corpus="c")
            for name, audio in [("good", str(wav)), ("empty", "empty.wav"), ("text", "text.wav"),
                                ("loop", "loop.wav"), ("missing", "missing.wav")]]
    write_manifest(utts, tmp_path / "manifest.jsonl")
    with pytest.raises(SystemExit) as exc:
        main(["corpus", "validate", str(tmp_path / "manifest.jsonl")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "5 problem" not in err and "4 problem(s)" in err
    assert f"empty: {tmp_path / 'empty.wav'}: audio file is empty (0 bytes)" in err
    assert f"text: {tmp_path / 'text.wav'}: not readable as audio" in err
    assert f"loop: {tmp_path / 'loop.wav'}: audio file is a symlink loop" in err
    assert f"missing: {tmp_path / 'missing.wav'}: audio file does not exist" in err
    assert "good:" not in err
