"""The folder adapter (audio tree + TSV/CSV) and the prepare_corpus dispatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import espeak_wav

from intervox.corpora.manifest import read_manifest, validate_manifest
from intervox.corpora.prepare import ADAPTERS, adapter_options, prepare_corpus
from intervox.errors import ConfigError, ManifestError


def _layout(root: Path) -> None:
    (root / "audio" / "anna").mkdir(parents=True)
    (root / "audio" / "bob").mkdir(parents=True)
    espeak_wav("Good morning everyone.", root / "audio" / "anna" / "a1.wav", pitch=80)
    espeak_wav("See you tomorrow.", root / "audio" / "anna" / "a2.wav", pitch=80)
    espeak_wav("Good morning everyone.", root / "audio" / "bob" / "b1.wav", pitch=30)
    (root / "audio" / "bob" / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")


def test_tsv_round_trip_with_optional_columns_and_quarantine(tmp_path):
    root = tmp_path / "mycorpus"
    _layout(root)
    (root / "meta.tsv").write_text(
        "path\tspeaker\ttext\tgender\tlanguage\tcontent_id\n"
        "audio/anna/a1.wav\tanna\tGood morning everyone.\tfemale\t\tgreet\n"
        "audio/anna/a2.wav\tanna\tSee you tomorrow.\tF\t\t\n"
        "audio/bob/b1.wav\tbob\tGood morning everyone.\tmale\ten-gb\tgreet\n"
        "audio/bob/broken.wav\tbob\tBroken file.\tm\t\t\n"
        "audio/bob/missing.wav\tbob\tNot there.\tm\t\t\n"
        "audio/bob/b1.wav\tbob\t\tm\t\t\n")
    manifest = prepare_corpus("folder", root, tmp_path / "out")
    assert validate_manifest(manifest) == []
    utts = {u.id: u for u in read_manifest(manifest)}
    assert set(utts) == {"audio/anna/a1", "audio/anna/a2", "audio/bob/b1"}
    assert utts["audio/anna/a1"].gender == "f" and utts["audio/bob/b1"].gender == "m"
    assert utts["audio/anna/a1"].language == "en" and utts["audio/bob/b1"].language == "en-gb"
    assert utts["audio/anna/a1"].content_id == utts["audio/bob/b1"].content_id == "greet"
    assert utts["audio/anna/a2"].content_id is None
    assert utts["audio/anna/a1"].corpus == "mycorpus"
    assert utts["audio/anna/a1"].sample_rate == 22050 and 0.5 < utts["audio/anna/a1"].duration < 3
    assert Path(utts["audio/anna/a1"].audio).is_absolute()
    quarantine = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    reasons = {q["item"].rsplit(":", 1)[1]: q["reason"] for q in quarantine}
    assert set(reasons) == {"5", "6", "7"}  # table line numbers (header is line 1)
    assert "broken.wav" in reasons["5"] and "not readable" in reasons["5"]
    assert "missing.wav" in reasons["6"] and "does not exist" in reasons["6"]
    assert "empty text" in reasons["7"]
    summary = json.loads((tmp_path / "out" / "prepare_summary.json").read_text())
    assert (summary["input"], summary["written"], summary["quarantined"], summary["speakers"]) == (6, 3, 3, 2)


def test_csv_with_language_option_and_explicit_table(tmp_path):
    root = tmp_path / "c"
    _layout(root)
    (root / "extra.tsv").write_text("x\n")  # a second table: the explicit option picks one
    (root / "list.csv").write_text('path,speaker,text\naudio/anna/a1.wav,anna,"Hello, there."\n')
    with pytest.raises(ManifestError, match="exactly one"):
        prepare_corpus("folder", root, tmp_path / "o1")
    manifest = prepare_corpus("folder", root, tmp_path / "o2", table="list.csv", language="de")
    (utt,) = read_manifest(manifest)
    assert (utt.text, utt.language, utt.gender) == ("Hello, there.", "de", None)


def test_missing_column_names_the_table(tmp_path):
    root = tmp_path / "c"
    _layout(root)
    (root / "t.tsv").write_text("path\tspeaker\naudio/anna/a1.wav\tanna\n")
    with pytest.raises(ManifestError, match=r"t\.tsv: missing column\(s\) text"):
        prepare_corpus("folder", root, tmp_path / "out")


def test_dispatch_errors_and_registry():
    assert set(ADAPTERS) == {"folder", "librispeech", "libritts", "vctk", "commonvoice", "speechcommands",
                             "voxceleb1", "lhotse"}
    assert adapter_options("folder")["language"] == "en"
    with pytest.raises(ConfigError, match="unknown corpus kind 'timit'"):
        prepare_corpus("timit", "/nonexistent", "/tmp/x")
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        prepare_corpus("folder", "/nonexistent", "/tmp/x", colour="red")
    with pytest.raises(ManifestError, match="LibriSpeech root does not exist"):
        prepare_corpus("librispeech", "/nonexistent/corpus", "/tmp/x")


def test_cli_prepare_writes_manifest_and_lhotse_export(tmp_path, capsys):
    from intervox.cli import main
    from intervox.corpora.lhotse_io import iter_cuts

    root = tmp_path / "c"
    _layout(root)
    (root / "t.tsv").write_text("path\tspeaker\ttext\naudio/anna/a1.wav\tanna\tGood morning everyone.\n"
                                "audio/bob/broken.wav\tbob\tBroken.\n")
    main(["corpus", "prepare", "folder", "--root", str(root), "--out", str(tmp_path / "out"),
          "language=no", "--lhotse", str(tmp_path / "cuts.jsonl.gz")])
    printed = capsys.readouterr().out
    assert "2 input = 1 written + 1 quarantined, 1 speakers" in printed and "1 cuts" in printed
    (utt,) = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert utt.language == "no"  # not YAML's False
    ((_, cut),) = list(iter_cuts(tmp_path / "cuts.jsonl.gz"))
    assert cut["supervisions"][0]["speaker"] == "anna"
    with pytest.raises(SystemExit) as exc:
        main(["corpus", "prepare", "folder", "--root", str(root), "--out", str(tmp_path / "o"),
              "mic=1"])
    assert exc.value.code == 2 and "unknown option(s) mic" in capsys.readouterr().err
