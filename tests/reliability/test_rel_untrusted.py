"""Untrusted files: shards with unsafe members, pickles, YAML tags, hub look-ups: refused, never executed."""

from __future__ import annotations

import ast
import io
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml
from relhelpers import ROOT, UNSAFE_KINDS, tamper

from intervox.errors import ShardError, UpstreamError
from intervox.shards.read import StreamStats, decode_npy, iter_shards
from intervox.shards.verify import verify_dir
from intervox.shards.write import write_shard

REFUSAL = {"pyd": "never writes", "pth": "never writes", "pickle": "never writes",
           "dotdot": "unsafe member name", "absolute": "unsafe member name", "symlink": "is a link",
           "hardlink": "is a link", "device": "device or special file", "object_npy": "not a plain .npy"}


def feature_shard(path: Path, n: int = 2) -> Path:
    """Write a valid feature shard of `n` clips (json + pooled.npy) with its sidecar."""
    samples = []
    for i in range(n):
        buf = io.BytesIO()
        np.save(buf, np.full((3, 4), i, dtype=np.float16), allow_pickle=False)
        key = f"{path.stem}-{i:06d}"
        samples.append({"__key__": key, "pooled.npy": buf.getvalue(),
                        "json": {"key": key, "speaker": "s", "content": "c", "channel": "clean",
                                 "split": "train", "upstream": {"name": "x"}}})
    write_shard(path, samples, plan_hash="p")
    return path


@pytest.mark.parametrize("kind", UNSAFE_KINDS)
def test_verify_and_stream_refuse_unsafe_members(tmp_path: Path, kind: str) -> None:
    good = feature_shard(tmp_path / "train-000000.tar")
    bad = feature_shard(tmp_path / "train-000001.tar")
    assert verify_dir(tmp_path).ok
    marker = tmp_path / "unpickled"
    tamper(bad, kind, marker)  # the sidecar is resealed: only the member check can catch it
    report = verify_dir(tmp_path)
    assert not report.ok
    assert any("train-000001.tar" in p and REFUSAL[kind] in p for p in report.problems), report.problems
    assert not any("train-000000.tar" in p for p in report.problems)
    stats = StreamStats()
    with pytest.raises(ShardError, match=REFUSAL[kind]):
        list(iter_shards([good, bad], stats=stats))
    stats = StreamStats()
    clips = list(iter_shards([good, bad], stats=stats, max_bad_fraction=0.5))
    assert len(clips) == 2 and stats.bad_shards[0][0] == str(bad) and stats.shards_read == 1
    assert not marker.exists() and not (tmp_path.parent / "train-000001-000000.json").exists()


def test_object_npy_is_refused_without_unpickling(tmp_path: Path) -> None:
    from relhelpers import WritesMarker

    marker = tmp_path / "unpickled"
    buf = io.BytesIO()
    np.save(buf, np.array([WritesMarker(str(marker))], dtype=object), allow_pickle=True)
    with pytest.raises(ShardError, match="x.pooled.npy: not a plain .npy"):
        decode_npy(buf.getvalue(), "x.pooled.npy")
    assert not marker.exists()
    np.load(io.BytesIO(buf.getvalue()), allow_pickle=True)  # what the refusal protects against
    assert marker.exists()


EVIL_YAML = "!!python/object/apply:os.system ['touch {marker}']\n"


@pytest.mark.parametrize("command, key", [
    (["train", "--config"], "run_dir: "),
    (["shards", "build", "--out", "OUT", "--config"], "seed: "),
    (["train", "run_dir=runs/x", "--config"], ""),  # a tagged top level, not just a tagged value
])
def test_configs_are_safe_loaded_through_the_cli(
    tmp_path: Path, capsys, command: list[str], key: str  # noqa: ANN001
) -> None:
    from intervox.cli import main

    marker = tmp_path / "executed"
    config = tmp_path / "evil.yaml"
    config.write_text(key + EVIL_YAML.format(marker=marker))
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in command] + [str(config)]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert str(config) in err and "not valid YAML" in err
    assert not marker.exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.tar"))


