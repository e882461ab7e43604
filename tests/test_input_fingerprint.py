"""Input fingerprints at scale (issue 20): gs:// trees are listed in pages, never one request
per object; local trees are walked cheaply, yet every added, removed or rewritten file under
train/ or val/ still reruns what depends on it."""

import datetime
import math
import os

import pytest

from fixmatch import fs
from pipeline import cache, data_tasks
from tests.cache_fixture_tasks import ToyCount, read_count
from tests.test_data_tasks import assert_ok, build, write

PAGE = 1000  # objects per listing response (GCS's maximum and its client's default)


class FakeGcs:
    """A google.cloud.storage client over an in-memory bucket that counts its requests: one
    per listing page, one per object fetched on its own (which must never happen)."""

    class _Bucket:
        def __init__(self, name):
            self.name = name

    class _Blob:
        def __init__(self, bucket, name, size, updated):
            self.bucket, self.name, self.size, self.updated = bucket, name, size, updated

    def __init__(self, bucket):
        self.bucket_name = bucket
        self.objects = {}  # name -> (size, updated datetime)
        self.list_requests = 0

    def put(self, name, size, second=0):
        updated = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
        self.objects[name] = (size, updated + datetime.timedelta(seconds=second))

    def bucket(self, name):
        assert name == self.bucket_name
        return self._Bucket(name)

    def list_blobs(self, bucket, prefix="", **_):
        names = sorted(n for n in self.objects if n.startswith(prefix))
        for start in range(0, max(len(names), 1), PAGE):
            self.list_requests += 1
            for name in names[start:start + PAGE]:
                yield self._Blob(bucket, name, *self.objects[name])

    def __getattr__(self, name):  # get_blob, lookup_bucket, ...: a request per object
        raise AssertionError(f"per-object request {name}() during a listing")


@pytest.fixture
def fake_gcs(monkeypatch):
    gcsio = pytest.importorskip("apache_beam.io.gcp.gcsio")
    from apache_beam.io.gcp import gcsfilesystem
    client = FakeGcs("bkt")
    monkeypatch.setattr(gcsfilesystem.GCSFileSystem, "_gcsIO",
                        lambda self: gcsio.GcsIO(storage_client=client))

    # detect_layout looks at the top level through TF's gfile, which would go to the network:
    # answer it from the same bucket (two calls, whatever the size of the tree).
    def top_level(path):
        key = path[len("gs://bkt/"):].rstrip("/") + "/"
        return sorted({n[len(key):].split("/")[0] for n in client.objects if n.startswith(key)})

    monkeypatch.setattr(fs, "listdir", top_level)
    monkeypatch.setattr(fs, "isdir", lambda path: bool(top_level(path)))
    return client


def test_gcs_fingerprint_costs_one_request_per_page_not_per_object(fake_gcs):
    for i in range(2500):
        fake_gcs.put(f"inet/train/n{i % 7:08d}/n{i % 7:08d}_{i}.JPEG", 100 + i % 3)
    for i in range(120):
        fake_gcs.put(f"inet/val/n{i % 7:08d}/ILSVRC2012_val_{i:08d}.JPEG", 50)
    fake_gcs.put("inet/train/", 0)  # a console-made "folder" placeholder: not a file
    fake_gcs.put("inet/notes.txt", 9)  # outside train/ val/: not input

    def fingerprint():
        fake_gcs.list_requests = 0
        return data_tasks.listing_fingerprint("gs://bkt/inet/")

    first = fingerprint()
    assert first["layout"] == "image_folder"
    assert (first["files"], first["bytes"]) == (2620, sum(100 + i % 3 for i in range(2500))
                                               + 120 * 50)
    assert fake_gcs.list_requests == math.ceil(2500 / PAGE) + math.ceil(120 / PAGE)
    assert fingerprint() == first

    changes = [
        lambda: fake_gcs.put("inet/train/n00000000/n00000000_0.JPEG", 100, second=60),  # rewrite
        lambda: fake_gcs.put("inet/val/n00000001/ILSVRC2012_val_00000001.JPEG", 51),  # resize
        lambda: fake_gcs.put("inet/val/n00000002/extra.JPEG", 5),  # added
        lambda: fake_gcs.objects.pop("inet/train/n00000003/n00000003_3.JPEG"),  # removed
    ]
    seen = {first["sha256"]}
    for change in changes:
        change()
        seen.add(fingerprint()["sha256"])
    assert len(seen) == 1 + len(changes)


def _reference_lines(top, prefix):
    """The listing the fast walk must equal: os.walk + os.stat, sorted by whole path."""
    lines = []
    for dirpath, dirs, names in os.walk(top, followlinks=True):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            rel = os.path.relpath(os.path.join(dirpath, name), top).replace(os.sep, "/")
            lines.append(f"{prefix}{rel}\0{st.st_size}\0{st.st_mtime_ns}\n")
    return sorted(lines)


def test_local_listing_is_in_whole_path_order(tmp_path):
    top = tmp_path / "train"
    # "a.txt" < "a/x" as whole paths although the directory "a" sorts first among siblings.
    for rel in ("a/x.jpg", "a.txt", "a-b/y.jpg", "b/c/d.png", "B/e.JPEG", "é/f.jpg"):
        write(str(top / rel), rel.encode())
    os.symlink(top / "b", top / "linked")  # class folders may be links, as the split job sees
    lines = fs.listing_lines(str(top), prefix="train/")
    assert lines == _reference_lines(str(top), "train/")
    assert [line.split("\0")[0] for line in lines][:3] == ["train/B/e.JPEG", "train/a-b/y.jpg",
                                                           "train/a.txt"]
    assert fs.listing_lines(str(tmp_path / "absent")) == []
    assert [line.split("\0")[0] for line in fs.listing_lines(str(top), recursive=False)] == [
        "a.txt"]


@pytest.mark.parametrize("where", ["train", "val"])
def test_added_removed_rewritten_files_rerun_dependents(tmp_path, where):
    data = tmp_path / "data"
    for cls in ("cat", "dog"):
        for i in range(3):
            write(str(data / "train" / cls / f"{cls}{i}.JPEG"), b"x" * (10 + i))
            write(str(data / "val" / cls / f"v{cls}{i}.JPEG"), b"y" * (5 + i))
    root, counter = str(tmp_path / "runs"), str(tmp_path / "n")

    def runs():
        cache.refresh_fingerprints()  # a new `luigi` command: files are looked at afresh
        assert_ok(build(ToyCount(data_dir=str(data), counter=counter, root=root)))
        return len(read_count(counter))

    assert runs() == 1 and runs() == 1  # no change: no work
    victim = data / where / "dog" / ("dog1.JPEG" if where == "train" else "vdog1.JPEG")
    before = os.stat(victim)
    write(str(victim), b"z" * before.st_size)  # same size, new bytes: a new mtime
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert runs() == 2
    write(str(data / where / "cat" / "new.JPEG"))  # added
    assert runs() == 3
    os.remove(data / where / "cat" / ("cat0.JPEG" if where == "train" else "vcat0.JPEG"))
    assert runs() == 4  # removed
    assert runs() == 4
