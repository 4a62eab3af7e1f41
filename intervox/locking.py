"""An exclusive lock on an output folder, so two runs never write into the same folder at once.

`shards build`, `features`, `train` (and `finetune`) hold `DIR/.intervox.lock` while they
write: the file names the owner (pid, host, command) and carries an flock, which the
kernel drops when the owner dies, however it dies (SIGKILL included). A second run finds
the flock held and refuses (LockError: exit code 2, one line naming the folder and the
owner); a lock file whose flock is free was left by a run that is gone, and is taken over
with a warning naming the dead owner.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from intervox.errors import LockError

log = logging.getLogger(__name__)

LOCK_FILE = ".intervox.lock"


def command_line() -> str:
    """Return this process' command line as a user would type it (`intervox shards build ...`)."""
    return "intervox " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def read_owner(path: Path) -> dict:
    """Return the owner record of a lock file ({} when it is empty or unreadable)."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict) -> str:
    if not owner:
        return "an unknown process"
    return f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} ({owner.get('command', '?')})"


def _open_locked(path: Path, directory: Path) -> int:
    """Return an fd of `path` holding its flock; LockError naming the owner if another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockError(
                f"{directory} is in use by {_describe(read_owner(path))}: wait for it to finish or stop it "
                f"(lock file {path})"
            ) from None
        try:  # the owner before us may have removed the file after we opened it: lock the live one
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def output_lock(directory: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of output folder `directory` (created if missing); yield the lock file.

    Raises LockError when another live process holds it. The lock file is removed on exit.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = _open_locked(path, directory)
    try:
        previous = read_owner(path)
        if previous:  # its flock is free, so the process that wrote it is gone
            log.warning("%s: taking over the lock left by %s, which is no longer running",
                        directory, _describe(previous))
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or command_line()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        yield path
    finally:
        try:
            path.unlink()  # while still holding the flock: nobody can be between open and flock on it
        except FileNotFoundError:
            pass
        os.close(fd)
