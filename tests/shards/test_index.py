"""index.json and dataset_card.md of a build, and the lhotse CutSet export."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

from intervox.shards.lhotse_export import export_lhotse
from intervox.shards.read import iter_tar_samples
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


def test_export_lhotse_one_cut_per_clip_with_working_source(built_shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "cuts.jsonl.gz"
    assert export_lhotse(built_shards, out) == 12
    cuts = [json.loads(line) for line in gzip.open(out, "rt")]
    assert len({c["id"] for c in cuts}) == 12
    cut = next(c for c in cuts if c["custom"]["clip"]["op"])
    assert cut["type"] == "MonoCut" and cut["custom"]["clip"]["op"]["name"] == "noise"
    assert cut["supervisions"][0]["speaker"] == cut["custom"]["clip"]["speaker"]
    shard = built_shards / cut["custom"]["shard"]
    member = next(s["flac"] for s in iter_tar_samples(shard) if s["__key__"] == cut["custom"]["key"])
    source = cut["recording"]["sources"][0]
    assert source["type"] == "command"
    assert subprocess.run(source["source"], shell=True, capture_output=True, check=True).stdout == member
    assert out.read_bytes() == (
        export_lhotse(built_shards, tmp_path / "again.jsonl.gz")
        and (tmp_path / "again.jsonl.gz").read_bytes()
    )
