"""TensorBoard scalars, the history of every block and the one-line progress report.

Scalar names are the reference's (spec section 9.3). The x-axis is, by default,
thousandths of a labeled epoch, so curves of runs with different batch sizes
line up.
"""

import json
import math
import sys

import tensorflow as tf

from fixmatch import fs


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


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class History:
    """`history.jsonl`: one JSON object per block (step, epoch, train and test metrics), so a
    report can draw curves without parsing TensorBoard events.

    The file is rewritten whole each block (object stores cannot append); on resume, entries
    past the restored step (written by a run killed before its checkpoint) are dropped.
    Non-finite values are written as null.
    """

    def __init__(self, path: str, *, restored_step: int, enabled: bool = True):
        self._path, self._enabled = path, enabled
        self._lines = []
        if enabled and fs.exists(path):
            for line in fs.read_text(path).splitlines():
                if line.strip() and json.loads(line).get("step", 0) <= restored_step:
                    self._lines.append(line)

    def append(self, record: dict) -> None:
        if not self._enabled:
            return
        self._lines.append(json.dumps(_finite(record), sort_keys=True, allow_nan=False))
        fs.write_text(self._path, "\n".join(self._lines) + "\n")


def read_history(path: str) -> list:
    """The records of a history.jsonl, in order."""
    return [json.loads(line) for line in fs.read_text(path).splitlines() if line.strip()]


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(*, step: int, total_steps: int, epoch: float, loss: float,
                  images_per_sec: float, eta_seconds: float, top1=None, mask_rate=None,
                  pseudo_accuracy=None) -> str:
    """e.g. `step 200/1000 (20.0%) epoch 12.50 loss 1.2345 img/s 812.3 top1 45.10% ETA 1:02`.

    FixMatch adds `mask 63.2% pseudo 81.0%`: the share of unlabeled images whose pseudo-label
    passed the threshold, and how many of those were right (`n/a` when the unlabeled records
    carry no labels, or none passed).
    """
    line = (f"step {step}/{total_steps} ({100.0 * step / total_steps:.1f}%) "
            f"epoch {epoch:.2f} loss {loss:.4f} img/s {images_per_sec:.1f}")
    if top1 is not None:
        line += f" top1 {100.0 * top1:.2f}%"
    if mask_rate is not None:
        line += f" mask {100.0 * mask_rate:.1f}% pseudo " + (
            f"{100.0 * pseudo_accuracy:.1f}%" if pseudo_accuracy is not None
            and math.isfinite(pseudo_accuracy) else "n/a")
    return line + f" ETA {format_duration(eta_seconds)}"


def print_progress(line: str, stream=None) -> None:
    stream = stream or sys.stderr
    print(line, file=stream, flush=True)
