"""The bench's report and timing: misses first, every op has its baseline, ratios from the same run."""

from __future__ import annotations

import numpy as np
import pytest

from bench.common import REPO, Result, check_target, paired_best
from bench.ops import BASELINES, SKIPPED
from bench.run import render_markdown


def doc(results: list[Result]) -> dict:
    return {"command": "python -m bench.run", "date": "2026-11-30T00:00:00+00:00", "quick": False,
            "wall_seconds": 1.0, "versions": {}, "results": [r.to_dict() for r in results],
            "machine": {"cpu": "cpu", "cores": 2, "ram_gib": 1, "load_average_at_start": [0.0], "gpu": None}}


def result(name: str, ratio: float, target: str) -> Result:
    r = Result("2", name, "w", 1.0, "s", baseline=1.0, baseline_label="plain loop", ratio=ratio,
               ratio_label="pipeline / plain", target=target)
    r.met = check_target(ratio, target)
    return r


def test_misses_come_first_and_every_target_is_tabled() -> None:
    met, missed = result("pipeline/a_met", 1.05, "<= 1.10"), result("pipeline/z_missed", 1.3, "<= 1.10")
    md = render_markdown(doc([met, missed,
                              Result("2", "pipeline/info", "w", 2.0, "s")]))
    misses = md.index("## Misses against targets")
    targets = md.index("## Targets (issue 19)")
    assert misses < targets < md.index("## Results")
    assert "- **pipeline/z_missed**: ratio 1.3 (pipeline / plain) against plain loop, target <= 1.10" in md
    assert "pipeline/a_met" not in md[misses:targets]
    table = md[targets:md.index("## Results")].splitlines()
    rows = [ln for ln in table if ln.startswith("| 2 |")]
    assert rows == ["| 2 | pipeline/z_missed | 1.3 | <= 1.10 | **no** | - | pipeline / plain |",
                    "| 2 | pipeline/a_met | 1.05 | <= 1.10 | yes | - | pipeline / plain |"]


def test_a_miss_says_whether_its_ceiling_on_this_machine_reaches_the_target() -> None:
    bound = result("pipeline/speedup", 1.48, ">= 1.8")
    bound.ceiling, bound.ceiling_label = 1.62, "1-worker time / (CPU seconds / 2 cores)"
    open_miss = result("streaming/raw", 0.94, ">= 0.95")
    open_miss.ceiling, open_miss.ceiling_label = 1.0, "the decode limit"
    md = render_markdown(doc([bound, open_miss, result("pipeline/no_ceiling", 1.3, "<= 1.10")]))
    misses = md[md.index("## Misses against targets"):md.index("## Targets (issue 19)")]
    assert "1 of 3 misses are out of reach on this machine" in misses
    assert ("target >= 1.8. Ceiling on this machine 1.62 (1-worker time / (CPU seconds / 2 cores)): "
            "out of reach here.") in misses
    assert "target >= 0.95. Ceiling on this machine 1 (the decode limit): within reach." in misses
    assert "| 2 | pipeline/speedup | 1.48 | >= 1.8 | **no** | 1.62 | pipeline / plain |" in md


def test_paired_best_interleaves_and_keeps_each_sides_best() -> None:
    calls: list[str] = []
    best, rounds = paired_best([lambda: calls.append("a"), lambda: calls.append("b")], min_seconds=0.0)
    assert rounds == 3 and calls == ["a", "b"] * 3
    assert all(0 <= b < 0.01 for b in best)


def test_every_registered_op_has_a_baseline_or_is_skipped() -> None:
    from intervox.interventions.registry import available

    assert set(available()) == set(BASELINES) | set(SKIPPED)


@pytest.mark.parametrize("name", ["world_vc", "praat_gender", "gain_clip", "noise", "telephone", "reverb"])
def test_baselines_do_the_ops_edit(name: str, speech) -> None:  # noqa: ANN001
    """Each baseline makes a same-length signal from the op's own params (it times the same edit)."""
    from intervox.interventions.registry import from_dict

    op = from_dict({"name": name})
    params = op.sample_params(np.random.default_rng(0), None) if name != "praat_gender" else {
        "formant_ratio": 1.2, "pitch_ratio": 0.8, "pitch_range": 1.0}
    out = np.asarray(BASELINES[name][1](speech.audio, speech.sr, params))
    assert abs(out.size - speech.audio.size) <= 0.01 * speech.audio.size and np.isfinite(out).all()
    assert not np.allclose(out[: speech.audio.size], speech.audio)  # it changed the audio


def test_a_section_rerun_replaces_only_its_figure(tmp_path) -> None:  # noqa: ANN001
    import json

    from bench.run import merge_results

    full = doc([result("pipeline/a", 1.3, "<= 1.10"), Result("1", "ops/x", "w", 1.0, "s")])
    full["figure_seconds"] = {"1": 5.0, "2": 9.0}
    (tmp_path / "results.json").write_text(json.dumps(full))
    rerun = {**doc([Result("1", "ops/y", "w", 2.0, "s")]), "command": "python -m bench.run --only 1",
             "figure_seconds": {"1": 6.0}}
    merged = merge_results(tmp_path / "results.json", rerun, {"1"})
    assert [r["name"] for r in merged["results"]] == ["ops/y", "pipeline/a"]
    assert merged["figure_seconds"] == {"1": 6.0, "2": 9.0} and merged["reruns"][0]["figures"] == ["1"]
    assert "Figure(s) 1 rerun on" in render_markdown(merged)


def test_the_memory_figures_training_reads_no_real_cohort(tmp_path) -> None:  # noqa: ANN001
    """The synthetic upstream cannot pool real clips: a cohort term left on crashed figure 6."""
    from bench.memory import TRAIN_CONFIG, train_overrides
    from intervox.config import load_config
    from intervox.training.cohort_clips import cohort_inputs
    from intervox.training.config import TrainConfig

    cfg = load_config(REPO / TRAIN_CONFIG, TrainConfig, train_overrides(tmp_path / "f", tmp_path / "run", 20))
    assert cfg.data.cohort is not None  # the default config has one: the overrides must turn its terms off
    assert cohort_inputs(cfg, [], rank=0) is None and cfg.loss.frame_content_weight == 0
    assert cfg.max_steps == 20 and cfg.device == "cpu"
