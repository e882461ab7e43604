"""What a training run will do, before it starts: `--plan` of the training programs.

A run on ImageNet lasts days, so its length should be checked before it starts: the schedule in
steps (spec section 7: an epoch is one pass over the labeled split, `steps_per_epoch = N_labeled
/ B` as a float, warm-up and decays at fractional epochs), the images each step reads, and a
wall-time estimate from timing the run's own training step on this machine. The split's counts
come from its directory, or, for the reference's named splits, from the shipped file lists
alone, so a plan needs no prepared data.
"""

import dataclasses
import math
import os

import numpy as np

from fixmatch import split_lists
from fixmatch.splitting import names

#: ImageNet (ILSVRC-2012) sizes, for plans of the named splits before any data is prepared:
#: the unlabeled set of every split is the whole train set (spec section 3).
IMAGENET_TRAIN, IMAGENET_VALIDATION, IMAGENET_CLASSES = 1_281_167, 50_000, 1000

#: Pixels per replica step the wall-time probe may hold: 32 images of 224 x 224 (a few GB of
#: ResNet-50 activations). Larger steps are timed on fewer images and scaled per image.
PROBE_PIXELS = 32 * 224 * 224


class PlanError(ValueError):
    """A plan that cannot be made from what was given (e.g. no data and no named split)."""


@dataclasses.dataclass(frozen=True)
class Counts:
    """The image counts a schedule depends on, and where they came from."""

    split: str
    num_labeled: int
    num_unlabeled: int
    num_validation: int
    num_classes: int
    source: str


def counts_from_split(split) -> Counts:
    """Counts of a prepared split directory (fixmatch.data.split_dir.Split)."""
    return Counts(split=split.name, num_labeled=split.num_labeled,
                  num_unlabeled=split.counts.get("unlabeled", 0),
                  num_validation=split.num_validation,
                  num_classes=split.num_classes, source=f"split directory {split.path}")


def counts_from_name(name: str) -> Counts:
    """Counts of an ImageNet split known by name alone: a shipped list (its lines, after its
    sha256 check) or `full`; `frac<P>.seed<N>` depends on the data, so it needs --data."""
    spec = names.parse_split_name(name)
    if spec.kind == names.LIST:
        labeled, source = len(split_lists.read_lines(spec.list_file)), spec.list_file
    elif spec.kind == names.FULL:
        labeled, source = IMAGENET_TRAIN, "ImageNet's train set"
    else:
        raise PlanError(f"split {spec.name!r} is chosen from the data itself, so its size is "
                        "known only once prepared: pass --data (a prepare_splits output), or "
                        f"a named split ({', '.join(names.NAMED_LISTS)}, full)")
    return Counts(split=spec.name, num_labeled=labeled, num_unlabeled=IMAGENET_TRAIN,
                  num_validation=IMAGENET_VALIDATION, num_classes=IMAGENET_CLASSES,
                  source=f"shipped list {source}, ImageNet's {IMAGENET_TRAIN:,} train images "
                         "as the unlabeled set")


def first_step_at(epoch: float, steps_per_epoch: float) -> int:
    """The first step whose fractional epoch reaches `epoch`, computed in float32 as the
    learning-rate function does (fixmatch.train.schedule), so plan and run agree exactly."""
    spe = np.float32(steps_per_epoch)
    step = max(0, math.ceil(epoch * steps_per_epoch) - 2)
    while np.float32(step) / spe < np.float32(epoch):
        step += 1
    return step


