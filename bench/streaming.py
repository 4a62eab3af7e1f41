"""Figure 3: clips/s decoded and batched from audio shards vs the same clips as loose files."""

from __future__ import annotations

from bench.common import Bench, Result, log, run_child
from bench.data import load_clips, render_grid, replicate, write_audio_shards, write_loose

BATCH = 32


def run(bench: Bench) -> None:
    """Stream shards vs loose FLAC vs loose WAV, each in a fresh process, cold then warm; add results."""
    sr = 16000
    copies = 2 if bench.quick else 8
    utts = replicate(render_grid(bench.work / "grid", 8, 16), copies)
    clips = load_clips(utts, sr)
    root = bench.work / "streaming"
    tars = write_audio_shards(root / "shards", clips, sr, per_shard=128)
    sets = {
        "shards": tars,
        "flac": write_loose(root / "flac", clips, sr, "flac"),
        "wav": write_loose(root / "wav", clips, sr, "wav"),
    }
    audio_s = sum(c.size for c in clips) / sr
    mib = {k: sum(p.stat().st_size for p in v) / 2**20 for k, v in sets.items()}
    workload = (
        f"{len(clips)} espeak-ng clips ({audio_s:.0f} s, 16 kHz) decoded to float32 and padded into "
        f"batches of {BATCH}; shards: {len(tars)} FLAC tars of 128 clips ({mib['shards']:.0f} MiB) via "
        f"intervox.shards.read.iter_shards; loose: soundfile.read per file"
    )
    rates = {}
    sets["shards-raw"], sets["flac-raw"] = sets["shards"], sets["flac"]
    for kind, paths in sets.items():
        listing = root / f"{kind}.txt"
        listing.write_text("\n".join(str(p) for p in paths))
        result, _ = run_child(["stream", f'{{"kind": "{kind}", "list": "{listing}", "batch": {BATCH}}}'])
        rates[kind] = result
        log(
            bench,
            f"  {kind}: cold {result['cold']:.0f} clips/s, warm {result['warm']:.0f} clips/s "
            f"({result['evicted']} files evicted first)",
        )
    for temp, label in (
        ("cold", "fresh process, files evicted from the page cache with posix_fadvise (DONTNEED) first"),
        ("warm", "second pass in the same process, page cache warm"),
    ):
        for loose in ("flac", "wav"):
            base = rates[loose][temp]
            bench.add(
                Result(
                    "3",
                    f"streaming/shards_vs_loose_{loose}_{temp}",
                    f"{workload}; {label}",
                    rates["shards"][temp],
                    "clips/s",
                    baseline=base,
                    baseline_label=f"loose {loose.upper()} files, clips/s",
                    ratio=rates["shards"][temp] / base,
                    ratio_label="shard / loose-file clips/s",
                    target=">= 5",
                    notes=f"loose {loose} on disk: {mib[loose]:.0f} MiB; shard clips are FLAC, whose decode "
                    "bounds the ratio (WAV needs none); the raw_bytes row compares the I/O alone",
                )
            )
        base = rates["flac-raw"][temp]
        bench.add(
            Result(
                "3",
                f"streaming/raw_bytes_shards_vs_loose_flac_{temp}",
                f"as above but bytes only (no FLAC decode, no batching): tar parsing + reads vs one "
                f"open/read per file; {label}",
                rates["shards-raw"][temp],
                "clips/s",
                baseline=base,
                baseline_label="loose FLAC files read as bytes, clips/s",
                ratio=rates["shards-raw"][temp] / base,
                ratio_label="shard / loose-file clips/s",
                notes="informational: isolates the I/O part the shard format changes",
            )
        )
