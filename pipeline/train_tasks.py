"""TrainSupervised and TrainFixMatch: the two training programs as cached Luigi stages.

    luigi --module pipeline TrainSupervised --local-scheduler --split frac10.seed1 \\
        --preset demo --hparams '"augment": {"type": "cta"}'
    luigi --module pipeline TrainFixMatch --local-scheduler --split frac10.seed1 --preset demo

Both require PrepareSplits of the same data/split and nothing else, so `--workers 2` trains
them at once. Training checkpoints live in the task's work_dir
(ROOT/<stage>/<fp>.work/), which survives a killed run, so running the same command again
resumes from the last checkpoint. On success the published directory holds metrics.json,
hparams.json, history.jsonl, summaries/ and the final checkpoint (checkpoint/checkpoint-<step>.*:
model, EMA model, optimizer, CTA state; `tf.train.latest_checkpoint(DIR/checkpoint)` finds it).
The fingerprint covers the resolved hparams of the program (see pipeline/chain.py).
"""

from pipeline import cache, chain


class _TrainTask(chain.ChainParams, cache.CachedTask):
    """One training program (`program`: supervised | fixmatch) on the split of PrepareSplits."""

    program = ""

    def requires(self):
        return self.split_task()

    def significant_params(self):
        # The resolved hparams, not the override strings: equivalent spellings share the cache,
        # and a bad key fails here, before any upstream work.
        from stages import training
        return {"hparams": training.resolve_hparams(self.program, preset=self.preset,
                                                    hparams=self.overrides(self.program))}

    def run_stage(self, tmp_dir):
        from stages import training
        return training.run(self.program, data=self.input_dir(), model_dir=self.work_dir,
                            publish_dir=tmp_dir, preset=self.preset,
                            hparams=self.overrides(self.program), tpu=self.tpu or None)


class TrainSupervised(_TrainTask):
    """ResNet trained on the labeled set of a split (spec: the supervised program)."""

    stage_name = "train_supervised"
    program = "supervised"


class TrainFixMatch(_TrainTask):
    """FixMatch on the labeled + unlabeled sets of a split (spec: the fixmatch program)."""

    stage_name = "train_fixmatch"
    program = "fixmatch"
