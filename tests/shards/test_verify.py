"""`shards verify`: clean sets pass; flipped bytes, truncation, unsafe members, bad JSON are named."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from intervox.shards.verify import verify_dir
from intervox.shards.write import ShardInfo, encode_field, file_sha256, sidecar_path, write_shard


def reseal(tar: Path) -> None:
    """Rewrite the sidecar of `tar` to match its (tampered) bytes, so only content checks can fail."""
    old = json.loads(sidecar_path(tar).read_text())
    info = ShardInfo(tar.name, old["count"], tar.stat().st_size, file_sha256(tar), old["plan_hash"])
    sidecar_path(tar).write_text(json.dumps(info.to_dict()))


def raw_tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for m in members:
            payload = data.get(m.name)
            tar.addfile(m, io.BytesIO(payload) if payload is not None else None)


def test_clean_set_passes(built_shards: Path) -> None:
    report = verify_dir(built_shards)
    assert report.ok, report.problems
    index = json.loads((built_shards / "index.json").read_text())
    assert report.clips == index["counts"]["written"] == 12
    assert report.kinds == {"audio": 12}


def test_flipped_byte_is_named(shard_copy) -> None:  # noqa: ANN001
    d = shard_copy()
    tar = d / "train-000000.tar"
    data = bytearray(tar.read_bytes())
    data[2000] ^= 0xFF
    tar.write_bytes(bytes(data))
    report = verify_dir(d)
    assert not report.ok
    assert any(p.startswith("train-000000.tar: sha256 differs") for p in report.problems), report.problems


def test_truncated_tar_is_named(shard_copy) -> None:  # noqa: ANN001
    d = shard_copy()
    tar = d / "validation-000000.tar"
    tar.write_bytes(tar.read_bytes()[:3000])
    problems = verify_dir(d).problems
    assert any("validation-000000.tar: size 3000" in p for p in problems), problems
    reseal(tar)  # even with a matching sidecar, the truncated member is caught
    problems = verify_dir(d).problems
    assert any("validation-000000.tar" in p and ("truncated" in p or "corrupt" in p) for p in problems), (
        problems
    )


@pytest.mark.parametrize("kind", ["dotdot", "symlink"])
def test_unsafe_member_is_named(shard_copy, kind: str) -> None:  # noqa: ANN001
    d = shard_copy()
    tar = d / "train-000000.tar"
    good = tarfile.TarInfo("k0.json")
    payload = b'{"key": "k0"}'
    good.size = len(payload)
    if kind == "dotdot":
        bad = tarfile.TarInfo("../x.json")
        bad.size = len(payload)
    else:
        bad = tarfile.TarInfo("k1.flac")
        bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
    raw_tar(tar, [good, bad], {"k0.json": payload, "../x.json": payload})
    reseal(tar)
    problems = verify_dir(d).problems
    needle = "unsafe member name '../x.json'" if kind == "dotdot" else "'k1.flac' is a link"
    assert any(p.startswith("train-000000.tar") and needle in p for p in problems), problems


def test_missing_json_field_and_key_mismatch_are_named(tmp_path: Path) -> None:
    from intervox.audio import encode_flac

    audio = (0.2 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    write_shard(
        tmp_path / "train-000000.tar",
        [
            {
                "__key__": "a",
                "flac": encode_flac(audio, 16000),
                "json": {
                    "key": "a",
                    "speaker": "s",
                    "content": "c",
                    "split": "train",
                    "sr": 16000,
                    "duration": 0.5,
                },
            },
            {
                "__key__": "b",
                "flac": encode_flac(audio, 16000),
                "json": {
                    "key": "zz",
                    "speaker": "s",
                    "content": "c",
                    "channel": "clean",
                    "split": "train",
                    "sr": 16000,
                    "duration": 0.5,
                },
            },
        ],
        "h",
    )
    problems = verify_dir(tmp_path).problems
    assert any("train-000000.tar: a: JSON lacks required field(s) channel" in p for p in problems), problems
    assert any("train-000000.tar: b: JSON key 'zz'" in p for p in problems), problems


def test_feature_shards_pass(tmp_path: Path) -> None:
    def npy(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, a)
        return buf.getvalue()

    samples = [
        {
            "__key__": f"train-000000-{i:06d}",
            "pooled.npy": npy(np.ones((5, 8), np.float16) * i),
            "json": {
                "key": f"train-000000-{i:06d}",
                "speaker": "s",
                "content": "c",
                "channel": "clean",
                "split": "train",
                "upstream": {"name": "whisper-base", "layers": 4, "hidden": 8},
            },
        }
        for i in range(3)
    ]
    write_shard(tmp_path / "train-000000.tar", samples, "h")
    report = verify_dir(tmp_path)
    assert report.ok, report.problems
    assert report.kinds == {"feature": 3}
    assert encode_field({"a": 1}) == b'{"a":1}'


def test_cli_verify_exit_codes(shard_copy, capsys) -> None:  # noqa: ANN001
    from intervox.cli import main

    d = shard_copy()
    main(["shards", "verify", str(d)])  # returns normally: exit 0
    assert "OK" in capsys.readouterr().out
    (d / "train-000000.json").unlink()
    with pytest.raises(SystemExit) as exc:
        main(["shards", "verify", str(d)])
    assert exc.value.code == 1
    assert "train-000000.tar: sidecar" in capsys.readouterr().err


def test_verify_checks_the_folder_against_its_index(shard_copy) -> None:  # noqa: ANN001
    d = shard_copy()
    (d / "train-000007.tar").write_bytes((d / "train-000000.tar").read_bytes())  # a leftover of another build
    (d / "train-000007.json").write_text((d / "train-000000.json").read_text().replace("000000", "000007"))
    (d / "validation-000000.tar").unlink()
    problems = verify_dir(d).problems
    assert "train-000007.tar: not listed in index.json (a leftover of another build?)" in problems
    assert "validation-000000.tar: listed in index.json but missing" in problems


def test_verify_names_counts_and_plans_that_disagree_with_the_index(shard_copy) -> None:  # noqa: ANN001
    d = shard_copy()
    index = json.loads((d / "index.json").read_text())
    index["shards"][0]["count"] += 1
    index["counts"]["written"] += 5
    (d / "index.json").write_text(json.dumps(index))
    side = json.loads((d / "validation-000000.json").read_text())
    (d / "validation-000000.json").write_text(json.dumps({**side, "plan_hash": "0" * 64}))
    problems = verify_dir(d).problems
    first = index["shards"][0]
    n = first["count"]
    assert f"{first['shard']}: index.json says {n} clips, the sidecar {n - 1}" in problems
    assert "index.json: counts say 17 clips but its shards list 13" in problems
    assert any(p.startswith("validation-000000.tar: sidecar plan_hash 000000000000 is not index.json's")
               for p in problems), problems


@pytest.fixture(scope="module")
def feature_dir(built_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real feature folder: the built audio shards through whisper-tiny.en (read-only)."""
    from intervox.features.extract import extract_features

    out = tmp_path_factory.mktemp("feats") / "whisper-tiny"
    extract_features(built_shards, out, "whisper-tiny.en", device="cpu")
    return out


