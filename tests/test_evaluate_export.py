"""evaluate -> export -> predict on a tiny trained run: the same predictions at every step.

One seeded smoke supervised run (3 classes, 20 px JPEGs) is trained once for the module and
published as the Luigi task publishes it; the export is then reloaded in a fresh process. What
must not coincide by chance (12 images, 3 classes: EMA and online often agree, top-5 is always
1) is checked on tensors and on hand-built models instead.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fixmatch import evaluation
from fixmatch.data import schema
from fixmatch.data import split_dir as split_dir_lib
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
                                   hparams='"run": {"seed": 3}', publish_dir=str(run_dir),
                                   log=lambda line: None)
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


def test_predict_cli_classifies_good_files_and_names_bad_ones(trained, evaluated, exported,
                                                             tmp_path):
    split, _, _ = trained
    named = validation_images(split)
    images = list(named.values())
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
    assert result["file"].endswith("a.jpg")
    # The evaluation's probabilities of that image, class by class, listed in decreasing order.
    preds = np.load(os.path.join(evaluated[0], evaluate.PREDICTIONS_FILE))
    expected = preds["probabilities"][list(preds["filenames"]).index(next(iter(named)))]
    shown = {t["class"]: t["probability"] for t in result["top"]}
    assert shown.keys() == set(CLASSES)
    np.testing.assert_allclose([shown[c] for c in CLASSES], expected, atol=1e-4)
    assert [t["probability"] for t in result["top"]] == sorted(shown.values(), reverse=True)
    proc = subprocess.run(cmd[:3] + ["--model", str(tmp_path), str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "holds no SavedModel" in proc.stderr


def test_restored_weights_are_the_checkpoints_ema_tensors(trained, tmp_path):
    """load_model("auto") of a run with EMA restores exactly the checkpoint's ema_model
    tensors; "online" restores weights that differ from them, so a mix-up cannot pass."""
    import tensorflow as tf

    _, run_dir, _ = trained
    original = tf.train.load_checkpoint(evaluation.latest_checkpoint(run_dir))

    def restored_tensors(weights):
        net, _, used = evaluation.load_model(run_dir, num_classes=3, weights=weights)
        # Written as an "ema_model" so the keys line up with the training checkpoint's.
        written = tf.train.load_checkpoint(
            tf.train.Checkpoint(ema_model=net).write(str(tmp_path / weights)))
        names = [n for n in written.get_variable_to_shape_map() if n.startswith("ema_model/")]
        assert len(names) == len(net.variables)
        return used, {n: written.get_tensor(n) for n in names}

    used, ema = restored_tensors("auto")
    assert used == "ema"
    for name, value in ema.items():
        np.testing.assert_array_equal(value, original.get_tensor(name), err_msg=name)
    used, online = restored_tensors("online")
    assert used == "online" and online.keys() == ema.keys()
    assert sum(not np.array_equal(online[n], ema[n]) for n in ema) > len(ema) // 2


def _colour_model(kernel, bias, *, image_size):
    """logits = mean colour of the (scaled) image x kernel + bias: predictions known by hand."""
    import keras

    inputs = keras.Input((image_size, image_size, kernel.shape[0]))
    dense = keras.layers.Dense(kernel.shape[1])
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    dense.set_weights([np.asarray(kernel, "float32"), np.asarray(bias, "float32")])
    return model


# red -> class 1, green -> class 1, blue -> class 0; class 2 is never predicted.
_MIXED_UP = (np.array([[0, 1, 0], [0, 1, 0], [1, 0, 0]]), np.array([0.0, 0.0, -10.0]))


def test_confusion_rows_are_true_labels_on_a_hand_built_model(trained):
    """Evaluation through the engine's compiled pass, on a model whose every prediction is
    known (the fixture images' dominant colour is their class): rows are true labels."""
    split_path, run_dir, _ = trained
    hp = evaluation.load_hparams(run_dir)
    split = split_dir_lib.read_split(split_path, sets=("validation",))
    model = _colour_model(*_MIXED_UP, image_size=hp["input"]["image_size"])
    lines = []
    result, _ = evaluation.evaluate(model, hp=hp, split=split, batch_size=5,
                                    progress=lines.append, progress_seconds=0)
    assert result["confusion"] == [[0, 4, 0], [0, 4, 0], [4, 0, 0]]
    # A long pass says how far it is: 12 images in batches of 5, then the total.
    assert [line.split(" images")[0] for line in lines] == ["5/12", "10/12", "12/12", "12/12"]
    assert "min left" in lines[0] and lines[-1].endswith("images/s overall")
    assert result["per_class_accuracy"] == [0.0, 1.0, 0.0]
    assert result["top1"] == pytest.approx(4 / 12) and result["count"] == 12


def test_top5_counts_the_label_among_the_five_largest_logits():
    import tensorflow as tf

    from fixmatch.train import steps

    logits = np.array([[9, 1, 2, 3, 4, 5, 6, 7],    # label 0: first
                       [1, 2, 3, 4, 5, 6, 7, 8],    # label 3: fifth
                       [1, 2, 3, 4, 5, 6, 7, 8],    # label 2: sixth
                       [1, 2, 3, 4, 5, 6, 7, 8]],   # label 7: first
                      "float32")
    model = _colour_model(np.eye(8), np.zeros(8), image_size=1)
    sums = steps.eval_step({"image": tf.constant(logits[:, None, None, :]),
                            "label": tf.constant([0, 3, 2, 7], tf.int64)},
                           model=model, ema_model=None)
    assert float(sums["correct"]) == 2 and float(sums["correct_top5"]) == 3
    assert float(sums["ema_correct_top5"]) == 3


@pytest.mark.parametrize("scale_and_center", [True, False])
def test_export_serves_the_evaluation_pixels_in_either_scaling(trained, tmp_path,
                                                               scale_and_center):
    """The served model sees what the evaluation fed it, for both `input.scale_and_center`
    values (the smoke run only trains with true): same probabilities for every image."""
    from fixmatch import export

    split_path, run_dir, _ = trained
    hp = evaluation.load_hparams(run_dir)
    hp["input"]["scale_and_center"] = scale_and_center
    split = split_dir_lib.read_split(split_path, sets=("validation",))
    scale = 1.0 if scale_and_center else 1 / 100  # keep 0..255 inputs off saturation
    model = _colour_model(_MIXED_UP[0] * 3 * scale, _MIXED_UP[1] * scale,
                          image_size=hp["input"]["image_size"])
    _, preds = evaluation.evaluate(model, hp=hp, split=split, batch_size=5)
    path = str(tmp_path / "saved_model")
    export.export_saved_model(model, hp=hp, classes=CLASSES, path=path)
    images = validation_images(split_path)
    served = export.load_classifier(path)([images[n] for n in preds["filenames"]])
    np.testing.assert_allclose(served["probabilities"], preds["probabilities"], atol=1e-5)
    assert np.ptp(preds["probabilities"]) > 0.1  # not a constant, so scaling matters


def test_served_png_gets_the_pixels_of_the_same_image_as_jpeg(tmp_path):
    """The export decodes any format; a PNG holding a validation JPEG's decoded pixels must
    reach the model as exactly the evaluation's pixels (same crop, same bicubic resize)."""
    import tensorflow as tf

    from fixmatch.augment import weak

    size = 16
    for encoded in list(validation_images(write_split(tmp_path / "split")).values())[:3]:
        png = tf.io.encode_png(tf.io.decode_jpeg(encoded, channels=3))
        from_jpeg = weak.center_from_jpeg(encoded, image_size=size).numpy()
        np.testing.assert_array_equal(weak.center_from_image(png, image_size=size).numpy(),
                                      from_jpeg)
        np.testing.assert_array_equal(weak.center_from_image(encoded, image_size=size).numpy(),
                                      from_jpeg)
