"""Contracts of the demo data stage: layout, counts, valid JPEGs, determinism, errors, CLI."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fixmatch import demo_images
from stages import cli, demo_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(seed=3, image_size=24, train_per_class=4, val_per_class=2, num_classes=3)


def _files(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "data"
    return out, demo_data.run(out_dir=out, **TINY)


def test_layout_counts_and_summary(tiny):
    out, summary = tiny
    classes = list(demo_images.CLASSES[:3])
    assert summary["classes"] == classes
    assert summary["seed"] == 3 and summary["image_size"] == 24
    assert summary["counts"] == {"train": {c: 4 for c in classes}, "val": {c: 2 for c in classes}}
    assert summary["totals"] == {"train": 12, "val": 6}
    json.dumps(summary)  # JSON-able
    assert sorted(os.listdir(out)) == ["train", "val"]
    for split, count in (("train", 4), ("val", 2)):
        assert sorted(os.listdir(out / split)) == sorted(classes)
        for c in classes:
            assert sorted(os.listdir(out / split / c)) == sorted(f"{c}_{n}.JPEG" for n in range(count))


def test_files_are_rgb_jpegs_of_the_right_size(tiny):
    out, _ = tiny
    for rel, data in _files(out).items():
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "JPEG", rel
            assert im.mode == "RGB", rel
            assert im.size == (24, 24), rel
            im.load()  # decodes fully: not truncated
            assert not im.info.get("exif"), rel


def test_same_seed_is_byte_identical_other_seed_differs(tiny, tmp_path):
    out, _ = tiny
    demo_data.run(out_dir=tmp_path / "again", **TINY)
    assert _files(tmp_path / "again") == _files(out)
    other = dict(TINY, seed=4)
    demo_data.run(out_dir=tmp_path / "other", **other)
    a, b = _files(out), _files(tmp_path / "other")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)


def test_image_does_not_depend_on_order_or_set_size(tiny, tmp_path):
    """Per-image RNG: a bigger set with more classes repeats the smaller set's files exactly."""
    out, _ = tiny
    demo_data.run(out_dir=tmp_path / "big", **dict(TINY, train_per_class=6, num_classes=4))
    big, small = _files(tmp_path / "big"), _files(out)
    assert all(big[k] == v for k, v in small.items())
    direct = demo_images.make_jpeg(seed=3, split="val", class_index=1, index=1, image_size=24)
    assert small[os.path.join("val", demo_images.CLASSES[1], f"{demo_images.CLASSES[1]}_1.JPEG")] == direct


def test_images_are_distinct_and_not_blank(tiny):
    out, _ = tiny
    files = _files(out)
    assert len(set(files.values())) == len(files)
    pixels = [np.asarray(Image.open(io.BytesIO(v)), dtype=np.float32) for v in files.values()]
    for p in pixels:
        assert p.std() > 5.0  # not blank


def test_every_defined_class_draws(tmp_path):
    demo_data.run(out_dir=tmp_path / "all", seed=0, image_size=16, train_per_class=1,
                  val_per_class=1, num_classes=len(demo_images.CLASSES))
    for c in demo_images.CLASSES:
        assert os.listdir(tmp_path / "all" / "train" / c) == [f"{c}_0.JPEG"]


@pytest.mark.parametrize("kwargs, quoted", [
    (dict(num_classes=1), "num_classes must be between 2 and 10, got 1"),
    (dict(num_classes=11), "got 11"),
    (dict(image_size=15), "image_size must be >= 16, got 15"),
    (dict(train_per_class=0), "train_per_class must be >= 1, got 0"),
    (dict(val_per_class=-2), "val_per_class must be >= 1, got -2"),
    (dict(seed=-1), "seed must be >= 0, got -1"),
    (dict(image_size=32.5), "image_size must be an integer, got 32.5"),
    (dict(num_classes=True), "got True"),
])
def test_bad_arguments_raise_before_writing(tmp_path, kwargs, quoted):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=quoted.replace(".", r"\.")):
        demo_data.run(out_dir=out, **dict(TINY, **kwargs))
    assert not out.exists()


def test_refuses_non_empty_out_dir_but_accepts_empty(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(cli.StageError, match="exists and is not an empty directory"):
        demo_data.run(out_dir=tmp_path / "full", **TINY)
    assert os.listdir(tmp_path / "full") == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(cli.StageError, match="exists and is not an empty directory"):
        demo_data.run(out_dir=tmp_path / "file", **TINY)
    (tmp_path / "empty").mkdir()
    demo_data.run(out_dir=tmp_path / "empty", **TINY)
    assert sorted(os.listdir(tmp_path / "empty")) == ["train", "val"]


def test_failure_midway_leaves_no_partial_data(tmp_path, monkeypatch):
    calls = []

    def failing(**kw):
        calls.append(kw)
        if len(calls) == 5:
            raise RuntimeError("disk full")
        return b"jpeg"

    monkeypatch.setattr(demo_images, "make_jpeg", failing)
    (tmp_path / "given").mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        demo_data.run(out_dir=tmp_path / "given", **TINY)
    assert os.listdir(tmp_path / "given") == []  # caller's empty dir kept, emptied
    calls.clear()
    with pytest.raises(RuntimeError):
        demo_data.run(out_dir=tmp_path / "new", **TINY)
    assert not (tmp_path / "new").exists()


def test_progress_goes_to_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo_data, "PROGRESS_EVERY", 5)
    demo_data.run(out_dir=tmp_path / "p", **TINY)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("demo_data: 5/18 images")
    assert lines[-1].startswith("demo_data: 18/18 images")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stages.demo_data", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_generates_same_bytes_as_run(tiny, tmp_path):
    out, summary = tiny
    proc = _cli("--out", str(tmp_path / "cli"), "--seed", "3", "--image_size", "24",
                "--train_per_class", "4", "--val_per_class", "2", "--num_classes", "3")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == summary
    assert "demo_data: 18/18 images" in proc.stderr
    assert _files(tmp_path / "cli") == _files(out)


def test_cli_errors_and_help(tmp_path):
    proc = _cli("--out", str(tmp_path / "x"), "--num_classes", "12")
    assert proc.returncode == 2
    assert "num_classes must be between 2 and 10, got 12" in proc.stderr
    assert not (tmp_path / "x").exists()
    proc = _cli()
    assert proc.returncode != 0 and "--out" in proc.stderr
    proc = _cli("--help")  # absl prints the documented flags to stdout
    for flag in ("--out", "--seed", "--image_size", "--train_per_class", "--val_per_class",
                 "--num_classes"):
        assert flag in proc.stdout
