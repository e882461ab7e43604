"""Checkpoints of everything a resumed run needs (spec section 9, step e).

Saved every block: online model, optimizer (its `iterations` counter is the
global step, plus momentum slots), EMA model and, with CTAugment, its rates and
probs. `model_dir/checkpoint-<step>` files, the newest `keep` kept.

Under MultiWorkerMirroredStrategy every worker must call save (saving may run
collective ops), but only the chief's copy is kept: the others write into a
private temporary directory that is deleted afterwards.
"""

import os
import shutil

import tensorflow as tf


def make_checkpoint(*, model, optimizer, ema_model=None, cta_state=None):
    """A tf.train.Checkpoint over the training state (absent parts omitted)."""
    parts = {"model": model, "optimizer": optimizer}
    if ema_model is not None:
        parts["ema_model"] = ema_model
    if cta_state is not None:
        parts["cta"] = cta_state
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
            checkpoint, directory=directory, max_to_keep=keep, checkpoint_name="checkpoint")
        # Every worker restores from the chief's directory.
        self._latest = tf.train.latest_checkpoint(model_dir)

    @property
    def latest(self):
        """Path of the newest checkpoint in model_dir, or None."""
        return self._latest

    def restore(self) -> bool:
        """Restores the newest checkpoint if there is one; True when restored."""
        if not self._latest:
            return False
        self._checkpoint.restore(self._latest).assert_existing_objects_matched()
        return True

    def save(self, step: int) -> str:
        path = self._manager.save(checkpoint_number=int(step))
        if not self._is_chief:
            shutil.rmtree(self._directory, ignore_errors=True)
        else:
            self._latest = path
        return path
