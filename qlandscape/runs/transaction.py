"""Locks and transactions of a folder: the run directory's concurrency control.

**The lock.** Every process that writes a run directory holds its lock, an advisory ``fcntl.flock`` on the file
``.lock`` inside it (:func:`locked`). The operating system releases it when the holder exits or is killed, so a
dead writer never leaves a stale lock behind. Within one process the lock is re-entrant for the thread holding it
and excludes the other threads. ``flock`` works on local filesystems and, on Linux, over NFS (emulated with
byte-range locks); a filesystem without locks fails loudly rather than silently skipping them.

**Transactions.** A change to several files (a metric's results and figures, its arrays in ``arrays.npz`` and its
scalars in ``run.json``) is written into a :class:`Staging` folder ``.txn-<call id>/`` inside the directory and
committed under the lock: the staging folder gets a journal (``journal.json``: the files to move into place, in
order, and the files to remove), written atomically, and then the files are renamed into place, the last one (the
caller names ``run.json``) last. The journal is the commit point: a writer killed before it leaves the old files
untouched, and one killed after it leaves a journal that the next holder of the lock (or a reader, see
:func:`settle`) carries out to the end. Either way every reader that settles first sees the old or the new state,
never a mix.

**Tidying.** Whoever takes the lock first carries out committed journals, removes staging folders whose writer is
gone (a staging folder's writer holds a lock on its ``.owner`` file while it fills it) and removes the ``.*.tmp``
files that :func:`qlandscape.core.io.atomic_write_bytes` leaves when its writer is killed mid-write.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qlandscape.core import io
from qlandscape.core.errors import ConfigError

__all__ = [
    "LOCK_FILE",
    "STAGING_PREFIX",
    "LockHeld",
    "new_call_id",
    "locked",
    "holds_lock",
    "pending_commits",
    "settle",
    "recover",
    "Staging",
]

LOCK_FILE = ".lock"
STAGING_PREFIX = ".txn-"
_FILLING_SUFFIX = ".new"  # a staging folder before its writer holds its owner lock (renamed away at once)
_OWNER_FILE = ".owner"
_JOURNAL = "journal.json"
_FILES = "files"
_ABANDONED_AFTER = 3600.0  # seconds after which a staging folder that never got an owner is removed
_POLL = 0.05  # seconds between tries of a lock with a timeout


class LockHeld(Exception):
    """Another process (or thread) holds the lock of a folder and the caller chose not to wait for it."""

    def __init__(self, directory: Path) -> None:
        super().__init__(f"{directory} is being written by another process")
        self.directory = directory


def new_call_id() -> str:
    """A unique name for one call that writes a run directory (time, host, process and a random part)."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class _Holder:
    """This process's hold on one folder's lock: a thread lock (re-entrant) around the one file lock."""

    thread_lock: threading.RLock = field(default_factory=threading.RLock)
    fd: int | None = None
    depth: int = 0


_HOLDERS: dict[str, _Holder] = {}
_HOLDERS_LOCK = threading.Lock()


def _holder(directory: Path) -> _Holder:
    key = os.path.realpath(directory)
    with _HOLDERS_LOCK:
        return _HOLDERS.setdefault(key, _Holder())


def _acquire_thread_lock(lock: threading.RLock, timeout: float | None) -> bool:
    if timeout is None:
        return lock.acquire()
    return lock.acquire(timeout=timeout) if timeout > 0 else lock.acquire(blocking=False)


def _open_lock_file(directory: Path) -> int:
    try:
        return os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ConfigError(
            "run directory",
            str(directory),
            f"cannot be locked for writing ({exc.strerror or exc}); expected a writable folder",
        ) from exc


def _flock(fd: int, directory: Path, timeout: float | None, on_wait: Callable[[], None] | None) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise ConfigError(
                "run directory", str(directory), f"its filesystem does not support file locks ({exc.strerror})"
            ) from exc
    if timeout == 0:
        raise LockHeld(directory)
    if on_wait is not None:
        on_wait()
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(_POLL)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockHeld(directory) from None


@contextmanager
def locked(
    directory: str | os.PathLike[str],
    *,
    timeout: float | None = None,
    on_wait: Callable[[], None] | None = None,
    tidy: Iterable[str] = (),
) -> Iterator[Path]:
    """Hold the lock of ``directory`` (which must exist) for the ``with`` block.

    ``timeout``: None waits as long as it takes, 0 raises :class:`LockHeld` at once when another process holds the
    lock, a number of seconds waits that long at most. ``on_wait`` is called once when the lock is busy (to say
    so). On taking the lock, committed journals are carried out and leftovers of dead writers removed, in the
    folder and in its subfolders named by ``tidy``.
    """
    directory = Path(directory)
    holder = _holder(directory)
    if not _acquire_thread_lock(holder.thread_lock, timeout):
        raise LockHeld(directory)
    try:
        if holder.depth == 0:
            fd = _open_lock_file(directory)
            try:
                _flock(fd, directory, timeout, on_wait)
                recover(directory, tidy)
            except BaseException:
                os.close(fd)  # closing the descriptor releases the file lock
                raise
            holder.fd = fd
        holder.depth += 1
        try:
            yield directory
        finally:
            holder.depth -= 1
            if holder.depth == 0 and holder.fd is not None:
                os.close(holder.fd)
                holder.fd = None
    finally:
        holder.thread_lock.release()


