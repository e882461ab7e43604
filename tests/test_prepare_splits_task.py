"""pipeline.split_tasks.PrepareSplits on the real Luigi scheduler and the fingerprint cache."""

import glob
import os

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

from fixmatch.data import schema
from fixmatch.splitting import names
from fixtures.splitting_data import image_bytes, write_tree
from pipeline.data_tasks import DemoData
from pipeline.split_tasks import PrepareSplits

ONE_WORKER = "--direct_num_workers=1"
TINY_DEMO = {"image_size": 16, "train_per_class": 6, "val_per_class": 1, "num_classes": 2}


def build(task):
    result = luigi.build([task], local_scheduler=True, detailed_summary=True,
                         log_level="WARNING")
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text


@pytest.fixture()
def folder(tmp_path):
    files = {f"train/{c}/{c}_{i}.JPEG": image_bytes("rgb", 10 * j + i, size=16)
             for j, c in enumerate(("ant", "bee")) for i in range(10)}
    files.update({"val/ant/v0.JPEG": image_bytes("rgb", 99, size=16)})
    write_tree(str(tmp_path / "data"), files)
    return str(tmp_path / "data")


def test_prepare_splits_task_publishes_once_and_reuses_the_cache(folder, tmp_path):
    root = str(tmp_path / "runs")
    task = PrepareSplits(data_dir=folder, split="frac10.seed1", root=root, beam_args=ONE_WORKER)
    build(task)
    manifest = task.manifest()
    assert manifest["result"]["counts"] == {"labeled": 2, "unlabeled": 20, "validation": 1}
    assert glob.glob(schema.shard_glob(task.out_dir, "labeled"))
    assert open(os.path.join(task.out_dir, "classes.txt")).read().split() == ["ant", "bee"]
    mtime = os.path.getmtime(os.path.join(task.out_dir, "manifest.json"))
    # beam_args do not change results: same fingerprint, nothing reruns
    again = PrepareSplits(data_dir=folder, split="frac10.seed1", root=root,
                          beam_args="--direct_num_workers=2")
    assert again.fingerprint == task.fingerprint and again.complete()
    build(again)
    assert os.path.getmtime(os.path.join(task.out_dir, "manifest.json")) == mtime
    other = PrepareSplits(data_dir=folder, split="frac10.seed2", root=root)
    assert other.fingerprint != task.fingerprint


def test_alias_shares_the_cache_entry_and_bad_split_fails_early(folder, tmp_path):
    root = str(tmp_path / "runs")
    a = PrepareSplits(data_dir=folder, split="imagenet128116.2", root=root)
    b = PrepareSplits(data_dir=folder, split="fixmatch_10pct.2", root=root)
    assert a.fingerprint == b.fingerprint
    with pytest.raises(names.SplitNameError, match="frac10.seed"):
        PrepareSplits(data_dir=folder, split="frac10.seedx", root=root).fingerprint


def test_without_data_dir_the_demo_data_is_split(tmp_path):
    root = str(tmp_path / "runs")
    task = PrepareSplits(split="full", demo=TINY_DEMO, root=root, beam_args=ONE_WORKER)
    assert isinstance(task.requires(), DemoData)
    build(task)
    counts = task.manifest()["result"]["counts"]
    assert counts == {"labeled": 12, "unlabeled": 12, "validation": 2}
