"""FinetuneConfig: the frozen dataclasses `intervox finetune` loads from configs/finetune/*.yaml.

The schedule is Speech-FT's stable fine-tuning (Lin et al. 2025, arXiv 2502.12672; code
nervjack2/Speech-FT, `get_stable_finetuning_schedule` and `grad_scheduler.finetune_steps`):
the upstream frozen for the first 10% of the steps (heads only), then everything but the
convolutional front end; learning rate warm-up over 10% of the steps, held for 40%, linear
decay to 0 over the last 50%; gradient clipping at 1. The heads, the loss and the grid batches
are `intervox train`'s (ModelConfig, LossConfig; speakers x sentences per batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from intervox.config import ConfigValueError, check_range
from intervox.training.config import DebugConfig, LossConfig, ModelConfig


@dataclass(frozen=True)
class FinetuneDataConfig:
    """Which audio shards, and the speakers x sentences grid of every batch."""

    shards: str = "shards/en"  # an audio shard folder (`intervox shards build`)
    split: str = "train"
    speakers_per_batch: int = 8
    contents_per_batch: int = 4
    max_seconds: float = 30.0  # longer clips are cut to their first max_seconds (Whisper's window)
    max_bad_shard_fraction: float = 0.0
    # Real clips for loss.cohort_speaker_weight and preserve.clips=cohort: a folder corpus no
    # evaluation panel holds (`make ktuberling` writes shards/ktuberling) and its split (None: every
    # clip). Each step the upstream also runs on cohort_speakers of its speakers x
    # cohort_clips_per_speaker clips each.
    cohort: str | None = None
    cohort_split: str | None = "cohort"
    cohort_speakers: int = 8
    cohort_clips_per_speaker: int = 4

    def __post_init__(self) -> None:
        if not str(self.shards).strip():
            raise ConfigValueError("shards", "must name an audio shard folder, got an empty path")
        check_range(self, "speakers_per_batch", "contents_per_batch", "cohort_speakers",
                    "cohort_clips_per_speaker", ge=2)
        check_range(self, "max_seconds", gt=0, le=30)
        check_range(self, "max_bad_shard_fraction", ge=0, le=1)


@dataclass(frozen=True)
class FinetuneOptimConfig:
    """AdamW with Speech-FT's stable fine-tuning schedule (each share a key)."""

    steps: int = 100
    lr: float = 1e-4  # peak learning rate of the heads
    upstream_lr: float = 1e-5  # peak learning rate of the upstream's trainable layers
    freeze_fraction: float = 0.1  # upstream frozen (heads only) for this share of the steps
    warmup_fraction: float = 0.1  # linear warm-up from 0
    hold_fraction: float = 0.4  # then the peak is held; the rest decays linearly to 0
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0  # max global norm of all trained parameters' gradients
    freeze_frontend: bool = True  # never train the conv front end (Speech-FT)

    def __post_init__(self) -> None:
        check_range(self, "steps", ge=1)
        check_range(self, "lr", "upstream_lr", "grad_clip", gt=0)
        check_range(self, "freeze_fraction", "warmup_fraction", "hold_fraction", "weight_decay", ge=0)
        check_range(self, "freeze_fraction", lt=1)
        if self.warmup_fraction + self.hold_fraction > 1:
            raise ConfigValueError("hold_fraction", f"+ warmup_fraction must be <= 1, got "
                                   f"{self.warmup_fraction} + {self.hold_fraction}")

    def freeze_steps(self) -> int:
        """Return how many first steps keep the upstream frozen (Speech-FT: int(0.1 * steps))."""
        return int(self.freeze_fraction * self.steps)

    def lr_factor(self, step: int) -> float:
        """Return the learning-rate multiplier of 0-based `step` (Speech-FT's stable schedule)."""
        warm = int(self.steps * self.warmup_fraction)
        held = warm + int(self.steps * self.hold_fraction)
        if step < warm:
            return step / max(1, warm)
        if step < held:
            return 1.0
        return max(0.0, (self.steps - step) / max(1, self.steps - held))


