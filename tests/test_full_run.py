"""FullRun end to end through the `luigi` command and its real scheduler, on a tiny demo.

Demo data -> split -> both trainings -> both evaluations -> report + FixMatch export, with the
smoke preset; then the same command again (everything cached: only the table is printed), a
single stage alone (reuses the cache), and the export used by the predict program.
"""

import datetime
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = '{"image_size": 32, "train_per_class": 8, "val_per_class": 3, "num_classes": 3}'


def luigi(root, *args):
    cmd = [sys.executable, "-m", "luigi", "--module", "pipeline", *args, "--local-scheduler",
           "--root", str(root), "--preset", "smoke", "--demo", DEMO, "--split", "frac50.seed1"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    return root, luigi(root, "FullRun", "--workers", "2")  # the two trainings side by side


def test_full_run_builds_every_stage_and_prints_the_table(full_run):
    root, proc = full_run
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| run | top-1 | top-5 | labeled |" in proc.stdout
    assert "| supervised |" in proc.stdout and "| fixmatch |" in proc.stdout
    for stage in ("demo_data", "prepare_splits", "train_supervised", "train_fixmatch",
                  "evaluate", "export", "report"):
        published = [d for d in glob.glob(str(root / stage / "*"))
                     if os.path.exists(os.path.join(d, "manifest.json"))]
        assert len(published) == (2 if stage == "evaluate" else 1), stage
    # --workers 2: the two trainings (independent tasks) ran at the same time.
    spans = []
    for stage in ("train_supervised", "train_fixmatch"):
        (manifest,) = glob.glob(str(root / stage / "*" / "manifest.json"))
        m = json.load(open(manifest))
        start = datetime.datetime.fromisoformat(m["created"]).timestamp()
        spans.append((start, start + m["wall_seconds"]))
    # Overlap of the two runs (starts are whole seconds, so up to 1 s early): run one after
    # the other they would overlap by at most that second.
    assert min(e for _, e in spans) - max(s for s, _ in spans) > 1.5, spans
    (report_dir,) = glob.glob(str(root / "report" / "*" / "report.json"))
    report = json.load(open(report_dir))
    runs = report["runs"]
    assert runs["fixmatch"]["num_unlabeled"] == 24 and runs["supervised"]["num_labeled"] == 12
    assert runs["fixmatch"]["mask_rate"] is not None and runs["supervised"]["mask_rate"] is None
    assert report["fixmatch_minus_supervised_top1"] == pytest.approx(
        runs["fixmatch"]["top1"] - runs["supervised"]["top1"])
    out = os.path.dirname(report_dir)
    for png in ("top1.png", "per_class.png"):
        with open(os.path.join(out, png), "rb") as f:
            assert f.read(4) == b"\x89PNG"
    md = open(os.path.join(out, "report.md")).read()
    assert "| supervised |" in md and "## Per class" in md
    assert len(report["per_class"]["fixmatch"]) == 3  # the tiny split's classes


def test_rerun_and_single_stages_reuse_the_cache(full_run):
    root, first = full_run
    assert first.returncode == 0
    again = luigi(root, "FullRun")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "| fixmatch |" in again.stdout  # printed although nothing ran
    assert "ran successfully" not in again.stdout + again.stderr
    # One stage alone, with FullRun's flags: FullRun's outputs, nothing runs.
    alone = luigi(root, "EvaluateSupervised")
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "ran successfully" not in alone.stdout + alone.stderr
    assert "complete ones were encountered" in alone.stdout + alone.stderr


def test_tensorboard_lists_each_training_once_by_name(full_run):
    """`tensorboard --logdir ROOT` shows a run per directory holding event files: exactly one
    per training (none left in the work dirs), named program-split-preset-fingerprint, and the
    report names the runs the same way."""
    root, proc = full_run
    assert proc.returncode == 0
    event_dirs = sorted({os.path.relpath(os.path.dirname(p), root) for p in glob.glob(
        str(root / "**" / "events.out.tfevents.*"), recursive=True)})
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    tensorboard = plugin_event_multiplexer.EventMultiplexer()  # the runs TensorBoard lists
    tensorboard.AddRunsFromDirectory(str(root))
    assert sorted(tensorboard.Runs()) == event_dirs
    names = []
    for program in ("supervised", "fixmatch"):
        (out,) = glob.glob(str(root / f"train_{program}" / "*" / "manifest.json"))
        fingerprint = os.path.basename(os.path.dirname(out))
        names.append(f"{program}-frac50.seed1-smoke-{fingerprint[:8]}")
        assert json.load(open(out))["result"]["run_name"] == names[-1]
    assert event_dirs == sorted(f"tensorboard/{n}" for n in names), event_dirs
    assert not glob.glob(str(root / "*" / "*.work"))
    (report_json,) = glob.glob(str(root / "report" / "*" / "report.json"))
    runs = json.load(open(report_json))["runs"]
    assert [runs[p]["name"] for p in ("supervised", "fixmatch")] == names
    report_md = open(os.path.join(os.path.dirname(report_json), "report.md")).read()
    for program, name in zip(("supervised", "fixmatch"), names):
        assert runs[program]["hparams"]["model.name"] == "resnet_tiny"
        assert f"| {program} | {name} | `{runs[program]['fingerprint']}` |" in report_md
        assert f"{program}: {name}" in proc.stdout
    assert runs["fixmatch"]["hparams"]["uratio"] == 2
    # Each confusion matrix is titled with the run it evaluates (the PNG's Title chunk).
    from PIL import Image
    titles = sorted(Image.open(p).info["Title"]
                    for p in glob.glob(str(root / "evaluate" / "*" / "confusion.png")))
    assert titles == sorted(f"{n}: resnet_tiny, ema weights" for n in names), titles
    assert runs["supervised"]["hparams"]["uratio"] is None


def test_the_exported_model_classifies_demo_images(full_run):
    root, proc = full_run
    assert proc.returncode == 0
    (export_dir,) = [os.path.dirname(p) for p in glob.glob(str(root / "export" / "*" / "export.json"))]
    images = sorted(glob.glob(str(root / "demo_data" / "*" / "val" / "*" / "*.JPEG")))[:2]
    pred = subprocess.run([sys.executable, "-m", "stages.predict", "--model", export_dir,
                           "--json", *images], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert pred.returncode == 0, pred.stderr[-3000:]
    results = [json.loads(line) for line in pred.stdout.splitlines()]
    assert [r["file"] for r in results] == images
    # What the FixMatch evaluation gave the same files (the split keeps valid JPEGs byte for
    # byte), class by class.
    (evaluated,) = [os.path.dirname(p) for p in
                    glob.glob(str(root / "evaluate" / "*" / "evaluation.json"))
                    if "train_fixmatch" in json.load(open(p))["model"]]
    classes = json.load(open(os.path.join(evaluated, "evaluation.json")))["classes"]
    preds = np.load(os.path.join(evaluated, "predictions.npz"))
    row = {os.path.basename(name): i for i, name in enumerate(preds["filenames"])}
    for r in results:
        expected = preds["probabilities"][row[os.path.basename(r["file"])]]
        shown = {t["class"]: t["probability"] for t in r["top"]}
        assert shown.keys() == set(classes), r
        np.testing.assert_allclose([shown[c] for c in classes], expected, atol=1e-4)
