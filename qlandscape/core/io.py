"""Saving and loading results in open formats: JSON for scalars and settings, ``.npz`` for arrays.

Every write goes to a temporary name in the same folder and is renamed into place, so a killed process never
leaves a half-written file behind.
"""

from __future__ import annotations

import dataclasses
import errno
import io
import json
import os
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from qlandscape.core.errors import ConfigError

__all__ = [
    "WRITE_ERRNOS",
    "MIN_FREE_BYTES",
    "atomic_write_bytes",
    "check_output_dir",
    "write_json",
    "read_json",
    "read_toml",
    "write_npz",
    "read_npz",
    "update_npz",
    "result_to_dicts",
    "save_result",
    "load_result",
]

T = TypeVar("T")
_UMASK = os.umask(0)
os.umask(_UMASK)


# errno values of a folder that cannot take our files: where the data goes is the problem, not the program
WRITE_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENOENT,
        errno.ENAMETOOLONG,
    }
)
MIN_FREE_BYTES = 2**20  # an output folder with less room than this is full for any result


def _write_synced(fd: int, data: bytes) -> None:
    # every file this package writes reaches the disk here (the write check of an output folder too)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename). An OSError names ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results on shared filesystems must be readable
        _write_synced(fd, data)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # e.g. ENOSPC from write(): say which file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def check_output_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check, before any work, that ``path`` is a folder this process can write to, or one it can create; a
    problem raises :class:`ConfigError` naming ``option`` and the path. Nothing is left behind: the folder is
    not created, and the write test removes its file."""
    path = Path(path)
    existing = path
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:
        raise ConfigError(option, str(path), f"cannot be checked ({exc.strerror or exc})") from None
    if not is_dir:
        if existing == path:
            raise ConfigError(option, str(path), "it is a file; expected a folder (or a path where one can be made)")
        raise ConfigError(option, str(path), f"the folder cannot be made: {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".qlandscape-write-check.", dir=existing)
        try:
            _write_synced(fd, b"\0" * 512)
        finally:
            os.unlink(probe)
    except OSError as exc:
        raise ConfigError(option, str(path), _write_problem(exc, existing)) from None
    try:
        stat = os.statvfs(existing)
        free = stat.f_bavail * stat.f_frsize
    except (OSError, AttributeError):  # no statvfs (Windows): the write test above is all there is
        free = None
    if free is not None and free < MIN_FREE_BYTES:
        raise ConfigError(
            option,
            str(path),
            f"the disk holding {os.path.abspath(existing)} is full ({free} bytes free); free space or choose another",
        )
    return path


def _write_problem(exc: OSError, existing: Path) -> str:
    folder = os.path.abspath(existing)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {folder} is full ({exc.strerror}); free space or choose another folder"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{folder} is not writable ({exc.strerror}); choose a folder you can write to"
    return f"{folder} cannot take new files ({exc.strerror or exc})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically; numpy scalars and arrays become plain JSON."""
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_toml(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Read a TOML file; a missing file or bad TOML raises ConfigError naming ``what`` and the path."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(what, str(path), "no such file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(what, str(path), f"could not be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            what,
            str(path),
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8, as TOML "
            "requires",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(what, str(path), f"is not valid TOML ({exc})") from None


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to a compressed ``.npz`` atomically."""
    buffer = io.BytesIO()
    named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}  # numpy's stubs type **kwds narrowly
    np.savez_compressed(buffer, **named)
    atomic_write_bytes(path, buffer.getvalue())


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` into a dict (no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def update_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Add or replace arrays in an ``.npz`` file, keeping the others, atomically."""
    existing = read_npz(path) if Path(path).exists() else {}
    existing.update({k: np.asarray(v) for k, v in arrays.items()})
    write_npz(path, existing)


_FLOAT_TAG = "__float__"  # a non-finite float in a saved result: {"__float__": "nan" | "inf" | "-inf"}


def _tag_nonfinite(value: Any) -> Any:
    # Plain JSON has no NaN or infinity and _jsonable writes None / "inf" for them, which a result would load back
    # as None or a string; a saved result must load back equal, so its non-finite floats are tagged instead.
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return {_FLOAT_TAG: "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, (list, tuple)):
        return [_tag_nonfinite(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _tag_nonfinite(v) for k, v in value.items()}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_FLOAT_TAG}:
            return float(value[_FLOAT_TAG])
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def result_to_dicts(result: Any, *, exact: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Split a result dataclass into (JSON-able fields, array fields). Nested dataclasses are flattened with '.'.
    ``exact``: non-finite floats tagged so that :func:`load_result` restores them (else None / "inf")."""
    scalars: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}

    def visit(prefix: str, obj: Any) -> None:
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            key = f"{prefix}{field.name}"
            if dataclasses.is_dataclass(value):
                visit(key + ".", value)
            elif isinstance(value, np.ndarray):
                arrays[key] = value
            else:
                scalars[key] = _jsonable(_tag_nonfinite(value) if exact else value)

    visit("", result)
    return scalars, arrays


def _with_suffix(path: Path, suffix: str) -> Path:
    # Appends rather than replaces: a name like "lr_0.05" must not lose its ".05".
    name = path.name[: -len(suffix)] if path.name.endswith(suffix) else path.name
    return path.parent / f"{name}{suffix}"


def save_result(result: Any, path: str | os.PathLike[str]) -> None:
    """Save a result dataclass as ``path.json`` + ``path.npz`` (``path`` without suffix)."""
    path = Path(path)
    scalars, arrays = result_to_dicts(result, exact=True)
    scalars["__type__"] = type(result).__name__
    write_npz(_with_suffix(path, ".npz"), arrays)
    write_json(_with_suffix(path, ".json"), scalars)


def load_result(cls: type[T], path: str | os.PathLike[str]) -> T:
    """Load a result dataclass saved by :func:`save_result` (flat dataclasses only)."""
    path = Path(path)
    json_path, npz_path = _with_suffix(path, ".json"), _with_suffix(path, ".npz")
    scalars = read_json(json_path)
    arrays = read_npz(npz_path) if npz_path.exists() else {}
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in arrays:
            kwargs[field.name] = arrays[field.name]
        elif field.name in scalars:
            value = _untag(scalars[field.name])
            kwargs[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)
