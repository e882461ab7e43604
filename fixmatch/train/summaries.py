"""TensorBoard scalars and the one-line progress report of every block.

Scalar names are the reference's (spec section 9.3). The x-axis is, by default,
thousandths of a labeled epoch, so curves of runs with different batch sizes
line up.
"""

import math
import sys

import tensorflow as tf


def summary_x(step: int, *, steps_per_epoch: float, with_epoch: bool = True) -> int:
    """x-axis value: int(step / steps_per_epoch * 1000), or the step itself."""
    return int(step / steps_per_epoch * 1000) if with_epoch else int(step)


class Summaries:
    """A scalar writer into `log_dir`; a no-op on non-chief workers."""

    def __init__(self, *, log_dir: str, enabled: bool = True):
        self._writer = tf.summary.create_file_writer(log_dir) if enabled else None

    def scalars(self, x: int, values: dict) -> None:
        if self._writer is None:
            return
        with self._writer.as_default(step=int(x)):
            for name, value in values.items():
                tf.summary.scalar(name, float(value))
        self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def write_run_card(log_dir: str, markdown: str) -> None:
    """Adds a Markdown description of the run in `log_dir` (TensorBoard's Text tab, tag
    `run`), so what a run is (its name, fingerprint, hparams, x-axis) sits next to its curves."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=0):
        tf.summary.text("run", markdown)
    writer.close()


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(*, step: int, total_steps: int, epoch: float, loss: float,
                  images_per_sec: float, eta_seconds: float, top1=None, mask_rate=None,
                  pseudo_accuracy=None, extra="") -> str:
    """e.g. `step 200/1000 (20.0%) epoch 12.50 loss 1.2345 img/s 812.3 top1 45.10% ETA 1:02`.

    FixMatch adds `mask 63.2% pseudo 81.0%`: the share of unlabeled images whose pseudo-label
    passed the threshold, and how many of those were right (`n/a` when the unlabeled records
    carry no labels, or none passed). `extra` (e.g. the threshold in force) goes before ETA.
    """
    line = (f"step {step}/{total_steps} ({100.0 * step / total_steps:.1f}%) "
            f"epoch {epoch:.2f} loss {loss:.4f} img/s {images_per_sec:.1f}")
    if top1 is not None:
        line += f" top1 {100.0 * top1:.2f}%"
    if mask_rate is not None:
        line += f" mask {100.0 * mask_rate:.1f}% pseudo " + (
            f"{100.0 * pseudo_accuracy:.1f}%" if pseudo_accuracy is not None
            and math.isfinite(pseudo_accuracy) else "n/a")
    return line + (f" {extra}" if extra else "") + f" ETA {format_duration(eta_seconds)}"


def print_progress(line: str, stream=None) -> None:
    stream = stream or sys.stderr
    print(line, file=stream, flush=True)
