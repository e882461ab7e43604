"""Report and FullRun: the comparison at the end of the pipeline.

    luigi --module pipeline FullRun --local-scheduler
    luigi --module pipeline FullRun --local-scheduler --data-dir /data/imagenet \\
        --split fixmatch_10pct.1 --preset imagenet \\
        --fixmatch-hparams '"augment": {"type": "randaugment"}, "num_epochs": 3000,
                            "learning_rate": {"warmup_epochs": 50, "decay_epochs": 500}'

FullRun = demo data (when no --data-dir) -> PrepareSplits -> TrainSupervised and TrainFixMatch
-> Evaluate of each -> Report, and Export of the FixMatch model; it prints the report's table
at the end, also when every stage was already cached.
"""

import luigi

from pipeline import cache, chain, eval_tasks


class Report(chain.ChainParams, cache.CachedTask):
    """report.md, report.json and top1.png comparing the supervised baseline with FixMatch."""

    stage_name = "report"

    def requires(self):
        return {**{f"train_{p}": self.train_task(p) for p in chain.PROGRAMS},
                **{f"eval_{p}": self.upstream(eval_tasks.Evaluate, program=p,
                                              **self.chain_params()) for p in chain.PROGRAMS}}

    def significant_params(self):
        return {}  # everything that decides the report is in the upstream fingerprints

    def run_stage(self, tmp_dir):
        from stages import report
        return report.run(supervised=self.input_dir("train_supervised"),
                          fixmatch=self.input_dir("train_fixmatch"),
                          supervised_eval=self.input_dir("eval_supervised"),
                          fixmatch_eval=self.input_dir("eval_fixmatch"), out=tmp_dir)


class FullRun(chain.ChainParams, luigi.WrapperTask):
    """The whole chain; prints the comparison table when it is done."""

    root = cache.root_parameter()

    upstream = cache.CachedTask.upstream

    def requires(self):
        return {"report": self.upstream(Report, **self.chain_params()),
                "export": self.upstream(eval_tasks.Export, program="fixmatch",
                                        **self.chain_params())}


@FullRun.event_handler(luigi.Event.SUCCESS)
@FullRun.event_handler(luigi.Event.DEPENDENCY_PRESENT)
def _print_report(task):
    from stages import report
    required = task.requires()
    report.print_report(required["report"].out_dir, export_dir=required["export"].out_dir)
