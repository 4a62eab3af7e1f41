"""Figure 3: the shard reader against loose FLAC files, the raw FLAC decode limit, and 1 vs 2 decode workers.

Every reader decodes the same clips to float32 and pads them into batches of 32. Each kind runs
in a fresh child process (cold passes after evicting its files from the page cache, then warm
passes); the kinds are run in interleaved rounds and each keeps its best, so a burst of load
on the shared machine hits them alike.
"""

from __future__ import annotations

import json

from bench.common import Bench, Result, log, run_child
from bench.data import load_clips, render_grid, replicate, write_audio_shards, write_loose

BATCH = 32
KINDS = ("shards", "flac", "flac-decode", "loader-1", "loader-2")


def run(bench: Bench) -> None:
    """Time every kind; add the reader's ratios to loose files, to raw decode and of 2 to 1 workers."""
    sr = 16000
    copies, rounds, passes = (2, 1, 1) if bench.quick else (8, 2, 2)
    utts = replicate(render_grid(bench.work / "grid", 8, 16), copies)
    clips = load_clips(utts, sr)
    root = bench.work / "streaming"
    tars = write_audio_shards(root / "shards", clips, sr, per_shard=128)
    loose = write_loose(root / "flac", clips, sr, "flac")
    audio_s = sum(c.size for c in clips) / sr
    mib = sum(p.stat().st_size for p in tars) / 2**20
    workload = (
        f"{len(clips)} espeak-ng clips ({audio_s:.0f} s, 16 kHz) decoded to float32 and padded into batches "
        f"of {BATCH}; {len(tars)} FLAC shards of 128 clips ({mib:.0f} MiB) vs the same FLAC bytes as loose "
        f"files; fresh process per kind, best of {rounds} interleaved rounds x {passes} passes"
    )
    best = {k: {"cold": 0.0, "warm": 0.0, "warm_cpu": float("inf")} for k in KINDS}
    for r in range(rounds):
        for kind in KINDS:
            paths = loose if kind in ("flac", "flac-decode") else tars
            listing = root / f"{kind}.txt"
            listing.write_text("\n".join(str(p) for p in paths))
            args = {"kind": kind, "list": str(listing), "batch": BATCH, "passes": passes}
            result, _ = run_child(["stream", json.dumps(args)])
            for temp in ("cold", "warm"):
                best[kind][temp] = max(best[kind][temp], result[temp])
            best[kind]["warm_cpu"] = min(best[kind]["warm_cpu"], result["warm_cpu"])
            log(bench, f"  round {r + 1} {kind}: cold {result['cold']:.0f}, warm {result['warm']:.0f} "
                "clips/s")
    add = _adder(bench, workload, best)
    # Ceilings: what no reader could beat here. A reader without any cost of its own still decodes the
    # same bytes (flac-decode); cold, it cannot outrun its own warm rate; 2 workers cannot outrun the
    # cores over the CPU seconds a clip costs them and the main process together.
    add("reader_vs_loose_flac_warm", "shards", "flac", "warm", ">= 1.0",
        "intervox reader (iter_shards, this process) / loose FLAC files, page cache warm",
        ceiling=(best["flac-decode"]["warm"] / best["flac"]["warm"],
                 "decode of the same bytes in memory, no reading at all / loose files, warm"))
    add("reader_vs_raw_decode_warm", "shards", "flac-decode", "warm", ">= 0.95",
        "intervox reader / soundfile decode of the same FLAC bytes already in memory (the decode limit)")
    add("reader_vs_loose_flac_cold", "shards", "flac", "cold", ">= 1.5",
        "intervox reader / loose FLAC files, each pass after evicting the files (posix_fadvise DONTNEED)",
        ceiling=(best["shards"]["warm"] / best["flac"]["cold"],
                 "the reader's own warm rate (no I/O wait) / loose files, cold"))
    per_clip = best["loader-2"]["warm_cpu"]
    add("decode_workers_2_vs_1", "loader-2", "loader-1", "warm", ">= 1.8",
        f"shard_loader DataLoader with 2 decode worker processes / with 1, page cache warm, {bench.cores} "
        "cores (the main process batches); worker start-up counted in each pass (non-persistent workers); "
        f"CPU per clip with 2 workers (main process + workers) {per_clip * 1e6:.0f} us, with 1 "
        f"{best['loader-1']['warm_cpu'] * 1e6:.0f} us",
        ceiling=(bench.cores / per_clip / best["loader-1"]["warm"],
                 f"{bench.cores} cores / CPU seconds a clip costs with 2 workers, over the 1-worker rate"))


def _adder(bench: Bench, workload: str, best: dict):  # noqa: ANN202 - a closure adding one Result
    def add(name: str, kind: str, base: str, temp: str, target: str, what: str,
            ceiling: tuple[float, str] | None = None) -> None:
        bound, bound_label = ceiling or (None, "")
        bench.add(Result("3", f"streaming/{name}", f"{workload}; {what}", best[kind][temp], "clips/s",
                         baseline=best[base][temp], baseline_label=f"{base} ({temp}), clips/s",
                         ratio=best[kind][temp] / best[base][temp], ratio_label=f"{kind} / {base} clips/s",
                         target=target, ceiling=bound, ceiling_label=bound_label))

    return add
