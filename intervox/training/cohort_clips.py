"""The loss's real-speech cohort: real clips pooled by the run's upstreams, with their speakers.

Training on synthetic voices moves the map only along the directions those voices vary in; real
speakers also differ along others, where the content subspace keeps what the raw layers carry
(configs/train/default.yaml measures it). A folder corpus of real clips no evaluation panel
holds (`make ktuberling`) gives the loss those directions without labels: the content subspace
is decorrelated from the speaker subspace on them (losses.cohort_decorrelation). Their speaker
column, when a loss term asks for it (loss.cohort_speaker_weight), gives the speaker subspace real
voices to tell apart beside the synthetic grid's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from intervox.corpora.manifest import Utterance
from intervox.errors import ManifestError, TrainingError
from intervox.training.config import COHORT_WEIGHTS, TrainConfig
from intervox.training.model import InputSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortClips:
    """The cohort's pooled features per upstream [N, layers + 1, hidden] and speaker ids [N]."""

    pooled: list[torch.Tensor]
    speaker: torch.Tensor


def cohort_utterances(root: Path, split: str | None, work: Path, rank: int) -> tuple[Path, list[Utterance]]:
    """Return (audio base dir, utterances of `split`) of the folder corpus `root` (None: every clip).

    Its manifest is prepared under `work`, one per rank (ranks never write one file).
    """
    from intervox.corpora.adapters import folder
    from intervox.corpora.manifest import read_manifest

    try:  # the folder adapter checks the dir and its table
        manifest = folder.prepare(root, work / f"prepared-rank{rank}")
    except ManifestError as exc:
        raise TrainingError(f"data.cohort {root}: not a folder corpus ({exc}; `make ktuberling` "
                            f"writes shards/ktuberling)") from exc
    utts = [u for u in read_manifest(manifest) if split in (None, u.split)]
    if len(utts) < 2:
        raise TrainingError(f"data.cohort {root}: {len(utts)} clip(s) in split {split!r}")
    return manifest.parent, utts


def cohort_inputs(cfg: TrainConfig, specs: list[InputSpec], rank: int) -> CohortClips | None:
    """Return the cohort's clips, or None when no loss term uses them.

    Pooled once per upstream and cached under RUN_DIR/cohort/ by audio hash.
    """
    if not any(getattr(cfg.loss, key) > 0 for key in COHORT_WEIGHTS):
        return None
    from intervox.features.clips import clip_hash, feature_dir_padded, pooled_cache_name, pooled_utterances

    root = Path(str(cfg.data.cohort))
    work = Path(cfg.run_dir) / "cohort"
    base, utts = cohort_utterances(root, cfg.data.cohort_split, work, rank)
    names = {name: i for i, name in enumerate(sorted({u.speaker for u in utts}))}
    if cfg.loss.cohort_speaker_weight > 0 and len(names) < 2:  # every clip would be every other's positive
        raise TrainingError(f"data.cohort {root}: loss.cohort_speaker_weight needs 2+ speakers, the "
                            f"{len(utts)} clip(s) of split {cfg.data.cohort_split!r} have {len(names)}")
    rows = np.arange(len(utts))
    hashes = [clip_hash(u, base) for u in utts]
    out = []
    for spec, feature_dir in zip(specs, cfg.data.features, strict=True):
        padded = feature_dir_padded(Path(feature_dir))
        pooled = pooled_utterances(utts, base, rows, hashes, spec.name,
                                   work / pooled_cache_name(spec.name, padded), padded=padded)
        if pooled.shape[1:] != (spec.layers, spec.hidden):
            raise TrainingError(f"data.cohort {root}: {spec.name} pools to {pooled.shape[1:]}, the "
                                f"features to {(spec.layers, spec.hidden)}")
        out.append(torch.from_numpy(pooled.astype(np.float32)))
    speaker = torch.tensor([names[u.speaker] for u in utts])
    log.info("cohort: %d real clips of %d speakers in %s (split %s)", len(utts), len(names), root,
             cfg.data.cohort_split)
    return CohortClips(out, speaker)
