"""``depthbench.atomic``: the one temp-file, fsync, rename writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from depthbench.atomic import atomic_write, temp_path, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "sub" / "a.json", "old\n")  # makes the folder
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("half of the new")
        assert f.name == str(temp_path(path)) and path.read_text() == "old\n"
        raise RuntimeError("killed mid-write")
    names = sorted(p.name for p in path.parent.iterdir())
    assert path.read_text() == "old\n" and names == ["a.json"]


def test_per_process_temp_name_and_binary_write(tmp_path: Path) -> None:
    path = tmp_path / "a.pt"
    with atomic_write(path, "wb", per_process=True) as f:
        assert Path(f.name).name.startswith(".a.pt.") and f.name.endswith(".tmp")
        f.write(b"new\n")
    assert path.read_bytes() == b"new\n" and [p.name for p in tmp_path.iterdir()] == ["a.pt"]
