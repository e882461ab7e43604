"""End to end: stages.prepare_splits on a tiny ImageNet-style fixture (real Beam runs)."""

import glob
import io
import json
import os

import pytest
from PIL import Image

from fixmatch import split_lists
from fixmatch.data import schema
from fixmatch.splitting import layout, recordio, sources
from fixtures.splitting_data import image_bytes, imagenet_fixture, write_tree
from stages import prepare_splits

ONE_WORKER = ["--direct_num_workers=1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("imagenet"))
    return root, imagenet_fixture(root)


@pytest.fixture(scope="module")
def frac_split(data, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("frac") / "split")
    manifest = prepare_splits.run(input=data[0], output=out, split="frac10.seed1",
                                  beam_args=ONE_WORKER)
    return out, manifest


def read_set(split_dir, set_name):
    paths = sorted(glob.glob(schema.shard_glob(split_dir, set_name)))
    assert paths, f"no {set_name} shards in {split_dir}"
    return [schema.parse_example(r) for p in paths for _, r in recordio.scan_records(p)]


def test_frac_split_counts_labels_and_files(data, frac_split):
    _, info = data
    out, manifest = frac_split
    bad = info["bad"]
    good_bad = {n for n, k in bad.items() if k not in ("truncated", "empty", "text")}
    classes = open(os.path.join(out, "classes.txt")).read().split()
    assert classes == info["classes"]
    unlabeled, labeled = read_set(out, "unlabeled"), read_set(out, "labeled")
    validation = read_set(out, "validation")
    expected_train = {n for c in info["classes"][:3] for n in info["train"][c]} | good_bad
    assert {r[schema.FILENAME] for r in unlabeled} == expected_train
    assert len(unlabeled) == len(expected_train) == 75 + 5
    assert len(validation) == 7
    assert manifest["counts"] == {"labeled": len(labeled), "unlabeled": 80, "validation": 7}
    # stratified 10% of 15 / 25 / 35 images, round half up: 2 / 3 / 4
    per_class = manifest["counts_per_class"]["labeled"]
    assert [per_class[c] for c in info["classes"][:3]] == [2, 3, 4]
    assert per_class.get(info["classes"][3], 0) <= 1  # 10% of 8 -> 1, unless it was rejected
    assert {r[schema.FILENAME] for r in labeled} <= {r[schema.FILENAME] for r in unlabeled}
    for record in unlabeled + labeled + validation:
        assert record[schema.LABEL] == classes.index(record[schema.SYNSET])  # 0-based
        im = Image.open(io.BytesIO(record[schema.ENCODED]))
        assert (im.format, im.mode) == ("JPEG", "RGB")
        assert (record[schema.HEIGHT], record[schema.WIDTH]) == (im.height, im.width)
    assert manifest["shards"] == {"labeled": 1, "unlabeled": 1, "validation": 1}
    assert os.path.exists(os.path.join(out, "unlabeled.tfrecord-00000-of-00001"))
    assert not os.path.exists(os.path.join(out, prepare_splits.WORK))


def test_bad_files_are_rejected_or_converted_with_reasons(data, frac_split):
    _, info = data
    out, manifest = frac_split
    rejected = [json.loads(line) for line in open(os.path.join(out, "rejected.jsonl"))]
    by_name = {os.path.basename(r["file"]): r["reason"] for r in rejected}
    kinds = {info["bad"][name]: reason for name, reason in by_name.items()}
    assert kinds == {"empty": "empty file", "text": "not an image (no known image format)",
                     "truncated": "truncated or corrupt image"}
    assert manifest["rejected"]["count"] == 3
    assert manifest["converted"] == {"count": 5, "reasons": {
        "CMYK JPEG": 1, "PNG data in a .JPEG file": 1, "PNG file": 1, "grayscale JPEG": 2}}
    assert manifest["images_read"] == 83 + 7
    assert manifest["beam_counters"] == {
        "images_converted": 5, "images_read": 90, "images_rejected": 3,
        "images_written": 87, "labeled_written": manifest["counts"]["labeled"]}


def test_membership_is_identical_with_two_worker_processes(data, frac_split, tmp_path):
    out1, manifest1 = frac_split
    out2 = str(tmp_path / "split")
    manifest2 = prepare_splits.run(
        input=data[0], output=out2, split="frac10.seed1",
        beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert manifest2["runner"] == {"runner": "FnApiRunner", "workers": 2,
                                   "mode": "multi_processing"}
    for key in ("counts", "counts_per_class", "shards", "source_fingerprint"):
        assert manifest2[key] == manifest1[key]
    for set_name in schema.SETS:  # same records, same order, same bytes
        for p1 in glob.glob(schema.shard_glob(out1, set_name)):
            p2 = os.path.join(out2, os.path.basename(p1))
            assert open(p1, "rb").read() == open(p2, "rb").read()


@pytest.mark.parametrize("split,key,list_file", [
    ("simclr_1pct", "one", "imagenet_subsets/1percent.txt"),
    ("simclr_10pct", "ten", "imagenet_subsets/10percent.txt"),
    ("imagenet128116.1", "fold", "fixmatch_splits/files2shards_train_size128116_split1.txt")])
def test_named_lists_select_exactly_their_files(data, tmp_path, split, key, list_file):
    root, info = data
    out = str(tmp_path / "split")
    # through the CLI entry point: unknown flags (--direct_num_workers) go to Beam
    assert prepare_splits.main(["prepare_splits", f"--input={root}", f"--output={out}",
                                f"--split={split}", "--allow_missing", *ONE_WORKER]) == 0
    manifest = json.load(open(os.path.join(out, "split.json")))
    assert info[key] and {r[schema.FILENAME] for r in read_set(out, "labeled")} == info[key]
    assert manifest["list_sha256"] == split_lists.LISTS[list_file][0]
    assert manifest["split"] == split.replace("imagenet128116", "fixmatch_10pct")
    assert manifest["list_coverage"]["matched"] == len(info[key])


def test_list_entries_missing_from_input_are_an_error(data, tmp_path):
    out = str(tmp_path / "split")
    with pytest.raises(layout.SplitError,
                       match=r"of 12811 entries .*n0\d+_\d+\.JPEG.*allow_missing"):
        prepare_splits.run(input=data[0], output=out, split="simclr_1pct", beam_args=ONE_WORKER)
    assert not os.path.exists(os.path.join(out, "split.json"))


def _tiny_folders(root, extra):
    files = {f"train/a/a{i}.jpg": image_bytes("rgb", i, size=16) for i in range(3)}
    files.update({"val/a/v.jpg": image_bytes("rgb", 9, size=16)})
    files.update(extra)
    write_tree(root, files)
    return root


@pytest.mark.parametrize("make,match", [
    (lambda d: os.path.join(d, "nope"), "does not exist"),
    (lambda d: _tiny_folders(d, {"train/b/readme.txt": b"x"}), r"empty class folder.*\['b'\]"),
    (lambda d: _tiny_folders(d, {"val/zebra/z.jpg": image_bytes("rgb", 1)}),
     r"validation class.*\['zebra'\]"),
    (lambda d: _tiny_folders(d, {}) and os.rename(os.path.join(d, "val"), os.path.join(d, "v")),
     "no val/ or validation/"),
])
def test_bad_input_is_a_clear_error_before_the_job(tmp_path, make, match):
    data_dir = make(str(tmp_path / "data"))
    out = str(tmp_path / "out")
    with pytest.raises(sources.SourceError, match=match):
        prepare_splits.run(input=data_dir or str(tmp_path / "data"), output=out,
                           split="frac10.seed1", beam_args=ONE_WORKER)
    assert not os.path.exists(out)


def test_a_finished_split_is_not_overwritten(data, frac_split):
    with pytest.raises(layout.SplitError, match="already holds a finished split"):
        prepare_splits.run(input=data[0], output=frac_split[0], split="full")


def _example(name, label, synset, encoded):
    import tensorflow as tf

    def b(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    feature = {"image/encoded": b(encoded), "image/filename": b(name.encode()),
               "image/class/synset": b(synset.encode()), "image/format": b(b"JPEG")}
    if label is not None:
        feature["image/class/label"] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[label]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_imagenet_to_gcs_tfrecords_get_zero_based_labels(tmp_path):
    # label order deliberately not alphabetical: classes.txt must follow the labels
    synsets = {1: "n03000000", 2: "n01000000", 3: "n02000000"}
    root = tmp_path / "tfr"
    root.mkdir()
    seed = 0
    for shard in range(2):
        with open(root / f"train-{shard:05d}-of-00002", "wb") as f:
            for label, synset in synsets.items():
                for i in range(3):
                    seed += 1
                    recordio.write_record(f, _example(f"{synset}_{shard}{i}.JPEG", label, synset,
                                                      image_bytes("rgb", seed, size=16)))
            if shard == 1:
                recordio.write_record(f, _example("nolabel.JPEG", None, "n0", b"x"))
    with open(root / "validation-00000-of-00001", "wb") as f:
        for label, synset in synsets.items():
            recordio.write_record(f, _example(f"val_{label}.JPEG", label, synset,
                                              image_bytes("gray", label, size=16)))
    out = str(tmp_path / "split")
    manifest = prepare_splits.run(input=str(root), output=out, split="full", beam_args=ONE_WORKER)
    assert open(os.path.join(out, "classes.txt")).read().split() == list(synsets.values())
    assert manifest["input_format"] == "tfrecord"
    assert manifest["counts"] == {"labeled": 18, "unlabeled": 18, "validation": 3}
    assert manifest["converted"]["reasons"] == {"grayscale JPEG": 3}
    assert manifest["rejected"] == {
        "count": 1, "reasons": {"record without image/filename or image/class/label": 1}}
    for record in read_set(out, "unlabeled") + read_set(out, "validation"):
        assert synsets[record[schema.LABEL] + 1] == record[schema.SYNSET]


def test_shards_are_balanced_class_mixed_and_shuffled(tmp_path, monkeypatch):
    from fixmatch.splitting import shards
    monkeypatch.setattr(shards, "MIN_PER_SHARD", 8)  # 60 images -> 8 shards of 7-8
    files = {f"train/{c}/{c}_{i}.JPEG": image_bytes("rgb", 100 * j + i, size=16)
             for j, c in enumerate(("a", "b", "c")) for i in range(20)}
    files.update({f"val/{c}/v_{c}.JPEG": image_bytes("rgb", j, size=16)
                  for j, c in enumerate(("a", "b", "c"))})
    write_tree(str(tmp_path / "data"), files)
    out = str(tmp_path / "split")
    manifest = prepare_splits.run(input=str(tmp_path / "data"), output=out, split="full",
                                  beam_args=ONE_WORKER)
    assert manifest["shards"]["unlabeled"] == 8
    paths = sorted(glob.glob(schema.shard_glob(out, "unlabeled")))
    assert [os.path.basename(p) for p in paths] == [
        f"unlabeled.tfrecord-{i:05d}-of-00008" for i in range(8)]
    per_shard = [[schema.parse_example(r) for _, r in recordio.scan_records(p)] for p in paths]
    sizes = [len(s) for s in per_shard]
    assert sum(sizes) == 60 and max(sizes) - min(sizes) <= 1
    for records in per_shard:  # every shard holds every class, not in class order
        labels = [r[schema.LABEL] for r in records]
        assert set(labels) == {0, 1, 2}
    all_labels = [r[schema.LABEL] for s in per_shard for r in s]
    assert all_labels != sorted(all_labels)
