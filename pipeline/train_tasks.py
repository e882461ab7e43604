"""TrainSupervised: the supervised baseline as a cached Luigi stage.

    luigi --module pipeline TrainSupervised --local-scheduler --split frac10.seed1 \
        --preset demo --hparams '"augment": {"type": "cta"}'

Requires PrepareSplits of the same data/split. Training checkpoints live in the
task's work_dir (ROOT/train_supervised/<fp>.work/), which survives a killed
run, so running the same command again resumes from the last checkpoint. On
success the published directory holds metrics.json, hparams.json, summaries/
and the final checkpoint (checkpoint/checkpoint-<step>.*: model, EMA model,
optimizer, CTA state; `tf.train.latest_checkpoint(DIR/checkpoint)` finds it).
"""

import luigi

from pipeline import cache, split_tasks


class TrainSupervised(cache.CachedTask):
    """ResNet trained on the labeled set of a split (spec: the supervised program)."""

    stage_name = "train_supervised"

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
        from fixmatch import hparams as hparams_lib
        resolved = hparams_lib.resolve(program="supervised", preset=self.preset,
                                       overrides=self.hparams)
        return {"hparams": resolved}

    def run_stage(self, tmp_dir):
        from stages import train_supervised
        return train_supervised.run(data=self.input_dir(), model_dir=self.work_dir,
                                    publish_dir=tmp_dir, preset=self.preset,
                                    hparams=self.hparams, tpu=self.tpu or None)
