"""The feature stage reads audio shards from and writes feature shards to S3 (a loopback S3 server)."""

from __future__ import annotations

import json

import pytest

from intervox.features.extract import extract_features
from intervox.shards import storage
from intervox.shards.write import file_sha256, read_sidecar

UP = "whisper-tiny.en"


@pytest.mark.slow
def test_features_from_s3_to_s3_equal_local_and_resume(tmp_path, clips, make_shards, s3_bucket):  # noqa: ANN001
    make_shards(tmp_path / "audio", clips, n_shards=2)
    local = extract_features(tmp_path / "audio", tmp_path / "feats", UP, device="cpu")
    audio, out = f"{s3_bucket}/audio", f"{s3_bucket}/feats"
    assert storage.upload_tree(tmp_path / "audio", audio) == 5  # 2 tars, 2 sidecars, index.json

    report = extract_features(audio, out, UP, device="cpu")
    assert (report["written"], report["clips"], report["bad_shards"]) == (2, local["clips"], [])
    tars = storage.list_files(out, ".tar")
    assert [storage.basename(t) for t in tars] == ["train-000000.tar", "train-000001.tar"]
    for tar in tars:  # the same bytes as the local run's, sealed by a sidecar
        name = storage.basename(tar)
        assert file_sha256(tar) == file_sha256(tmp_path / "feats" / name) == read_sidecar(tar).sha256
    index = json.loads(storage.read_bytes(f"{out}/index.json"))
    assert index["kind"] == "features" and index["source"]["dir"] == audio and index["counts"]["clips"] == 4

    again = extract_features(audio, out, UP, device="cpu")
    assert (again["written"], again["skipped_complete"]) == (0, 2)
