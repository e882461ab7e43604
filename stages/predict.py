"""Classify image files with an exported model: the top-5 classes and their probabilities.

    python -m stages.predict --model /tmp/export img1.jpg img2.png photos/ 'more/*.JPEG'
    python -m stages.predict --model /tmp/export --json photos/

--model is the output directory of the export stage (or its saved_model/ inside). Arguments
are files, directories (every file in them, recursively, sorted) or glob patterns; the model
and the images may be local or on gs:// (any tf.io.gfile URL). A file that
cannot be read or is not an image gets one line `predict: error: FILE: ...` on stderr while the
others are still classified; the exit code is then 1 (2 for bad flags or a bad --model).
"""

import json
import sys

from absl import flags

from fixmatch import fs
from stages import cli

PROGRAM = cli.Program("predict", __doc__, required=("model",), positional=True)
flags.DEFINE_string("model", None, "Export directory (python -m stages.export --out).",
                    flag_values=PROGRAM.flags)
flags.DEFINE_bool("json", False, "One JSON object per line instead of the text table.",
                  flag_values=PROGRAM.flags)
flags.DEFINE_integer("top", 5, "How many classes to show per image (at most 5).",
                     lower_bound=1, upper_bound=5, flag_values=PROGRAM.flags)


def expand(args) -> list:
    """Files named by the arguments (files, directories, globs), in order, each once."""
    if not args:
        raise cli.StageError("give at least one image file, directory or glob pattern")
    seen, files = set(), []
    for arg in args:
        if fs.isdir(arg):
            found = fs.files_under(arg)
        elif fs.exists(arg):
            found = [arg]
        else:
            found = fs.glob(arg) or [arg]  # a missing file: an error later
        for path in found:
            if path not in seen:
                seen.add(path)
                files.append(path)
    return files


def _saved_model_dir(model):
    inner = fs.join(model, "saved_model")
    path = inner if fs.isdir(inner) else model
    if not fs.isfile(fs.join(path, "saved_model.pb")):
        raise cli.StageError(f"--model {model!r} holds no SavedModel (saved_model.pb); pass the "
                             "--out directory of python -m stages.export")
    return path


def run(*, model, files, top=5, emit=print, errors=None) -> dict:
    """Classifies each file; returns {"classified": n, "failed": n, "results": [...]}."""
    path = _saved_model_dir(model)
    from fixmatch.export import load_classifier
    import tensorflow as tf
    classify = load_classifier(path)
    errors = errors or (lambda line: print(line, file=sys.stderr, flush=True))
    results, failed = [], 0
    for name in files:
        try:
            out = classify([fs.read_bytes(name)])
        except (OSError, tf.errors.OpError) as e:  # OpError: unreadable URL or not an image
            failed += 1
            errors(f"{PROGRAM.name}: error: {name}: {_reason(e)}")
            continue
        k = min(top, out["top5_indices"].shape[1])
        result = {"file": name, "top": [
            {"class": c.decode("utf-8"), "index": int(i), "probability": float(p)}
            for c, i, p in zip(out["top5_classes"][0][:k], out["top5_indices"][0][:k],
                               out["top5_probabilities"][0][:k])]}
        results.append(result)
        emit(result)
    return {"classified": len(results), "failed": failed, "results": results}


def _reason(error) -> str:
    """One line on why a file could not be classified (TF's errors for URLs can be empty)."""
    import tensorflow as tf
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, tf.errors.NotFoundError):
        return "No such file or directory"
    text = str(getattr(error, "message", error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main(argv=None):
    def body(f, args):
        def emit(result):
            if f.json:
                print(json.dumps(result), flush=True)
            else:
                best = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%"
                                 for t in result["top"])
                print(f"{result['file']}: {best}", flush=True)
        summary = run(model=f.model, files=expand(args), top=f.top, emit=emit)
        if summary["failed"]:
            raise _Failed()

    try:
        return PROGRAM.main(body, argv)
    except _Failed:
        return 1


class _Failed(Exception):
    """Some files could not be classified (already reported, one line each)."""


if __name__ == "__main__":
    sys.exit(main())
