"""Supervised baseline: train a ResNet on the labeled set of a split.

    python -m stages.train_supervised --data runs/prepare_splits/<fp> \\
        --model_dir /tmp/sup --preset demo \\
        --hparams '"augment": {"type": "randaugment"}'

Flags: see stages/training.py (the reference's names plus --data and --preset). The resolved
hparams are saved as model_dir/hparams.json; running the same command again resumes from the
newest checkpoint in model_dir, and a model_dir that holds a run with different hparams is
refused rather than silently mixed. Prints the final metrics (metrics.json) as JSON.
"""

import sys

from stages import cli, training

PROGRAM = cli.Program("train_supervised", __doc__, required=("data", "model_dir"),
                      required_unless="plan")
training.define_flags(PROGRAM)


def run(*, data, model_dir, preset="imagenet", hparams=None, tpu=None, dataset=None,
        publish_dir=None, log=None, **run_flags) -> dict:
    """Trains (or resumes) the supervised baseline; returns the final metrics dict.

    run_flags: steps_per_run, per_worker_batch_size, per_worker_eval_batch_size (as the flags).
    publish_dir: also copy the finished run there (the Luigi task's output directory).
    """
    return training.run("supervised", data=data, model_dir=model_dir, preset=preset,
                        hparams=hparams, tpu=tpu, dataset=dataset, publish_dir=publish_dir,
                        log=log, **run_flags)


def main(argv=None):
    return PROGRAM.main(training.main_body("supervised", run), argv, errors=training.ERRORS)


if __name__ == "__main__":
    sys.exit(main())
