"""Atomic JSON files: a reader never sees half a hparams.json or metrics.json."""

import json
import os


def write_json_atomic(path: str, payload) -> None:
    """Canonical JSON (indent 2, sorted keys) written to a temporary name, then renamed."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
