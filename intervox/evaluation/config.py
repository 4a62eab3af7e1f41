"""EvalConfig: the frozen dataclass `intervox eval` loads from configs/eval/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass

from intervox.config import check_range


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how: splits, trial counts, probe settings, subsampling."""

    seed: int = 0
    sv_splits: tuple[str, ...] = ("validation", "test_ood")  # in-domain, out-of-domain
    sv_trials_per_class: int = 3000  # target trials, and as many non-target trials
    kws_split: str | None = "keywords"  # null: no keyword probe
    # A Speech Commands v0.01 feature dir (clip JSONs carry label12 + split); None = kws_split.
    kws_features: str | None = None
    probe_test_fraction: float = 0.3  # held-out factor levels of the disentanglement probes
    probe_folds: int = 5  # keyword probe: speaker-grouped cross-validation folds (every clip tested once)
    probe_epochs: int = 30
    probe_lr: float = 1e-3
    probe_batch_size: int = 64
    max_clips_per_split: int | None = 6000  # subsample whole anchor groups above this
    layer_baselines: bool = True  # input layer, best single layer, uniform/learned layer sums
    embed_points: int = 1500  # clips drawn in the 2-D embedding plots

    def __post_init__(self) -> None:
        check_range(self, "probe_test_fraction", gt=0, lt=1)
        check_range(self, "seed", ge=0)
        check_range(self, "probe_folds", ge=2)
        check_range(self, "sv_trials_per_class", "probe_epochs", "probe_batch_size",
                    "max_clips_per_split", "embed_points", ge=1)
        check_range(self, "probe_lr", gt=0)
