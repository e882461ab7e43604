"""Evaluate a trained model on the validation set of a split.

    python -m stages.evaluate --model runs/train_fixmatch/<fp> \\
        --data runs/prepare_splits/<fp> --out /tmp/eval

--model is a training stage's output (or a training --model_dir). The EMA weights are used when
the run kept them (`--weights online` for the others). Writes into --out (absent or empty):
evaluation.json (top-1, top-5, loss, per-class accuracy, confusion matrix, which weights),
predictions.npz (every validation image's file name, label and class probabilities) and, for up
to 100 classes, confusion.png. Prints evaluation.json without the matrix.
"""

import io
import sys

from absl import flags

from fixmatch import fs, jsonio
from fixmatch.data import split_dir
from stages import cli



def define_model_flags(program, *, data_help) -> None:
    """--model --data --out --weights: a trained run in, a new directory out (evaluate, export)."""
    fv = program.flags
    flags.DEFINE_string("model", None, "Training output directory (hparams.json + checkpoint).",
                        flag_values=fv)
    flags.DEFINE_string("data", None, data_help, flag_values=fv)
    flags.DEFINE_string("out", None, "Output directory (absent or empty).", flag_values=fv)
    flags.DEFINE_enum("weights", "auto", ["auto", "ema", "online"], "auto = EMA when the run "
                      "kept it.", flag_values=fv)


PROGRAM = cli.Program("evaluate", __doc__, required=("model", "data", "out"))
define_model_flags(PROGRAM, data_help="Split directory written by prepare_splits.")
flags.DEFINE_integer("batch_size", None, "Evaluation batch; default the run's "
                     "run.per_worker_eval_batch_size.", lower_bound=1, flag_values=PROGRAM.flags)

EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.npz"
CONFUSION_FILE = "confusion.png"


def run(*, model, data, out, weights="auto", batch_size=None, name=None) -> dict:
    """Evaluates the run in `model` on `data`'s validation set into `out`; returns the summary.
    `name` (default: the run directory's name) titles the confusion matrix."""
    from fixmatch import evaluation
    split = split_dir.read_split(data, sets=("validation",))
    cli.check_new_dir(out)
    net, hp, used = evaluation.load_model(model, num_classes=split.num_classes, weights=weights)
    batch = batch_size or hp["run"]["per_worker_eval_batch_size"]
    cli.progress(PROGRAM.name, f"{hp['model']['name']} ({used} weights) on "
                 f"{split.num_validation} validation images of {split.path}")
    result, preds = evaluation.evaluate(
        net, hp=hp, split=split, batch_size=batch,
        progress=lambda message: cli.progress(PROGRAM.name, message))
    import numpy as np
    fs.makedirs(out)
    buf = io.BytesIO()
    np.savez(buf, **preds)
    fs.write_bytes(fs.join(out, PREDICTIONS_FILE), buf.getvalue())
    from fixmatch import plots
    if split.num_classes <= plots.MAX_CONFUSION_CLASSES:
        fs.write_bytes(fs.join(out, CONFUSION_FILE),
                       plots.confusion_png(result["confusion"], split.classes, title=(
                           f"{name or fs.normalize(model).rsplit('/', 1)[-1]}: "
                           f"{hp['model']['name']}, {used} weights")))
    summary = dict(result, weights=used, model=model, data=split.path, split=split.name,
                   classes=list(split.classes), model_name=hp["model"]["name"])
    jsonio.write_json_atomic(fs.join(out, EVALUATION_FILE), summary)
    cli.progress(PROGRAM.name, f"top-1 {100 * result['top1']:.2f}%, top-5 "
                 f"{100 * result['top5']:.2f}% over {result['count']} images")
    return {k: v for k, v in summary.items() if k != "confusion"}


def main(argv=None):
    def body(f, _):
        return run(model=f.model, data=f.data, out=f.out, weights=f.weights,
                   batch_size=f.batch_size)

    return PROGRAM.main(body, argv, errors=model_errors)


def model_errors():
    """The bad-input errors of a program that loads a trained run (evaluate, export)."""
    from fixmatch import evaluation
    return split_dir.SplitDirError, evaluation.EvaluationError


if __name__ == "__main__":
    sys.exit(main())
