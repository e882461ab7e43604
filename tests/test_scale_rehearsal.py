"""The chain at ImageNet's shape, in miniature: 1,000 synset folders of real ImageNet file
names (bench/imagenet_tree.py), the reference's named-list splits with --allow-missing, and
FullRun with the `imagenet` preset (ResNet-50 at 224 px) capped at two steps."""

import argparse
import glob
import json
import os
import subprocess
import sys

import pytest

from bench import imagenet_tree, scale
from fixmatch import split_lists
from fixmatch.splitting import names as split_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_PER_CLASS, VAL_PER_CLASS = 3, 1


def test_tree_has_imagenet_shape_and_nests_across_fractions():
    train, val = imagenet_tree.full_listing()
    assert len(train) == 1000 and sum(len(v) for v in train.values()) == 1_281_167
    assert len(val) == 50_000 and len({s for _, s in val}) == 1000
    listed = imagenet_tree._listed_names()
    assert listed <= {n for names in train.values() for n in names}
    small = [n for n in listed if imagenet_tree.keep(n, 0.01)]
    assert 0.008 < len(small) / len(listed) < 0.012
    assert set(small) <= {n for n in listed if imagenet_tree.keep(n, 0.1)}


def test_tree_is_built_once_and_its_counts_reread(tmp_path):
    first = imagenet_tree.build(str(tmp_path), 1.0, max_per_class=1, max_val_per_class=1,
                                progress=False)
    assert (first["train"], first["val"]) == (1000, 1000)
    again = imagenet_tree.build(str(tmp_path), 1.0, max_per_class=1, max_val_per_class=1,
                                progress=False)
    assert again == dict(first, reused=True)  # numbers, not the marker's strings
    with pytest.raises(SystemExit, match="other settings"):
        imagenet_tree.build(str(tmp_path), 1.0, max_per_class=2, progress=False)


def luigi(*args):
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", *args, "--local-scheduler"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def published(root, stage):
    return [os.path.dirname(m) for m in glob.glob(os.path.join(root, stage, "*",
                                                                "manifest.json"))]


@pytest.mark.slow
def test_full_run_at_imagenet_shape(tmp_path):
    data, root = str(tmp_path / "inet"), str(tmp_path / "runs")
    counts = imagenet_tree.build(data, 1.0, max_per_class=TRAIN_PER_CLASS,
                                 max_val_per_class=VAL_PER_CLASS, progress=False)
    assert (counts["train"], counts["val"]) == (3000, 1000)
    present = set(os.listdir(os.path.join(data, "train", "n01440764")))
    args = argparse.Namespace(fraction=0.5, steps=2, batch=1, eval_batch=50,
                              train_eval=20)  # a fraction below 1: --allow-missing
    chain = scale.chain_flags(args, data, root) + scale.FIXMATCH_FLAGS
    assert "--allow-missing" in chain

    for split in scale.SPLITS:  # each named list: exactly the listed images the tree holds
        luigi("PrepareSplits", "--root", root, "--data-dir", data, "--split", split,
              "--allow-missing")
    full = luigi("FullRun", *chain)
    assert "| fixmatch |" in full.stdout

    files = {}
    for name in scale.SPLITS:
        lines = split_lists.read_lines(split_names.NAMED_LISTS[name])
        files[name] = {line.split(",")[0] for line in lines}
    tree = {n for _, _, names in os.walk(os.path.join(data, "train")) for n in names}
    labeled = {}
    for out in published(root, "prepare_splits"):
        split = json.load(open(os.path.join(out, "split.json")))
        labeled[split["split"]] = split
    for name in scale.SPLITS:
        want = len(files[name] & tree)
        assert want >= 1000 and labeled[name]["counts"]["labeled"] == want, name
        assert labeled[name]["counts"]["unlabeled"] == 3000
        assert labeled[name]["counts"]["validation"] == 1000
    assert present  # the first class folder kept images of the lists

    for program in ("supervised", "fixmatch"):  # run.eval_examples capped the training's eval
        (out,) = published(root, f"train_{program}")
        final = [json.loads(line) for line in open(os.path.join(out, "history.jsonl"))][-1]
        assert final["test"]["count"] == 20, final
    evaluations = [json.load(open(os.path.join(out, "evaluation.json")))
                   for out in published(root, "evaluate")]
    assert len(evaluations) == 2
    for result in evaluations:
        assert result["count"] == 1000 and len(result["per_class_accuracy"]) == 1000
        assert result["model_name"] == "resnet50"
    (report,) = published(root, "report")
    assert os.path.getsize(os.path.join(report, "report.md")) < 20_000  # readable at 1,000

    again = luigi("FullRun", *chain)  # no change: nothing runs, the table is printed
    assert "| fixmatch |" in again.stdout
    assert "ran successfully" not in again.stdout + again.stderr
