"""ShardsConfig: the frozen dataclasses a `configs/shards/*.yaml` file loads into.

Load with `intervox.config.load_config(path, ShardsConfig, overrides)`; unknown keys and
wrong types raise ConfigError naming the key and the file. `validate_config` checks what
the types cannot (op specs exist in the registry, ranges are sane).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from intervox.config import ConfigValueError, check_range
from intervox.errors import ConfigError
from intervox.judges.qc import QCConfig

DEFAULT_OP_SPLITS = ("train", "validation")


@dataclass(frozen=True)
class SourceConfig:
    """Where the anchors come from: a synthetic grid (GridSpec fields) or a manifest file."""

    kind: Literal["grid", "manifest"] = "grid"
    # kind: manifest
    path: str | None = None  # the JSONL manifest (corpora/manifest.py)
    root: str | None = None  # folder relative audio paths resolve against (default: manifest's folder)
    # kind: grid -- the fields of intervox.corpora.synth.GridSpec (sample_rate comes from the top level)
    lang: str = "en"
    train_speakers: int | Literal["all"] = 16  # "all": every train base voice of the language
    train_sentences: int = 32
    sentences_per_voice: int | None = None  # None: dense; n: each voice says its group of n (GridSpec)
    val_speakers: int = 4
    val_sentences: int = 8
    ood_voices: int | Literal["all"] = 4  # "all": every voice of the held-out engines
    keyword_voices: int | Literal["all"] = 4  # "all": every held-out base and every test_ood voice
    keyword_repeats: int = 1
    seed: int = 0
    text_file: str | None = None
    synth_workers: int = 2  # processes synth_grid renders with (not a GridSpec field)

    def __post_init__(self) -> None:
        if self.kind == "manifest" and not self.path:
            raise ConfigValueError("path", "is required when source.kind is 'manifest'")
        counted = [n for n in ("train_speakers", "ood_voices", "keyword_voices") if getattr(self, n) != "all"]
        positive = [n for n in counted if n == "train_speakers"]
        check_range(self, *positive, "train_sentences", "keyword_repeats", "synth_workers", ge=1)
        check_range(self, "val_speakers", "val_sentences", *counted, "seed", ge=0)
        if self.sentences_per_voice is not None:  # the grid's own rule (imported only when used)
            from intervox.corpora.synth import sentence_groups_problem

            problem = sentence_groups_problem(self.train_sentences, self.sentences_per_voice)
            if problem:
                raise ConfigValueError("sentences_per_voice", problem)


@dataclass(frozen=True)
class InterventionConfig:
    """One op of the plan: its spec (name + range fields), copies per anchor, and where it runs."""

    op: dict[str, Any]
    per_anchor: int = 1
    splits: tuple[str, ...] = DEFAULT_OP_SPLITS

    def __post_init__(self) -> None:
        check_range(self, "per_anchor", ge=0)


@dataclass(frozen=True)
class BlockConfig:
    """Contrastive block shape: a dense sub-grid of `speakers` x `contents` anchors."""

    speakers: int = 4
    contents: int = 8

    def __post_init__(self) -> None:
        check_range(self, "speakers", "contents", ge=1)


@dataclass(frozen=True)
class IdentitiesConfig:
    """When a derived speaker identity is accepted: the speaker judge must tell it from every other.

    Each (base speaker, speaker-op slot) gets one identity with fixed params; the judge measures it
    on `probe_sentences` rendered sentences (mean embedding) and accepts it when its cosine to its
    base and to every other identity of the split is below `max_similarity`, else redraws it
    (attempt + 1) up to `max_attempts` times and then drops it. `judge: none` accepts every first
    draw unmeasured.
    """

    judge: str = "resemblyzer"  # a name of intervox.pipeline.identities.SPEAKER_JUDGES, or "none"
    # Resemblyzer same-voice/other-sentence p10 on the default grid (bench/CALIBRATION.md), the QC bar
    max_similarity: float = 0.85
    probe_sentences: int = 3
    max_attempts: int = 8

    def __post_init__(self) -> None:
        check_range(self, "max_similarity", ge=-1.0, le=1.0)  # a cosine
        check_range(self, "probe_sentences", "max_attempts", ge=1)


@dataclass(frozen=True)
class ShardsConfig:
    """Everything `intervox shards build` needs besides the output folder and the scheduler."""

    source: SourceConfig = field(default_factory=SourceConfig)
    interventions: tuple[InterventionConfig, ...] = ()
    block: BlockConfig = field(default_factory=BlockConfig)
    shard_size: int = 256  # target clips per shard; whole blocks are packed, so a shard may run over
    seed: int = 0
    sample_rate: int = 16000
    # how clips are stored in the tars, 16-bit either way (same samples): flac is ~half the bytes,
    # wav (PCM) costs no decode; recorded in index.json, and every reader takes both
    audio_format: Literal["flac", "wav"] = "flac"
    min_seconds: float = 0.3
    max_seconds: float = 30.0
    include_sources: bool = True  # write each anchor itself (op null) beside its intervened copies
    strict: bool = False  # exit non-zero when anything was quarantined
    # the build fails (exit 2, naming the top reasons) when more of its input than this is
    # quarantined for bad input; QC rejections (stage "qc") are the filter working and do not count
    max_quarantine_fraction: float = 0.05
    # Quality control inside each shard task (None: off). Intervened clips the judges reject go
    # to quarantine (stage "qc") instead of the tar; scored clips carry "qc" in their JSON.
    qc: QCConfig | None = None
    identities: IdentitiesConfig = field(default_factory=IdentitiesConfig)

    def __post_init__(self) -> None:
        check_range(self, "shard_size", ge=1)
        check_range(self, "seed", "min_seconds", ge=0)
        check_range(self, "sample_rate", ge=1000)  # below that no speech op or SFM works
        check_range(self, "max_seconds", gt=self.min_seconds)
        check_range(self, "max_quarantine_fraction", ge=0, le=1)


def validate_config(cfg: ShardsConfig, where: str = "<config>") -> None:
    """Raise ConfigError (naming `where` and the key) for what loading cannot check alone: files,
    models and op specs. Value ranges are checked when the dataclasses are built (__post_init__)."""
    from intervox.interventions.registry import from_dict

    if cfg.source.kind == "manifest" and not Path(str(cfg.source.path)).is_file():
        raise ConfigError(f"{where}: source.path {cfg.source.path} does not exist")
    if cfg.qc is not None:
        _check_judges(cfg.qc, where)
    _check_identities(cfg.identities, where)
    for i, iv in enumerate(cfg.interventions):
        try:
            from_dict(iv.op)
        except ConfigError as exc:
            raise ConfigError(f"{where}: interventions[{i}].op: {exc}") from exc


def _check_identities(ids: IdentitiesConfig, where: str) -> None:
    """Raise ConfigError for a speaker judge unknown or not installed here (before any audio is made)."""
    from intervox.pipeline.identities import load_judge

    try:
        load_judge(ids.judge)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _check_judges(qc: QCConfig, where: str) -> None:
    """Raise ConfigError when the QC judges' offline models are missing (before any task runs)."""
    from intervox.errors import UpstreamError
    from intervox.judges.models import resemblyzer_weights, whisper_model_dir

    try:
        if qc.asr_model != "none":
            whisper_model_dir(qc.asr_model)
        resemblyzer_weights()
    except UpstreamError as exc:
        raise ConfigError(f"{where}: qc needs the judges' models: {exc}") from exc
