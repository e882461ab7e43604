"""JSON files written whole: a reader never sees half a hparams.json or metrics.json."""

import json

from fixmatch import fs


def dumps(payload) -> str:
    """Canonical JSON text (indent 2, sorted keys, final newline)."""
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def write_json_atomic(path: str, payload) -> None:
    """Canonical JSON, written atomically (local or gs://, see fixmatch.fs.write_text)."""
    fs.write_text(path, dumps(payload))


def read_json(path: str):
    return json.loads(fs.read_text(path))
