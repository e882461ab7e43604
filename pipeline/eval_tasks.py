"""Evaluate and export a trained model, one task class per program, as cached Luigi stages.

    luigi --module pipeline EvaluateFixMatch --local-scheduler --split frac10.seed1
    luigi --module pipeline ExportSupervised --local-scheduler --supervised-hparams '...'

Each requires the training task of its program and the split (luigi.util.requires), so it
takes exactly that training's parameters, under FullRun's flag names, and finds the outputs
FullRun with the same flags built. The program is in the task's name (and so in its Luigi
task id). Fingerprints: the program and the upstream fingerprints (the resolved hparams enter
through the training task's). Evaluate publishes evaluation.json, predictions.npz and
confusion.png (titled with the training's run name); Export publishes saved_model/,
classes.txt and export.json.
"""

from luigi.util import requires

from pipeline import cache, split_tasks, train_tasks


class _ModelTask(cache.CachedTask):
    program = ""  # a class constant: one task class per program

    def significant_params(self):
        return {"program": self.program}


class _Evaluate(_ModelTask):
    """Top-1/top-5, per-class accuracy, confusion matrix and predictions on the validation set."""

    stage_name = "evaluate"
    format_version = 2  # 2: confusion.png titled with the run's name

    def run_stage(self, tmp_dir):
        from stages import evaluate
        return evaluate.run(model=self.input_dir("model"), data=self.input_dir("split"),
                            out=tmp_dir, name=self.requires()["model"].run_name)


class _Export(_ModelTask):
    """A SavedModel that classifies encoded image bytes (python -m stages.predict uses it)."""

    stage_name = "export"

    def run_stage(self, tmp_dir):
        from stages import export
        return export.run(model=self.input_dir("model"), data=self.input_dir("split"),
                          out=tmp_dir)


@requires(model=train_tasks.TrainSupervised, split=split_tasks.PrepareSplits)
class EvaluateSupervised(_Evaluate):
    __doc__ = _Evaluate.__doc__
    program = "supervised"


@requires(model=train_tasks.TrainFixMatch, split=split_tasks.PrepareSplits)
class EvaluateFixMatch(_Evaluate):
    __doc__ = _Evaluate.__doc__
    program = "fixmatch"


@requires(model=train_tasks.TrainSupervised, split=split_tasks.PrepareSplits)
class ExportSupervised(_Export):
    __doc__ = _Export.__doc__
    program = "supervised"


@requires(model=train_tasks.TrainFixMatch, split=split_tasks.PrepareSplits)
class ExportFixMatch(_Export):
    __doc__ = _Export.__doc__
    program = "fixmatch"


EVALUATE = {"supervised": EvaluateSupervised, "fixmatch": EvaluateFixMatch}
EXPORT = {"supervised": ExportSupervised, "fixmatch": ExportFixMatch}
