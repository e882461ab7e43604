"""Report and FullRun: the comparison at the end of the pipeline.

    luigi --module pipeline FullRun --local-scheduler
    luigi --module pipeline FullRun --local-scheduler --data-dir /data/imagenet \\
        --split fixmatch_10pct.1 --preset imagenet \\
        --fixmatch-hparams '"augment": {"type": "randaugment"}, "num_epochs": 3000,
                            "learning_rate": {"warmup_epochs": 50, "decay_epochs": 500}'

FullRun = demo data (when no --data-dir) -> PrepareSplits -> TrainSupervised and TrainFixMatch
-> EvaluateSupervised and EvaluateFixMatch -> Report, and ExportFixMatch; it prints the
report's table at the end, also when every stage was already cached. Report and FullRun take
every parameter (luigi.util.requires inherits those of each task they require) and hand each
task its own: `--fixmatch-hparams` reaches only the FixMatch tasks.
"""

import luigi
from luigi.util import requires

from pipeline import cache, eval_tasks, train_tasks


@requires(train_supervised=train_tasks.TrainSupervised, train_fixmatch=train_tasks.TrainFixMatch,
          eval_supervised=eval_tasks.EvaluateSupervised,
          eval_fixmatch=eval_tasks.EvaluateFixMatch)
class Report(cache.CachedTask):
    """report.md, report.json and top1.png comparing the supervised baseline with FixMatch."""

    stage_name = "report"
    format_version = 3  # 2: the runs' names, fingerprints and key hparams; 3: per class

    def significant_params(self):
        return {}  # everything that decides the report is in the upstream fingerprints

    def run_stage(self, tmp_dir):
        from stages import report
        required = self.requires()
        runs = {p: {"name": required[f"train_{p}"].run_name,
                    "fingerprint": required[f"train_{p}"].fingerprint}
                for p in train_tasks.PROGRAMS}
        return report.run(supervised=self.input_dir("train_supervised"),
                          fixmatch=self.input_dir("train_fixmatch"),
                          supervised_eval=self.input_dir("eval_supervised"),
                          fixmatch_eval=self.input_dir("eval_fixmatch"), out=tmp_dir, runs=runs)


@requires(report=Report, export=eval_tasks.ExportFixMatch)
class FullRun(luigi.WrapperTask):
    """The whole chain; prints the comparison table when it is done."""

    root = cache.root_parameter()


@FullRun.event_handler(luigi.Event.SUCCESS)
@FullRun.event_handler(luigi.Event.DEPENDENCY_PRESENT)
def _print_report(task):
    from stages import report
    required = task.requires()
    report.print_report(required["report"].out_dir, export_dir=required["export"].out_dir)