@dataclass(frozen=True)
class FinetunePreserveConfig:
    """Hold pooled layers to the pre-trained upstream's, limiting representational drift.

    The loss is the mean squared difference of the layer-normed pooled layers (each of unit
    variance over its hidden units) between the trained upstream and a frozen copy of the
    pre-trained one, averaged over `layers`: the layers whose use a run must keep, e.g. the
    content layers while a speaker loss reshapes a lower one. `clips` says on which audio:
    `batch`, the step's training batch (the synthetic grid), or `cohort`, the step's draw of
    data.cohort's real clips, so the drift held is the drift on real speech.
    """

    weight: float = 0.0  # > 0 turns it on: the frozen copy also runs on every step's `clips`
    layers: tuple[int, ...] = ()  # hidden-state indices (0: the front end's output)
    clips: Literal["batch", "cohort"] = "batch"

    def __post_init__(self) -> None:
        check_range(self, "weight", ge=0)
        if any(layer < 0 for layer in self.layers):
            raise ConfigValueError("layers", f"must be hidden-state indices >= 0, got {list(self.layers)}")
        if self.weight > 0 and not self.layers:
            raise ConfigValueError("layers", "must name at least one layer when preserve.weight > 0")


@dataclass(frozen=True)
class FinetuneConfig:
    """A whole fine-tuning run: upstream, audio data, heads, loss, optimiser, run dir."""

    run_dir: str = "runs/en-finetune-whisper-tiny.en"
    upstream: str = "whisper-tiny.en"
    seed: int = 0
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)
    # The subspace heads: `intervox train`'s projector on the pooled layers of the upstream.
    model: ModelConfig = field(default_factory=lambda: ModelConfig(
        layer=2, subspace_layers={"speaker": 2, "content": 4}, normalize_layers=True,
        hidden_dims=(256,), speaker_dim=128, content_dim=128))
    loss: LossConfig = field(default_factory=LossConfig)
    optim: FinetuneOptimConfig = field(default_factory=FinetuneOptimConfig)
    preserve: FinetunePreserveConfig = field(default_factory=FinetunePreserveConfig)
    checkpoint_every: int = 25
    keep_checkpoints: int = 2  # 0 keeps all (each holds the upstream's weights)
    max_steps: int | None = None  # stop early (the schedule still spans optim.steps); resume later
    resume: bool = True
    log_every: int = 5
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True  # autocast the upstream and heads to bf16 on GPU (never on CPU)
    gradient_checkpointing: bool = False  # recompute layer activations in backward (GPU memory)
    debug: DebugConfig = field(default_factory=DebugConfig)  # test hooks (log_keys, nan_at_step)

    def __post_init__(self) -> None:
        if not str(self.run_dir).strip():
            raise ConfigValueError("run_dir", "must name a folder, got an empty path")
        if not str(self.upstream).strip():
            raise ConfigValueError("upstream", "must name an upstream (whisper-tiny.en, hf:<dir>, ...)")
        check_range(self, "seed", "keep_checkpoints", ge=0)
        check_range(self, "checkpoint_every", "log_every", "max_steps", ge=1)
        if self.loss.frame_content_weight > 0 and self.model.input != "layer":
            raise ConfigValueError("loss.frame_content_weight", "fine-tuning's frame loss reads the frames "
                                   "of the content head's own layer: it needs model.input: layer")
        if self.loss.frame_layer is not None:
            raise ConfigValueError("loss.frame_layer", "must be unset: fine-tuning takes the frames of the "
                                   "content head's layer (model.subspace_layers.content) from the upstream")
        if self.loss.cohort_weight > 0:  # `train`'s decorrelation term on pre-pooled real clips
            raise ConfigValueError("loss.cohort_weight", "must be 0: fine-tuning's cohort term is "
                                   "loss.cohort_speaker_weight (the decorrelation is `intervox train`'s)")
        if self.reads_cohort() and not self.data.cohort:
            key, what = (("loss.cohort_speaker_weight", "needs") if self.loss.cohort_speaker_weight > 0
                         else ("preserve.clips", "cohort needs"))
            raise ConfigValueError(key, f"{what} data.cohort: a folder corpus of real clips with a speaker "
                                   "column (`make ktuberling` writes shards/ktuberling)")

    def reads_cohort_for_preserve(self) -> bool:
        """Whether preserve holds the drift on data.cohort's clips."""
        return self.preserve.weight > 0 and self.preserve.clips == "cohort"

    def reads_cohort(self) -> bool:
        """Whether each step runs the upstream on a draw of data.cohort's clips."""
        return self.loss.cohort_speaker_weight > 0 or self.reads_cohort_for_preserve()
