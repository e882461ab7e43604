"""Export a trained model as a SavedModel that classifies encoded image bytes.

    python -m stages.export --model runs/train_fixmatch/<fp> \\
        --data runs/prepare_splits/<fp> --out /tmp/export
    saved_model_cli show --dir /tmp/export/saved_model --all
    python -m stages.predict --model /tmp/export img1.jpg img2.png

--model is a training stage's output (or --model_dir); --data the split it was trained on (its
classes.txt names the classes). The EMA weights are used when the run kept them. Writes into
--out (absent or empty): saved_model/ (signature `serving_default`: `images`, a batch of JPEG
or PNG bytes of any size -> probabilities, top5_indices, top5_classes, top5_probabilities),
classes.txt and export.json (what was exported, and the signature).
"""

import sys

from fixmatch import fs, jsonio
from fixmatch.data import split_dir
from stages import cli
from stages.evaluate import define_model_flags, model_errors

PROGRAM = cli.Program("export", __doc__, required=("model", "data", "out"))
define_model_flags(PROGRAM, data_help="The split the model was trained on (for its class names).")

SAVED_MODEL_DIR = "saved_model"
EXPORT_FILE = "export.json"


def run(*, model, data, out, weights="auto") -> dict:
    """Exports the run in `model` into `out`/saved_model; returns export.json's content."""
    from fixmatch import evaluation, export
    split = split_dir.read_split(data, sets=())
    cli.check_new_dir(out)
    net, hp, used = evaluation.load_model(model, num_classes=split.num_classes, weights=weights)
    fs.makedirs(out)
    saved_model = fs.join(out, SAVED_MODEL_DIR)
    signature = export.export_saved_model(net, hp=hp, classes=split.classes, path=saved_model)
    fs.write_text(fs.join(out, split_dir.CLASSES_FILE), "".join(c + "\n" for c in split.classes))
    facts = dict(signature, weights=used, model=model, model_name=hp["model"]["name"],
                 split=split.name, saved_model=SAVED_MODEL_DIR)
    jsonio.write_json_atomic(fs.join(out, EXPORT_FILE), facts)
    cli.progress(PROGRAM.name, f"wrote {saved_model} ({used} weights, {split.num_classes} classes)")
    return facts


def main(argv=None):
    def body(f, _):
        return run(model=f.model, data=f.data, out=f.out, weights=f.weights)

    return PROGRAM.main(body, argv, errors=model_errors)


if __name__ == "__main__":
    sys.exit(main())
