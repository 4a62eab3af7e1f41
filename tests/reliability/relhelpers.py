"""Helpers shared by the reliability tests (importable: tests/reliability is on sys.path under pytest)."""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from intervox.shards.write import ShardInfo, file_sha256, read_sidecar, sidecar_path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def render(text: str, path: Path, voice: str = "en-us", pitch: int = 50) -> Path:
    """Render `text` with espeak-ng into a WAV at `path`."""
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(path), text], check=True)
    return path


def shas(directory: Path) -> dict[str, str]:
    """Return {shard name: sha256} of the finished shards of a folder."""
    return {p.name: file_sha256(p) for p in sorted(Path(directory).glob("*.tar"))}


@dataclass(frozen=True)
class Exited:
    """How a `python ARGS` run ended: its exit status (-9: SIGKILL) and its stderr."""

    returncode: int
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def run_python(args: list[str], log: Path, *, fault: str | None = None, timeout: float = 600.0,
               **env: str) -> Exited:
    """Run `python ARGS` to its end in its own process group, optionally with INTERVOX_FAULT=fault.

    The run dies exactly at the named fault point (intervox/faults.py), never at a moment chosen
    by a timer; whatever it leaves running (Dask workers of a killed build) is SIGKILLed after.
    """
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}", **env}
    full_env.pop("INTERVOX_FAULT", None)
    if fault:
        full_env["INTERVOX_FAULT"] = fault
    with open(log, "wb") as err:  # a file, not a pipe: orphaned workers may hold it open
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        finally:
            end_group(proc.pid)
            proc.wait()
    return Exited(proc.returncode, Path(log).read_text(errors="replace"))


def end_group(pgid: int, timeout: float = 60.0) -> None:
    """SIGKILL every process of group `pgid` and return once none of them runs any more."""
    members = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, psutil.Error):
            continue
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    for p in members:  # wait for the kill to land: a zombie (not yet reaped by init) runs no more
        while time.monotonic() < deadline:
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)


# A pickle whose loading would call builtins.open(MARKER, "w"): any unpickling creates the file.
class WritesMarker:
    """Unpickling an instance of this creates the file `path` (so a test can see if anything unpickled)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


UNSAFE_KINDS = ("pyd", "pth", "pickle", "dotdot", "absolute", "symlink", "hardlink", "device", "object_npy")


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode = size, kind, 0o644
    return info


def tamper(tar_path: Path, kind: str, marker: Path) -> None:
    """Put one unsafe member of `kind` into the first sample of a shard and reseal its sidecar.

    The sample count and grouping stay as they were, so only the safety check itself can
    refuse the shard. Pickled payloads would create `marker` if anything ever unpickled them.
    """
    tar_path = Path(tar_path)
    with tarfile.open(tar_path) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    key = members[0][0].name.split(".", 1)[0]
    at = next((i for i, (m, _) in enumerate(members) if m.name.split(".", 1)[0] != key), len(members))
    payload = pickle.dumps(WritesMarker(str(marker)))
    if kind in ("pyd", "pth", "pickle"):
        evil = (_info(f"{key}.{kind}", len(payload)), payload)
    elif kind == "dotdot":
        evil = (_info(f"../{key}.json", 2), b"{}")
    elif kind == "absolute":
        evil = (_info(f"/tmp/{key}.json", 2), b"{}")
    elif kind in ("symlink", "hardlink", "device"):
        types = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "device": tarfile.CHRTYPE}
        info = _info(f"{key}.txt", 0, types[kind])
        info.linkname = {"symlink": "/etc/passwd", "hardlink": members[0][0].name}.get(kind, "")
        info.devmajor, info.devminor = (1, 3) if kind == "device" else (0, 0)  # /dev/null's numbers
        evil = (info, None)
    elif kind == "object_npy":
        buf = io.BytesIO()
        np.save(buf, np.array([WritesMarker(str(marker))], dtype=object), allow_pickle=True)
        evil = (_info(f"{key}.pooled.npy", buf.tell()), buf.getvalue())
        members = [(m, d) for m, d in members if m.name != f"{key}.pooled.npy"]  # replace a real one
        at = next((i for i, (m, _) in enumerate(members) if m.name.split(".", 1)[0] != key), len(members))
    else:
        raise ValueError(kind)
    members.insert(at, evil)
    with tarfile.open(tar_path, "w", format=tarfile.GNU_FORMAT) as out:
        for m, data in members:
            out.addfile(m, io.BytesIO(data) if data is not None else None)
    reseal(tar_path)


def reseal(tar_path: Path) -> None:
    """Rewrite the sidecar of a tampered tar to match its bytes, so only content checks can catch it."""
    info = read_sidecar(tar_path)
    new = ShardInfo(tar_path.name, info.count if info else 0, tar_path.stat().st_size,
                    file_sha256(tar_path), info.plan_hash if info else "tampered")
    sidecar_path(tar_path).write_text(json.dumps(new.to_dict()))


def truncate(tar_path: Path, keep: float = 0.5) -> None:
    """Cut a shard to `keep` of its bytes (its sidecar now disagrees, as after a bad copy)."""
    data = Path(tar_path).read_bytes()
    Path(tar_path).write_bytes(data[: int(len(data) * keep)])
