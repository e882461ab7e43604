"""What the two training programs (train_supervised, train_fixmatch) share: flags and run().

Flags keep the reference's names (--model_dir --steps_per_run --per_worker_batch_size
--per_worker_eval_batch_size --hparams --tpu) plus --data (a split directory) and --preset;
--steps_per_run and the batch-size flags override the `run.*` hparams. Everything is validated
before any model or dataset is built, in this order: hparams, the split directory, model_dir.
"""

from absl import flags

from fixmatch import hparams as hparams_lib
from fixmatch.data import split_dir
from fixmatch.splitting import names
from fixmatch.train import experiment, faults

#: Errors a training program reports as one line `<program>: error: ...`: bad input (exit
#: code 2), a diverged loss, unreadable checkpoints or a full disk (1), a stop on SIGTERM
#: after saving (75: rerun to resume).
ERRORS = (hparams_lib.HParamsError, split_dir.SplitDirError, experiment.ModelDirError,
          names.SplitNameError, faults.TrainingDiverged, faults.TrainingInterrupted,
          faults.CheckpointError, faults.DiskFull)

RUN_FLAGS = ("steps_per_run", "per_worker_batch_size", "per_worker_eval_batch_size")


def define_flags(program) -> None:
    """The training flags, on a stages.cli.Program."""
    fv = program.flags
    flags.DEFINE_string("data", None, "Split directory written by prepare_splits.", flag_values=fv)
    flags.DEFINE_string("model_dir", None, "Checkpoints, hparams.json, summaries/, metrics.json; "
                        "the same command again resumes from its newest checkpoint.",
                        flag_values=fv)
    flags.DEFINE_enum("preset", "imagenet", list(hparams_lib.PRESETS), "Named hparams preset: "
                      "imagenet = the reference, demo = a CPU in minutes, smoke = tests.",
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


def flag_kwargs(values) -> dict:
    """run() keyword arguments from parsed training flags."""
    return dict(data=values.data, model_dir=values.model_dir, preset=values.preset,
                hparams=values.hparams, tpu=values.tpu or None,
                **{name: values[name].value for name in RUN_FLAGS})


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
