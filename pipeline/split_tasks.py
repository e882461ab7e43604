"""PrepareSplits: the Beam split job as a cached Luigi stage.

    luigi --module pipeline PrepareSplits --local-scheduler --split frac10.seed1
    luigi --module pipeline PrepareSplits --local-scheduler --data-dir /data/imagenet \
        --split fixmatch_10pct.1 --beam-args "--direct_num_workers=2"

No --data-dir = the generated demo data set. Output: ROOT/prepare_splits/<fingerprint>/ with
the shards, classes.txt, rejected.jsonl, split.json (the stage's own facts, read by
fixmatch.data.split_dir) and the cache's manifest.json (which repeats them under "result").
"""

import shlex

import luigi

from pipeline import cache, data_tasks


class PrepareSplits(cache.CachedTask):
    """labeled / unlabeled / validation TFRecords of one split of the data."""

    stage_name = "prepare_splits"

    data_dir = luigi.Parameter(default="", description="Image folders or imagenet_to_gcs "
                               "TFRecords (local or gs://); empty = the demo data set.")
    split = luigi.Parameter(default="frac10.seed1", description="full | simclr_1pct | "
                            "simclr_10pct | fixmatch_10pct.K (imagenet128116.K) | "
                            "frac<P>.seed<N>")
    allow_missing = luigi.BoolParameter(default=False, description="Accept named-list entries "
                                        "without an image in the input (a subset of ImageNet).")
    demo = luigi.DictParameter(default={}, description="DemoData parameters (image_size, "
                               "train_per_class, ...) when no data_dir is given.")
    beam_args = luigi.Parameter(default="", significant=False, description="Beam pipeline "
                                "options, e.g. \"--direct_num_workers=2\" or \"--runner="
                                "DataflowRunner --project=P --region=R --temp_location=gs://...\"")

    def requires(self):
        return data_tasks.data_source(self, self.data_dir, **dict(self.demo))

    def significant_params(self):
        # What decides the output: the canonical split (aliases share a cache entry) and
        # allow_missing. The data enter through the upstream fingerprint (content, not path).
        from fixmatch.splitting import names
        return {"split": names.parse_split_name(self.split).name,
                "allow_missing": bool(self.allow_missing)}

    def run_stage(self, tmp_dir):
        from stages import prepare_splits
        return prepare_splits.run(input=self.input_dir(), output=tmp_dir, split=self.split,
                                  allow_missing=self.allow_missing,
                                  beam_args=shlex.split(self.beam_args))
