"""evaluate -> export -> predict on a tiny trained run: the same predictions at every step.

One smoke supervised run (3 classes, 20 px JPEGs) is trained once for the module and published
as the Luigi task publishes it; the export is then reloaded in a fresh process.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fixmatch.data import schema
from fixmatch.evaluation import EvaluationError
from fixtures.split_dirs import CLASSES, write_split
from stages import cli, evaluate, export, train_supervised

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    split = write_split(base / "split")
    run_dir = base / "published"
    run_dir.mkdir()
    metrics = train_supervised.run(data=split, model_dir=str(base / "work"), preset="smoke",
                                   publish_dir=str(run_dir), log=lambda line: None)
    return split, str(run_dir), metrics


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    split, run_dir, _ = trained
    out = str(tmp_path_factory.mktemp("eval") / "out")
    return out, evaluate.run(model=run_dir, data=split, out=out)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    split, run_dir, _ = trained
    out = str(tmp_path_factory.mktemp("export") / "out")
    return out, export.run(model=run_dir, data=split, out=out)


def validation_images(split):
    """{file name: JPEG bytes} of the split's validation records."""
    import tensorflow as tf
    out = {}
    for path in tf.io.gfile.glob(schema.shard_glob(split, schema.VALIDATION)):
        for record in tf.data.TFRecordDataset(path):
            example = schema.parse_example(record.numpy())
            out[example[schema.FILENAME]] = example[schema.ENCODED]
    return out


def test_evaluation_agrees_with_the_training_engine(trained, evaluated):
    _, _, metrics = trained
    out, summary = evaluated
    facts = json.load(open(os.path.join(out, evaluate.EVALUATION_FILE)))
    # The same EMA weights through the same compiled evaluation as the engine's last block.
    assert facts["weights"] == "ema" and facts["top1"] == pytest.approx(metrics["top1"], abs=1e-6)
    assert facts["top5"] == pytest.approx(metrics["top5"], abs=1e-6) == 1.0  # 3 classes
    confusion = np.array(facts["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == 12 and confusion.sum(1).tolist() == [4] * 3
    assert facts["classes"] == CLASSES and len(facts["per_class_accuracy"]) == 3
    assert facts["per_class_accuracy"][0] == confusion[0, 0] / 4
    assert "confusion" not in summary and summary["top1"] == facts["top1"]
    preds = np.load(os.path.join(out, evaluate.PREDICTIONS_FILE))
    assert preds["probabilities"].shape == (12, 3) and len(set(preds["filenames"])) == 12
    np.testing.assert_allclose(preds["probabilities"].sum(1), 1.0, rtol=1e-5)
    with open(os.path.join(out, evaluate.CONFUSION_FILE), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_evaluate_refuses_bad_input(trained, tmp_path):
    split, run_dir, _ = trained
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(cli.StageError, match="not an empty directory"):
        evaluate.run(model=run_dir, data=split, out=str(tmp_path / "full"))
    with pytest.raises(EvaluationError, match="has no hparams.json"):
        evaluate.run(model=str(tmp_path), data=split, out=str(tmp_path / "o1"))
    other = write_split(tmp_path / "two_classes")
    with open(os.path.join(other, "classes.txt"), "a") as f:
        f.write("purple\n")
    with pytest.raises(EvaluationError, match="for 4 classes: was it trained on another split"):
        evaluate.run(model=run_dir, data=other, out=str(tmp_path / "o2"))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


_RELOAD = """
import json, sys
from fixmatch.export import load_classifier
images = json.load(open(sys.argv[2]))
out = load_classifier(sys.argv[1])([bytes.fromhex(h) for h in images.values()])
print(json.dumps({"names": list(images), "probabilities": out["probabilities"].tolist(),
                  "top5_classes": [[c.decode() for c in row] for row in out["top5_classes"]]}))
"""


def test_export_reloaded_in_a_fresh_process_gives_the_evaluation_predictions(
        trained, evaluated, exported, tmp_path):
    split, _, _ = trained
    out, facts = exported
    assert facts["signature"] == "serving_default" and facts["num_classes"] == 3
    assert open(os.path.join(out, "classes.txt")).read().split() == CLASSES
    images = validation_images(split)
    gray_png = io.BytesIO()
    Image.open(io.BytesIO(next(iter(images.values())))).convert("L").save(gray_png, "PNG")
    inputs = {name: data.hex() for name, data in images.items()}
    inputs["gray.png"] = gray_png.getvalue().hex()
    (tmp_path / "images.json").write_text(json.dumps(inputs))
    proc = subprocess.run([sys.executable, "-c", _RELOAD, os.path.join(out, "saved_model"),
                           str(tmp_path / "images.json")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=ROOT,
                                                           TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout)
    probs = dict(zip(served["names"], np.array(served["probabilities"])))
    preds = np.load(os.path.join(evaluated[0], evaluate.PREDICTIONS_FILE))
    for name, expected in zip(preds["filenames"], preds["probabilities"]):
        assert probs[name].argmax() == expected.argmax(), name
        np.testing.assert_allclose(probs[name], expected, atol=1e-4, err_msg=name)
    assert probs["gray.png"].shape == (3,)  # grayscale PNG: decoded, made RGB, classified
    assert all(set(row) == set(CLASSES) for row in served["top5_classes"])
    shown = subprocess.run(["saved_model_cli", "show", "--dir", os.path.join(out, "saved_model"),
                            "--tag_set", "serve", "--signature_def", "serving_default"],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in ("images", "probabilities", "top5_classes", "top5_indices"):
        assert name in shown.stdout


def test_predict_cli_classifies_good_files_and_names_bad_ones(trained, exported, tmp_path):
    split, _, _ = trained
    images = list(validation_images(split).values())
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(images[0])
    Image.open(io.BytesIO(images[1])).save(folder / "b.png")
    (folder / "notes.jpg").write_text("not an image")
    (tmp_path / "c.JPEG").write_bytes(images[2])
    cmd = [sys.executable, "-m", "stages.predict", "--model", exported[0], str(folder),
           str(tmp_path / "*.JPEG"), str(tmp_path / "missing.jpg")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        str(folder / "a.jpg"), str(folder / "b.png"), str(tmp_path / "c.JPEG")]
    assert all("%" in line for line in lines)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("predict: error:")]
    assert len(errors) == 2
    assert str(folder / "notes.jpg") in errors[0] and str(tmp_path / "missing.jpg") in errors[1]
    proc = subprocess.run(cmd[:5] + ["--json", str(folder / "a.jpg")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["file"].endswith("a.jpg") and len(result["top"]) == 3
    assert sum(t["probability"] for t in result["top"]) == pytest.approx(1.0, abs=1e-4)
    proc = subprocess.run(cmd[:3] + ["--model", str(tmp_path), str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "holds no SavedModel" in proc.stderr
