"""Supervised baseline: train a ResNet on the labeled set of a split.

    python -m stages.train_supervised --data runs/prepare_splits/<fp> \
        --model_dir /tmp/sup --preset demo \
        --hparams '"augment": {"type": "randaugment"}'

Flags keep the reference's names (--model_dir --steps_per_run
--per_worker_batch_size --per_worker_eval_batch_size --hparams --tpu);
--steps_per_run and the batch-size flags override the `run.*` hparams.
Everything is validated before any model or dataset is built; the resolved
hparams are saved as model_dir/hparams.json. Running the same command again
resumes from the newest checkpoint in model_dir; a model_dir that holds a
run with different hparams is refused rather than silently mixed.
"""

import functools
import json
import os
import sys

from absl import app, flags

from fixmatch import hparams as hparams_lib

PROGRAM = "supervised"


class StageError(ValueError):
    """Bad command-line input for this stage (data directory, model_dir)."""


# ---------------------------------------------------------------------------
# Validation (no TensorFlow needed)


def read_split(data: str) -> dict:
    """Checks a prepare_splits output directory; returns its counts and classes."""
    if not data:
        raise StageError("--data is required: the output directory of prepare_splits")
    if not os.path.isdir(data):
        raise StageError(f"--data {data!r} is not a directory; pass the output directory "
                         "of the prepare_splits stage")
    missing = [name for name in ("classes.txt", "manifest.json")
               if not os.path.isfile(os.path.join(data, name))]
    if missing:
        raise StageError(f"--data {data!r} has no {' or '.join(missing)}; is it a finished "
                         "prepare_splits output (manifest.json is written last)?")
    with open(os.path.join(data, "classes.txt"), encoding="utf-8") as f:
        classes = [line.strip() for line in f if line.strip()]
    try:
        with open(os.path.join(data, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        # A split published by the Luigi cache wraps the stage's manifest in "result".
        counts = (manifest["result"] if "counts" not in manifest else manifest)["counts"]
        num_labeled, num_validation = int(counts["labeled"]), int(counts["validation"])
    except (ValueError, KeyError, TypeError) as e:
        raise StageError(f"{os.path.join(data, 'manifest.json')} is unreadable or has no "
                         f"counts.labeled/counts.validation ({e!r})") from None
    if len(classes) < 2:
        raise StageError(f"{data}/classes.txt lists {len(classes)} classes; need at least 2")
    if num_labeled < 1 or num_validation < 1:
        raise StageError(f"split {data!r} has {num_labeled} labeled and {num_validation} "
                         "validation images; both sets must be non-empty")
    for set_name in ("labeled", "validation"):
        if not any(n.startswith(f"{set_name}.tfrecord-") for n in os.listdir(data)):
            raise StageError(f"--data {data!r} has no {set_name}.tfrecord-* shards")
    return {"num_classes": len(classes), "num_labeled": num_labeled,
            "num_validation": num_validation}


def resolve_hparams(*, preset, hparams=None, steps_per_run=None, per_worker_batch_size=None,
                    per_worker_eval_batch_size=None) -> dict:
    """Defaults -> preset -> --hparams -> run.* flags, validated (HParamsError names the key)."""
    hp = hparams_lib.resolve(program=PROGRAM, preset=preset, overrides=hparams)
    for key, value in (("steps_per_run", steps_per_run),
                       ("per_worker_batch_size", per_worker_batch_size),
                       ("per_worker_eval_batch_size", per_worker_eval_batch_size)):
        if value is not None:
            hp["run"][key] = value
    return hparams_lib.validate(hp)


def check_model_dir(model_dir: str, hp: dict) -> None:
    """model_dir is new, or holds a run with exactly these hparams (then it resumes)."""
    if not model_dir:
        raise StageError("--model_dir is required (checkpoints, hparams.json, summaries/)")
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise StageError(f"--model_dir {model_dir!r} exists and is not a directory")
    saved_path = os.path.join(model_dir, "hparams.json")
    if os.path.isfile(saved_path):
        with open(saved_path, encoding="utf-8") as f:
            saved = json.load(f)
        if saved != json.loads(hparams_lib.to_json(hp)):
            diff = sorted(k for k in _flat(saved).keys() | _flat(hp).keys()
                          if _flat(saved).get(k) != _flat(hp).get(k))
            raise StageError(f"--model_dir {model_dir!r} holds a run with different hparams "
                             f"(differs in {diff}); use a new --model_dir to start over")


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ---------------------------------------------------------------------------
# The stage


def _strong_and_probe(hp, strategy):
    """(strong, probe, cta_hooks, hparams_input) for the configured augment.type."""
    from fixmatch.train import cta_hooks

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
        with strategy.scope():
            state = CTAState.from_hparams(aug)
        policy = CTAPolicy.from_hparams(aug)
        hooks = cta_hooks.make_cta_hooks(
            state=state, policy=policy,
            use_ema_probe=bool(hp["use_ema"] and aug["use_ema_probe_image"]))
        return policy.strong, policy.probe, hooks, hp_input
    raise hparams_lib.HParamsError(f"hparam 'augment.type' {kind!r} is not supported")


def run(*, data, model_dir, preset="imagenet", hparams=None, tpu=None, steps_per_run=None,
        per_worker_batch_size=None, per_worker_eval_batch_size=None, log=None) -> dict:
    """Trains (or resumes) the supervised baseline; returns the final metrics dict."""
    hp = resolve_hparams(preset=preset, hparams=hparams, steps_per_run=steps_per_run,
                         per_worker_batch_size=per_worker_batch_size,
                         per_worker_eval_batch_size=per_worker_eval_batch_size)
    split = read_split(data)
    check_model_dir(model_dir, hp)

    from fixmatch.data import pipelines
    from fixmatch.models import build_model
    from fixmatch.train import loop, schedule, summaries
    from fixmatch.train.strategy import select_strategy, worker_role

    strategy = select_strategy(tpu=tpu or None)
    replicas = strategy.num_replicas_in_sync
    run_hp, image_size = hp["run"], hp["input"]["image_size"]
    global_batch = run_hp["per_worker_batch_size"] * replicas
    global_eval_batch = run_hp["per_worker_eval_batch_size"] * replicas
    spe = schedule.steps_per_epoch(num_labeled=split["num_labeled"],
                                   global_batch_size=global_batch)
    total = schedule.total_steps(steps_per_epoch=spe, num_epochs=hp["num_epochs"],
                                 max_steps=run_hp["max_steps"])
    strong, probe, cta, hp_input = _strong_and_probe(hp, strategy)

    def train_fn(ctx):
        return pipelines.labeled_dataset(
            data, image_size=image_size, batch_size=ctx.get_per_replica_batch_size(global_batch),
            training=True, strong=strong, probe=probe, hparams_input=hp_input,
            input_context=ctx)

    def eval_fn(ctx):
        return pipelines.eval_dataset(
            data, image_size=image_size,
            batch_size=ctx.get_per_replica_batch_size(global_eval_batch),
            input_context=ctx, hparams_input=hp["input"])

    model_fn = functools.partial(
        build_model, hp["model"]["name"], num_classes=split["num_classes"],
        image_size=image_size, weight_decay=hp["weight_decay"],
        dtype_policy="mixed_bfloat16" if hp["bfloat16"] else "float32")
    config = loop.LoopConfig(
        model_dir=model_dir, total_steps=total, steps_per_run=run_hp["steps_per_run"],
        steps_per_epoch=spe, global_batch_size=global_batch, use_ema=hp["use_ema"],
        ema_decay=hp["ema_decay"], use_xla=run_hp["use_xla"],
        keep_checkpoints=run_hp["keep_checkpoints"],
        # The pipelines emit uint8 (unless saturate_uint8 is off); the step scales on device.
        scale_and_center=hp["input"]["scale_and_center"])
    if worker_role(strategy)[0]:
        os.makedirs(model_dir, exist_ok=True)
        hparams_lib.save(hp, os.path.join(model_dir, "hparams.json"))
    log = log or summaries.print_progress
    log(f"train_supervised: {hp['model']['name']} on {data} ({split['num_labeled']} labeled, "
        f"{split['num_classes']} classes), {replicas} replica(s) of "
        f"{type(strategy).__name__}, global batch {global_batch}, "
        f"{spe:.2f} steps/epoch, {total} steps, augment {hp['augment']['type']}")
    return loop.train_and_evaluate(
        strategy=strategy, config=config, model_fn=model_fn,
        learning_rate=schedule.schedule_from_hparams(hp, global_batch_size=global_batch,
                                                     steps_per_epoch=spe),
        train_dataset_fn=train_fn, eval_dataset_fn=eval_fn, cta=cta, log=log)


# ---------------------------------------------------------------------------
# CLI


def _define_flags():
    flags.DEFINE_string("data", None, "Split directory written by prepare_splits.")
    flags.DEFINE_string("model_dir", None, "Checkpoints, hparams.json, summaries/, metrics.json.")
    flags.DEFINE_enum("preset", "imagenet", list(hparams_lib.PRESETS), "Named hparams preset.")
    flags.DEFINE_string("hparams", "", "JSON overrides (outer braces optional).")
    flags.DEFINE_string("tpu", "", "TPU name or address; empty = local CPU/GPUs (or TF_CONFIG).")
    flags.DEFINE_integer("steps_per_run", None, "Steps between evals/checkpoints (run.steps_per_run).")
    flags.DEFINE_integer("per_worker_batch_size", None, "Labeled batch per replica.")
    flags.DEFINE_integer("per_worker_eval_batch_size", None, "Eval batch per replica.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    try:
        metrics = run(data=f.data, model_dir=f.model_dir, preset=f.preset, hparams=f.hparams,
                      tpu=f.tpu, steps_per_run=f.steps_per_run,
                      per_worker_batch_size=f.per_worker_batch_size,
                      per_worker_eval_batch_size=f.per_worker_eval_batch_size)
    except (hparams_lib.HParamsError, StageError) as e:
        print(f"train_supervised: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    _define_flags()
    app.run(main)
