"""One training experiment: (program, resolved hparams, split, model_dir) -> a finished run.

The training programs are thin over this: they parse flags and resolve hparams, then call
`train_and_evaluate`, which builds the strategy, the global batches and schedule, the
augmentation (and the CTAugment state inside the strategy scope), the distributed datasets,
the model and the loop configuration, and runs the engine (loop.train_and_evaluate) to the
end, resuming from model_dir. `check_model_dir` refuses a model_dir that holds another run.
"""

import dataclasses
import functools
import json

from fixmatch import fs
from fixmatch import hparams as hparams_lib
from fixmatch.data import schema
from fixmatch.data import split_dir as split_lib

HPARAMS_FILE = "hparams.json"


class ModelDirError(ValueError):
    """A --model_dir that cannot hold this run."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """The numbers a run is made of, derived once from hparams, split and replica count."""

    replicas: int
    global_batch: int
    global_eval_batch: int
    steps_per_epoch: float  # of the schedule: more than a pass when run.min_steps stretches it
    total_steps: int
    images_per_step: int


#: The record sets each program reads.
SETS = {"supervised": (schema.LABELED, schema.VALIDATION), "fixmatch": schema.SETS}


def make_plan(program: str, hp: dict, split: split_lib.Split, *, replicas: int) -> Plan:
    from fixmatch.train import schedule
    run_hp = hp["run"]
    global_batch = run_hp["per_worker_batch_size"] * replicas
    spe = schedule.stretch_for_min_steps(
        schedule.steps_per_epoch(num_labeled=split.num_labeled, global_batch_size=global_batch),
        num_epochs=hp["num_epochs"], min_steps=run_hp["min_steps"])
    # FixMatch's forward pass sees B labeled + uratio*B weak + uratio*B strong images.
    views = 1 + 2 * hp["uratio"] if program == "fixmatch" else 1
    return Plan(replicas=replicas, global_batch=global_batch,
                global_eval_batch=run_hp["per_worker_eval_batch_size"] * replicas,
                steps_per_epoch=spe,
                total_steps=schedule.total_steps(steps_per_epoch=spe,
                                                 num_epochs=hp["num_epochs"],
                                                 max_steps=run_hp["max_steps"]),
                images_per_step=global_batch * views)


def seed_everything(run_hp: dict) -> None:
    """`run.seed` seeds Python, NumPy, TensorFlow and Keras (model initialisation, every random
    op of the augmentations, every shuffle); `run.deterministic` also makes the ops and tf.data
    deterministic (process-wide: TensorFlow cannot turn it off again)."""
    if run_hp["seed"] is None:
        return
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(run_hp["seed"])
    if run_hp["deterministic"]:
        tf.config.experimental.enable_op_determinism()


def check_model_dir(model_dir: str, hp: dict, *, flag="--model_dir") -> None:
    """model_dir is new, or holds a run with exactly these hparams (then it resumes)."""
    if not model_dir:
        raise ModelDirError(f"{flag} is required (checkpoints, hparams.json, summaries/)")
    if fs.exists(model_dir) and not fs.isdir(model_dir):
        raise ModelDirError(f"{flag} {model_dir!r} exists and is not a directory")
    fs.require_writable(model_dir, what=flag, error=ModelDirError)
    saved_path = fs.join(model_dir, HPARAMS_FILE)
    if not fs.exists(saved_path):
        return
    saved = dict(hparams_lib.flatten(json.loads(fs.read_text(saved_path))))
    wanted = dict(hparams_lib.flatten(json.loads(hparams_lib.to_json(hp))))
    diff = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
    if diff:
        raise ModelDirError(f"{flag} {model_dir!r} holds a run with different hparams "
                            f"(differs in {diff}); use a new {flag} to start over")


def build_augment(hp: dict, strategy):
    """(strong, probe, cta_hooks, hparams_input) for the configured `augment.type`.

    The CTAugment state is created in the strategy scope (it is checkpointed and updated on
    every replica); its policy is host-local and feeds the input pipelines.
    """
    aug, hp_input = hp["augment"], dict(hp["input"])
    kind = aug["type"]
    if kind in ("noop", "none"):
        return None, None, None, hp_input
    if kind == "horizontal_flip":
        return None, None, None, dict(hp_input, use_default_augment=True)
    if kind == "randaugment":
        from fixmatch.augment.randaugment import RandAugment
        return RandAugment.from_hparams(aug), None, None, hp_input
    if kind == "cta":
        from fixmatch.augment.ctaugment import CTAPolicy, CTAState
        from fixmatch.train import cta_hooks
        with strategy.scope():
            state = CTAState.from_hparams(aug)
        policy = CTAPolicy.from_hparams(aug)
        hooks = cta_hooks.make_cta_hooks(
            state=state, policy=policy,
            use_ema_probe=bool(hp["use_ema"] and aug["use_ema_probe_image"]))
        return policy.strong, policy.probe, hooks, hp_input
    raise hparams_lib.HParamsError(f"hparam 'augment.type' {kind!r} is not supported")


def build_pseudo_labeler(hp: dict, split: split_lib.Split, strategy):
    """FixMatch's pseudo-label rule and alignment (`fixmatch.threshold`, `fixmatch.dist_align`),
    their state created in the strategy scope: it is checkpointed and updated on every replica."""
    from fixmatch.train import thresholds
    fm = hp["fixmatch"]
    if fm["dist_align"] == "labeled" and not split.labeled_class_counts:
        raise split_lib.SplitDirError(
            f"hparam 'fixmatch.dist_align' is 'labeled', but {split.path}/{split_lib.SPLIT_FILE} "
            "has no counts_per_class of the labeled set; rebuild the split with prepare_splits "
            "or align towards 'uniform'")
    target = thresholds.alignment_target(fm["dist_align"], num_classes=split.num_classes,
                                         labeled_counts=split.labeled_class_counts)
    with strategy.scope():
        rule = thresholds.make_rule(fm["threshold"], num_classes=split.num_classes,
                                    confidence=fm["confidence"],
                                    momentum=fm["threshold_momentum"],
                                    lambda_max=fm["softmatch_lambda_max"])
        align = (thresholds.DistributionAlignment(target, momentum=fm["dist_align_momentum"])
                 if target is not None else None)
        return thresholds.PseudoLabeler(rule, align, fairness_weight=fm["fairness_weight"])


def train_and_evaluate(*, program: str, hp: dict, split: split_lib.Split, model_dir: str,
                       tpu=None, strategy=None, log=None) -> dict:
    """Trains (or resumes) `program` on `split` into model_dir; returns the final metrics.

    `hp` must be resolved and validated (hparams.resolve); `strategy` overrides the one
    chosen from the environment (tests pass a MirroredStrategy over logical CPUs).
    """
    if program not in SETS:
        raise ValueError(f"unknown program {program!r}; known: {sorted(SETS)}")
    from fixmatch.data import pipelines
    from fixmatch.models import build_model
    from fixmatch.train import loop, schedule, steps, summaries
    from fixmatch.train.strategy import select_strategy, worker_role

    seed_everything(hp["run"])
    strategy = strategy or select_strategy(tpu=tpu or None)
    plan = make_plan(program, hp, split, replicas=strategy.num_replicas_in_sync)
    image_size = hp["input"]["image_size"]
    strong, probe, cta, hp_input = build_augment(hp, strategy)
    common = dict(image_size=image_size, probe=probe, hparams_input=hp_input,
                  seed=hp["run"]["seed"])
    if program == "fixmatch":
        # Labeled images stay weak (spec 4.3/4.4) unless fixmatch.strong_labeled is set.
        fm = hp["fixmatch"]
        train_fn = functools.partial(pipelines.fixmatch_dataset, split.path, uratio=hp["uratio"],
                                     strong=strong, with_labels=True,
                                     strong_labeled=fm["strong_labeled"],
                                     unlabeled_crop_min_area=fm["unlabeled_crop_min_area"],
                                     **common)
        objective = steps.make_fixmatch_objective(
            wu=fm["wu"], labeler=build_pseudo_labeler(hp, split, strategy),
            num_classes=split.num_classes, ema_teacher=fm["pseudo_label_model"] == "ema")
    else:
        train_fn = functools.partial(pipelines.labeled_dataset, split.path, training=True,
                                     strong=strong, **common)
        objective = steps.supervised_objective
    train_data = pipelines.distribute(strategy, train_fn, global_batch_size=plan.global_batch)
    eval_data = pipelines.distribute(strategy, functools.partial(
        pipelines.eval_dataset, split.path, image_size=image_size, hparams_input=hp["input"],
        max_examples=hp["run"]["eval_examples"]),
        global_batch_size=plan.global_eval_batch)
    model_fn = functools.partial(
        build_model, hp["model"]["name"], num_classes=split.num_classes, image_size=image_size,
        weight_decay=hp["weight_decay"],
        dtype_policy="mixed_bfloat16" if hp["bfloat16"] else "float32")
    run_hp = hp["run"]
    config = loop.LoopConfig(
        model_dir=model_dir, total_steps=plan.total_steps, steps_per_run=run_hp["steps_per_run"],
        steps_per_epoch=plan.steps_per_epoch, global_batch_size=plan.global_batch,
        use_ema=hp["use_ema"], ema_decay=hp["ema_decay"], use_xla=run_hp["use_xla"],
        keep_checkpoints=run_hp["keep_checkpoints"], images_per_step=plan.images_per_step,
        # The pipelines emit uint8 (unless saturate_uint8 is off); the step scales on device.
        scale_and_center=hp["input"]["scale_and_center"],
        replay_input_on_resume=run_hp["deterministic"])
    if worker_role(strategy)[0]:
        fs.makedirs(model_dir)
        hparams_lib.save(hp, fs.join(model_dir, HPARAMS_FILE))
    log = log or summaries.print_progress
    log(f"train_{program}: {hp['model']['name']} on {split.path} ({split.num_labeled} labeled, "
        f"{split.num_classes} classes), {plan.replicas} replica(s) of "
        f"{type(strategy).__name__}, global batch {plan.global_batch}, "
        f"{plan.steps_per_epoch:.2f} steps/epoch, {plan.total_steps} steps, "
        f"augment {hp['augment']['type']}"
        + (f", uratio {hp['uratio']}, threshold {hp['fixmatch']['threshold']}, dist_align "
           f"{hp['fixmatch']['dist_align']}, pseudo-labels from the "
           f"{hp['fixmatch']['pseudo_label_model']} model" if program == "fixmatch" else "")
        + (f", seed {hp['run']['seed']}" if hp["run"]["seed"] is not None else ""))
    with split_lib.naming_damaged_shards(split):
        return loop.train_and_evaluate(
            strategy=strategy, config=config, model_fn=model_fn,
            learning_rate=schedule.schedule_from_hparams(hp, global_batch_size=plan.global_batch,
                                                         steps_per_epoch=plan.steps_per_epoch),
            train_data=train_data, eval_data=eval_data, objective=objective, cta=cta, log=log,
            info={"program": program, "split": split.name, "num_classes": split.num_classes,
                  "num_labeled": split.num_labeled,
                  "num_unlabeled": split.num_unlabeled if program == "fixmatch" else 0})
