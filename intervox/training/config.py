"""TrainConfig: the frozen dataclasses `intervox train` loads from configs/train/*.yaml.

The defaults are the reference method (paper): one layer, MLP in->768->768->768 split into
two 384-d subspaces, supervised contrastive loss (tau 0.1) + cross-covariance
orthogonality, AdamW + one-cycle (max lr 1e-4), 480 steps of 16 speakers x 32 sentences;
one exception: the orthogonality term is normalised by the batch size by default
(`loss.orthogonality: cross_covariance_ref` is the paper's formula).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from intervox.config import ConfigValueError, check_range


@dataclass(frozen=True)
class DataConfig:
    """Where the feature shards are and how batches are built from them."""

    # One feature dir per upstream; several dirs with the same keys = fusion. A dir may be an fsspec
    # URL (s3://...): training reads its local copy (shards/mirror.py).
    features: tuple[str, ...] = ("shards/en-features-whisper-base",)  # what `make features` writes
    split: str = "train"
    # grid: S speakers x T contents per batch drawn from the whole split (paper), read per batch
    # from the shards (memory does not grow with the split); blocks: streamed contrastive blocks.
    batching: Literal["grid", "blocks"] = "grid"
    speakers_per_batch: int = 16
    contents_per_batch: int = 32
    blocks_per_batch: int = 4
    shuffle_buffer_blocks: int = 16  # blocks held by the shuffle buffer (whole blocks move)
    # Draw shards with replacement from this rank's shards (an endless stream cut into
    # epochs of `epoch_batches`): ranks never run out at different times. None = on under DDP.
    resampled: bool | None = None
    epoch_batches: int = 100  # batches per epoch (`with_epoch`) when resampled
    num_workers: int = 0  # DataLoader workers for `blocks` (shards are split between them)
    max_bad_shard_fraction: float = 0.0
    frames: bool = False  # load KEY.frames.npy (needed by the frame-level content loss)
    # Leave out the clips made by these ops (by the op name in each clip's JSON), in grid and block
    # batching alike, e.g. [praat_gender] to train without the timing-preserving copies (and the
    # identities they derive) that the default shards hold for the frame-level content loss.
    exclude_ops: tuple[str, ...] = ()
    # Real clips for the loss's cohort terms (loss.cohort_weight reads them unlabelled,
    # loss.cohort_speaker_weight with their speaker column): a folder corpus no evaluation panel
    # holds (`make ktuberling` writes shards/ktuberling), and the split of it read (None: every
    # clip). Pooled by the run's upstreams once, cached in RUN_DIR/cohort/.
    cohort: str | None = None
    cohort_split: str | None = "cohort"

    def __post_init__(self) -> None:
        if not self.features or not all(str(f).strip() for f in self.features):
            raise ConfigValueError("features", "needs at least one feature directory, and no empty path")
        check_range(self, "speakers_per_batch", "contents_per_batch", "blocks_per_batch",
                    "shuffle_buffer_blocks", "epoch_batches", ge=1)
        check_range(self, "num_workers", ge=0)
        check_range(self, "max_bad_shard_fraction", ge=0, le=1)
        if self.exclude_ops:  # a typo would leave every clip in, silently
            from intervox.interventions.registry import available

            unknown = sorted(set(self.exclude_ops) - set(available()))
            if unknown:
                known = ", ".join(available())
                raise ConfigValueError("exclude_ops", f"names no op: '{unknown[0]}' (ops: {known})")


@dataclass(frozen=True)
class ModelConfig:
    """Input view (one layer / weighted sum of layers / fusion) and projector shape."""

    input: Literal["layer", "weighted_sum"] = "layer"
    # Index into pooled [layers + 1, hidden]: 0 is the embedding output, i is layer i.
    layer: int = 2
    normalize_layers: bool = False  # parameter-free layer norm of each layer vector first
    fusion_dim: int = 768  # common dim of the learned projection when fusing upstreams
    projector: Literal["mlp", "linear"] = "mlp"
    hidden_dims: tuple[int, ...] = (768, 768)
    # How the output rows start: "uniform" is PyTorch's Linear default (Kaiming uniform);
    # "orthogonal" makes each subspace's block of rows orthonormal, scaled to the same Frobenius
    # norm, so the directions training never moves pass the raw geometry on undistorted.
    init: Literal["uniform", "orthogonal"] = "uniform"
    speaker_dim: int = 384
    content_dim: int = 384
    residual_dim: int = 0  # a third block, constrained only by orthogonality
    # Per subspace, a factor on the initial weights of the projector's output rows for that
    # subspace, e.g. {content: 0.5} (PyTorch's default init x factor; others x 1). Directions of
    # the input that training never moves keep their initial weights, so a random map passes on
    # whatever the raw layer carries there, real speakers included; a smaller start passes less.
    subspace_init_scale: dict[str, float] | None = None
    # Per subspace, keep only the top-n principal directions of its input over the training split
    # (fitted once before the first step, from up to 8192 clips, and stored with the model; all of
    # them when the input has fewer dims), e.g. {content: 256}. Along directions the training data
    # hardly vary, a map keeps its random start and passes on whatever real speech carries there
    # (see subspace_init_scale); the projection drops them.
    subspace_input_pcs: dict[str, int] | None = None
    # input: layer only. Each subspace its own layer, e.g. {speaker: 2, content: 6}: subspace k
    # takes its block of the shared MLP's output on its own layer; subspaces not named use
    # `layer`. None = `layer` for every subspace (the paper).
    subspace_layers: dict[str, int] | None = None
    # input: weighted_sum only. Restrict a subspace's learned layer weights to an inclusive
    # range of pooled rows, e.g. {speaker: [1, 3], content: [4, 6]}; None = all layers.
    subspace_layer_ranges: dict[str, tuple[int, int]] | None = None
    # Subspaces with no head: the embedding is the subspace's own input view (its layer-normed
    # pooled layer or layer sum, the width of the upstream), e.g. [speaker]. For fine-tuning
    # (issue 17): the loss then shapes the upstream's layer itself, which is what a raw layer's
    # evaluation measures; a head would absorb part of what the loss asks for. Needs each
    # subspace its own view (subspace_layers, or input: weighted_sum) and one upstream.
    raw_subspaces: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_range(self, "layer", "residual_dim", ge=0)
        check_range(self, "fusion_dim", "hidden_dims", "speaker_dim", "content_dim", ge=1)
        for name, n in (self.subspace_input_pcs or {}).items():
            if not (isinstance(n, int) and n >= 1):
                raise ValueError(f"model.subspace_input_pcs.{name} must be an integer >= 1, got {n}")
        for name, scale in (self.subspace_init_scale or {}).items():
            if not scale > 0:
                raise ValueError(f"model.subspace_init_scale.{name} must be > 0, got {scale}")
        self._check_per_subspace("subspace_layers", "layer")
        self._check_per_subspace("subspace_layer_ranges", "weighted_sum")
        self._check_per_subspace("subspace_init_scale", None)
        self._check_per_subspace("subspace_input_pcs", None)
        self._check_raw_subspaces()
        for name, (lo, hi) in (self.subspace_layer_ranges or {}).items():
            if not 0 <= lo <= hi:
                raise ValueError(f"model.subspace_layer_ranges.{name}: [{lo}, {hi}] is not a range "
                                 "0 <= lo <= hi")
        for name, layer in (self.subspace_layers or {}).items():
            if layer < 0:
                raise ValueError(f"model.subspace_layers.{name} must be >= 0, got {layer}")

    def _check_raw_subspaces(self) -> None:
        if not self.raw_subspaces:
            return
        self._check_per_subspace("raw_subspaces", None)
        if self.input == "layer" and self.subspace_layers is None:
            raise ValueError("model.raw_subspaces needs each subspace its own view: set "
                             "model.subspace_layers (or model.input: weighted_sum)")
        for key in ("subspace_input_pcs", "subspace_init_scale"):
            both = sorted(set(self.raw_subspaces) & set(getattr(self, key) or {}))
            if both:
                raise ValueError(f"model.{key}.{both[0]}: subspace '{both[0]}' is in model.raw_subspaces "
                                 "and has no head to apply it to")

    def _check_per_subspace(self, key: str, needs_input: str | None) -> None:
        value = getattr(self, key)
        if value is None:
            return
        if needs_input is not None and self.input != needs_input:
            raise ValueError(f"model.{key} needs model.input: {needs_input} (got {self.input})")
        known = ["speaker", "content"] + (["residual"] if self.residual_dim else [])
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"model.{key}: unknown subspace '{unknown[0]}' (subspaces: {', '.join(known)})")

    def subspace_layer(self, name: str) -> int:
        """Return the pooled row that subspace `name` reads (input: layer)."""
        return (self.subspace_layers or {}).get(name, self.layer)


# The loss terms that read data.cohort's real clips (training/cohort_clips.py)
COHORT_WEIGHTS = ("cohort_weight", "cohort_speaker_weight")


@dataclass(frozen=True)
class LossConfig:
    """Weights and options of the loss terms."""

    temperature: float = 0.1
    # The speaker SupCon's own temperature (None: `temperature`); content and frame terms keep `temperature`.
    speaker_temperature: float | None = None
    margin: float = 0.0  # additive margin m: positive logits get -m/tau
    speaker_weight: float = 1.0
    content_weight: float = 1.0
    # cross_covariance (default): ||Za^T Zb / B||_F^2, the squared cross-correlation of the
    # L2-normalised subspaces averaged over the batch: the same for a batch and that batch
    # repeated, in [0, 1]; at 512 clips x 384 x 384 dims it is 0.5625 x the reference value.
    # cross_covariance_ref: the paper's mean((Za^T Zb)^2), which grows with B^2 (paper.yaml).
    # pairwise: mean((Za Zb^T)^2) over clip pairs (needs equal subspace dims).
    orthogonality: Literal["cross_covariance", "cross_covariance_ref", "pairwise",
                           "none"] = "cross_covariance"
    orthogonality_weight: float = 1.0
    regularizer: Literal["none", "sigreg"] = "none"
    sigreg_weight: float = 0.1
    sigreg_directions: int = 256
    sigreg_knots: int = 17
    sigreg_t_max: float = 3.0
    sigreg_scale_by_n: bool = False  # LeJEPA's code multiplies the statistic by the batch size
    frame_content_weight: float = 0.0  # > 0 turns on the frame-level content loss
    # > 0 adds the leakage term per subspace (losses.leakage_loss): in the content subspace a
    # speaker's different sentences must be no closer than different speakers' different
    # sentences, and the same for content in the speaker subspace.
    leakage_weight: float = 0.0
    # Index into KEY.frames.npy's first axis (the layers of `intervox features --frames-layers`).
    # None: the slot of the content subspace's layer, read from the feature dir's index.json
    # (an error when its frames do not hold that layer); a number must point at that layer too.
    frame_layer: int | None = None
    frame_pairs: int = 16  # source/intervened pairs per step
    frames_per_pair: int = 16
    # > 0: each step also projects `cohort_clips` clips drawn from data.cohort (real, unlabelled) and
    # penalises the content subspace's centred cross-covariance with the speaker subspace on them
    # (losses.cohort_decorrelation; the speaker side is held fixed), so the content subspace sheds
    # the real speakers' directions synthetic voices never vary in.
    cohort_weight: float = 0.0
    cohort_clips: int = 512
    # > 0: the same cohort clips, labelled by their speaker column, also train the speaker subspace
    # (a SupCon term at the speaker temperature): real voices next to the synthetic grid's.
    cohort_speaker_weight: float = 0.0

    def __post_init__(self) -> None:
        check_range(self, "temperature", "speaker_temperature", "sigreg_t_max", gt=0)
        check_range(self, "margin", "speaker_weight", "content_weight", "orthogonality_weight",
                    "sigreg_weight", "frame_content_weight", "frame_layer", "leakage_weight",
                    "cohort_weight", "cohort_speaker_weight", ge=0)
        check_range(self, "sigreg_directions", "sigreg_knots", "frame_pairs", "frames_per_pair",
                    "cohort_clips", ge=1)

    def speaker_tau(self) -> float:
        """Return the speaker SupCon's temperature: speaker_temperature, else the shared temperature."""
        return self.temperature if self.speaker_temperature is None else self.speaker_temperature


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with torch's OneCycleLR."""

    steps: int = 480
    max_lr: float = 1e-4
    pct_start: float = 0.1
    anneal_strategy: Literal["cos", "linear"] = "cos"
    weight_decay: float = 0.01  # torch AdamW default
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        check_range(self, "steps", ge=1)
        check_range(self, "max_lr", "grad_clip", gt=0)
        check_range(self, "pct_start", gt=0, lt=1)  # OneCycleLR's warm-up share of the steps
        check_range(self, "weight_decay", ge=0)