def test_feature_folder_has_its_own_index_and_passes_verify(built_shards, feature_dir, capsys) -> None:  # noqa: ANN001
    from intervox.cli import main
    from intervox.shards.write import read_sidecar

    index = json.loads((feature_dir / "index.json").read_text())
    audio = json.loads((built_shards / "index.json").read_text())
    assert index["kind"] == "features" and index["upstream"]["name"] == "whisper-tiny.en"
    assert index["source"] == {"dir": str(built_shards), "kind": "audio", "plan_hash": audio["plan_hash"],
                               "shards": len(audio["shards"])}
    assert [e["shard"] for e in index["shards"]] == [e["shard"] for e in audio["shards"]]
    for entry, source in zip(index["shards"], audio["shards"], strict=True):
        side = read_sidecar(feature_dir / entry["shard"])
        assert (entry["sha256"], entry["count"], entry["bytes"]) == (side.sha256, side.count, side.bytes)
        assert entry["sha256"] != source["sha256"] and entry["source_sha256"] == source["sha256"]
    assert index["counts"] == {"shards": 2, "clips": 12, "bad_source_shards": 0}
    report = verify_dir(feature_dir)
    assert report.ok, report.problems
    assert report.kinds == {"feature": 12}
    main(["shards", "verify", str(feature_dir)])  # the gate: exit 0
    assert "OK" in capsys.readouterr().out


def test_verify_decodes_feature_members_and_checks_their_shapes(feature_dir, tmp_path) -> None:  # noqa: ANN001
    import shutil

    d = Path(shutil.copytree(feature_dir, tmp_path / "f"))
    tar = d / "train-000000.tar"
    with tarfile.open(tar) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    name, data = next((m.name, x) for m, x in members if m.name.endswith(".pooled.npy"))
    pooled = np.load(io.BytesIO(data))
    buf = io.BytesIO()
    np.save(buf, pooled[:-1])  # one layer short of what whisper-tiny.en gives
    bad = tarfile.TarInfo(name)
    bad.size = buf.tell()
    raw_tar(tar, [bad if m.name == name else m for m, _ in members],
            {**{m.name: x for m, x in members}, name: buf.getvalue()})
    reseal(tar)
    problems = verify_dir(d).problems
    key = name.split(".", 1)[0]
    assert any(p.startswith(f"train-000000.tar: {key}: pooled.npy has shape ({pooled.shape[0] - 1}, ")
               for p in problems), problems

    audio_index = json.loads(Path(json.loads((d / "index.json").read_text())["source"]["dir"], "index.json")
                             .read_text())
    (d / "index.json").write_text(json.dumps(audio_index))  # the old copy of the audio index
    problems = verify_dir(d).problems
    assert "index.json: kind 'audio' but the shards hold 12 feature clips" in problems
