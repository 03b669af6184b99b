from __future__ import annotations

from pathlib import Path

import pytest

from radgazegen.io import atomic_dir, atomic_path, remove_leftovers, write_json_atomic


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_write_json_atomic_replaces_the_file(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "m.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "m.json").read_text().startswith('{\n  "a"')


def test_atomic_dir_replaces_a_folder_whole_and_cleans_what_a_killed_writer_left(tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    with atomic_dir(target) as staging:
        (staging / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as staging:
            (staging / "a.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert (target / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]
    # what a SIGKILL between the renames leaves: the old folder set aside, the new one staged, no target
    (tmp_path / ".dataset.1a2b3c4d.old").mkdir()
    (tmp_path / ".dataset.x1y2.staging").mkdir()
    with atomic_dir(target) as staging:
        (staging / "a.txt").write_text("new")
    assert (target / "a.txt").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_remove_leftovers_deletes_only_what_atomic_writes_leave(tmp_path: Path) -> None:
    keep = [tmp_path / "a.png", tmp_path / "sub" / ".hidden", tmp_path / "sub" / "x.tmp"]
    left = [tmp_path / ".a.png.k3j2.tmp.png", tmp_path / "sub" / ".m.json.abcd.tmp.json", tmp_path / ".final.q1.staging"]
    for path in keep + left[:2]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    left[2].mkdir()
    (left[2] / "unet").mkdir()
    assert sorted(remove_leftovers(tmp_path)) == sorted(left)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in left)