@dataclass(frozen=True)
class DebugConfig:
    """Test hooks: never needed for real runs."""

    log_keys: bool = False  # write the keys/shards each rank saw to seed-K/debug/rank-R.txt
    nan_at_step: int | None = None  # make the features of this step NaN (tests the guard)


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run: data, model, loss, optimiser, run dir and seeds."""

    run_dir: str = "runs/en-whisper-base"
    seeds: tuple[int, ...] = (0,)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint_every: int = 100
    keep_checkpoints: int = 0  # 0 keeps all; n keeps the newest n
    max_steps: int | None = None  # stop early (schedule still spans optim.steps); resume later
    resume: bool = True  # continue from the newest checkpoint of a seed dir when present
    log_every: int = 10
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True  # autocast to bf16 on GPU (never on CPU)
    debug: DebugConfig = field(default_factory=DebugConfig)

    def __post_init__(self) -> None:
        if not str(self.run_dir).strip():  # "" would train into the current directory
            raise ConfigValueError("run_dir", "must name a folder, got an empty path")
        if not self.seeds:
            raise ConfigValueError("seeds", "needs at least one seed")
        check_range(self, "seeds", "keep_checkpoints", ge=0)
        check_range(self, "checkpoint_every", "log_every", "max_steps", ge=1)
        for key in COHORT_WEIGHTS:
            if getattr(self.loss, key) > 0 and not self.data.cohort:
                raise ConfigValueError(f"loss.{key}", "needs data.cohort: a folder corpus of real clips "
                                       "(`make ktuberling` writes shards/ktuberling)")


# Keys that may change between a run and its resumption without changing the result.
RESUME_FREE_KEYS = ("max_steps", "resume", "log_every", "debug", "data.num_workers")
