"""Evaluate and Export: what becomes of a trained model, as cached Luigi stages.

    luigi --module pipeline Evaluate --local-scheduler --program fixmatch
    luigi --module pipeline Export --local-scheduler --program fixmatch

Both take the shared parameters of pipeline/chain.py (so they find the training run and split
that FullRun with the same flags would build) plus `--program`. Their fingerprints are the
program and the upstream fingerprints: the resolved hparams enter through the training task's.
Evaluate publishes evaluation.json, predictions.npz, confusion.png; Export publishes
saved_model/, classes.txt, export.json.
"""

import luigi

from pipeline import cache, chain


class _ModelTask(chain.ChainParams, cache.CachedTask):
    program = luigi.ChoiceParameter(default="fixmatch", choices=chain.PROGRAMS,
                                    description="Which trained model: supervised | fixmatch.")

    def requires(self):
        return {"model": self.train_task(self.program), "split": self.split_task()}

    def significant_params(self):
        return {"program": self.program}


class Evaluate(_ModelTask):
    """Top-1/top-5, per-class accuracy, confusion matrix and predictions on the validation set."""

    stage_name = "evaluate"

    def run_stage(self, tmp_dir):
        from stages import evaluate
        return evaluate.run(model=self.input_dir("model"), data=self.input_dir("split"),
                            out=tmp_dir)


class Export(_ModelTask):
    """A SavedModel that classifies encoded image bytes (python -m stages.predict uses it)."""

    stage_name = "export"

    def run_stage(self, tmp_dir):
        from stages import export
        return export.run(model=self.input_dir("model"), data=self.input_dir("split"),
                          out=tmp_dir)
