"""TrainSupervised and TrainFixMatch: the two training programs as cached Luigi stages.

    luigi --module pipeline TrainSupervised --local-scheduler --split frac10.seed1 \
        --preset demo --hparams '"augment": {"type": "cta"}'
    luigi --module pipeline TrainFixMatch --local-scheduler --split frac10.seed1 --preset demo

Both require PrepareSplits of the same data/split and nothing else, so `--workers 2` trains
them at once. Training checkpoints live in the task's work_dir
(ROOT/<stage>/<fp>.work/), which survives a killed run, so running the same command again
resumes from the last checkpoint. On success the published directory holds metrics.json,
hparams.json, summaries/ and the final checkpoint (checkpoint/checkpoint-<step>.*: model, EMA
model, optimizer, CTA state; `tf.train.latest_checkpoint(DIR/checkpoint)` finds it).
The fingerprint covers the resolved hparams of the program, not the override string.
"""

import luigi

from pipeline import cache, split_tasks


class _TrainTask(cache.CachedTask):
    """One training program (`program`: supervised | fixmatch) on the split of PrepareSplits."""

    program = ""

    data_dir = luigi.Parameter(default="", description="As PrepareSplits: input data; empty = "
                               "the demo data set.")
    split = luigi.Parameter(default="frac10.seed1", description="Split name (PrepareSplits).")
    allow_missing = luigi.BoolParameter(default=False, description="As PrepareSplits.")
    demo = luigi.DictParameter(default={}, description="DemoData parameters when no data_dir.")
    preset = luigi.Parameter(default="demo", description="hparams preset: imagenet | demo | "
                             "smoke.")
    hparams = luigi.Parameter(default="", description="JSON hparams overrides (outer braces "
                              "optional), e.g. '\"augment\": {\"type\": \"cta\"}'.")
    tpu = luigi.Parameter(default="", significant=False, description="TPU name/address; "
                          "empty = local CPU/GPUs.")

    def requires(self):
        return self.upstream(split_tasks.PrepareSplits, data_dir=self.data_dir, split=self.split,
                             allow_missing=self.allow_missing, demo=self.demo)

    def significant_params(self):
        # The resolved hparams, not the override string: equivalent spellings share the cache,
        # and a bad key fails here, before any upstream work.
        from stages import training
        return {"hparams": training.resolve_hparams(self.program, preset=self.preset,
                                                    hparams=self.hparams)}

    def run_stage(self, tmp_dir):
        from stages import training
        return training.run(self.program, data=self.input_dir(), model_dir=self.work_dir,
                            publish_dir=tmp_dir, preset=self.preset, hparams=self.hparams,
                            tpu=self.tpu or None)


class TrainSupervised(_TrainTask):
    """ResNet trained on the labeled set of a split (spec: the supervised program)."""

    stage_name = "train_supervised"
    program = "supervised"


class TrainFixMatch(_TrainTask):
    """FixMatch on the labeled + unlabeled sets of a split (spec: the fixmatch program)."""

    stage_name = "train_fixmatch"
    program = "fixmatch"
