"""The real-speech dev panel: real human recordings from Debian packages, as a `folder` corpus.

Sources (all offline, installed by scripts/setup.sh):
- `klettres-data`: /usr/share/klettres/<lang>/{alpha,syllab}/ letters and syllables, one real
  speaker per language; the names come from <lang>/sounds.xml.
- `pocketsphinx-testdata`: /usr/share/pocketsphinx/test/data/: a LibriVox reader (5 sentences,
  transcripts in librivox/transcription) and David Huggins-Daines ("dhd": a TIDIGITS-style digit
  string and "go forward ten meters", the decoder's example).
- `asterisk-core-sounds-{en,es,fr,it,ru}-wav`, `asterisk-prompt-it-menardi-wav`:
  /usr/share/asterisk/sounds/<voice>/letters/a..z.wav, telephone prompts (8 kHz) by five
  professional voices: Allison Smith (US English and Mexican Spanish: one speaker in two
  languages), June Wallack (Canadian French), Carlo Flora and Paola Dal Zot (Italian), and the
  ivrvoice.ru voice (the Latin letters' Russian names).
  They say the letters KLettres says in the same language, so a language has 2+ speakers: the
  same-language trials have non-targets whose content matches the targets', and Allison's
  English and Spanish letters are target trials across languages. Without them every KLettres
  language is one speaker, and any embedding that knows the language (as a content one does:
  its phonemes) looks like a speaker embedding on all-pairs trials.

Every clip is written 16 kHz mono with its leading and trailing silence cut (`TRIM`): each
package's recordist cut clips with their own margins, so untrimmed, the clip length alone
verified speakers (EER 0.23 on the test split) and mean-pooled features scored sessions.

Content labels (`content_id`) group only clips that say the same thing the same way:
- letters are named per language (an English "A" is not a French "A"), except en and en_GB,
  which say the same 26 English letter names: `letter:en:a`;
- syllables of the Latin-script syllable drills (es, it, pt_BR, fr, cs, da, nl, tn, ...) are
  read as written, CV by CV, so `syl:la` groups them across languages; English "syllables" are
  words (CAR, DOG, ME = /mi:/), so en and en_GB use `word:en:car`; other scripts stay per language.

Splits: `dev` (choose layers, thresholds, recipes on it) and `test` (report on it) hold disjoint
speakers, each with its own cross-speaker content groups: test has en + en_GB (26 shared
letters, shared words) and the it / pt_BR / tn syllable drills; dev has the es / fr / cs / da /
nl drills. The KLettres languages differ between the splits; English is in both, so that each
has same-language speaker trials with non-targets: en_GB counts as `en` (test: two KLettres
English speakers), and both pocketsphinx speakers are dev. The Asterisk voices join the split of
their KLettres language: Allison (en + es), June (fr) and ivrvoice.ru (ru) dev, Carlo and Menardi
(it) test.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from intervox.audio import check_audio, load_audio, resample, trim_silence
from intervox.errors import AudioError, ManifestError

log = logging.getLogger(__name__)

KLETTRES_ROOT = Path("/usr/share/klettres")
POCKETSPHINX_ROOT = Path("/usr/share/pocketsphinx/test/data")
ASTERISK_ROOT = Path("/usr/share/asterisk/sounds")
SAMPLE_RATE = 16000
TABLE = "panel.tsv"
COLUMNS = ("id", "path", "speaker", "text", "language", "split", "content_id", "source")

# Disjoint speakers per split; each split has languages sharing syllables (cross-speaker content).
TEST_LANGS = ("en", "en_GB", "it", "pt_BR", "tn", "he", "lt", "nb", "nds", "uk")
DEV_LANGS = ("es", "fr", "cs", "da", "nl", "de", "hu", "ru", "ar", "ml")
LANGUAGE = {"en_GB": "en", "pt_BR": "pt"}  # ISO 639-1 for same-language trials
LATIN_SYLLABLES = {"cs", "da", "de", "es", "fr", "hu", "it", "lt", "nds", "nl", "pt_BR", "tn"}
LETTER_NAMES = {"en_GB": "en"}  # languages that name their letters like another one

# pocketsphinx-testdata: (file, speaker, split, text); raw files are 16 kHz 16-bit LE mono.
# cards/*.wav is left out: its speaker is not documented and CAM++ cannot tell whether it is the
# LibriVox reader (cosine 0.63-0.68, between that reader's same- and other-speaker values).
POCKETSPHINX_DHD = (
    ("tidigits/dhd.2934z.raw", "two nine three four zero"),  # TIDIGITS naming: z = zero
    ("goforward.raw", "go forward ten meters"),
)

# Asterisk prompt voices: (voice folder, speaker, language, split, Debian package); letters/a..z.wav
# each. Menardi (Paola Dal Zot) and IvrvoiceRU joined on 2026-12-01, after every recipe choice
# recorded in configs/train/default.yaml: recordings those choices never saw.
ASTERISK_VOICES = (
    ("en_US_f_Allison", "asterisk:allison", "en", "dev", "asterisk-core-sounds-en-wav"),
    ("es_MX_f_Allison", "asterisk:allison", "es", "dev", "asterisk-core-sounds-es-wav"),
    ("fr_CA_f_June", "asterisk:june", "fr", "dev", "asterisk-core-sounds-fr-wav"),
    ("ru_RU_f_IvrvoiceRU", "asterisk:ivrvoice-ru", "ru", "dev", "asterisk-core-sounds-ru-wav"),
    ("it_IT_m_Carlo", "asterisk:carlo", "it", "test", "asterisk-core-sounds-it-wav"),
    ("it_IT_f_Menardi", "asterisk:menardi", "it", "test", "asterisk-prompt-it-menardi-wav"),
)
LETTERS = "abcdefghijklmnopqrstuvwxyz"

# Leading and trailing silence is cut from every clip (intervox.audio.trim_silence): the packages'
# recordists left 0-1.5 s of it per clip, a per-speaker constant (KLettres uk 72% of the frames,
# hu 0%) that any mean-pooled embedding carries. Untrimmed, the panel scored recording sessions
# as much as voices: the speaker subspace's EER 0.147 rose to 0.276 once trimmed, layer 0's
# 0.260 to 0.307 (test split). Changing these values rewrites every clip of an existing panel.
TRIM = {"top_db": 40.0, "margin_s": 0.05}


# Licences from /usr/share/doc/<package>/copyright (Debian): the panel's clips keep them.
SOURCES = {
    "klettres-data": {"path": str(KLETTRES_ROOT),
                      "licence": "GPL-2+ (KDE KLettres, Anne-Marie Mahfouf et al.)"},
    "pocketsphinx-testdata": {"path": str(POCKETSPHINX_ROOT), "licence": "BSD-2 (CMU Sphinx test data)"},
    "asterisk-core-sounds-wav": {"path": str(ASTERISK_ROOT),
                                 "licence": "CC-BY-SA-3.0 (Allison Smith, June Wallack), "
                                            "CC-BY-3.0 (Carlo Flora, ivrvoice.ru)"},
    "asterisk-prompt-it-menardi-wav": {"path": str(ASTERISK_ROOT / "it_IT_f_Menardi"),
                                       "licence": "CC-BY-SA-3.0 Italian (Marco Menardi, Paola Dal Zot)"},
}


@dataclass(frozen=True)
class PanelItem:
    """One clip of the panel before its audio is written."""

    id: str
    source: Path
    speaker: str
    text: str
    language: str
    split: str
    content_id: str


def klettres_sounds(root: Path, lang: str) -> list[tuple[str, str, Path]]:
    """Return (kind "alpha"|"syllab", name, audio path) of a language's sounds.xml, files that exist."""
    xml = root / lang / "sounds.xml"
    if not xml.is_file():
        raise ManifestError(f"{xml}: no KLettres sounds.xml (is klettres-data installed?)")
    text = xml.read_text(encoding="utf-8")
    alpha, _, syllab = text.partition("<syllables>")
    out = []
    for kind, part in (("alpha", alpha), ("syllab", syllab)):
        for name, rel in re.findall(r'<sound\s+name="([^"]+)"\s+file="([^"]+)"', part):
            path = root / rel
            if path.is_file():
                out.append((kind, name.strip(), path))
    return out


