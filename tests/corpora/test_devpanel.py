"""The real-speech dev panel, built from a small slice of klettres-data and pocketsphinx-testdata."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import soundfile as sf

from intervox.corpora import devpanel
from intervox.errors import ManifestError


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for root in (devpanel.KLETTRES_ROOT, devpanel.POCKETSPHINX_ROOT, devpanel.ASTERISK_ROOT):
        if not root.is_dir():
            pytest.fail(f"{root} is missing: run `make setup` (apt-get install klettres-data "
                        "pocketsphinx-testdata asterisk-core-sounds-{en,es,fr,it,ru}-wav "
                        "asterisk-prompt-it-menardi-wav)")
    out = tmp_path_factory.mktemp("devpanel")
    devpanel.build_devpanel(out, dev_langs=("fr", "es"), test_langs=("en", "en_GB"), max_per_speaker=8)
    return out


def rows_of(out: Path) -> list[dict]:
    with (out / devpanel.TABLE).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_splits_hold_disjoint_speakers_with_cross_speaker_content(slice_dir: Path) -> None:
    rows = rows_of(slice_dir)
    by_split = {s: {r["speaker"] for r in rows if r["split"] == s} for s in ("dev", "test")}
    assert by_split["dev"] == {"klettres:fr", "klettres:es", "pocketsphinx:librivox-austen",
                               "pocketsphinx:dhd", "asterisk:allison", "asterisk:june",
                               "asterisk:ivrvoice-ru"}
    assert by_split["test"] == {"klettres:en", "klettres:en_GB", "asterisk:carlo", "asterisk:menardi"}
    for split in ("dev", "test"):  # English speakers on both sides: same-language non-target trials
        assert len({r["speaker"] for r in rows if r["split"] == split and r["language"] == "en"}) >= 2
    en = {r["content_id"] for r in rows if r["speaker"] == "klettres:en"}
    gb = {r["content_id"] for r in rows if r["speaker"] == "klettres:en_GB"}
    assert len(en & gb) == 8  # shared letters/words come first under the cap
    fr = {r["content_id"] for r in rows if r["speaker"] == "klettres:fr"}
    es = {r["content_id"] for r in rows if r["speaker"] == "klettres:es"}
    said_by_others = {r["content_id"] for r in rows if r["speaker"].startswith("asterisk:")}
    assert fr <= said_by_others and es <= said_by_others  # content another speaker says comes first
    assert {r["language"] for r in rows if r["speaker"] == "klettres:en_GB"} == {"en"}
    info = json.loads((slice_dir / "panel.json").read_text())
    # the en/en_GB items and Carlo's and Menardi's Italian letters; dhd's are his own
    assert info["splits"]["test"]["cross_speaker_groups"] == 16
    assert "GPL-2+" in info["sources"]["klettres-data"]["licence"]


def test_asterisk_voices_say_the_letters_of_their_language(slice_dir: Path) -> None:
    rows = rows_of(slice_dir)
    allison = [r for r in rows if r["speaker"] == "asterisk:allison"]
    assert {r["language"] for r in allison} == {"en", "es"}  # one voice, two languages
    assert len(allison) == 16 and {r["text"] for r in allison} == set("ABCDEFGH")  # a..h under the cap
    es = {r["content_id"] for r in rows if r["speaker"] == "klettres:es"}
    june = {r["content_id"] for r in rows if r["speaker"] == "asterisk:june"}
    fr = {r["content_id"] for r in rows if r["speaker"] == "klettres:fr"}
    assert {r["content_id"] for r in allison if r["language"] == "es"} <= es  # KLettres ranks them first
    assert june <= fr and all(c.startswith("letter:fr:") for c in june)
    carlo = {r["content_id"] for r in rows if r["speaker"] == "asterisk:carlo"}
    menardi = {r["content_id"] for r in rows if r["speaker"] == "asterisk:menardi"}
    assert carlo == menardi == {f"letter:it:{x}" for x in "abcdefgh"}  # two Italian voices, same letters
    info = sf.info(str(slice_dir / allison[0]["path"]))
    assert info.samplerate == 16000  # the 8 kHz prompts are resampled like every clip
    assert "CC-BY-SA-3.0" in json.loads((slice_dir / "panel.json").read_text())["sources"][
        "asterisk-core-sounds-wav"]["licence"]
    assert "Paola Dal Zot" in json.loads((slice_dir / "panel.json").read_text())["sources"][
        "asterisk-prompt-it-menardi-wav"]["licence"]


def test_pocketsphinx_transcripts_are_read(slice_dir: Path) -> None:
    rows = {r["id"]: r for r in rows_of(slice_dir)}
    assert rows["pocketsphinx/librivox/sense_and_sensibility_01_austen_64kb-0880"]["text"] == (
        "he was not an ill disposed young man")
    assert rows["pocketsphinx/dhd.2934z"]["text"] == "two nine three four zero"
    assert sum(r.startswith("pocketsphinx/librivox/") for r in rows) == 5


def test_audio_is_16k_mono_and_the_folder_adapter_reads_it(slice_dir: Path, tmp_path: Path) -> None:
    from intervox.corpora.adapters import folder
    from intervox.corpora.manifest import read_manifest

    rows = rows_of(slice_dir)
    info = sf.info(str(slice_dir / rows[0]["path"]))
    assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
    utts = read_manifest(folder.prepare(slice_dir, tmp_path))
    assert len(utts) == len(rows) and not (tmp_path / "quarantine.jsonl").read_text()
    letter_a = next(u for u in utts if u.id == "klettres/en_GB/alpha/a")
    assert (letter_a.content_id, letter_a.split, letter_a.text) == ("letter:en:a", "test", "A")


def test_rebuild_keeps_written_clips(slice_dir: Path) -> None:
    clip = slice_dir / rows_of(slice_dir)[0]["path"]
    before = clip.stat().st_mtime_ns
    devpanel.build_devpanel(slice_dir, dev_langs=("fr", "es"), test_langs=("en", "en_GB"), max_per_speaker=8)
    assert clip.stat().st_mtime_ns == before


def test_clips_are_trimmed_and_other_trim_settings_rewrite_them(
        slice_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from intervox.audio import load_audio

    row = next(r for r in rows_of(slice_dir) if r["id"] == "klettres/en/alpha/A")
    source, _ = load_audio(row["source"], 16000)  # KLettres en: ~0.4 s of silence each side
    written, _ = sf.read(str(slice_dir / row["path"]), dtype="float32")
    assert 0.2 * 16000 < source.size - written.size < source.size - 0.2 * 16000
    assert json.loads((slice_dir / "panel.json").read_text())["trim_silence"] == devpanel.TRIM
    out = tmp_path / "panel"
    monkeypatch.setattr(devpanel, "TRIM", {"top_db": 200.0, "margin_s": 0.0})  # cuts nothing
    devpanel.build_devpanel(out, dev_langs=("fr",), test_langs=("en",), max_per_speaker=2,
                            asterisk_voices=(), pocketsphinx_root=None)
    clip = out / "audio/klettres/en/alpha/A.flac"
    assert sf.info(str(clip)).frames == source.size
    monkeypatch.setattr(devpanel, "TRIM", {"top_db": 40.0, "margin_s": 0.05})
    devpanel.build_devpanel(out, dev_langs=("fr",), test_langs=("en",), max_per_speaker=2,
                            asterisk_voices=(), pocketsphinx_root=None)
    assert sf.info(str(clip)).frames == written.size


def test_content_grouping_rules() -> None:
    assert devpanel.klettres_content("en_GB", "alpha", "A") == devpanel.klettres_content("en", "alpha", "A")
    assert devpanel.klettres_content("fr", "alpha", "A") != devpanel.klettres_content("en", "alpha", "A")
    content = devpanel.klettres_content
    assert content("it", "syllab", "LA") == content("pt_BR", "syllab", "LA")
    assert devpanel.klettres_content("en", "syllab", "ME") != devpanel.klettres_content("es", "syllab", "ME")
    assert devpanel.klettres_content("ru", "syllab", "МА") != devpanel.klettres_content("uk", "syllab", "МА")


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="in both dev and test"):
        devpanel.build_devpanel(tmp_path, dev_langs=("en",), test_langs=("en",))
    with pytest.raises(ManifestError, match="asterisk-core-sounds-en-wav installed"):
        devpanel.build_devpanel(tmp_path, asterisk_root=tmp_path, dev_langs=("fr",), test_langs=("en",))
    with pytest.raises(ManifestError, match="no KLettres sounds.xml"):
        devpanel.build_devpanel(tmp_path, klettres_root=tmp_path, dev_langs=("fr",), test_langs=("en",))