def holds_lock(directory: str | os.PathLike[str]) -> bool:
    """Whether this process holds the lock of ``directory`` (in some thread)."""
    return _holder(Path(directory)).depth > 0


def pending_commits(directory: Path) -> list[Path]:
    """The staging folders of ``directory`` with a journal (committed, not yet carried out)."""
    return sorted(p.parent for p in directory.glob(f"{STAGING_PREFIX}*/{_JOURNAL}"))


def settle(directory: str | os.PathLike[str], tidy: Iterable[str] = ()) -> None:
    """Carry out the committed journals of ``directory`` before reading it, so that a reader sees the state of the
    last commit. Nothing to do (the usual case) costs one directory listing; a folder that cannot be written is
    read as it is."""
    directory = Path(directory)
    if not pending_commits(directory) or holds_lock(directory):
        return
    try:
        with locked(directory, tidy=tidy):
            pass
    except (ConfigError, OSError):  # a read-only copy of a run directory: read what is there
        pass


def recover(directory: Path, tidy: Iterable[str] = ()) -> None:
    """Carry out committed journals and remove what dead writers left (the caller holds the lock)."""
    for staging in sorted(directory.glob(f"{STAGING_PREFIX}*")):
        if not staging.is_dir():
            continue
        if (staging / _JOURNAL).exists():
            _roll_forward(staging, directory)
        elif staging.name.endswith(_FILLING_SUFFIX):
            if time.time() - staging.stat().st_mtime > _ABANDONED_AFTER:
                shutil.rmtree(staging, ignore_errors=True)
        elif not _owner_alive(staging):
            shutil.rmtree(staging, ignore_errors=True)
    for folder in (directory, *(directory / name for name in tidy)):
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def _owner_alive(staging: Path) -> bool:
    try:
        fd = os.open(staging / _OWNER_FILE, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _roll_forward(staging: Path, directory: Path) -> None:
    journal = io.read_json(staging / _JOURNAL)
    files = staging / _FILES
    for relative in journal["replace"]:
        source = files / relative
        if source.exists():  # moved already by an earlier, interrupted roll-forward
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    for relative in journal["remove"]:
        (directory / relative).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


class Staging:
    """A private folder inside ``directory`` where one call writes its new files (under :attr:`files`, at the
    paths they will have in ``directory``) before committing them all at once with :meth:`commit`.

    Use it as a context manager: leaving the block without a commit removes the folder. Filling it needs no lock
    (the folder is the call's own; its writer holds the folder's owner lock so that tidying leaves it alone);
    committing needs the directory's lock.
    """

    def __init__(self, directory: str | os.PathLike[str], call: str | None = None) -> None:
        self.directory = Path(directory)
        self.call = call or new_call_id()
        self.root = self.directory / f"{STAGING_PREFIX}{self.call}"
        filling = self.root.with_name(self.root.name + _FILLING_SUFFIX)
        try:
            filling.mkdir()
        except OSError as exc:
            raise ConfigError(
                "run directory",
                str(self.directory),
                f"cannot be written ({exc.strerror or exc}); expected a writable folder",
            ) from exc
        self._owner = os.open(filling / _OWNER_FILE, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(self._owner, fcntl.LOCK_EX)
        os.rename(filling, self.root)  # from here on tidying sees an owned staging folder
        self.files = self.root / _FILES
        self.files.mkdir()
        self.committed = False

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Remove the folder unless committed (a committed one is gone already), and release the owner lock."""
        if not self.committed:
            shutil.rmtree(self.root, ignore_errors=True)
        if self._owner >= 0:
            os.close(self._owner)
            self._owner = -1

    def staged(self) -> list[str]:
        """The staged files, as paths relative to the directory (sorted)."""
        return sorted(p.relative_to(self.files).as_posix() for p in self.files.rglob("*") if p.is_file())

    def commit(self, *, remove: Iterable[str] = (), last: Iterable[str] = ()) -> None:
        """Move every staged file into place and remove the files ``remove`` (relative paths), all or nothing;
        the staged files named in ``last`` are moved last, in that order. The caller holds the directory's lock."""
        if not holds_lock(self.directory):
            raise RuntimeError(f"committing into {self.directory} needs its lock")
        staged = self.staged()
        last = [name for name in last if name in staged]
        order = [name for name in staged if name not in last] + last
        removed = sorted(set(remove) - set(staged))
        payload = json.dumps({"call": self.call, "replace": order, "remove": removed}, indent=1) + "\n"
        io.atomic_write_bytes(self.root / _JOURNAL, payload.encode())  # the commit point
        self.committed = True
        _roll_forward(self.root, self.directory)