def klettres_content(lang: str, kind: str, name: str) -> str:
    """Return the content_id of a KLettres sound (see the module docstring for the grouping rule)."""
    low = name.lower()
    if kind == "alpha":
        return f"letter:{LETTER_NAMES.get(lang, lang)}:{low}"
    if lang in ("en", "en_GB"):
        return f"word:en:{low}"
    return f"syl:{low}" if lang in LATIN_SYLLABLES else f"syl:{lang}:{low}"


def klettres_items(root: Path, langs: tuple[str, ...], split: str, max_per_speaker: int,
                   said_elsewhere: frozenset[str] = frozenset()) -> list[PanelItem]:
    """Return the panel items of `langs`: letters, then syllables shared within the split, then others.

    `said_elsewhere`: content ids other sources' speakers of the split say (shared as well).
    """
    per_lang = {lang: klettres_sounds(root, lang) for lang in langs}
    speakers_of: dict[str, set[str]] = defaultdict(set)
    for content in said_elsewhere:
        speakers_of[content].add("elsewhere")
    for lang, sounds in per_lang.items():
        for kind, name, _ in sounds:
            speakers_of[klettres_content(lang, kind, name)].add(lang)
    items = []
    for lang, sounds in per_lang.items():
        # Shared content first: the clips that make cross-speaker content pairs are kept under the cap.
        ranked = sorted(sounds, key=lambda s: (len(speakers_of[klettres_content(lang, s[0], s[1])]) < 2,
                                               s[0] != "alpha"))
        seen: set[str] = set()
        for kind, name, path in ranked[:max_per_speaker]:
            content = klettres_content(lang, kind, name)
            if content in seen:  # a sound listed twice in sounds.xml
                continue
            seen.add(content)
            items.append(PanelItem(id=f"klettres/{lang}/{kind}/{path.stem}", source=path,
                                   speaker=f"klettres:{lang}", text=name, language=LANGUAGE.get(lang, lang),
                                   split=split, content_id=content))
    return items


