"""The Beam transforms of the split job, run with TestPipeline + assert_that."""

import collections
import os

import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

import apache_beam as beam
from fixmatch.data import schema
from fixmatch.splitting import names, plan_transforms, recordio, sources, write_transforms
from fixtures.splitting_data import image_bytes, write_tree


def _pipeline():
    # FnApiRunner directly: the DirectRunner would first try to download Prism.
    return test_pipeline.TestPipeline(runner=FnApiRunner())


@pytest.fixture()
def folder_data(tmp_path):
    files = {f"train/cat/cat_{i}.jpg": image_bytes("rgb", i) for i in range(15)}
    files.update({f"train/dog/dog_{i}.JPEG": image_bytes("rgb", 50 + i) for i in range(25)})
    files.update({"train/dog/notes.txt": b"ignored", "val/dog/v1.png": image_bytes("png", 9)})
    write_tree(str(tmp_path), files)
    return str(tmp_path)


def test_plan_split_picks_stratified_fraction_per_class(folder_data):
    source = sources.inspect_source(folder_data)
    assert source.classes == ("cat", "dog")
    spec = names.parse_split_name("frac10.seed1")
    with _pipeline() as p:
        refs, _ = p | "Read" >> plan_transforms.ListInputs(source)
        planned = refs | "Plan" >> plan_transforms.PlanSplit(spec)
        per_class = (planned
                     | "LabeledFlag" >> beam.Map(
                         lambda e: ((e["set"], e["synset"]), int(e["lrank"] >= 0)))
                     | "SumLabeled" >> beam.CombinePerKey(sum))
        sizes = (planned
                 | "ClassOf" >> beam.Map(lambda e: (e["set"], e["synset"]))
                 | "CountClass" >> beam.combiners.Count.PerElement())
        assert_that(per_class, equal_to([(("train", "cat"), 2), (("train", "dog"), 3),
                                         (("validation", "dog"), 0)]), label="Labeled")
        assert_that(sizes, equal_to([(("train", "cat"), 15), (("train", "dog"), 25),
                                     (("validation", "dog"), 1)]), label="Sizes")


def _entry(path, name, label, lrank=-1, lshard=-1, synset="cat"):
    return {"set": "train", "label": label, "synset": synset, "name": name, "path": path,
            "offset": -1, "rel": name, "rank": 0, "lrank": lrank, "lshard": lshard}


def test_write_shard_converts_rejects_and_stages_labeled(tmp_path):
    kinds = ["rgb", "cmyk", "gray", "png", "truncated", "empty", "text"]
    files = {f"in/{k}.JPEG": image_bytes(k, i) for i, k in enumerate(kinds)}
    write_tree(str(tmp_path), files)
    entries = [_entry(str(tmp_path / "in" / f"{k}.JPEG"), f"{k}.JPEG", 0,
                      lrank=i, lshard=0) for i, k in enumerate(kinds)]
    out, work = str(tmp_path / "out"), str(tmp_path / "work")
    os.makedirs(out)
    layout = {schema.UNLABELED: {"shards": 1}, schema.LABELED: {"shards": 1}}
    with _pipeline() as p:
        result = (p
                  | beam.Create([((schema.UNLABELED, 0), entries)])
                  | beam.ParDo(write_transforms.WriteImageShard(out, work, layout)).with_outputs(
                      write_transforms.LABELED_INDEX, write_transforms.REJECTED, main="stats"))
        stats = result.stats | beam.Map(
            lambda s: (s["read"], s["written"], sorted(s["rejected"].items()),
                       sorted(s["converted"].items())))
        assert_that(stats, equal_to([(7, {"unlabeled": {"0": 4}},
                                      [("empty file", 1),
                                       ("not an image (no known image format)", 1),
                                       ("truncated or corrupt image", 1)],
                                      [("CMYK JPEG", 1), ("PNG data in a .JPEG file", 1),
                                       ("grayscale JPEG", 1)])]), label="Stats")
        rejected = result[write_transforms.REJECTED] | beam.Map(lambda r: r["file"])
        assert_that(rejected, equal_to(["truncated.JPEG", "empty.JPEG", "text.JPEG"]),
                    label="Rejected")
        index = result[write_transforms.LABELED_INDEX] | beam.Map(lambda kv: kv[0])
        assert_that(index, equal_to([0, 0, 0, 0]), label="LabeledIndex")
    shard = os.path.join(out, "unlabeled.tfrecord-00000-of-00001")
    records = [schema.parse_example(r) for _, r in recordio.scan_records(shard)]
    assert collections.Counter(r[schema.FILENAME] for r in records) == collections.Counter(
        ["rgb.JPEG", "cmyk.JPEG", "gray.JPEG", "png.JPEG"])
    assert all(r[schema.ENCODED][:2] == b"\xff\xd8" for r in records)
    assert not os.listdir(os.path.join(work, "tmp"))  # every temp file was renamed into place
