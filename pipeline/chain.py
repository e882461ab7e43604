"""The parameters every task after the split shares, so any single stage can be run alone with
the same names as FullRun and reuses the cached upstream outputs.

    --data-dir --split --allow-missing --demo --beam-args   (which split: PrepareSplits)
    --preset --hparams --supervised-hparams --fixmatch-hparams --tpu   (how to train)

`--hparams` applies to both trainings, `--<program>-hparams` to one of them, on top of it.
Training tasks are fingerprinted by their resolved hparams, so the spelling of an override (or
which of the three flags carried it) does not matter.
"""

import luigi

from pipeline import split_tasks

PROGRAMS = ("supervised", "fixmatch")


class ChainParams:
    """Mixin of the shared parameters, with the upstream tasks they select."""

    data_dir = luigi.Parameter(default="", description="Image folders or imagenet_to_gcs "
                               "TFRecords (local or gs://); empty = the demo data set.")
    split = luigi.Parameter(default="frac10.seed1", description="Split name (PrepareSplits), "
                            "e.g. frac10.seed1, simclr_10pct, fixmatch_10pct.1.")
    allow_missing = luigi.BoolParameter(default=False, description="As PrepareSplits.")
    demo = luigi.DictParameter(default={}, description="DemoData parameters when no data_dir.")
    beam_args = luigi.Parameter(default="", significant=False, description="Beam options of "
                                "PrepareSplits, e.g. \"--runner=DataflowRunner --project=P ...\"")
    preset = luigi.Parameter(default="demo", description="hparams preset of both trainings: "
                             "demo | imagenet (the reference) | smoke (tests).")
    hparams = luigi.Parameter(default="", description="JSON hparams overrides of both "
                              "trainings (outer braces optional).")
    supervised_hparams = luigi.Parameter(default="", description="Overrides of the supervised "
                                         "training only (on top of --hparams).")
    fixmatch_hparams = luigi.Parameter(default="", description="Overrides of the FixMatch "
                                       "training only (on top of --hparams).")
    tpu = luigi.Parameter(default="", significant=False, description="TPU name/address; "
                          "empty = local CPU/GPUs.")

    def chain_params(self) -> dict:
        """The shared parameter values, to hand to an upstream task."""
        return {name: getattr(self, name) for name in (
            "data_dir", "split", "allow_missing", "demo", "beam_args", "preset", "hparams",
            "supervised_hparams", "fixmatch_hparams", "tpu")}

    def overrides(self, program: str) -> dict:
        """--hparams then --<program>-hparams, merged."""
        from fixmatch import hparams as hparams_lib
        if program not in PROGRAMS:
            raise ValueError(f"program must be one of {list(PROGRAMS)}, got {program!r}")
        flag = f"--{program}-hparams"
        return hparams_lib.merge_overrides(
            hparams_lib.parse_overrides(self.hparams),
            hparams_lib.parse_overrides(getattr(self, f"{program}_hparams"), flag=flag))

    def split_task(self):
        return self.upstream(split_tasks.PrepareSplits, data_dir=self.data_dir, split=self.split,
                             allow_missing=self.allow_missing, demo=self.demo,
                             beam_args=self.beam_args)

    def train_task(self, program: str):
        from pipeline import train_tasks
        task_cls = {"supervised": train_tasks.TrainSupervised,
                    "fixmatch": train_tasks.TrainFixMatch}[program]
        return self.upstream(task_cls, **self.chain_params())