def pocketsphinx_items(root: Path) -> list[PanelItem]:
    """Return the LibriVox reader's and dhd's clips of pocketsphinx-testdata (both dev)."""
    items = []
    trans = root / "librivox" / "transcription"
    if not trans.is_file():
        raise ManifestError(f"{trans}: missing (is pocketsphinx-testdata installed?)")
    for line in trans.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*<s>(.*)</s>\s*\((\S+)\)", line)
        if m:
            text, name = " ".join(m.group(1).split()), m.group(2)
            items.append(PanelItem(id=f"pocketsphinx/librivox/{name}",
                                   source=root / "librivox" / f"{name}.wav",
                                   speaker="pocketsphinx:librivox-austen", text=text, language="en",
                                   split="dev", content_id=f"sent:{text}"))
    for rel, text in POCKETSPHINX_DHD:
        items.append(PanelItem(id=f"pocketsphinx/{Path(rel).stem}", source=root / rel,
                               speaker="pocketsphinx:dhd", text=text, language="en", split="dev",
                               content_id=f"sent:{text}"))
    return items


def asterisk_items(root: Path, voices: tuple[tuple[str, str, str, str, str], ...],
                   max_per_speaker: int) -> list[PanelItem]:
    """Return the letters a..z of each Asterisk voice (the first `max_per_speaker` of them)."""
    items = []
    for folder, speaker, lang, split, package in voices:
        letters = root / folder / "letters"
        if not letters.is_dir():
            raise ManifestError(f"{letters}: missing (is {package} installed?)")
        for x in LETTERS[:max_per_speaker]:
            items.append(PanelItem(id=f"asterisk/{folder}/{x}", source=letters / f"{x}.wav", speaker=speaker,
                                   text=x.upper(), language=lang, split=split,
                                   content_id=klettres_content(lang, "alpha", x)))
    return items


