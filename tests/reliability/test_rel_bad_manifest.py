"""Bad manifests: missing fields, duplicate ids, broken lines, missing files: named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intervox.corpora.manifest import REQUIRED, iter_manifest, read_manifest, validate_manifest
from intervox.errors import ManifestError
from intervox.pipeline.run import build_shards, load_shards_config

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def line(i: int, **over: object) -> dict:
    d = {"id": f"u{i}", "audio": f"a{i}.wav", "speaker": "s", "text": "Hello there.", "language": "en",
         "corpus": "c"}
    d.update(over)
    return {k: v for k, v in d.items() if v is not ...}


@SETTINGS
@given(drop=st.lists(st.sampled_from(REQUIRED), unique=True, max_size=3),
       blank=st.lists(st.sampled_from(REQUIRED), unique=True, max_size=2),
       where=st.integers(0, 3), text=st.text(max_size=50))
def test_missing_fields_are_named_with_file_and_line(tmp_path: Path, drop: list[str], blank: list[str],
                                                     where: int, text: str) -> None:
    rows = [line(i, text=text or "x") for i in range(4)]
    for f in drop:
        rows[where].pop(f)
    for f in blank:
        rows[where][f] = ""
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    missing = [f for f in REQUIRED if f in drop or f in blank]
    if not missing:
        utts = read_manifest(path)
        assert [u.text for u in utts] == [text or "x"] * 4  # any text (controls, scripts) round-trips
        return
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(err.value) == f"{path}:{where + 1}: missing field(s) {', '.join(missing)}"


@pytest.mark.parametrize("content, message", [
    ('{"id": "u0"', r"m.jsonl:2: not valid JSON"),
    ('["a list"]', r"m.jsonl:2: line is not a JSON object"),
    (json.dumps(line(0)), r"m.jsonl:2: duplicate id 'u0'"),
])
def test_broken_lines_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(line(0)) + "\n" + content + "\n")
    with pytest.raises(ManifestError, match=message):
        list(iter_manifest(path))
    assert any("m.jsonl:2" in p for p in validate_manifest(path, check_audio=False))


def test_missing_manifest_and_missing_audio_are_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="nope.jsonl: manifest does not exist"):
        read_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "a0.wav").write_bytes(b"")
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(line(i)) + "\n" for i in range(3)))
    assert validate_manifest(path) == [f"{path}: u0: {tmp_path / 'a0.wav'}: audio file is empty (0 bytes)",
                                       f"{path}: u1: {tmp_path / 'a1.wav'}: audio file does not exist",
                                       f"{path}: u2: {tmp_path / 'a2.wav'}: audio file does not exist"]


def test_pipeline_refuses_bad_manifest_and_quarantines_missing_files(
    source, write_config, tmp_path, capsys  # noqa: ANN001
) -> None:
    from intervox.cli import main

    rows = [json.loads(r) for r in source.read_text().splitlines()]
    dup = tmp_path / "dup.jsonl"
    dup.write_text("".join(json.dumps(r) + "\n" for r in [*rows, rows[2]]))
    with pytest.raises(SystemExit) as exit_:
        main(["shards", "build", "--config", str(write_config(tmp_path / "c.yaml", dup)),
              "--out", str(tmp_path / "o"), "--scheduler", "sync", "--no-progress"])
    assert exit_.value.code == 2
    assert f"{dup}:7: duplicate id '{rows[2]['id']}'" in capsys.readouterr().err
    assert not list((tmp_path / "o").glob("*.tar"))

    gone = tmp_path / "gone.jsonl"
    gone.write_text("".join(json.dumps({**r, "audio": str(tmp_path / "missing" / f"{r['id']}.wav")}
                                       if r["id"] == "v1s0" else r) + "\n" for r in rows))
    config = write_config(tmp_path / "g.yaml", gone, max_quarantine_fraction=0.2)  # 2 of 12 quarantined
    report = build_shards(load_shards_config(config), tmp_path / "g", scheduler="sync", progress=False)
    assert (report.planned, report.written, report.quarantined) == (12, 10, 2)  # source + noise copy
    entries = [json.loads(e) for e in (tmp_path / "g" / "quarantine.jsonl").read_text().splitlines()]
    assert all("missing/v1s0.wav: file does not exist" in e["reason"] for e in entries) and len(entries) == 2
