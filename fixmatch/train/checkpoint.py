"""Checkpoints of everything a resumed run needs (spec section 9, step e).

Saved every block: online model, optimizer (its `iterations` counter is the
global step, plus momentum slots), EMA model, with CTAugment its rates and
probs, and with a self-adaptive FixMatch threshold or distribution alignment
their EMA state. `model_dir/checkpoint-<step>` files, the newest `keep` kept.

Under MultiWorkerMirroredStrategy every worker must call save (saving may run
collective ops), but only the chief's copy is kept: the others write into a
private temporary directory that is deleted afterwards.

`publish_run` turns a finished model_dir into a self-contained output directory
(the final checkpoint only, paths relative), local or gs://, for every training
stage alike.
"""

import os
import shutil

import tensorflow as tf

from fixmatch import fs, jsonio
from fixmatch.train.faults import CheckpointError, DiskFull

CHECKPOINT_NAME = "checkpoint"  # files checkpoint-<step>.*; the state file is `checkpoint`


def make_checkpoint(*, model, optimizer, ema_model=None, cta_state=None, pseudo_labeler=None):
    """A tf.train.Checkpoint over the training state (absent parts omitted).

    `pseudo_labeler`: FixMatch's self-adaptive threshold / alignment state
    (fixmatch/train/thresholds.py), so a resumed run goes on from the same thresholds."""
    parts = {"model": model, "optimizer": optimizer}
    if ema_model is not None:
        parts["ema_model"] = ema_model
    if cta_state is not None:
        parts["cta"] = cta_state
    if pseudo_labeler is not None:
        parts["pseudo_labeler"] = pseudo_labeler
    return tf.train.Checkpoint(**parts)


class CheckpointKeeper:
    """CheckpointManager with the chief/worker split described above."""

    def __init__(self, *, checkpoint, model_dir: str, keep: int, is_chief: bool = True,
                 worker_id: int = 0):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep!r}")
        self._checkpoint = checkpoint
        self._model_dir = model_dir
        self._is_chief = is_chief
        directory = model_dir if is_chief else os.path.join(
            model_dir, f".tmp-worker-{worker_id}")
        self._directory = directory
        self._manager = tf.train.CheckpointManager(
            checkpoint, directory=directory, max_to_keep=keep, checkpoint_name=CHECKPOINT_NAME)
        # Every worker restores from the chief's directory.
        self._latest = tf.train.latest_checkpoint(model_dir)

    @property
    def latest(self):
        """Path of the newest checkpoint in model_dir, or None."""
        return self._latest

    def restore(self, log=print) -> bool:
        """Restores the newest readable checkpoint; True when one was restored.

        An unreadable newest checkpoint (a crash mid-write, a damaged disk) is reported through
        `log` and the previous one is tried, down to the oldest kept; if none can be read this
        raises CheckpointError rather than silently starting again from step 0.
        """
        state = tf.train.get_checkpoint_state(self._model_dir)
        paths = list(reversed(state.all_model_checkpoint_paths)) if state else []
        if self._latest and self._latest not in paths:
            paths.insert(0, self._latest)
        failures = []
        for path in paths:
            try:
                self._checkpoint.restore(path).assert_existing_objects_matched()
            except Exception as e:  # damage surfaces as OpError, IndexError, ValueError, ...
                reason = (str(e).strip() or type(e).__name__).splitlines()[0][:200]
                failures.append(f"{os.path.basename(path)}: {reason}")
                log(f"checkpoint {path} cannot be restored ({reason}); trying the previous one")
                continue
            if failures:
                log(f"resuming from {path} instead of the newest checkpoint")
            self._latest = path
            return True
        if failures:
            raise CheckpointError(
                f"no checkpoint in {self._model_dir} can be restored ({'; '.join(failures)}); "
                "move them away to train from step 0, or give a new --model_dir")
        return False

    def save(self, step: int) -> str:
        """Saves checkpoint-<step>. A full disk leaves the newest checkpoint as it was (TF
        writes into checkpoint-<step>_temp first) and raises DiskFull naming it."""
        try:
            path = self._manager.save(checkpoint_number=int(step))
        except Exception as e:
            if not fs.is_disk_full(e):
                raise
            temp = os.path.join(self._directory, f"{CHECKPOINT_NAME}-{int(step)}_temp")
            if fs.isdir(temp):
                fs.rmtree(temp)
            kept = (f"the previous checkpoint {self._latest} is intact" if self._latest
                    else "no earlier checkpoint exists")
            raise DiskFull(f"no space left on device while saving checkpoint-{int(step)} in "
                           f"{self._model_dir}: {kept}; free some space (or give another "
                           "--model_dir) and rerun to resume") from None
        if not self._is_chief:  # the chief wrote the real one: name it, as the chief does
            shutil.rmtree(self._directory, ignore_errors=True)
            path = os.path.join(self._model_dir, os.path.basename(path))
        self._latest = path
        return path


def publish_run(*, model_dir: str, out_dir: str, metrics: dict) -> dict:
    """Copies a finished run from model_dir into out_dir; returns the published metrics.

    out_dir receives the run's own files (hparams.json, summaries/, ...), the final checkpoint
    as out_dir/checkpoint/checkpoint-<step>.* with its CheckpointState (so
    `tf.train.latest_checkpoint(out_dir + "/checkpoint")` finds it) and metrics.json whose
    "checkpoint" is relative to out_dir. Older checkpoints and worker scratch stay behind.
    """
    prefix = os.path.basename(metrics["checkpoint"])
    for name in fs.listdir(model_dir):
        src = fs.join(model_dir, name)
        if name == CHECKPOINT_NAME or name.startswith(f"{CHECKPOINT_NAME}-") or name.startswith(
                ".tmp"):
            continue
        if fs.isdir(src):
            fs.copy_tree(src, fs.join(out_dir, name))
        else:
            fs.copy_file(src, fs.join(out_dir, name))
    final = fs.join(out_dir, CHECKPOINT_NAME)
    fs.makedirs(final)
    for name in fs.listdir(model_dir):
        if name.startswith(prefix + "."):
            fs.copy_file(fs.join(model_dir, name), fs.join(final, name))
    # CheckpointState text, relative to its directory. (tf.compat.v1.train.update_checkpoint_state
    # would rewrite a relative path against a URL directory into ../../ nonsense.)
    fs.write_text(fs.join(final, CHECKPOINT_NAME), f'model_checkpoint_path: "{prefix}"\n'
                  f'all_model_checkpoint_paths: "{prefix}"\n')
    published = dict(metrics, checkpoint=f"{CHECKPOINT_NAME}/{prefix}")
    jsonio.write_json_atomic(fs.join(out_dir, "metrics.json"), published)
    return published
