"""`history.jsonl`: what the engine records of every block, for curves drawn without TensorBoard.

No TensorFlow here, so the report (and a cached FullRun that only prints it) stays light.
"""

import json
import math

from fixmatch import fs

HISTORY_FILE = "history.jsonl"


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
