"""Data-input tasks (pipeline/data_tasks.py): ImageFolder fingerprints, errors, DemoData."""

import os
import subprocess
import sys
import time

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

from pipeline import cache, data_tasks
from pipeline.data_tasks import DataDirError, DemoData, ImageFolder
from tests.cache_fixture_tasks import ToyCount, read_count

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_DEMO = {"image_size": 16, "train_per_class": 2, "val_per_class": 1, "num_classes": 2}


def build(*tasks):
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True,
                       log_level="WARNING")


def assert_ok(result):
    assert result.scheduling_succeeded, result.summary_text
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text


def write(path, data=b"jpeg-ish bytes"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def folder(tmp_path):
    data = tmp_path / "data"
    write(str(data / "train" / "cat" / "c1.JPEG"), b"aaaa")
    write(str(data / "train" / "dog" / "d1.jpg"), b"bbbbbb")
    write(str(data / "val" / "cat" / "c2.png"), b"cc")
    return str(data)


def fingerprint_now(data_dir, root):
    cache.refresh_fingerprints()  # the files changed in this process: forget the snapshots
    return ImageFolder(data_dir=data_dir, root=root).fingerprint


def test_changed_input_file_reruns_downstream_unchanged_does_not(folder, tmp_path):
    root, counter = str(tmp_path / "runs"), str(tmp_path / "n")

    def run_count():
        cache.refresh_fingerprints()
        task = ToyCount(data_dir=folder, counter=counter, root=root)
        assert_ok(build(task))
        return len(read_count(counter)), task

    runs, task = run_count()
    assert runs == 1 and task.manifest()["result"] == {"train_files": 2}
    assert task.manifest()["upstream"] == ImageFolder(data_dir=folder, root=root).fingerprint
    assert run_count()[0] == 1  # nothing changed: no work

    victim = os.path.join(folder, "train", "cat", "c1.JPEG")
    before = os.stat(victim)
    write(victim, b"AAAA")  # same size, new content: seen through the new mtime
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert run_count()[0] == 2
    write(victim, b"AAAAA")  # size changes
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert run_count()[0] == 3
    write(os.path.join(folder, "train", "dog", "d2.jpeg"))  # a new file
    runs, task = run_count()
    assert runs == 4 and task.manifest()["result"] == {"train_files": 3}
    assert run_count()[0] == 4
    assert len(os.listdir(os.path.join(root, "toy_count"))) == 4 * 2  # 4 outputs + 4 locks


def test_listing_fingerprint_contract(folder, tmp_path):
    listing = data_tasks.listing_fingerprint(folder)
    assert listing["layout"] == "image_folder" and listing["files"] == 3
    assert listing["bytes"] == 4 + 6 + 2
    before = fingerprint_now(folder, str(tmp_path))
    write(os.path.join(folder, "notes.txt"))  # outside train/ val/ validation/: not input
    assert fingerprint_now(folder, str(tmp_path)) == before
    moved = str(tmp_path / "moved")
    os.rename(folder, moved)  # same files, sizes and mtimes at another path: same data
    assert fingerprint_now(moved, str(tmp_path / "elsewhere")) == before
    assert ImageFolder(data_dir=moved).out_dir == moved


def test_tfrecord_layout_is_valid_input(tmp_path):
    data = tmp_path / "tfrecords"
    for name in ("train-00000-of-00002", "train-00001-of-00002", "validation-00000-of-00001"):
        write(str(data / name), b"x" * 10)
    write(str(data / "README"))
    listing = data_tasks.listing_fingerprint(str(data))
    assert listing == {**listing, "layout": "tfrecord", "files": 3, "bytes": 30}
    assert ImageFolder(data_dir=str(data)).complete()


def test_bad_data_dir_errors_name_the_path_and_the_fix(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(DataDirError, match="nope.*does not exist"):
        data_tasks.detect_layout(missing)
    empty = tmp_path / "empty"
    write(str(empty / "images" / "a.jpg"))
    with pytest.raises(DataDirError, match=r"no train/ folder.*contains: images"):
        data_tasks.detect_layout(str(empty))
    with pytest.raises(DataDirError, match="nope"):
        data_tasks.data_source(ToyCount(root=str(tmp_path)), missing)

    assert not ImageFolder(data_dir=missing).complete()
    result = build(ImageFolder(data_dir=missing, root=str(tmp_path)))
    assert result.status == LuigiStatusCode.FAILED, result.summary_text
    result = build(ToyCount(data_dir=missing, root=str(tmp_path)))
    assert not result.scheduling_succeeded  # requires() refused it before any work
    assert not os.path.exists(tmp_path / "toy_count")


def test_data_source_picks_demo_or_folder_on_the_same_root(folder, tmp_path):
    task = ToyCount(root=str(tmp_path / "r"))
    demo = data_tasks.data_source(task, "", seed=3, image_size=32)
    assert isinstance(demo, DemoData) and demo.root == task.root
    assert (demo.seed, demo.image_size, demo.train_per_class) == (3, 32, 300)
    given = data_tasks.data_source(task, folder, seed=3)  # demo settings unused with data
    assert isinstance(given, ImageFolder) and given.root == task.root
    assert given.data_dir == folder


def test_remote_image_folder_listing():
    gfile = pytest.importorskip("tensorflow").io.gfile
    data = f"ram://data-test-{os.getpid()}/imgs"
    for rel, size in (("train/a/1.jpg", 3), ("train/b/2.jpg", 4), ("validation/a/3.jpg", 5)):
        gfile.makedirs(f"{data}/{rel.rsplit('/', 1)[0]}")
        cache.write_text(f"{data}/{rel}", "x" * size)
    listing = data_tasks.listing_fingerprint(data + "/")
    assert (listing["layout"], listing["files"], listing["bytes"]) == ("image_folder", 3, 12)
    gfile.remove(f"{data}/train/a/1.jpg")  # ram:// does not truncate on rewrite; GCS does
    cache.write_text(f"{data}/train/a/1.jpg", "xxxx")
    changed = data_tasks.listing_fingerprint(data)
    assert changed["bytes"] == 13 and changed["sha256"] != listing["sha256"]
    with pytest.raises(DataDirError, match="ram://.*missing"):
        data_tasks.detect_layout(f"ram://data-test-{os.getpid()}/missing")


def test_demo_data_task_publishes_an_image_folder_and_reruns_nothing(tmp_path):
    root = str(tmp_path / "runs")
    task = DemoData(root=root, **TINY_DEMO)
    assert_ok(build(task))
    out = task.out_dir
    assert sorted(os.listdir(os.path.join(out, "train"))) == ["circle", "ring"]
    assert len(os.listdir(os.path.join(out, "train", "circle"))) == 2
    assert len(os.listdir(os.path.join(out, "val", "ring"))) == 1
    manifest = task.manifest()
    assert manifest["result"]["totals"] == {"train": 4, "val": 2}
    assert manifest["params"] == {"seed": 0, **TINY_DEMO}
    assert data_tasks.detect_layout(out) == "image_folder"
    assert DemoData(root=root, seed=1, **TINY_DEMO).fingerprint != task.fingerprint

    counter = str(tmp_path / "n")
    assert_ok(build(ToyCount(counter=counter, root=root)))  # demo data already there
    assert len(read_count(counter)) == 1
    assert ToyCount(root=root).manifest()["upstream"] == task.fingerprint


def test_cli_demo_data_and_no_change_rerun(tmp_path):
    root = str(tmp_path / "cli")
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", "DemoData", "--local-scheduler",
           "--root", root, "--image-size", "16", "--train-per-class", "2", "--val-per-class",
           "1", "--num-classes", "2"]
    env = dict(os.environ, PYTHONPATH=REPO)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        seconds.append(time.perf_counter() - start)
        assert out.returncode == 0, out.stderr[-3000:]
    print(f"\nluigi CLI DemoData: first run {seconds[0]:.2f} s, no-change rerun {seconds[1]:.2f} s")
    assert "complete ones were encountered" in out.stderr or "already done" in out.stderr, \
        out.stderr[-3000:]
    task = DemoData(root=root, **TINY_DEMO)
    assert task.complete()
    assert len(os.listdir(os.path.join(root, "demo_data"))) == 2  # <fp>/ and <fp>.lock
