"""FixMatch: train a ResNet on the labeled + unlabeled sets of a split.

    python -m stages.train_fixmatch --data runs/prepare_splits/<fp> \\
        --model_dir /tmp/fixmatch --preset demo
    python -m stages.train_fixmatch --data gs://b/splits/fixmatch_10pct.1 \\
        --dataset imagenet128116.1 --model_dir gs://b/runs/fm1 --tpu my-tpu \\
        --hparams '"augment": {"type": "randaugment"}, "num_epochs": 3000,
                   "learning_rate": {"warmup_epochs": 50, "decay_epochs": 500}'

The second line is the reference's published 10% recipe. Flags: see stages/training.py (the
reference's names plus --data and --preset) and --dataset, the reference's name of the split
(`imagenet128116.K` = fixmatch_10pct.K, or any split name), which --data must hold. FixMatch
needs a strong augmentation (augment.type randaugment or cta). Progress lines add the mask
rate and the accuracy of the pseudo-labels that passed the threshold. Running the same command
again resumes from the newest checkpoint in model_dir. Prints the final metrics as JSON.
"""

import sys

from stages import cli, training

PROGRAM = cli.Program("train_fixmatch", __doc__, required=("data", "model_dir"),
                      required_unless="plan")
training.define_flags(PROGRAM)


def run(*, data, model_dir, preset="imagenet", hparams=None, tpu=None, dataset=None,
        publish_dir=None, log=None, **run_flags) -> dict:
    """Trains (or resumes) FixMatch; returns the final metrics dict (see train_supervised.run)."""
    return training.run("fixmatch", data=data, model_dir=model_dir, preset=preset,
                        hparams=hparams, tpu=tpu, dataset=dataset, publish_dir=publish_dir,
                        log=log, **run_flags)


def main(argv=None):
    return PROGRAM.main(training.main_body("fixmatch", run), argv, errors=training.ERRORS)


if __name__ == "__main__":
    sys.exit(main())
