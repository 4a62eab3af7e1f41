"""Speaker verification trial lists: VoxCeleb1 `veri_test2.txt` format and seeded generation.

A trial line is `label enroll test` (label 1 = same speaker). For the embedded feature
shards the list is generated deterministically from a seed and the split's clips, with
as many target as non-target trials, and saved beside the results (`trials_{split}.txt`).
Non-target trials follow the dataset's speaker table (`speakers.jsonl`): two identities the
speaker judge could not tell apart (cosine at or above the table's bar) are never a
non-target pair, because a listener would not call them different speakers either.
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intervox.errors import IntervoxError


@dataclass(frozen=True)
class Trial:
    """One verification trial: does `test` speak as `enroll`? label 1 = same speaker."""

    label: int
    enroll: str
    test: str


@dataclass(frozen=True)
class TrialRule:
    """Which speaker pairs may be non-target trials, and the sentence that says so in reports."""

    text: str = "non-target pairs: any two clips with different speaker labels (no speaker table)"
    indistinct: frozenset[frozenset[str]] = field(default_factory=frozenset)


def identity_trial_rule(audio_dir: str | Path | None, index: dict | None = None) -> TrialRule:
    """Return the rule of a dataset: its speaker table's indistinct pairs (DIR/speakers.jsonl), if any.

    `index` is the dataset's index.json (its "identities" section names the judge and the bar);
    read from `audio_dir` when not given. IntervoxError names a speakers.jsonl that is not JSON lines.
    """
    path = Path(audio_dir) / "speakers.jsonl" if audio_dir is not None else None
    if path is None or not path.is_file():
        return TrialRule()
    if index is None:
        try:
            index = json.loads((Path(audio_dir) / "index.json").read_text())
        except (OSError, ValueError):
            index = {}
    pairs = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            pairs.update(frozenset((row["id"], other)) for other in row.get("indistinct_from") or ())
        except (ValueError, KeyError, TypeError) as exc:
            raise IntervoxError(f"{path}:{n}: not a speaker-table row ({exc})") from exc
    ids = index.get("identities") or {}
    if ids.get("judge", "none") == "none":
        return TrialRule("non-target pairs: any two different identities of the speaker table (not "
                         "measured by a speaker judge)", frozenset(pairs))
    return TrialRule(f"non-target pairs exclude identities closer than {ids.get('max_similarity')} "
                     f"({ids.get('judge_label', ids.get('judge'))}; {len(pairs)} pairs in speakers.jsonl)",
                     frozenset(pairs))


def parse_trials(path: str | Path) -> list[Trial]:
    """Return the trials of a VoxCeleb1-style list (`label enroll test` per line, blank lines ignored).

    Raises IntervoxError naming the file and line on a malformed line.
    """
    path = Path(path)
    if not path.is_file():
        raise IntervoxError(f"{path}: trial list does not exist")
    trials = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise IntervoxError(f"{path}:{n}: expected 'label enroll test' with label 0/1, got {line!r}")
        trials.append(Trial(int(parts[0]), parts[1], parts[2]))
    return trials


def write_trials(trials: Sequence[Trial], path: str | Path) -> Path:
    """Write `trials` in the `label enroll test` format and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t.label} {t.enroll} {t.test}\n" for t in trials))
    return path


def make_trials(keys: Sequence[str], speakers: Sequence[str], *, n_per_class: int, seed: int,
                contents: Sequence[str] | None = None, salt: str = "",
                indistinct: Collection[frozenset[str]] = ()) -> list[Trial]:
    """Return up to `n_per_class` target and as many non-target trials, drawn with a seeded RNG.

    When `contents` is given, enroll and test always say different things (text-independent
    trials), so that a subspace that encodes only content cannot score target trials higher.
    The classes are balanced: both get min(n_per_class, possible target pairs) trials.
    A pair of speakers in `indistinct` (the judge could not tell them apart) is never a
    non-target trial. The same inputs and seed give the same list; key order does not matter.
    """
    if len(keys) != len(speakers) or (contents is not None and len(contents) != len(keys)):
        raise ValueError("keys, speakers and contents must have equal lengths")
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    keys = [keys[i] for i in order]
    spk = [speakers[i] for i in order]
    con = [contents[i] for i in order] if contents is not None else [str(i) for i in range(len(keys))]
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode())])
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(spk):
        by_speaker[s].append(i)

    target_pairs = _target_pairs(by_speaker, con, n_per_class, rng)
    if not target_pairs or len(by_speaker) < 2:
        raise IntervoxError(f"cannot make SV trials{' for ' + salt if salt else ''}: need >= 2 speakers "
                            f"and a speaker with 2 clips of different content ({len(keys)} clips, "
                            f"{len(by_speaker)} speakers)")
    n = min(n_per_class, len(target_pairs))
    chosen = rng.choice(len(target_pairs), size=n, replace=False)
    targets = [target_pairs[i] for i in sorted(chosen)]

    nontargets: set[tuple[int, int]] = set()
    attempts = 0
    while len(nontargets) < n and attempts < 50 * n:
        attempts += 1
        a, b = (int(v) for v in rng.integers(0, len(keys), size=2))
        if spk[a] != spk[b] and con[a] != con[b] and frozenset((spk[a], spk[b])) not in indistinct:
            nontargets.add((min(a, b), max(a, b)))
    pairs = [(1, a, b) for a, b in targets] + [(0, a, b) for a, b in sorted(nontargets)]
    # Random enroll/test order, so that gender pairs MF and FM both occur.
    swap = rng.random(len(pairs)) < 0.5
    trials = [Trial(lab, keys[b], keys[a]) if s else Trial(lab, keys[a], keys[b])
              for (lab, a, b), s in zip(pairs, swap, strict=False)]
    # Interleave deterministically so a truncated file is still balanced.
    perm = rng.permutation(len(trials))
    return [trials[i] for i in perm]


def _target_pairs(by_speaker: dict[str, list[int]], con: list[str], n: int,
                  rng: np.random.Generator, enumerate_limit: int = 100_000) -> list[tuple[int, int]]:
    """Return candidate same-speaker pairs of different content: all of them, or a sample when too many."""
    groups = [idx for idx in by_speaker.values() if len(idx) > 1]
    total = sum(len(g) * (len(g) - 1) // 2 for g in groups)
    if total <= enumerate_limit:
        return [(a, b) for idx in groups for j, a in enumerate(idx) for b in idx[j + 1:] if con[a] != con[b]]
    # Many pairs: rejection-sample 4n of them, each speaker weighted by its number of pairs.
    weights = np.array([len(g) * (len(g) - 1) / 2 for g in groups]) / total
    found: set[tuple[int, int]] = set()
    for _ in range(50 * n):
        if len(found) >= 4 * n:
            break
        g = groups[int(rng.choice(len(groups), p=weights))]
        a, b = (g[int(i)] for i in rng.choice(len(g), size=2, replace=False))
        if con[a] != con[b]:
            found.add((min(a, b), max(a, b)))
    return sorted(found)
