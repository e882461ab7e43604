"""TrainSupervised and TrainFixMatch: the two training programs as cached Luigi stages.

    luigi --module pipeline TrainSupervised --local-scheduler --split frac10.seed1 \\
        --preset demo --supervised-hparams '"augment": {"type": "cta"}'
    luigi --module pipeline TrainFixMatch --local-scheduler --split frac10.seed1 --preset demo

Each takes the parameters of PrepareSplits (luigi.util.inherits; requires() clones it) plus
its own: --preset, --hparams (shared with the other program when FullRun hands it down),
--<program>-hparams (this program only) and --tpu. So FullRun's flags select the same split
and the same training when a task runs alone, and a FixMatch-only override never changes
TrainSupervised's task id (nor the reverse). `--workers 2` trains both at once.

Checkpoints live in the task's work_dir (ROOT/<stage>/<fp>.work/), which survives a killed or
failed run, so running the same command again resumes from the last checkpoint; the cache
removes it once the output is published. The published directory holds metrics.json,
hparams.json, history.jsonl and the final checkpoint (checkpoint/checkpoint-<step>.*: model,
EMA model, optimizer, CTA state; `tf.train.latest_checkpoint(DIR/checkpoint)` finds it).
Its TensorBoard events move to ROOT/tensorboard/<run name>/ (see `run_name`), their one copy
under the root, so `tensorboard --logdir ROOT` lists each training once and by name.
The fingerprint covers the resolved hparams of the program.
"""

import json
import os

import luigi
from luigi.util import inherits

from fixmatch import fs
from pipeline import cache, split_tasks

PROGRAMS = ("supervised", "fixmatch")
TENSORBOARD_DIR = "tensorboard"  # ROOT/tensorboard/<run name>/: the published event files
SUMMARIES_DIR = "summaries"  # where the engine writes them (model_dir/summaries)
SHORT_FINGERPRINT = 8


@inherits(split_tasks.PrepareSplits)
class _TrainTask(cache.CachedTask):
    """One training program (`program`: supervised | fixmatch) on the split of PrepareSplits."""

    program = ""  # a class constant, not a parameter: one task class per program

    preset = luigi.Parameter(default="demo", description="hparams preset: demo | imagenet "
                             "(the reference) | few_labels (the demo for a handful of labels "
                             "per class) | smoke (tests).")
    hparams = luigi.Parameter(default="", description="JSON hparams overrides (outer braces "
                              "optional); FullRun applies them to both trainings.")
    tpu = luigi.Parameter(default="", significant=False, description="TPU name/address; "
                          "empty = local CPU/GPUs.")

    def requires(self):
        return self.clone_parent()

    def overrides(self) -> dict:
        """--hparams then --<program>-hparams, merged."""
        from fixmatch import hparams as hparams_lib
        flag = f"--{self.program}-hparams"
        return hparams_lib.merge_overrides(
            hparams_lib.parse_overrides(self.hparams),
            hparams_lib.parse_overrides(getattr(self, f"{self.program}_hparams"), flag=flag))

    def significant_params(self):
        # The resolved hparams, not the override strings: equivalent spellings share the cache,
        # and a bad key fails here, before any upstream work.
        from stages import training
        return {"hparams": training.resolve_hparams(self.program, preset=self.preset,
                                                    hparams=self.overrides())}

    @property
    def run_name(self) -> str:
        """What a person calls this training: program, split, preset and a short fingerprint,
        e.g. `fixmatch-frac10.seed1-demo-3f2a9c1b` (TensorBoard's run, the report's rows)."""
        from fixmatch.splitting import names
        split = names.parse_split_name(self.split).name
        return f"{self.program}-{split}-{self.preset}-{self.fingerprint[:SHORT_FINGERPRINT]}"

    @property
    def tensorboard_dir(self) -> str:
        return fs.join(self.root_path, TENSORBOARD_DIR, self.run_name)

    def run_stage(self, tmp_dir):
        from stages import training
        result = training.run(self.program, data=self.input_dir(), model_dir=self.work_dir,
                              publish_dir=tmp_dir, preset=self.preset, hparams=self.overrides(),
                              tpu=self.tpu or None)
        _move_tree(fs.join(tmp_dir, SUMMARIES_DIR), self.tensorboard_dir)
        from fixmatch.train import summaries
        summaries.write_run_card(self.tensorboard_dir, self.run_card(result))
        return dict(result, run_name=self.run_name,
                    tensorboard=f"{TENSORBOARD_DIR}/{self.run_name}")

    def run_card(self, result: dict) -> str:
        """The Markdown table TensorBoard shows in its Text tab for this run: what it is, its
        key hparams and what the x-axis counts."""
        from fixmatch.splitting import names
        from stages import report
        hp = self.significant_params()["hparams"]
        steps_per_epoch = result["steps"] / result["epochs"] if result.get("epochs") else None
        rows = [("run", self.run_name), ("fingerprint", f"`{self.fingerprint}`"),
                ("program", self.program), ("split", names.parse_split_name(self.split).name),
                ("preset", self.preset),
                ("overrides", f"`{json.dumps(self.overrides())}`" if self.overrides() else "-"),
                ("x-axis", "thousandths of a labeled epoch (the reference's convention): 1000 = "
                 + (f"{steps_per_epoch:g} steps" if steps_per_epoch else "one epoch"))]
        rows += [(title, value) for (title, _), value in zip(report.KEY_HPARAMS,
                                                             report.key_hparams(hp).values())]
        return "| | |\n|---|---|\n" + "\n".join(
            f"| {key} | {'-' if value is None else value} |" for key, value in rows)


class TrainSupervised(_TrainTask):
    """ResNet trained on the labeled set of a split (spec: the supervised program)."""

    stage_name = "train_supervised"
    program = "supervised"

    supervised_hparams = luigi.Parameter(default="", description="Overrides of the supervised "
                                         "training only (on top of --hparams).")


class TrainFixMatch(_TrainTask):
    """FixMatch on the labeled + unlabeled sets of a split (spec: the fixmatch program)."""

    stage_name = "train_fixmatch"
    program = "fixmatch"

    fixmatch_hparams = luigi.Parameter(default="", description="Overrides of the FixMatch "
                                       "training only (on top of --hparams).")


TASKS = {"supervised": TrainSupervised, "fixmatch": TrainFixMatch}


def _move_tree(src: str, dst: str) -> None:
    """Move the directory `src` to `dst`, replacing what a failed earlier run left there (one
    rename on a local root; copy then delete on an object store, which has no rename)."""
    if not fs.exists(src):
        return
    fs.rmtree(dst)
    if fs.is_remote(src) or fs.is_remote(dst):
        fs.copy_tree(src, dst)
        fs.rmtree(src)
        return
    fs.makedirs(os.path.dirname(dst))
    os.rename(src, dst)
