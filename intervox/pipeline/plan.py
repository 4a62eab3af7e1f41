"""The deterministic shard plan: manifest + ShardsConfig -> contrastive blocks -> shards -> items.

A block is a dense sub-grid of s speakers x t contents (default 4 x 8): every clip in it
has a speaker-positive (same speaker, other content) and a content-positive (same content,
other speaker). Blocks are written contiguously and packed whole into shards. Within a
block, items are ordered slot-major (slot 0 = the anchors themselves, slot k = the k-th op
copy), so every slot is itself an s x t sub-grid.

Speaker ops make identities, not per-block draws: each (base speaker, speaker-op slot) of a
split is one derived identity (`pipeline/identities.py`: `<base>~<op><slot>`, or the target
voice for ops that render another voice) with fixed voice params, so it says every sentence its
base says in every block and shard. Which identities exist (and which a speaker judge dropped)
comes from an IdentityTable; other ops, and params an op does not count as the voice, draw per
item from `[seed, split_id, shard, item]`. The plan touches no audio; it is a pure function of
the config, the manifest and the identity table, and `plan_hash` names it.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from intervox import __version__
from intervox.config import to_plain
from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError
from intervox.pipeline.config import ShardsConfig

if TYPE_CHECKING:
    from intervox.pipeline.identities import IdentityTable

SPLIT_ORDER = ("train", "validation", "test_ood", "keywords")
DEFAULT_SPLIT = "train"  # utterances whose manifest line names no split


def split_id(split: str) -> int:
    """Return the integer that stands for `split` in rng seeds (stable across runs)."""
    if split in SPLIT_ORDER:
        return SPLIT_ORDER.index(split)
    return len(SPLIT_ORDER) + int(hashlib.sha256(split.encode()).hexdigest()[:8], 16)


def text_content_id(text: str) -> str:
    """Return a content id for a text: equal (case/space-normalised) texts get equal ids."""
    norm = " ".join(text.lower().split())
    return "t-" + hashlib.sha256(norm.encode("utf-8")).hexdigest()[:12]


def content_of(utt: Utterance) -> str:
    """Return the utterance's content id, falling back to a hash of its text."""
    return utt.content_id or text_content_id(utt.text)


