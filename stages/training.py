"""What the two training programs (train_supervised, train_fixmatch) share: flags, run(), plan().

Flags keep the reference's names (--model_dir --steps_per_run --per_worker_batch_size
--per_worker_eval_batch_size --dataset --hparams --tpu) plus --data (a split directory) and
--preset; --steps_per_run and the batch-size flags override the `run.*` hparams. Everything is
validated before any model or dataset is built, in this order: hparams, the split directory,
model_dir. --plan prints what the run would do and exits (fixmatch/train/planning.py).
"""

from absl import flags

from fixmatch import hparams as hparams_lib
from fixmatch.data import split_dir
from fixmatch.splitting import names
from fixmatch.split_lists import SplitListError
from fixmatch.train import experiment, faults, planning
from stages import cli

#: Errors a training program reports as one line `<program>: error: ...`: bad input (exit
#: code 2), a diverged loss, unreadable checkpoints or a full disk (1), a stop on SIGTERM
#: after saving (75: rerun to resume).
ERRORS = (hparams_lib.HParamsError, split_dir.SplitDirError, experiment.ModelDirError,
          names.SplitNameError, faults.TrainingDiverged, faults.TrainingInterrupted,
          faults.CheckpointError, faults.DiskFull, planning.PlanError, SplitListError)

RUN_FLAGS = ("steps_per_run", "per_worker_batch_size", "per_worker_eval_batch_size")


def define_flags(program) -> None:
    """The training flags, on a stages.cli.Program."""
    fv = program.flags
    flags.DEFINE_string("data", None, "Split directory written by prepare_splits.", flag_values=fv)
    flags.DEFINE_string("model_dir", None, "Checkpoints, hparams.json, summaries/, metrics.json; "
                        "the same command again resumes from its newest checkpoint.",
                        flag_values=fv)
    flags.DEFINE_enum("preset", "imagenet", list(hparams_lib.PRESETS), "Named hparams preset: "
                      "imagenet = the reference, demo = a CPU in minutes, few_labels = the "
                      "demo for a handful of labels per class, smoke = tests.",
                      flag_values=fv)
    flags.DEFINE_string("hparams", "", "JSON overrides (outer braces optional), e.g. "
                        "'\"augment\": {\"type\": \"cta\"}'.", flag_values=fv)
    flags.DEFINE_string("tpu", "", "TPU name or address; empty = local CPU/GPUs (or TF_CONFIG).",
                        flag_values=fv)
    flags.DEFINE_integer("steps_per_run", None, "Steps between evals/checkpoints "
                         "(run.steps_per_run).", flag_values=fv)
    flags.DEFINE_integer("per_worker_batch_size", None, "Labeled batch per replica "
                         "(run.per_worker_batch_size).", flag_values=fv)
    flags.DEFINE_integer("per_worker_eval_batch_size", None, "Eval batch per replica "
                         "(run.per_worker_eval_batch_size).", flag_values=fv)
    flags.DEFINE_string("dataset", "", "The split --data must hold, by name (the reference's "
                        "imagenet128116.K, or fixmatch_10pct.K, frac10.seed1, ...); empty = any. "
                        "With --plan and no --data, a named ImageNet split to plan for.",
                        flag_values=fv)
    flags.DEFINE_bool("plan", False, "Print the schedule in steps, the images per step and an "
                      "estimated wall time from timing a few steps on this machine, then exit "
                      "without writing anything (needs no --model_dir; no --data for a named "
                      "split given as --dataset).", flag_values=fv)
    flags.DEFINE_integer("plan_steps", 3, "Steps --plan times after one warm-up step; 0 = "
                         "print the schedule only.", flag_values=fv)


def flag_kwargs(values) -> dict:
    """run() keyword arguments from parsed training flags."""
    return dict(data=values.data, model_dir=values.model_dir, preset=values.preset,
                hparams=values.hparams, tpu=values.tpu or None,
                **{name: values[name].value for name in RUN_FLAGS})


