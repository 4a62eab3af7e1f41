"""After-the-fact QC of a shard set, through the library call and the click command."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from intervox.audio import encode_flac
from intervox.judges.commands import qc_cmd
from intervox.judges.qc import QCConfig
from intervox.judges.shard_qc import score_shard_dir
from intervox.shards.write import write_shard

SR = 16000


def _clip(key, audio, text, speaker, content, op=None, source_key=None):
    meta = {"key": key, "speaker": speaker, "content": content, "channel": "clean", "language": "en",
            "text": text, "split": "train", "block": 0, "source_key": source_key, "op": op, "sr": SR,
            "duration": len(audio) / SR}
    return {"__key__": key, "flac": encode_flac(audio, SR), "json": meta}


def _shard_set(tmp_path, clips, texts):
    d = tmp_path / "shards"
    speaker_op = {"name": "voice_swap", "target": "speaker", "params": {}}
    samples = [
        _clip("train-000000-000000", clips["espeak_fox"], texts["fox"], "espeak:en-us", "en-s0001"),
        _clip("train-000000-000001", clips["flite_fox"], texts["fox"], "flite:slt", "en-s0001",
              speaker_op, "train-000000-000000"),
        _clip("train-000000-000002", clips["espeak_fox"], texts["fox"], "espeak:en-us~same", "en-s0001",
              speaker_op, "train-000000-000000"),
        _clip("train-000000-000003", clips["flite_canoe"], texts["canoe"], "flite:slt", "en-s0002",
              speaker_op, "train-000000-000099"),  # its source is missing
    ]
    write_shard(d / "train-000000.tar", samples[:2], "plan")
    write_shard(d / "train-000001.tar", samples[2:], "plan")
    return d


def test_score_shard_dir_writes_scores_summary_and_table(tmp_path, clips, texts):
    d = _shard_set(tmp_path, clips, texts)
    summary = score_shard_dir(d, QCConfig(asr_model="whisper-tiny.en"), tmp_path / "qc")
    rows = {r["key"]: r for r in map(json.loads, (tmp_path / "qc" / "qc.jsonl").read_text().splitlines())}
    assert len(rows) == 4 and summary["n_scored"] == 4 and summary["n_clips"] == 4
    assert rows["train-000000-000000"]["accepted"] and rows["train-000000-000000"]["op"] is None
    swap = rows["train-000000-000001"]
    assert swap["accepted"] and swap["scores"]["speaker_similarity"] < 0.7
    # Its speaker label has one other clip with other content: used as the own-speaker reference.
    assert swap["scores"]["n_refs"] == 1 and swap["scores"]["own_speaker_similarity"] > 0.7
    ident = rows["train-000000-000002"]
    assert not ident["accepted"] and ident["reason"].startswith("speaker_similarity 1.00 >= max 0.85")
    lost = rows["train-000000-000003"]
    assert not lost["accepted"] and lost["scores"] is None and "train-000000-000099" in lost["reason"]
    assert (summary["n_accepted"], summary["n_rejected"], summary["n_unscorable"]) == (2, 2, 1)
    assert summary["validity"]["ops"]["voice_swap"]["n_scored"] == 3
    assert set(summary["seconds_per_clip"]) == {"asr", "speaker", "pitch"}
    on_disk = json.loads((tmp_path / "qc" / "qc_summary.json").read_text())
    assert on_disk["n_accepted"] == 2
    assert "| voice_swap | speaker | 3 |" in (tmp_path / "qc" / "qc_validity.md").read_text()


def test_qc_command_scores_a_sample(tmp_path, clips, texts):
    d = _shard_set(tmp_path, clips, texts)
    res = CliRunner().invoke(qc_cmd, [str(d), "--asr-model", "none", "seed=1", "--fraction", "0.5"])
    assert res.exit_code == 0, res.output
    assert "clips:" in res.output and (d / "qc.jsonl").is_file()
    summary = json.loads((d / "qc_summary.json").read_text())
    assert summary["config"]["fraction"] == 0.5 and summary["config"]["asr_model"] == "none"
    assert summary["config"]["seed"] == 1  # the positional override
    assert summary["n_scored"] == len((d / "qc.jsonl").read_text().splitlines()) < 4
    assert np.all([r["scores"] is None or r["scores"]["cer"] is None
                   for r in map(json.loads, (d / "qc.jsonl").read_text().splitlines())])


def test_qc_command_help_has_an_example():
    res = CliRunner().invoke(qc_cmd, ["--help"])
    assert res.exit_code == 0 and "Example:" in res.output and "intervox shards qc" in res.output