def read_source(path: Path) -> np.ndarray:
    """Return a panel source clip as 16 kHz mono float32 (pocketsphinx .raw: 16 kHz 16-bit LE)."""
    if path.suffix == ".raw":
        if not path.is_file():
            raise AudioError(f"{path}: file does not exist")
        audio = np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0
        return check_audio(audio, SAMPLE_RATE, str(path))
    audio, sr = load_audio(path)
    return resample(audio, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else audio


def write_clip(audio: np.ndarray, path: Path) -> None:
    """Write 16-bit FLAC atomically (tmp + rename): a killed build never leaves a half clip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)


def build_devpanel(out: str | Path, *, klettres_root: Path = KLETTRES_ROOT,
                   pocketsphinx_root: Path | None = POCKETSPHINX_ROOT, asterisk_root: Path = ASTERISK_ROOT,
                   asterisk_voices: tuple[tuple[str, str, str, str, str], ...] = ASTERISK_VOICES,
                   dev_langs: tuple[str, ...] = DEV_LANGS, test_langs: tuple[str, ...] = TEST_LANGS,
                   max_per_speaker: int = 40) -> Path:
    """Write the dev panel under `out` (audio/*.flac, panel.tsv, panel.json); return the table path.

    Resumable: clips already written are kept. `panel.json` holds the counts per split.
    """
    out = Path(out)
    overlap = set(dev_langs) & set(test_langs)
    if overlap:
        raise ManifestError(f"dev panel: languages {sorted(overlap)} are in both dev and test")
    asterisk = asterisk_items(Path(asterisk_root), tuple(asterisk_voices), max_per_speaker)
    said = {split: frozenset(i.content_id for i in asterisk if i.split == split) for split in ("dev", "test")}
    items = (klettres_items(Path(klettres_root), tuple(dev_langs), "dev", max_per_speaker, said["dev"])
             + klettres_items(Path(klettres_root), tuple(test_langs), "test", max_per_speaker, said["test"])
             + asterisk)
    if pocketsphinx_root is not None:
        items += pocketsphinx_items(Path(pocketsphinx_root))
    return write_panel(out, items, SOURCES)


def write_panel(out: Path, items: list[PanelItem], sources: dict, extra: dict | None = None) -> Path:
    """Write `items` as a folder corpus under `out` (audio/*.flac trimmed, panel.tsv, panel.json).

    Resumable: clips already written with the same trim settings are kept. panel.json holds the
    counts per split, the `sources` and their licences, the trim rule and `extra`.
    """
    rewrite = _preprocessing(out) != TRIM  # a panel made with other settings: every clip again
    rows = []
    for item in items:
        rel = Path("audio") / f"{item.id}.flac"
        if rewrite or not (out / rel).is_file():
            write_clip(trim_silence(read_source(item.source), SAMPLE_RATE, **TRIM), out / rel)
        rows.append({"id": item.id, "path": str(rel), "speaker": item.speaker, "text": item.text,
                     "language": item.language, "split": item.split, "content_id": item.content_id,
                     "source": str(item.source)})
    table = out / TABLE
    with table.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    info = {"splits": panel_stats(rows), "sources": sources, "trim_silence": TRIM} | (extra or {})
    (out / "panel.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return table


def _preprocessing(out: Path) -> dict | None:
    """Return the trim settings an existing panel under `out` was written with (None: none known)."""
    try:
        return json.loads((out / "panel.json").read_text()).get("trim_silence")
    except (OSError, ValueError, AttributeError):
        return None


def panel_stats(rows: list[dict]) -> dict:
    """Return per split: clips, speakers, languages, seconds-free counts and cross-speaker content groups."""
    stats = {}
    for split in sorted({r["split"] for r in rows}):
        sel = [r for r in rows if r["split"] == split]
        speakers_of: dict[str, set[str]] = defaultdict(set)
        for r in sel:
            speakers_of[r["content_id"]].add(r["speaker"])
        shared = {c for c, s in speakers_of.items() if len(s) >= 2}
        stats[split] = {"clips": len(sel), "speakers": len({r["speaker"] for r in sel}),
                        "languages": sorted({r["language"] for r in sel}),
                        "cross_speaker_groups": len(shared),
                        "clips_in_cross_speaker_groups": sum(r["content_id"] in shared for r in sel)}
    return stats