def canonical_json(obj: object) -> str:
    """Return the one JSON spelling of `obj` that hashes are taken over."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def manifest_hash(utterances: Sequence[Utterance]) -> str:
    """Return the sha256 of the manifest's canonical content (utterance dicts in order)."""
    h = hashlib.sha256()
    for utt in utterances:
        h.update(canonical_json(utt.to_dict()).encode("utf-8") + b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Block:
    """One contrastive block of a split: its speakers, contents and anchor utterance ids."""

    split: str
    index: int
    speakers: tuple[str, ...]
    contents: tuple[str, ...]
    anchors: tuple[str, ...]  # utterance ids, speaker-major then content order
    dense: bool  # True when every speaker says every content (a full s x t sub-grid)


@dataclass(frozen=True)
class PlanItem:
    """One clip to write: an anchor plus (optionally) one op with its concrete params."""

    key: str
    split: str
    shard: int
    item: int
    block: int
    anchor: str  # utterance id
    slot: int  # 0 = the anchor itself, k >= 1 = the k-th op copy of the split
    speaker: str
    content: str
    channel: str
    text: str
    source_key: str | None
    op: dict | None = None  # {"name", "target", "keeps_timing", "spec", "params", "seed"}


@dataclass(frozen=True)
class ShardPlan:
    """One shard: its file name and the items it holds, in write order."""

    name: str  # "{split}-{index:06d}" (the tar is NAME.tar)
    split: str
    index: int
    items: tuple[PlanItem, ...]


@dataclass(frozen=True)
class Plan:
    """The whole plan: resolved config, hashes, blocks and shards."""

    config: dict
    plan_hash: str
    manifest_hash: str
    blocks: tuple[Block, ...]
    shards: tuple[ShardPlan, ...]
    utterances: dict[str, Utterance] = field(repr=False)
    identities: IdentityTable | None = field(default=None, repr=False)

    @property
    def n_items(self) -> int:
        return sum(len(s.items) for s in self.shards)


def _group_blocks(
    utts: list[Utterance], s: int, t: int
) -> list[tuple[list[str], list[str], list[str], bool]]:
    """Return (speakers, contents, anchor ids, dense) blocks of one split.

    Greedy: the speaker with most contents seeds a group; speakers sharing the most of the
    group's common contents join it up to `s`; the common contents are cut into chunks of
    `t`. What is left (contents nobody else says, duplicates) forms speaker-only blocks.
    """
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    leftover: list[Utterance] = []
    for utt in sorted(utts, key=lambda u: u.id):
        cell = cells[utt.speaker]
        c = content_of(utt)
        if c in cell:
            leftover.append(utt)  # a second take of the same cell cannot extend the grid
        else:
            cell[c] = utt.id
    by_id = {u.id: u for u in utts}
    speakers_of: dict[str, set[str]] = defaultdict(set)
    for sp, cell in cells.items():
        for c in cell:
            speakers_of[c].add(sp)
    min_shared = min(2, t)
    remaining = set(cells)
    blocks: list[tuple[list[str], list[str], list[str], bool]] = []
    while remaining:
        seed = min(remaining, key=lambda sp: (-len(cells[sp]), sp))
        group, common = [seed], set(cells[seed])
        remaining.discard(seed)
        while len(group) < s:
            candidates = {o for c in common for o in speakers_of[c]} & remaining
            scored = [(-len(common & cells[o].keys()), o) for o in candidates]
            scored = [x for x in scored if -x[0] >= min_shared]
            if not scored:
                break
            _, best = min(scored)
            group.append(best)
            common &= cells[best].keys()
            remaining.discard(best)
        group.sort()
        shared = sorted(common) if len(group) > 1 and len(common) >= min_shared else []
        chunks = [shared[i : i + t] for i in range(0, len(shared), t)]
        if len(chunks) > 1 and len(chunks[-1]) < min_shared:
            chunks[-2].extend(chunks.pop())  # a one-content tail has no speaker-positives
        for chunk in chunks:
            anchors = [cells[sp][c] for sp in group for c in chunk]
            blocks.append((list(group), list(chunk), anchors, True))
        for sp in group:
            leftover.extend(by_id[cells[sp][c]] for c in sorted(set(cells[sp]) - set(shared)))
    blocks.extend(_speaker_blocks(leftover, s, t))
    return blocks


def _speaker_blocks(
    utts: list[Utterance], s: int, t: int
) -> list[tuple[list[str], list[str], list[str], bool]]:
    """Return speaker-only blocks (s speakers x up to t utterances each) of ungridded utterances."""
    per_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in sorted(utts, key=lambda u: (u.speaker, content_of(u), u.id)):
        per_speaker[utt.speaker].append(utt)
    speakers = sorted(per_speaker)
    blocks = []
    for g in range(0, len(speakers), s):
        group = speakers[g : g + s]
        pieces = {sp: [per_speaker[sp][i : i + t] for i in range(0, len(per_speaker[sp]), t)] for sp in group}
        for k in range(max(len(p) for p in pieces.values())):
            members = [sp for sp in group if k < len(pieces[sp])]
            anchors = [u.id for sp in members for u in pieces[sp][k]]
            contents = sorted({content_of(u) for sp in members for u in pieces[sp][k]})
            blocks.append((members, contents, anchors, False))
    return blocks


def op_slots(cfg: ShardsConfig, split: str) -> list[tuple[int, int]]:
    """Return the (intervention index, copy) pairs applied to anchors of `split`; slot = position + 1."""
    return [
        (i, r) for i, iv in enumerate(cfg.interventions) if split in iv.splits for r in range(iv.per_anchor)
    ]


def _new_content(op_name: str, params: dict, utt: Utterance) -> tuple[str, str]:
    """Return (content id, text) of a content op's output: the new text names the new content."""
    text = next(
        (params[k] for k in ("text", "new_text", "target_text") if isinstance(params.get(k), str)), None
    )
    if text is None:  # an op that does not say what it said: a content unique to this params set
        return "t-" + hashlib.sha256(canonical_json([op_name, params]).encode()).hexdigest()[:12], ""
    return text_content_id(text), text


def build_plan(
    cfg: ShardsConfig, utterances: Sequence[Utterance], identities: IdentityTable | None = None
) -> Plan:
    """Return the deterministic Plan for `utterances` under `cfg` and `identities` (no audio is touched).

    Without a table, every derived identity keeps its first draw, unmeasured (judge "none");
    a table derived for another config or manifest is a ConfigError.
    """
    from intervox.interventions.registry import from_dict
    from intervox.pipeline.identities import derive_identities, identity_key

    if identities is None:
        identities = derive_identities(cfg, utterances, None)
    elif identities.key != identity_key(cfg, utterances):
        raise ConfigError("the identity table was derived for another config or manifest (delete "
                          "identities.json to derive it again)")
    ops = [from_dict(iv.op) for iv in cfg.interventions]
    utts = {u.id: u for u in utterances}
    by_split: dict[str, list[Utterance]] = defaultdict(list)
    for utt in utterances:
        by_split[utt.split or DEFAULT_SPLIT].append(utt)
    splits = [s for s in SPLIT_ORDER if s in by_split] + sorted(set(by_split) - set(SPLIT_ORDER))

    blocks: list[Block] = []
    shards: list[ShardPlan] = []
    for split in splits:
        split_blocks = [
            Block(split, b, tuple(sp), tuple(ct), tuple(an), dense)
            for b, (sp, ct, an, dense) in enumerate(
                _group_blocks(by_split[split], cfg.block.speakers, cfg.block.contents)
            )
        ]
        blocks.extend(split_blocks)
        slot_numbers = ([0] if cfg.include_sources else []) + list(range(1, len(op_slots(cfg, split)) + 1))
        packed = _pack_blocks(split_blocks, slot_numbers, utts, identities, cfg.shard_size)
        for shard_index, entries in enumerate(packed):
            items = [_plan_item(cfg, ops, identities, utts[anchor], block, shard_index, item_index, slot)
                     for item_index, (block, anchor, slot) in enumerate(entries)]
            name = f"{split}-{shard_index:06d}"
            shards.append(ShardPlan(name, split, shard_index, tuple(_link_sources(items))))

    m_hash = manifest_hash(utterances)
    return Plan(
        config=to_plain(cfg),
        plan_hash=_plan_hash(cfg, m_hash, identities),
        manifest_hash=m_hash,
        blocks=tuple(blocks),
        shards=tuple(shards),
        utterances=utts,
        identities=identities,
    )


def _pack_blocks(split_blocks: list[Block], slot_numbers: list[int], utts: dict[str, Utterance],
                 identities: IdentityTable, shard_size: int) -> list[list[tuple[Block, str, int]]]:
    """Return a split's (block, anchor id, slot) entries packed into shards, whole blocks only.

    A block never straddles two tars; an empty split gives no shards.
    """
    packed: list[list[tuple[Block, str, int]]] = [[]]
    split = split_blocks[0].split if split_blocks else None
    dropped = {(e.base, e.slot) for e in identities.dropped() if e.split == split}
    for block in split_blocks:
        # a derived identity the judge could not separate from the others has no clips
        entries = [(block, a, slot) for slot in slot_numbers for a in block.anchors
                   if not slot or (utts[a].speaker, slot) not in dropped]
        if packed[-1] and len(packed[-1]) + len(entries) > shard_size:
            packed.append([])
        packed[-1].extend(entries)
    return packed if packed[-1] else []


def _plan_item(cfg: ShardsConfig, ops: list, identities: IdentityTable, utt: Utterance, block: Block,
               shard_index: int, item_index: int, slot: int) -> PlanItem:
    """Return the PlanItem of one (anchor, slot): the anchor itself (slot 0) or its slot-th op copy."""
    labels = {"speaker": utt.speaker, "content": content_of(utt), "channel": "clean", "text": utt.text}
    op = None
    if slot:
        clip_seed = [cfg.seed, split_id(block.split), shard_index, item_index]
        op, changed = _op_record(cfg, ops, identities, utt, slot, clip_seed)
        labels.update(changed)
    return PlanItem(key=f"{block.split}-{shard_index:06d}-{item_index:06d}", split=block.split,
                    shard=shard_index, item=item_index, block=block.index, anchor=utt.id, slot=slot,
                    source_key=None, op=op, **labels)


def _op_record(cfg: ShardsConfig, ops: list, identities: IdentityTable, utt: Utterance, slot: int,
               clip_seed: list[int]) -> tuple[dict, dict]:
    """Return (the item's op record, the labels the op changes) for `utt`'s copy in `slot`.

    A speaker op takes its derived identity's voice draw; other ops draw per clip from `clip_seed`.
    """
    from intervox.interventions.base import Factor
    from intervox.pipeline.identities import clip_params

    iv_index, _ = op_slots(cfg, utt.split or DEFAULT_SPLIT)[slot - 1]
    inst = ops[iv_index]
    labels: dict[str, str] = {}
    if inst.target == Factor.SPEAKER:
        ident = identities.recipe(utt.split or DEFAULT_SPLIT, utt.speaker, slot)
        seed = list(ident.seed)  # the identity's draw: [seed, split, base, slot, attempt]
        params, error = clip_params(inst, ident, clip_seed, utt)
        labels["speaker"] = ident.id
    else:
        seed = clip_seed
        params, error = sample_params(inst, seed, utt)
        if inst.target == Factor.CONTENT and error is None:
            content, new_text = _new_content(inst.name, params, utt)
            labels["content"] = content
            if new_text:
                labels["text"] = new_text
        elif inst.target == Factor.CHANNEL:
            labels["channel"] = f"{inst.name}{slot}"
    op = {"name": inst.name, "target": inst.target.value, "keeps_timing": inst.keeps_timing,
          "spec": inst.to_dict(), "params": params, "seed": seed}
    if inst.target == Factor.SPEAKER and getattr(inst, "voice_params", None) is not None:
        op["clip_seed"] = clip_seed  # the params that are not the voice are drawn per clip
    if error is not None:
        op["error"] = error  # the run quarantines this item (stage "op")
    return op, labels


def _plan_hash(cfg: ShardsConfig, m_hash: str, identities: IdentityTable) -> str:
    """Return the sha256 naming a plan: its config (less run-only settings), manifest, identities, version."""
    config = to_plain(cfg)
    # settings that change how a build runs but not a byte of its shards stay out of the hash
    hashed = {**config, "source": {k: v for k, v in config["source"].items() if k != "synth_workers"}}
    if hashed["source"]["sentences_per_voice"] is None:  # dense: same hash as before the field
        hashed["source"].pop("sentences_per_voice")
    hashed.pop("strict", None)
    hashed["identity_decisions"] = identities.decision_hash()
    if hashed.get("qc") is None:  # QC off: same hash as before the qc field existed
        hashed.pop("qc", None)
    if hashed.get("audio_format") == "flac":  # the default: same hash as before the field existed
        hashed.pop("audio_format")
    return hashlib.sha256(
        canonical_json({"config": hashed, "manifest": m_hash, "intervox": __version__}).encode()
    ).hexdigest()


def sample_params(inst: object, seed: list[int], utt: Utterance) -> tuple[dict | None, str | None]:
    """Return (params, None), or (None, reason) when the op cannot draw params for this utterance."""
    try:
        return _plain(inst.sample_params(np.random.default_rng(seed), utt)), None
    except Exception as exc:  # noqa: BLE001 - one unusable anchor must not sink the whole plan
        return None, f"{inst.name}: cannot sample params for {utt.id}: {type(exc).__name__}: {exc}"


def _link_sources(items: list[PlanItem]) -> list[PlanItem]:
    """Return items with `source_key` set to the key of their anchor's slot-0 clip (same shard)."""
    from dataclasses import replace

    source = {it.anchor: it.key for it in items if it.slot == 0}
    return [replace(it, source_key=source.get(it.anchor)) if it.slot else it for it in items]


def _plain(obj: object) -> object:
    """Return params as JSON-native values (numpy scalars/arrays -> floats/lists)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def plan_summary(plan: Plan) -> dict:
    """Return per-split counts of blocks (dense or speaker-only), shards and items."""
    out: dict[str, dict] = {}
    for b in plan.blocks:
        d = out.setdefault(
            b.split,
            {"blocks": 0, "dense_blocks": 0, "speaker_only_blocks": 0, "shards": 0, "items": 0, "anchors": 0},
        )
        d["blocks"] += 1
        d["dense_blocks" if b.dense else "speaker_only_blocks"] += 1
        d["anchors"] += len(b.anchors)
    for s in plan.shards:
        out[s.split]["shards"] += 1
        out[s.split]["items"] += len(s.items)
    return out
