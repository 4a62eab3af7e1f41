"""index.json and dataset_card.md of a build, and the lhotse Shar export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from intervox.errors import ShardError
from intervox.shards.lhotse_export import export_shar
from intervox.shards.read import iter_shards, list_shards
from intervox.shards.write import read_sidecar


def test_index_lists_shards_vocab_blocks_and_versions(built_shards: Path) -> None:
    index = json.loads((built_shards / "index.json").read_text())
    assert index["counts"] == {"input": 12, "written": 12, "quarantined": 0, "source_quarantined": 0}
    for entry in index["shards"]:
        side = read_sidecar(built_shards / entry["shard"])
        assert (entry["sha256"], entry["count"]) == (side.sha256, side.count)
        assert side.plan_hash == index["plan_hash"]
    assert set(index["splits"]) == {"train", "validation"}
    assert index["splits"]["train"]["by_op"] == {
        "noise": {"clips": 4, "seconds": index["splits"]["train"]["by_op"]["noise"]["seconds"]},
        "source": {"clips": 4, "seconds": index["splits"]["train"]["by_op"]["source"]["seconds"]},
    }
    assert index["vocab"]["train"]["speakers"] == ["espeak:en-gb:p75", "espeak:en-us:p35"]
    assert index["vocab"]["train"]["contents"] == ["s0", "s1"]
    assert index["vocab"]["train"]["channels"] == ["clean", "noise1"]
    assert (
        index["blocks"]["speakers"] == 2 and index["blocks"]["dense"] is False
    )  # validation is speaker-only
    assert index["splits"]["train"]["dense_blocks"] == 1
    assert {"intervox", "numpy", "soundfile", "libsndfile", "dask"} <= set(index["versions"])
    assert index["plan"]["interventions"][0]["op"] == {"name": "noise"}


def test_card_says_how_it_was_made(built_shards: Path) -> None:
    card = (built_shards / "dataset_card.md").read_text()
    assert "intervox shards build (test)" in card
    assert "espeak-ng: GPL-3" in card
    assert "| train | 8 | 1 |" in card and "| validation | noise | 2 |" in card


def test_export_shar_loads_with_lhotse_and_holds_the_shards_audio(built_shards: Path, tmp_path: Path) -> None:
    from lhotse import CutSet

    out = tmp_path / "shar"
    proc = subprocess.run([sys.executable, "-m", "intervox", "shards", "export-lhotse", str(built_shards),
                           "--out", str(out), "--shard-size", "5"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 12 cuts as a lhotse Shar set" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        *(f"cuts.{i:06d}.jsonl.gz" for i in range(3)), *(f"recording.{i:06d}.tar" for i in range(3))]
    cuts = CutSet.from_shar(in_dir=out)
    clips = {s["__key__"]: s for s in iter_shards(list_shards(built_shards))}
    seen = 0
    for cut in cuts:
        clip = clips[cut.id]
        audio, sr = clip["flac"]
        assert cut.sampling_rate == sr and np.array_equal(cut.load_audio()[0], audio)  # the shard's samples
        assert cut.supervisions[0].speaker == clip["json"]["speaker"] == cut.custom["clip"]["speaker"]
        assert cut.custom["clip"]["op"] == clip["json"]["op"] and cut.custom["key"] == cut.id
        seen += 1
    assert seen == 12
    with pytest.raises(ShardError, match="not an empty folder"):
        export_shar(built_shards, out)


