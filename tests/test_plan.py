"""--plan of the training programs: the schedule's arithmetic, and nothing written anywhere.

The imagenet numbers are checked against the spec's arithmetic (section 3.3 and 7: an epoch is
N_labeled / B steps as a float, total = ceil(steps_per_epoch x num_epochs), warm-up and decays
at fractional epochs) for the reference's published 10% recipe, from the shipped list alone.
"""

import math
import os
import subprocess
import sys

import pytest

from fixtures.split_dirs import write_split
from fixmatch.train import planning
from stages import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = ('"augment": {"type": "randaugment"}, "num_epochs": 3000, '
          '"learning_rate": {"warmup_epochs": 50, "decay_epochs": 500}')


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "tiny", unlabeled_per_class=8)


def _cli(program, *args):
    return subprocess.run([sys.executable, "-m", f"stages.{program}", "--plan", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_reference_recipe_matches_the_arithmetic():
    info = training.plan("fixmatch", dataset="imagenet128116.1", preset="imagenet",
                         hparams=RECIPE, plan_steps=0)
    spe = 128116 / 128  # one replica of 128 labeled images (the preset's per-worker batch)
    total = math.ceil(spe * 3000)
    assert info["split"] == "fixmatch_10pct.1" and info["num_labeled"] == 128116
    assert info["steps_per_epoch"] == spe and info["total_steps"] == total == 3002719
    assert (info["labeled_per_step"], info["unlabeled_per_step"], info["images_per_step"]) == (
        128, 640, 128 * 11)
    assert info["image_passes"] == total * 1408 and round(info["image_passes"] / 1e9, 1) == 4.2
    assert info["warmup_end_step"] == math.ceil(50 * spe) == 50046
    assert [d["epoch"] for d in info["decays"]] == [500, 1000, 1500, 2000, 2500]
    assert [d["step"] for d in info["decays"]] == [math.ceil(e * spe)
                                                   for e in (500, 1000, 1500, 2000, 2500)]
    assert info["unlabeled_epochs"] == pytest.approx(total * 640 / 1281167)
    assert "seconds_per_image" not in info


def test_supervised_defaults_and_a_capped_run():
    info = training.plan("supervised", dataset="simclr_1pct", preset="imagenet", plan_steps=0)
    spe = 12811 / 128
    assert info["total_steps"] == math.ceil(spe * 300) and info["images_per_step"] == 128
    assert info["warmup_end_step"] == math.ceil(5 * spe)
    assert [d["epoch"] for d in info["decays"]] == [50, 100, 150, 200, 250]
    capped = training.plan("supervised", dataset="simclr_1pct", preset="imagenet", plan_steps=0,
                           hparams='"run": {"max_steps": 6000}')
    assert capped["total_steps"] == 6000 and [d["epoch"] for d in capped["decays"]] == [50]
    cosine = training.plan("supervised", dataset="simclr_1pct", preset="imagenet", plan_steps=0,
                           hparams='"learning_rate": {"schedule": "cosine"}')
    assert cosine["decays"] == [] and cosine["cosine"] and not info["cosine"]
    assert "every step (cosine" in planning.format_plan(cosine)


def test_plan_times_steps_and_writes_nothing(tmp_path, split_dir):
    model_dir = tmp_path / "fresh"
    model_dir.mkdir()
    before = sorted(os.listdir(split_dir))
    out = _cli("train_fixmatch", "--preset", "smoke", "--data", split_dir, "--model_dir",
               str(model_dir), "--plan_steps", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "plan of train_fixmatch on split tiny" in out.stdout
    assert "estimated wall time:" in out.stdout and "on THIS machine" in out.stdout
    # 8 x (1 + 2 x uratio 2) images per step
    assert "from the median of 2 timed steps of 40 synthetic images" in out.stdout
    assert os.listdir(model_dir) == [] and sorted(os.listdir(split_dir)) == before


def test_needs_no_data_for_a_named_split_but_refuses_what_a_run_would():
    out = _cli("train_fixmatch", "--preset", "imagenet", "--dataset", "fixmatch_10pct.1",
               "--hparams", RECIPE, "--plan_steps", "0")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "total image passes:       4,227,828,352" in out.stdout
    for args, needle in (
            ([], "FixMatch needs a strong augmentation"),  # the reference's defaults: noop
            (["--hparams", RECIPE, "--dataset", "frac10.seed1"], "pass --data"),
            (["--hparams", RECIPE, "--dataset", ""], "--plan needs --data"),
            (["--hparams", RECIPE, "--plan_steps", "-1"], "--plan_steps must be >= 0")):
        bad = _cli("train_fixmatch", "--dataset", "fixmatch_10pct.1", *args)
        assert bad.returncode == 2, (args, bad.stderr[-2000:])
        assert "train_fixmatch: error: " in bad.stderr and needle in bad.stderr, bad.stderr


def test_plan_program_plans_both_trainings_with_fullrun_overrides(split_dir):
    from stages import plan
    plans = plan.run(dataset="fixmatch_10pct.2", preset="imagenet", hparams='"num_epochs": 10',
                     fixmatch_hparams=RECIPE, plan_steps=0)
    spe = 128116 / 128
    assert plans["supervised"]["total_steps"] == math.ceil(spe * 10)  # --hparams
    assert plans["fixmatch"]["total_steps"] == 3002719  # --fixmatch_hparams on top of it
    out = subprocess.run([sys.executable, "-m", "stages.plan", "--data", split_dir, "--preset",
                          "smoke", "--plan_steps", "1"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "plan of train_supervised on split tiny" in out.stdout
    assert "images through the model: 8 per step" in out.stdout  # supervised: labeled only
    assert "plan of train_fixmatch on split tiny" in out.stdout
    assert "both trainings, one after the other:" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "stages.plan", "--dataset", "fixmatch_10pct.1",
                          "--preset", "imagenet", "--plan_steps", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "plan: error: " in bad.stderr
    assert "FixMatch needs a strong augmentation" in bad.stderr
