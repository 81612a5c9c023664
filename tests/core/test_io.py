"""Result files: open formats, atomic writes, names with dots."""

from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

from qlandscape.core import io
from qlandscape.core.errors import ConfigError


@dataclass(frozen=True)
class Example:
    values: np.ndarray
    label: str
    count: int
    pair: tuple


def test_save_load_roundtrip_with_dotted_names(tmp_path):
    a = Example(np.arange(3.0), "a", 3, (1, 2))
    b = Example(np.ones(2), "b", 2, (3, 4))
    io.save_result(a, tmp_path / "lr_0.05_seed0")
    io.save_result(b, tmp_path / "lr_0.5_seed0")
    got_a = io.load_result(Example, tmp_path / "lr_0.05_seed0")
    got_b = io.load_result(Example, tmp_path / "lr_0.5_seed0")
    np.testing.assert_array_equal(got_a.values, a.values)
    assert got_a.label == "a" and got_a.pair == (1, 2) and got_b.label == "b"
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_update_npz_keeps_other_arrays(tmp_path):
    path = tmp_path / "arrays.npz"
    io.write_npz(path, {"x": np.arange(3)})
    io.update_npz(path, {"y": np.zeros(2)})
    data = io.read_npz(path)
    assert set(data) == {"x", "y"}
    io.write_json(tmp_path / "r.json", {"nan": float("nan"), "arr": np.arange(2), "n": np.int64(3)})
    assert io.read_json(tmp_path / "r.json") == {"nan": None, "arr": [0, 1], "n": 3}


def test_result_files_are_readable_by_others(tmp_path):
    import os
    import stat

    io.write_json(tmp_path / "r.json", {"a": 1})
    mode = stat.S_IMODE(os.stat(tmp_path / "r.json").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


@dataclass(frozen=True)
class _WithNonFinite:
    a: float
    b: float
    c: tuple
    x: np.ndarray


def test_saved_result_with_non_finite_floats_round_trips(tmp_path):
    result = _WithNonFinite(math.nan, math.inf, (1.0, -math.inf), np.arange(3.0))
    io.save_result(result, tmp_path / "r")
    back = io.load_result(_WithNonFinite, tmp_path / "r")
    assert math.isnan(back.a) and back.b == math.inf and back.c == (1.0, -math.inf)
    np.testing.assert_array_equal(back.x, result.x)


def test_a_toml_file_that_is_not_utf8_is_named_with_the_byte_and_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("a = 1\n# café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.toml.*not UTF-8 text \(byte 0xe9 on line 2\)"):
        io.read_toml(path, "config")
    path.write_text("a = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        io.read_toml(path, "config")


def test_an_output_folder_is_checked_without_leaving_anything(tmp_path):
    assert io.check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert list(tmp_path.iterdir()) == []  # nothing made, the write test's file removed
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"--out = '.*file' is not allowed; it is a file"):
        io.check_output_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match=r"the folder cannot be made: .*file is a file"):
        io.check_output_dir(tmp_path / "file" / "below", "--out")


@pytest.mark.parametrize(
    "code,named", [(errno.ENOSPC, "is full"), (errno.EROFS, "not writable"), (errno.EACCES, "not writable")]
)
def test_an_output_folder_that_cannot_take_files(tmp_path, monkeypatch, code, named):
    def refuse(fd, data):
        os.close(fd)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(io, "_write_synced", refuse)
    with pytest.raises(ConfigError, match=named) as err:
        io.check_output_dir(tmp_path, "--out")
    assert str(tmp_path) in str(err.value) and os.strerror(code) in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    def full(fd, data):
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io, "_write_synced", full)
    with pytest.raises(OSError) as err:
        io.write_json(tmp_path / "run.json", {"a": 1})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "run.json")
    assert list(tmp_path.iterdir()) == []
