"""A trained run, evaluated: restore its weights, then score and predict every validation image.

A run directory is a training stage's published output (hparams.json + checkpoint/) or a
training --model_dir (hparams.json + checkpoint-<step>.*). The metrics are the sums the engine's
evaluation adds up every block (steps.eval_sums, with the confusion matrix alongside), taken in
the same pass as the per-image probabilities the export is checked against.
"""

import time

import numpy as np
import tensorflow as tf

from fixmatch import fs
from fixmatch import hparams as hparams_lib
from fixmatch.data import pipelines, split_dir
from fixmatch.models import build_model
from fixmatch.train import metrics, steps
from fixmatch.train.checkpoint import CHECKPOINT_NAME

WEIGHTS = ("auto", "ema", "online")


class EvaluationError(ValueError):
    """A run directory that cannot be evaluated (no hparams, no checkpoint, other classes)."""


def latest_checkpoint(run_dir: str) -> str:
    """The final checkpoint of a published run, else the newest one of a model_dir."""
    found = (tf.train.latest_checkpoint(fs.join(run_dir, CHECKPOINT_NAME))
             or tf.train.latest_checkpoint(run_dir))
    if not found:
        raise EvaluationError(f"{run_dir!r} holds no checkpoint (neither checkpoint/ of a "
                              "published training output nor checkpoint-<step>.* of a "
                              "model_dir); train first")
    return found


def load_hparams(run_dir: str) -> dict:
    path = fs.join(run_dir, "hparams.json")
    if not fs.exists(path):
        raise EvaluationError(f"{run_dir!r} has no hparams.json: pass the output directory of "
                              "a training stage (or its --model_dir)")
    return hparams_lib.load(path)


def load_model(run_dir: str, *, num_classes: int, weights: str = "auto"):
    """(Keras model with the run's weights, its hparams, "ema" or "online").

    `weights`: "auto" = the EMA weights when the run kept them (use_ema), else the online ones.
    """
    if weights not in WEIGHTS:
        raise EvaluationError(f"weights must be one of {list(WEIGHTS)}, got {weights!r}")
    hp = load_hparams(run_dir)
    path = latest_checkpoint(run_dir)
    used = ("ema" if hp["use_ema"] else "online") if weights == "auto" else weights
    if used == "ema" and not hp["use_ema"]:
        raise EvaluationError(f"{run_dir!r} was trained without EMA (use_ema false); "
                              "use weights 'online'")
    # Inference in float32 whatever the training precision: the weights are float32 anyway.
    model = build_model(hp["model"]["name"], num_classes=num_classes,
                        image_size=hp["input"]["image_size"], dtype_policy="float32")
    part = {"ema_model" if used == "ema" else "model": model}
    try:
        tf.train.Checkpoint(**part).restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise EvaluationError(f"checkpoint {path} does not fit a {hp['model']['name']} for "
                              f"{num_classes} classes: was it trained on another split? "
                              f"({str(e).splitlines()[0]})") from None
    return model, hp, used


def evaluate(model, *, hp: dict, split, batch_size: int, progress=None,
             progress_seconds: float = 30.0) -> tuple:
    """(metrics, predictions) on split's validation set, from one pass over it.

    metrics: top1, top5, loss, count, per-class accuracy (in label order) and the confusion
    matrix (rows = true label); predictions: {filenames, labels, probabilities}. The metrics
    are the engine's own sums (steps.eval_sums, what the evaluation after every training block
    adds up) over the very logits the probabilities come from. One pass, not two: on ImageNet
    the model's pass over 50,000 images is the stage's whole cost (its time on a CPU is in
    docs/scale.md), so `progress(message)`, when given, hears how far it is, at most every
    `progress_seconds`, and at the end.
    """
    data = pipelines.eval_dataset(split.path, image_size=hp["input"]["image_size"],
                                  batch_size=batch_size, hparams_input=hp["input"],
                                  with_filenames=True)
    num_classes = split.num_classes

    @tf.function
    def step(images, labels):
        inputs = steps.model_inputs({"image": images},
                                    scale_and_center=hp["input"]["scale_and_center"])
        logits = tf.cast(model(inputs["image"], training=False), tf.float32)
        sums = steps.eval_sums(labels, logits, logits, confusion_classes=num_classes)
        return sums, tf.nn.softmax(logits)

    totals, names, labels, probs = {}, [], [], []
    report = _Progress(progress, split.num_validation, progress_seconds)
    with split_dir.naming_damaged_shards(split):
        for batch in data:
            sums, batch_probs = step(batch["image"], batch["label"])
            for key, value in sums.items():
                totals[key] = totals.get(key, 0) + value.numpy().astype(np.float64)
            probs.append(batch_probs.numpy())
            labels.append(batch["label"].numpy())
            names += [n.decode("utf-8") for n in batch["filename"].numpy()]
            report(len(names))
    report(len(names), final=True)
    confusion = totals.pop("confusion").astype(np.int64)
    result = metrics.finalize_eval(totals)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return ({"top1": result["accuracy"], "top5": result["accuracy_top5"],
             "loss": result["loss"], "count": result["count"],
             "per_class_accuracy": [float(a) for a in per_class],  # in label order
             "confusion": confusion.tolist()},
            {"filenames": np.array(names), "labels": np.concatenate(labels),
             "probabilities": np.concatenate(probs).astype(np.float32)})


class _Progress:
    """Throttled progress lines of a pass over `total` images: count, rate, time left."""

    def __init__(self, emit, total, every_seconds):
        self.emit, self.total, self.every = emit, total, every_seconds
        self.start = self.last = time.monotonic()

    def __call__(self, done, *, final=False):
        now = time.monotonic()
        if self.emit is None or (not final and now - self.last < self.every):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 and done < self.total else 0.0
        self.emit(f"{done:,}/{self.total:,} images ({100 * done / max(self.total, 1):.0f}%), "
                  f"{rate:.1f} images/s" + (f", about {left / 60:.1f} min left"
                                             if not final else " overall"))
