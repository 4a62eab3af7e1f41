"""Fine-tuning's real-speech cohort: a folder corpus of real clips, drawn as speakers x clips each step.

`intervox train` pools data.cohort's clips once (training/cohort_clips.py); fine-tuning changes
the upstream every step, so it keeps the cohort's audio in memory and runs the upstream on a
fresh draw of it each step: `cohort_speakers` real speakers x `cohort_clips_per_speaker` of
their clips, so every clip has speaker positives. The draw of step k is a pure function of
(seed, rank, k): a resumed run draws the same clips, and ranks draw their own. Labels are the
speaker names' label_id, equal on every rank, so the gathered SupCon sees one speaker as one.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from intervox.errors import TrainingError
from intervox.training.cohort_clips import cohort_utterances
from intervox.training.finetune_config import FinetuneDataConfig
from intervox.training.finetune_data import label_id

log = logging.getLogger(__name__)

COHORT_STREAM = 3  # the cohort's draws: a seed stream of their own (the grid's and frame pairs' apart)


class CohortAudio:
    """The cohort's clips of speakers with 2+ clips, at the upstream's rate, and each step's draw."""

    def __init__(self, cfg: FinetuneDataConfig, sample_rate: int, seed: int, rank: int, work: Path) -> None:
        from intervox.features.clips import load_clip

        root = Path(str(cfg.cohort))
        base, utts = cohort_utterances(root, cfg.cohort_split, work, rank)
        by_speaker: dict[str, list] = defaultdict(list)
        for u in utts:
            by_speaker[u.speaker].append(u)
        # a speaker with one clip would be an anchor without a positive
        self.speakers = sorted(s for s, clips in by_speaker.items() if len(clips) >= 2)
        if len(self.speakers) < 2:
            raise TrainingError(f"data.cohort {root}: the cohort draw needs 2+ speakers with 2+ "
                                f"clips each; split {cfg.cohort_split!r} has {len(self.speakers)}")
        max_len = int(cfg.max_seconds * sample_rate)
        self.audio = {s: [load_clip(u, base, sample_rate)[:max_len] for u in by_speaker[s]]
                      for s in self.speakers}
        self.ids = {s: label_id(s) for s in self.speakers}
        self.per_batch = (min(cfg.cohort_speakers, len(self.speakers)), cfg.cohort_clips_per_speaker)
        self.seed, self.rank, self.root = seed, rank, root
        log.info("finetune cohort: %d clips of %d speakers in %s (split %s), %d x %d a step",
                 sum(map(len, self.audio.values())), len(self.speakers), root, cfg.cohort_split,
                 *self.per_batch)

    def draw(self, step: int) -> tuple[list[np.ndarray], torch.Tensor]:
        """Return step `step`'s cohort audio and its speakers' label ids (int64)."""
        rng = np.random.default_rng([self.seed, self.rank, step, COHORT_STREAM])
        n_speakers, per_speaker = self.per_batch
        audio, speaker = [], []
        for s in sorted(rng.choice(len(self.speakers), size=n_speakers, replace=False)):
            clips = self.audio[self.speakers[s]]
            for c in sorted(rng.choice(len(clips), size=min(per_speaker, len(clips)), replace=False)):
                audio.append(clips[c])
                speaker.append(self.ids[self.speakers[s]])
        return audio, torch.tensor(speaker, dtype=torch.long)

    def describe(self) -> dict:
        """Return the cohort's folder, clips, speakers and draw shape."""
        return {"root": str(self.root), "clips": sum(map(len, self.audio.values())),
                "speakers": len(self.speakers), "speakers_per_step": self.per_batch[0],
                "clips_per_speaker": self.per_batch[1]}