def schedule_points(hp: dict, steps_per_epoch: float, total_steps: int) -> dict:
    """Warm-up end and the decay points (in epochs and steps) that fall inside the run."""
    lr = hp["learning_rate"]
    warm = lr["use_warmup"] and lr["warmup_epochs"] > 0
    decays = lr["decay_epochs"]
    if lr.get("schedule") == "cosine":  # no steps: a smooth decay to 0.195 x at the end
        decays = []
    elif not isinstance(decays, (list, tuple)):  # a staircase every `decay_epochs` from epoch 0
        count = math.ceil(hp["num_epochs"] / decays) + 1
        decays = [decays * k for k in range(1, count)]
    points = [(e, first_step_at(e, steps_per_epoch)) for e in decays]
    return {"warmup_end_step": first_step_at(lr["warmup_epochs"], steps_per_epoch)
            if warm else None,
            "decays": [{"epoch": e, "step": s} for e, s in points if s < total_steps],
            "cosine": lr.get("schedule") == "cosine"}


def describe(program: str, hp: dict, counts: Counts, plan) -> dict:
    """Every number of the plan (plan = fixmatch.train.experiment.Plan of these counts)."""
    uratio = hp["uratio"] if program == "fixmatch" else 0
    unlabeled_per_step = uratio * plan.global_batch
    return {
        "program": program, "split": counts.split, "counts_from": counts.source,
        "num_labeled": counts.num_labeled, "num_unlabeled": counts.num_unlabeled,
        "num_classes": counts.num_classes, "replicas": plan.replicas,
        "labeled_per_step": plan.global_batch, "unlabeled_per_step": unlabeled_per_step,
        "images_per_step": plan.images_per_step, "uratio": uratio,
        "steps_per_epoch": plan.steps_per_epoch, "num_epochs": hp["num_epochs"],
        "total_steps": plan.total_steps,
        "labeled_epochs": plan.total_steps / plan.steps_per_epoch,
        "unlabeled_epochs": plan.total_steps * unlabeled_per_step / counts.num_unlabeled
        if uratio else 0.0,
        "image_passes": plan.total_steps * plan.images_per_step,
        "steps_per_run": hp["run"]["steps_per_run"],
        "base_lr_scaled": hp["learning_rate"]["base_lr"] * plan.global_batch / 256.0,
        **schedule_points(hp, plan.steps_per_epoch, plan.total_steps),
    }


