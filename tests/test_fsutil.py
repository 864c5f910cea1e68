"""Atomic writes: all or nothing, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from featurekit._util.fsutil import atomic_path, atomic_write_text


def test_written_file_has_default_permissions(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "hello")
    current = os.umask(0)
    os.umask(current)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~current
    assert target.read_text() == "hello"


def test_failure_leaves_target_untouched_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