def main_body(program: str, run_fn):
    """The body of a training program's main: --plan prints the plan, else run_fn trains."""
    def body(values, _):
        kwargs = dict(flag_kwargs(values), dataset=values.dataset or None)
        if not values.plan:
            return run_fn(**kwargs)
        del kwargs["model_dir"]  # a plan never looks at it
        info = plan(program, plan_steps=values.plan_steps, **kwargs)
        print(planning.format_plan(info), flush=True)
        return None
    return body


def resolve_hparams(program: str, *, preset, hparams=None, **run_flags) -> dict:
    """Defaults -> preset -> --hparams -> run.* flags, validated (HParamsError names the key)."""
    hp = hparams_lib.resolve(program=program, preset=preset, overrides=hparams)
    for key, value in run_flags.items():
        if key not in RUN_FLAGS:
            raise TypeError(f"unknown run flag {key!r}; known: {list(RUN_FLAGS)}")
        if value is not None:
            hp["run"][key] = value
    return hparams_lib.check_program(program, hparams_lib.validate(hp))


def read_split(program: str, data, *, dataset=None) -> split_dir.Split:
    """The split in --data, with every set `program` reads; `dataset` (a split name, e.g. the
    reference's imagenet128116.K) must name the split it holds."""
    split = split_dir.read_split(data, sets=experiment.SETS[program])
    if dataset:
        wanted = names.parse_split_name(dataset).name
        if split.name != wanted:
            raise split_dir.SplitDirError(
                f"--dataset {dataset} asks for split {wanted!r}, but --data {split.path!r} "
                f"holds split {split.name!r}; pass the prepare_splits output of {wanted!r} "
                "(or drop --dataset)")
    return split


def plan(program: str, *, data=None, dataset=None, preset="imagenet", hparams=None, tpu=None,
         plan_steps=3, **run_flags) -> dict:
    """What a run with these arguments would do (planning.describe), plus this machine's timing
    of its step (planning.time_step) unless plan_steps is 0. Reads the split's counts (from
    --data, or for a named split from the shipped lists) and writes nothing."""
    hp = resolve_hparams(program, preset=preset, hparams=hparams, **run_flags)
    if plan_steps < 0:
        raise cli.StageError(f"--plan_steps must be >= 0, got {plan_steps}")
    if tpu:
        raise cli.StageError("--plan times the training step on this machine and cannot reach "
                             "a TPU: drop --tpu, and pass the TPU's global labeled batch as "
                             "--per_worker_batch_size to see its schedule")
    if data:
        counts = planning.counts_from_split(read_split(program, data, dataset=dataset))
    elif dataset:
        counts = planning.counts_from_name(dataset)
    else:
        raise cli.StageError("--plan needs --data (a prepare_splits output) or --dataset (a "
                             "named ImageNet split, e.g. fixmatch_10pct.1)")
    from fixmatch.train.strategy import select_strategy
    strategy = select_strategy(environ={})  # this machine's devices; a TF_CONFIG cluster is not
    info = planning.describe(program, hp, counts, experiment.make_plan(
        program, hp, counts, replicas=strategy.num_replicas_in_sync))
    if plan_steps:
        info.update(planning.time_step(program, hp, num_classes=counts.num_classes,
                                       strategy=strategy, steps=plan_steps),
                    machine=planning.this_machine())
        info["estimated_seconds"] = info["seconds_per_image"] * info["image_passes"]
    return info


def run(program: str, *, data, model_dir, preset="imagenet", hparams=None, tpu=None,
        dataset=None, publish_dir=None, log=None, **run_flags) -> dict:
    """Validates, trains (or resumes) and, with publish_dir, publishes; returns the metrics."""
    hp = resolve_hparams(program, preset=preset, hparams=hparams, **run_flags)
    split = read_split(program, data, dataset=dataset)
    experiment.check_model_dir(model_dir, hp)
    metrics = experiment.train_and_evaluate(program=program, hp=hp, split=split,
                                            model_dir=model_dir, tpu=tpu, log=log)
    if publish_dir is None:
        return metrics
    from fixmatch.train import checkpoint
    return checkpoint.publish_run(model_dir=model_dir, out_dir=publish_dir, metrics=metrics)
