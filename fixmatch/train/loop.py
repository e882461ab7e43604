"""The training engine: ONE explicit outer loop over blocks of steps.

    restore -> while step < total_steps:
                   (CTA) hand the sampling table to the pipelines
                   run min(steps_per_run, remaining) steps in one compiled call
                   (a non-finite loss: raise, naming the step, saving nothing;
                    SIGTERM: save this step's checkpoint, raise TrainingInterrupted)
                   write training scalars
                   evaluate online + EMA on the whole validation set
                   checkpoint, append to history.jsonl, print a progress line
            -> metrics.json

Everything TF-distributed is built by the caller: the model inside
`strategy.scope()` through `model_fn` (called twice: online and EMA model),
the distributed datasets of per-replica batches (`pipelines.distribute`; the
training one endless, the evaluation one finite) before the call.
Image batches may be uint8 (the pipelines' default): the compiled steps scale
them on the device as `config.scale_and_center` says (steps.model_inputs).
"""

import dataclasses
import functools
import math
import time

import keras
import tensorflow as tf

from fixmatch import fs, jsonio
from fixmatch.train import checkpoint as ckpt_lib
from fixmatch.train import ema as ema_lib
from fixmatch.train import history as history_lib
from fixmatch.train import metrics, preemption, steps, summaries
from fixmatch.train.faults import TrainingDiverged, TrainingInterrupted
from fixmatch.train.strategy import worker_role


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Cadence and optimizer settings of one run; validated on construction."""

    model_dir: str
    total_steps: int
    steps_per_run: int
    steps_per_epoch: float
    global_batch_size: int
    use_ema: bool = True
    ema_decay: float = 0.999
    use_xla: bool = False
    keep_checkpoints: int = 3
    momentum: float = 0.9
    summaries_with_epoch: bool = True
    images_per_step: int = None  # for images/s; None = global_batch_size (FixMatch: B*(1+2*uratio))
    scale_and_center: bool = True  # hparam input.scale_and_center, for uint8 batches (on device)
    replay_input_on_resume: bool = False  # run.deterministic: see replay_input

    def __post_init__(self):
        checks = {
            "model_dir": bool(self.model_dir),
            "total_steps": isinstance(self.total_steps, int) and self.total_steps >= 1,
            "steps_per_run": isinstance(self.steps_per_run, int) and self.steps_per_run >= 1,
            "steps_per_epoch": self.steps_per_epoch > 0,
            "global_batch_size": self.global_batch_size >= 1,
            "ema_decay": 0.0 <= self.ema_decay < 1.0,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "momentum": 0.0 <= self.momentum < 1.0,
            "images_per_step": self.images_per_step is None or self.images_per_step >= 1,
            "scale_and_center": isinstance(self.scale_and_center, bool),
            "replay_input_on_resume": isinstance(self.replay_input_on_resume, bool),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"LoopConfig.{name} is invalid: {getattr(self, name)!r}")


@dataclasses.dataclass
class CTAHooks:
    """CTAugment in the engine: state (created in strategy scope), host policy,
    and the per-replica probe update `update_fn(batch, *, probe_model,
    online_model) -> sums` (see cta_hooks.py)."""

    state: object
    policy: object
    update_fn: object
    sum_keys: tuple = ()


def create_optimizer(*, learning_rate, momentum: float = 0.9):
    """SGD with Nesterov momentum 0.9 (spec section 7)."""
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                nesterov=True)


def train_and_evaluate(*, strategy, config: LoopConfig, model_fn, learning_rate,
                       train_data, eval_data,
                       objective=steps.supervised_objective, cta: CTAHooks = None,
                       log=summaries.print_progress, info=None) -> dict:
    """Trains to `config.total_steps` (resuming from model_dir) and returns final metrics.

    `train_data` / `eval_data` are distributed datasets (e.g. from pipelines.distribute).
    `info`: facts about the run (program, split, image counts) copied into the metrics.
    """
    start_time = time.time()
    is_chief, worker_id = worker_role(strategy)
    num_replicas = strategy.num_replicas_in_sync
    if is_chief:
        fs.makedirs(config.model_dir)

    # 1. State, all inside the strategy scope (optimizer built eagerly: Keras 3
    #    otherwise creates its slots inside the first replica step).
    with strategy.scope():
        model = model_fn()
        ema_model = model_fn() if config.use_ema else None
        if ema_model is not None:
            ema_lib.copy_weights(source=model, target=ema_model)
        optimizer = create_optimizer(learning_rate=learning_rate, momentum=config.momentum)
        optimizer.build(model.trainable_variables)
    labeler = getattr(objective, "labeler", None)  # FixMatch's pseudo-label state, if any
    checkpoint = ckpt_lib.make_checkpoint(
        model=model, optimizer=optimizer, ema_model=ema_model,
        cta_state=cta.state if cta else None,
        pseudo_labeler=labeler if labeler is not None and labeler.stateful else None)
    keeper = ckpt_lib.CheckpointKeeper(checkpoint=checkpoint, model_dir=config.model_dir,
                                       keep=config.keep_checkpoints, is_chief=is_chief,
                                       worker_id=worker_id)
    if keeper.restore(log=log):
        log(f"restored {keeper.latest} (step {int(optimizer.iterations.numpy())})")
    step = int(optimizer.iterations.numpy())

    # 2. Compiled functions.
    grad_fn = functools.partial(steps.compute_gradients, model=model, objective=objective,
                                num_replicas=num_replicas,
                                teacher=steps.teacher_for(objective, ema_model))
    if config.use_xla:
        grad_fn = tf.function(grad_fn, jit_compile=True)
    probe_model = ema_model if ema_model is not None else model
    after_step = (functools.partial(cta.update_fn, probe_model=probe_model, online_model=model)
                  if cta else None)
    replica_step = functools.partial(
        steps.train_step, model=model, optimizer=optimizer, grad_fn=grad_fn,
        sync_model_state=num_replicas > 1, after_step=after_step,
        scale_and_center=config.scale_and_center)
    after_update = (steps.make_ema_update(ema_model=ema_model, model=model,
                                          decay=config.ema_decay) if ema_model else None)
    train_keys = (list(getattr(objective, "sum_keys", steps.TRAIN_SUM_KEYS))
                  + list(cta.sum_keys if cta else []))
    watcher = preemption.StopWatcher()  # outside the strategy scope: one host variable
    shapes = getattr(objective, "sum_shapes", {})
    train_block = steps.make_train_block(strategy=strategy, replica_step=replica_step,
                                         after_update=after_update,
                                         example_sums={k: shapes.get(k) for k in train_keys},
                                         stop=watcher.flag)
    evaluate = steps.make_evaluate(
        strategy=strategy, example_sums=dict.fromkeys(steps.EVAL_SUM_KEYS),
        replica_eval_step=functools.partial(steps.eval_step, model=model, ema_model=ema_model,
                                            scale_and_center=config.scale_and_center))

    train_iter = iter(train_data)
    if config.replay_input_on_resume and 0 < step < config.total_steps:
        replay_input(train_iter, step, log=log)
    writer = summaries.Summaries(log_dir=fs.join(config.model_dir, "summaries"),
                                 enabled=is_chief)
    x_axis = functools.partial(summaries.summary_x, steps_per_epoch=config.steps_per_epoch,
                               with_epoch=config.summaries_with_epoch)

    history = history_lib.History(fs.join(config.model_dir, history_lib.HISTORY_FILE),
                                  restored_step=step, enabled=is_chief)
    images_per_step = config.images_per_step or config.global_batch_size

    # 3. The outer loop.
    test = train = None
    train_seconds, trained_steps = 0.0, 0
    steady_seconds, steady_steps = 0.0, 0  # blocks after this process's first (no tracing)
    with watcher, writer:
        while step < config.total_steps:
            num_steps = min(config.steps_per_run, config.total_steps - step)
            if cta is not None:
                cta.policy.set_probs(cta.state.probs)
            t0 = time.time()
            sums = {k: v.numpy() for k, v in
                    train_block(train_iter, tf.constant(num_steps, tf.int32)).items()}
            seconds = time.time() - t0
            ran, stopped = int(sums.pop("steps_run")), bool(sums.pop("stopped"))
            check_finite(sums, step=step + ran, latest=keeper.latest)
            if ran == 0:  # stopped before the first step of the block
                stop_after_signal(watcher, keeper, step)
            train = metrics.finalize_train(sums, num_steps=ran)
            if trained_steps:
                steady_seconds, steady_steps = steady_seconds + seconds, steady_steps + ran
            train_seconds, trained_steps = train_seconds + seconds, trained_steps + ran
            step += ran
            if stopped:  # save the steps done, skip the evaluation
                stop_after_signal(watcher, keeper, step)
            images_per_sec = ran * images_per_step / seconds
            epoch = step / config.steps_per_epoch
            x = x_axis(step)
            writer.scalars(x, train_scalars(train, step=step, seconds=seconds, epoch=epoch,
                                            learning_rate=learning_rate,
                                            images_per_sec=images_per_sec))
            test = metrics.finalize_eval({k: v.numpy()
                                          for k, v in evaluate(eval_data).items()})
            writer.scalars(x, {f"test/{k}": v for k, v in test.items() if k != "count"})
            keeper.save(step)
            history.append({"step": step, "epoch": epoch, "x": x, "seconds": seconds,
                            "images_per_sec": images_per_sec, "train": train, "test": test})
            eta = (config.total_steps - step) * seconds / ran
            log(summaries.progress_line(
                step=step, total_steps=config.total_steps, epoch=epoch, loss=train["loss"],
                images_per_sec=images_per_sec, eta_seconds=eta,
                top1=test["ema_accuracy"] if config.use_ema else test["accuracy"],
                mask_rate=train.get("mask"), pseudo_accuracy=train.get("pseudo_label_accuracy"),
                extra=metrics.pseudo_label_text(train)))

    if test is None:  # restarted after completion: report the restored weights
        test = metrics.finalize_eval({k: v.numpy() for k, v in evaluate(eval_data).items()})
    result = {
        "top1": test["ema_accuracy"] if config.use_ema else test["accuracy"],
        "top5": test["ema_accuracy_top5"] if config.use_ema else test["accuracy_top5"],
        "online_top1": test["accuracy"], "online_top5": test["accuracy_top5"],
        "ema_top1": test["ema_accuracy"] if config.use_ema else None,
        "ema_top5": test["ema_accuracy_top5"] if config.use_ema else None,
        "test_loss": test["loss"], "eval_examples": test["count"],
        "steps": step, "total_steps": config.total_steps,
        "epochs": step / config.steps_per_epoch,
        "steps_this_run": trained_steps,
        "wall_time_s": time.time() - start_time,
        "train_time_s": train_seconds,
        "images_per_sec": (trained_steps * images_per_step / train_seconds
                           if train_seconds > 0 else None),
        "images_per_sec_steady": (steady_steps * images_per_step / steady_seconds
                                  if steady_seconds > 0 else None),
        "global_batch_size": config.global_batch_size,
        "num_replicas": num_replicas,
        "checkpoint": keeper.latest,
    }
    result.update(info or {})
    if train is not None and "mask" in train:  # FixMatch diagnostics of the last block
        result["mask_rate"] = train["mask"]
        result["pseudo_label_accuracy"] = (train["pseudo_label_accuracy"] if math.isfinite(
            train["pseudo_label_accuracy"]) else None)
        for key in ("threshold", "threshold_min", "threshold_max", "pseudo_top_class_share"):
            if key in train:
                result[key] = train[key] if math.isfinite(train[key]) else None
    if is_chief:
        jsonio.write_json_atomic(fs.join(config.model_dir, "metrics.json"), result)
    return result


def replay_input(iterator, batches: int, *, log, every: int = 500) -> None:
    """Draws and discards the `batches` batches that the restored steps already trained on.

    Why: in a deterministic run the k-th batch depends only on the seed and k, so after this a
    resumed run trains on exactly the batches an uninterrupted one would, and ends with the
    same weights and metrics. It costs the input pipeline's time for those batches (no
    training), so only deterministic runs do it; others restart their input stream.
    """
    log(f"deterministic resume: replaying the {batches} input batches of the restored steps")
    start = time.time()
    for done in range(1, batches + 1):
        next(iterator)
        if done % every == 0 and done < batches:
            log(f"replayed {done}/{batches} batches ({time.time() - start:.0f} s)")
    log(f"replayed {batches} batches in {time.time() - start:.1f} s")


def check_finite(sums: dict, *, step: int, latest) -> None:
    """Raises TrainingDiverged when the block stopped on a NaN/Inf loss (at `step`)."""
    loss = float(sums["loss_sum"])
    if math.isfinite(loss):
        return
    kept = (f"the last good checkpoint is {latest}" if latest
            else "no checkpoint was saved yet")
    raise TrainingDiverged(
        f"the training loss is {loss} at step {step}; its weights were not saved and {kept}. "
        "Lower learning_rate.base_lr (or check the input data), then rerun")


def stop_after_signal(watcher, keeper, step: int):
    """Saves the checkpoint of `step` (unless it is the newest already) and raises."""
    path = keeper.latest
    if not path or not path.endswith(f"-{step}"):
        path = keeper.save(step)
    by = watcher.signal_name or "a signal to another worker"
    raise TrainingInterrupted(
        f"stopped by {by} at step {step}: saved {path}; "
        "rerun the same command to resume from it")


def train_scalars(train: dict, *, step, seconds, epoch, learning_rate, images_per_sec) -> dict:
    """The block's training scalars under the reference's names."""
    # FixMatch logs train/total_loss, the supervised program train/loss.
    loss_name = "train/total_loss" if "xeu" in train else "train/loss"
    scalars = {loss_name: train["loss"], "train/accuracy": train["accuracy"],
               "train/learning_rate": float(learning_rate(step - 1)),
               "train/steps_per_second": train["steps"] / seconds,
               "train/cur_epoch": epoch, "images/s": images_per_sec}
    for key, value in train.items():
        if key in ("xe", "xeu", "wd", "fair"):
            scalars[f"loss/{key}"] = value
        elif key.startswith("cta_"):
            scalars[f"cta/{key[4:]}"] = value
        elif key == "mask":
            scalars["train/mask_rate"] = value  # FixMatch: share of pseudo-labels kept
        elif key not in ("loss", "accuracy", "steps") and math.isfinite(value):
            scalars[f"train/{key}"] = value  # e.g. train/pseudo_label_accuracy
    return scalars