def test_override_values_are_safe_loaded(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from intervox.cli import main

    marker = tmp_path / "executed"
    with pytest.raises(SystemExit) as exit_:
        main(["train", f"run_dir=!!python/object/apply:os.system ['touch {marker}']"])
    assert exit_.value.code == 2 and not marker.exists()
    assert "run_dir" in capsys.readouterr().err


def test_hf_upstream_never_reaches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from intervox.features.registry import get_upstream

    tried: list[object] = []

    def no_network(self: socket.socket, address: object) -> None:
        tried.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(UpstreamError, match="intervox-test/no-such-model"):
        get_upstream("hf:intervox-test/no-such-model")
    assert tried == []


UNSAFE_MODULES = ("pickle", "dill", "cloudpickle", "joblib")
HUB_CALLS = ("from_pretrained", "snapshot_download", "hf_hub_download")


# Calls that would unpickle, execute YAML tags or fetch at run time, and what makes each one safe.
def _unsafe_calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] in UNSAFE_MODULES for n in names):
                found.append(f"line {node.lineno}: imports {names}")
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
        call = f"{owner}.{node.func.attr}"
        kw = {k.arg: k.value for k in node.keywords}

        def is_true(name: str, kw: dict = kw) -> bool:
            return isinstance(kw.get(name), ast.Constant) and kw[name].value is True

        if call == "torch.load" and not is_true("weights_only"):
            found.append(f"line {node.lineno}: torch.load without weights_only=True")
        if call in ("np.load", "numpy.load") and not (
            isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is False
        ):
            found.append(f"line {node.lineno}: np.load without allow_pickle=False")
        if call == "np.save" and is_true("allow_pickle"):
            found.append(f"line {node.lineno}: np.save with allow_pickle=True")
        if call in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
            found.append(f"line {node.lineno}: {call} (use yaml.safe_load)")
        if call in ("wds.decode", "webdataset.decode") or node.func.attr in ("autodecode", "basichandlers"):
            found.append(f"line {node.lineno}: webdataset decoder (its default handlers unpickle .pyd/.pth)")
        if node.func.attr == "extractall":
            found.append(f"line {node.lineno}: tar extractall")
        if node.func.attr in HUB_CALLS and "local_files_only" not in kw:
            found.append(f"line {node.lineno}: {node.func.attr} without local_files_only")
    return found


def test_package_source_has_no_unsafe_loaders() -> None:
    problems = []
    for path in sorted((ROOT / "intervox").rglob("*.py")):
        problems += [f"{path.relative_to(ROOT)} {p}" for p in _unsafe_calls(ast.parse(path.read_text()))]
    assert problems == []


def test_the_source_scan_catches_what_it_claims() -> None:
    bad = ("import pickle\nwds.decode('torch')\ntorch.load(p)\ntorch.load(p, weights_only=False)\n"
           "np.load(b)\nnp.load(b, allow_pickle=True)\nyaml.load(s)\nyaml.unsafe_load(s)\n"
           "tar.extractall('x')\nAutoModel.from_pretrained(m)\n")
    assert len(_unsafe_calls(ast.parse(bad))) == 10
    good = "torch.load(p, weights_only=True)\nnp.load(b, allow_pickle=False)\nyaml.safe_load(s)\n"
    assert _unsafe_calls(ast.parse(good)) == []
    assert yaml.safe_load("a: 1") == {"a": 1}


def test_shard_cut_at_a_sample_boundary_is_refused(tmp_path: Path) -> None:
    import tarfile

    tar = feature_shard(tmp_path / "train-000000.tar", n=3)
    with tarfile.open(tar) as t:
        third = t.getmembers()[4].offset  # members: k0.json k0.npy k1.json k1.npy k2.json ...
    tar.write_bytes(tar.read_bytes()[:third])  # a valid-looking tar of 2 samples: tarfile reads it happily
    with tarfile.open(tar, "r|") as t:
        assert len([m.name for m in t]) == 4
    with pytest.raises(ShardError, match=r"train-000000.tar: truncated or changed"):
        list(iter_shards([tar]))
    assert any("size" in p for p in verify_dir(tmp_path).problems)
