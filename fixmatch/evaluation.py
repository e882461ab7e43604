"""A trained run, evaluated: restore its weights, run the engine's compiled evaluation, and
predict every validation image.

A run directory is a training stage's published output (hparams.json + checkpoint/) or a
training --model_dir (hparams.json + checkpoint-<step>.*). The metrics come from the same
compiled evaluation the engine runs every block (steps.make_evaluate over steps.eval_step, with
the confusion matrix summed alongside); the per-image probabilities, which the export is checked
against, come from a plain pass over the same evaluation pipeline.
"""

import functools

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


def evaluate(model, *, hp: dict, split, batch_size: int, strategy=None) -> dict:
    """top1, top5, loss, count, per-class accuracy (in label order) and the confusion matrix
    (rows = true label) on split's validation set."""
    strategy = strategy or tf.distribute.get_strategy()
    num_classes = split.num_classes
    data = pipelines.distribute(strategy, functools.partial(
        pipelines.eval_dataset, split.path, image_size=hp["input"]["image_size"],
        hparams_input=hp["input"]), global_batch_size=batch_size * strategy.num_replicas_in_sync)
    shapes = dict.fromkeys(steps.EVAL_SUM_KEYS)
    shapes["confusion"] = [num_classes, num_classes]
    run = steps.make_evaluate(strategy=strategy, example_sums=shapes, replica_eval_step=(
        functools.partial(steps.eval_step, model=model, ema_model=None,
                          scale_and_center=hp["input"]["scale_and_center"],
                          confusion_classes=num_classes)))
    with split_dir.naming_damaged_shards(split):
        sums = {k: v.numpy() for k, v in run(data).items()}
    confusion = sums.pop("confusion").astype(np.int64)
    result = metrics.finalize_eval(sums)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {"top1": result["accuracy"], "top5": result["accuracy_top5"],
            "loss": result["loss"], "count": result["count"],
            "per_class_accuracy": [float(a) for a in per_class],  # in label order
            "confusion": confusion.tolist()}


def predict(model, *, hp: dict, split, batch_size: int) -> dict:
    """Every validation image's softmax probabilities: {filenames, labels, probabilities}."""
    data = pipelines.eval_dataset(split.path, image_size=hp["input"]["image_size"],
                                  batch_size=batch_size, hparams_input=hp["input"],
                                  with_filenames=True)

    @tf.function
    def probabilities(images):
        inputs = steps.model_inputs({"image": images},
                                    scale_and_center=hp["input"]["scale_and_center"])
        return tf.nn.softmax(tf.cast(model(inputs["image"], training=False), tf.float32))

    names, labels, probs = [], [], []
    with split_dir.naming_damaged_shards(split):
        for batch in data:
            probs.append(probabilities(batch["image"]).numpy())
            labels.append(batch["label"].numpy())
            names += [n.decode("utf-8") for n in batch["filename"].numpy()]
    return {"filenames": np.array(names), "labels": np.concatenate(labels),
            "probabilities": np.concatenate(probs).astype(np.float32)}