def probe_batch(hp: dict, program: str, per_replica_batch: int) -> int:
    """The labeled batch per replica to time: the run's, or fewer when a step of the run would
    not fit the probe's pixel budget (PROBE_PIXELS)."""
    views = 1 + 2 * hp["uratio"] if program == "fixmatch" else 1
    per_image = views * hp["input"]["image_size"] ** 2
    return max(1, min(per_replica_batch, PROBE_PIXELS // per_image))


def time_step(program: str, hp: dict, *, num_classes: int, strategy, steps: int = 3) -> dict:
    """Times `steps` training steps of this run's model and objective on synthetic images of
    the run's shape (after one untimed warm-up step), with `probe_batch` labeled images per
    replica; returns seconds per step of that batch and per image."""
    from fixmatch.models import build_model
    from fixmatch.train import timing
    batch = probe_batch(hp, program, hp["run"]["per_worker_batch_size"])
    replicas = strategy.num_replicas_in_sync
    size = hp["input"]["image_size"]

    def model_fn():
        return build_model(hp["model"]["name"], num_classes=num_classes, image_size=size,
                           weight_decay=hp["weight_decay"],
                           dtype_policy="mixed_bfloat16" if hp["bfloat16"] else "float32")

    _, block = timing.build_train_block(
        model_fn=model_fn, objective=timing.make_objective(program, hp),
        learning_rate=hp["learning_rate"]["base_lr"] * batch * replicas / 256.0,
        use_xla=hp["run"]["use_xla"], ema_decay=hp["ema_decay"], strategy=strategy,
        scale_and_center=hp["input"]["scale_and_center"])
    data = timing.synthetic_dataset(program, batch_size=batch * replicas, image_size=size,
                                    num_classes=num_classes, uratio=hp.get("uratio", 0))
    iterator = iter(strategy.experimental_distribute_dataset(data))
    # One step per call, the median: a step stalled by another process counts once at most.
    _, _, warmup = timing.time_block(block, iterator, warmup_steps=1, steps_timed=1)
    seconds = float(np.median([timing.time_block(block, iterator, warmup_steps=0,
                                                 steps_timed=1)[0] for _ in range(steps)]))
    images = batch * replicas * ((1 + 2 * hp["uratio"]) if program == "fixmatch" else 1)
    return {"probe_labeled_per_replica": batch, "probe_images_per_step": images,
            "probe_seconds_per_step": seconds, "probe_steps": steps,
            "probe_warmup_seconds": warmup, "seconds_per_image": seconds / images,
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "cpu_count": os.cpu_count()}


def this_machine() -> str:
    """The devices a plan was timed on: the GPUs TensorFlow sees, else the CPU cores."""
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = {tf.config.experimental.get_device_details(g).get("device_name", "GPU")
                 for g in gpus}
        return f"{len(gpus)} x {', '.join(sorted(names))}"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU only, {cores} cores"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    days = seconds / 86400
    return f"{days:,.1f} days" + (f" ({days / 365.25:,.1f} years)" if days > 365 else "")


def format_plan(info: dict) -> str:
    """The plan as the lines `--plan` prints."""
    fixmatch = info["program"] == "fixmatch"
    unlabeled = f"{info['num_unlabeled']:,} unlabeled, " if fixmatch else ""
    lines = [
        f"plan of train_{info['program']} on split {info['split']} "
        f"({info['num_labeled']:,} labeled, {unlabeled}{info['num_classes']} classes; from the "
        f"{info['counts_from']})",
        f"  replicas:                 {info['replicas']} (this machine)",
        f"  labeled images per step:  {info['labeled_per_step']:,}"
        f" (learning rate {info['base_lr_scaled']:g} = base_lr x {info['labeled_per_step']}/256)",
    ]
    if fixmatch:
        lines.append(f"  unlabeled per step:       {info['unlabeled_per_step']:,} (uratio "
                     f"{info['uratio']}), each as a weak and a strong view")
    lines += [
        f"  images through the model: {info['images_per_step']:,} per step",
        f"  steps per epoch:          {info['steps_per_epoch']:,.2f} (an epoch = one pass over "
        "the labeled set)",
        f"  total steps:              {info['total_steps']:,} ({info['labeled_epochs']:,.1f} "
        f"labeled epochs" + (f", {info['unlabeled_epochs']:,.1f} unlabeled epochs)"
                             if fixmatch else ")"),
        "  warm-up ends at step:     " + (f"{info['warmup_end_step']:,}"
                                          if info["warmup_end_step"] is not None else "no warm-up"),
        "  lr decays at steps:       " + (
            "every step (cosine, to 0.195 x at the end)" if info.get("cosine") else ", ".join(
                f"{d['step']:,} (epoch {d['epoch']:g})" for d in info["decays"]) or "none"),
        f"  total image passes:       {info['image_passes']:,} ({info['image_passes']:.2e})",
        f"  evaluation + checkpoint:  every {info['steps_per_run']:,} steps",
    ]
    if "seconds_per_image" in info:
        total = info["seconds_per_image"] * info["image_passes"]
        lines += [
            f"  estimated wall time:      {duration(total)} of training steps, on THIS machine"
            f" ({info['machine']})",
            f"    from the median of {info['probe_steps']} timed steps of "
            f"{info['probe_images_per_step']:,} synthetic images "
            f"({info['probe_seconds_per_step']:.3f} s per step after a "
            f"{info['probe_warmup_seconds']:.1f} s warm-up), scaled per image to "
            f"{info['images_per_step']:,} per step; the input pipeline and the evaluations "
            "are not included",
        ]
        if (info.get("load_average") or 0) > info["cpu_count"]:
            lines.append(f"    the load average was {info['load_average']:.1f} on "
                         f"{info['cpu_count']} cores: other processes took part of them, so "
                         "this estimate is too long for an idle machine")
    else:
        lines.append("  estimated wall time:      not measured (--plan_steps 0)")
    return "\n".join(lines)
