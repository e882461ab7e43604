"""Per-replica step functions and the compiled functions that drive them.

`train_step` and `eval_step` are what runs on ONE replica for ONE batch and
return dicts of metric sums (see metrics.py). `make_train_block` compiles a
loop of `num_steps` steps into one tf.function (a tf.range loop, strategy.run
per step, EMA update in cross-replica context); `make_evaluate` compiles one
pass over a finite distributed dataset. The single explicit outer loop that
calls them lives in loop.py.
"""

import tensorflow as tf

from fixmatch import losses
from fixmatch.augment import weak
from fixmatch.train import ema as ema_lib
from fixmatch.train import metrics, thresholds


#: Batch keys that hold images (the pipelines' per-step keys, spec 3.2).
IMAGE_KEYS = ("image", "unsup_image", "unsup_aug_image", "probe_image")


def model_inputs(batch, *, scale_and_center=True):
    """Turns uint8 image batches into float32 model inputs, on the device.

    The pipelines emit raw uint8 pixels by default: the host then skips the
    float conversion (~0.17 ms per 224x224 view) and moves 4x fewer bytes to
    the accelerator. This runs inside the compiled step, with the same
    function the host path uses (`weak.scale_and_center`), so the model sees
    bit-identical values either way. `scale_and_center` is the hparam
    `input.scale_and_center`: true maps to [-1, 1], false feeds 0..255 floats.
    Images that are already floating point were prepared by the host and pass
    through unchanged; the model's mixed-precision policy casts them as before.
    """
    out = dict(batch)
    for key in IMAGE_KEYS:
        if key in out and out[key].dtype == tf.uint8:
            out[key] = (weak.scale_and_center(out[key]) if scale_and_center
                        else tf.cast(out[key], tf.float32))
    return out


def supervised_objective(model, batch):
    """Forward pass + supervised loss of spec section 6: L = L_x + L_wd.

    Returns (total_loss, sums) with sums in the metrics.py convention.
    """
    logits = model(batch["image"], training=True)
    total, parts = losses.supervised_loss(
        labels=batch["label"], logits=logits, regularization_losses=model.losses)
    n = tf.cast(tf.shape(logits)[0], tf.float32)
    sums = {"loss_sum": total * n, "xe_sum": parts["xe"] * n, "wd_sum": parts["wd"] * n,
            "count": n, "correct": metrics.topk_correct(batch["label"], logits, 1)}
    return total, sums


supervised_objective.sum_keys = ("loss_sum", "xe_sum", "wd_sum", "count", "correct")


def make_fixmatch_objective(*, wu, confidence=None, labeler=None, num_classes=None,
                            ema_teacher=False):
    """FixMatch objective: ONE training-mode forward pass over
    concat(labeled weak, unlabeled weak, unlabeled strong) -- BN statistics over
    the whole concatenation, as the reference -- then split and the loss of
    spec section 6. Batch keys: image, label, unsup_image, unsup_aug_image.

    `ema_teacher` (hparam `fixmatch.pseudo_label_model: ema`): the weak view's probabilities
    come from the EMA model in inference mode, as Mean Teacher's targets (Tarvainen & Valpola,
    NeurIPS 2017) and Unbiased Teacher's thresholded pseudo-labels (Liu et al., ICLR 2021);
    the online model's training pass then covers the labeled and strong images only. The
    objective is called with `teacher=` the EMA model (`objective.uses_teacher`).

    `labeler` (thresholds.PseudoLabeler, its state created in the strategy scope) decides
    which unlabeled images count and how much, from the weak view only; by default the
    reference's fixed threshold at `confidence`. The loss and every diagnostic use its one
    weight vector. `num_classes` (default: the rule's) adds the weighted pseudo-label
    histogram `pseudo_hist` [C] to the sums, for the balance diagnostic.
    """
    if labeler is None:
        if confidence is None:
            raise ValueError("make_fixmatch_objective needs `confidence` or a `labeler`")
        labeler = thresholds.PseudoLabeler(thresholds.FixedThreshold(confidence))
    num_classes = num_classes or labeler.rule.num_classes
    fairness_weight = labeler.fairness_weight

    def fixmatch_objective(model, batch, teacher=None):
        labeled, weak, strong = batch["image"], batch["unsup_image"], batch["unsup_aug_image"]
        num_labeled, num_unlabeled = tf.shape(labeled)[0], tf.shape(weak)[0]
        if ema_teacher:
            if teacher is None:
                raise ValueError("this FixMatch objective takes its pseudo-labels from the EMA "
                                 "model: call it with teacher=<the EMA model>")
            logits = model(tf.concat([labeled, strong], axis=0), training=True)
            z_l, z_s = losses.split_logits(logits, (num_labeled, num_unlabeled))
            z_w = teacher(weak, training=False)
        else:
            logits = model(tf.concat([labeled, weak, strong], axis=0), training=True)
            z_l, z_w, z_s = losses.split_logits(logits, (num_labeled, num_unlabeled,
                                                         num_unlabeled))
        probs_weak = tf.stop_gradient(tf.nn.softmax(tf.cast(z_w, tf.float32)))
        pseudo, weights, _ = labeler(probs_weak)
        total, parts = losses.weighted_fixmatch_loss(
            labels=batch["label"], logits_labeled=z_l, logits_strong=z_s, pseudo_labels=pseudo,
            weights=weights, wu=wu, regularization_losses=model.losses)
        if fairness_weight:
            parts["fair"] = fairness_weight * labeler.rule.fairness_loss(
                tf.nn.softmax(tf.cast(z_s, tf.float32)), weights)
            total += parts["fair"]
        n = tf.cast(num_labeled, tf.float32)
        # Batch means weighted by the labeled count, so replicas combine by summing.
        sums = {"loss_sum": total * n, "count": n,
                "correct": metrics.topk_correct(batch["label"], z_l, 1)}
        sums.update({f"{k}_sum": v * n for k, v in parts.items()})
        classes = int(z_w.shape[-1])
        level = labeler.rule.thresholds(classes)
        sums.update({"threshold_sum": tf.reduce_mean(level) * n,
                     "threshold_min_sum": tf.reduce_min(level) * n,
                     "threshold_max_sum": tf.reduce_max(level) * n})
        # True labels of the unlabeled images, when the stream carries them (diagnostics only).
        unsup_label = batch.get("unsup_label")
        if unsup_label is None:
            unsup_label = -tf.ones([num_unlabeled], tf.int64)
        sums.update(pseudo_label_sums(pseudo, weights, unsup_label,
                                      num_classes=num_classes))
        return total, sums

    keys = ["loss_sum", "xe_sum", "xeu_sum", "wd_sum", "mask_sum", "count", "correct",
            "pseudo_correct", "pseudo_masked", "threshold_sum", "threshold_min_sum",
            "threshold_max_sum"]
    keys += ["fair_sum"] if fairness_weight else []
    keys += ["pseudo_hist"] if num_classes else []
    fixmatch_objective.sum_keys = tuple(keys)
    fixmatch_objective.sum_shapes = {"pseudo_hist": [num_classes]} if num_classes else {}
    fixmatch_objective.labeler = labeler
    fixmatch_objective.uses_teacher = bool(ema_teacher)
    return fixmatch_objective


def pseudo_label_sums(pseudo, weights, true_labels, *, num_classes=None):
    """Diagnostics of the pseudo-labels, weighted as the loss weighs them: the weight that
    counted (`pseudo_masked`) and the part of it on right labels (`pseudo_correct`), over the
    images whose true label is known (negative = unknown); with `num_classes`, the weight per
    pseudo-label class (`pseudo_hist`), whose largest share shows a collapse onto one class."""
    known = tf.cast(true_labels >= 0, tf.float32) * weights
    hit = tf.cast(tf.equal(pseudo, tf.cast(true_labels, pseudo.dtype)), tf.float32)
    sums = {"pseudo_masked": tf.reduce_sum(known), "pseudo_correct": tf.reduce_sum(known * hit)}
    if num_classes:
        sums["pseudo_hist"] = tf.reduce_sum(
            tf.one_hot(pseudo, num_classes, dtype=tf.float32) * weights[:, None], axis=0)
    return sums


def teacher_for(objective, ema_model):
    """The EMA model when `objective` takes its pseudo-labels from it, else None."""
    if not getattr(objective, "uses_teacher", False):
        return None
    if ema_model is None:
        raise ValueError("fixmatch.pseudo_label_model 'ema' needs the EMA model: set use_ema "
                         "to true, or take pseudo-labels from the 'online' model")
    return ema_model


def compute_gradients(batch, *, model, objective, num_replicas, teacher=None):
    """Loss and gradients of the replica's share of the global loss. `teacher` (the EMA
    model) goes to an objective that takes its pseudo-labels from it (`uses_teacher`)."""
    with tf.GradientTape() as tape:
        loss, sums = (objective(model, batch, teacher=teacher) if teacher is not None
                      else objective(model, batch))
        scaled = losses.scale_for_replicas(loss, num_replicas)
    grads = tape.gradient(scaled, model.trainable_variables)
    return grads, sums


def train_step(batch, *, model, optimizer, grad_fn, sync_model_state=False,
               after_step=None, scale_and_center=True):
    """One SGD update on one replica; returns metric sums of the batch.

    grad_fn(batch) -> (grads, sums) is `compute_gradients` bound to the model
    and objective (XLA-compiled when `use_xla`; the optimizer's cross-replica
    all-reduce stays outside the compiled cluster). With several replicas,
    `sync_model_state` averages the non-trainable variables (BN moving
    statistics) across replicas after the update, as a MEAN-aggregated
    variable did in the reference; batch statistics stay per replica.
    after_step(batch) runs last on the replica (CTA probe scoring). uint8
    images (also the probes) are scaled here first (`model_inputs`).
    """
    batch = model_inputs(batch, scale_and_center=scale_and_center)
    grads, sums = grad_fn(batch)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    if sync_model_state:
        sync_non_trainable(model)
    if after_step is not None:
        sums = dict(sums, **after_step(batch))
    return sums


def sync_non_trainable(model):
    """Replica context: set every non-trainable variable to its cross-replica mean."""
    ctx = tf.distribute.get_replica_context()
    values = [tf.identity(v.value) for v in model.non_trainable_variables]
    if not values:
        return
    means = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, values)
    for v, m in zip(model.non_trainable_variables, means):
        v.assign(m)


def _guarded_inference(model, images):
    """Inference that tolerates the empty per-replica batch a finite eval set can
    produce on its last step (some CPU kernels reject a zero batch)."""
    num_classes = int(model.outputs[0].shape[-1])
    return tf.cond(tf.shape(images)[0] > 0,
                   lambda: tf.cast(model(images, training=False), tf.float32),
                   lambda: tf.zeros([0, num_classes], tf.float32))


def eval_step(batch, *, model, ema_model, scale_and_center=True, confusion_classes=None):
    """Sums for test loss and top-1/top-5 of the online and EMA models.

    `confusion_classes`: also sum the confusion matrix (rows = true label) of the EMA model
    (of `model` when there is none), as float32 [C, C] under the key "confusion".
    """
    batch = model_inputs(batch, scale_and_center=scale_and_center)
    logits = _guarded_inference(model, batch["image"])
    ema_logits = (_guarded_inference(ema_model, batch["image"])
                  if ema_model is not None else logits)
    return eval_sums(batch["label"], logits, ema_logits, confusion_classes=confusion_classes)


def eval_sums(labels, logits, ema_logits, *, confusion_classes=None):
    """eval_step's sums from the two models' logits (also used by fixmatch.evaluation, which
    needs the logits themselves for per-image predictions)."""
    sums = {"loss_sum": tf.reduce_sum(losses.cross_entropy(labels, logits)),
            "count": tf.cast(tf.shape(labels)[0], tf.float32)}
    sums.update(metrics.classification_sums(labels=labels, logits=logits))
    sums.update(metrics.classification_sums(labels=labels, logits=ema_logits, prefix="ema_"))
    if confusion_classes:
        sums["confusion"] = tf.math.confusion_matrix(
            labels, tf.argmax(ema_logits, axis=-1), num_classes=confusion_classes,
            dtype=tf.float32)
    return sums


def _reduce_sums(strategy, per_replica: dict) -> dict:
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()}


def make_train_block(*, strategy, replica_step, after_update=None, example_sums, stop=None):
    """Compiles up to `num_steps` training steps into one tf.function.

    replica_step(batch) -> sums runs under strategy.run; after_update() runs in
    cross-replica context after every step (EMA update). `example_sums` maps each key
    of the sums to its shape (None = a scalar) so the loop carries fixed-shape totals.
    The block ends early after a step whose loss is not finite (so the host can name
    that step and save nothing) or once `stop`, a bool variable set on SIGTERM, is true;
    the totals' "steps_run" says how many steps ran and "stopped" whether `stop` ended it.
    Under MultiWorkerMirrored the workers' flags are summed before every step, so a signal
    to any one worker stops all of them after the same step (their checkpoint save is a
    collective: a worker that went on alone would hang the others).
    """
    keys = sorted(example_sums)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)

    def stop_requested():
        if stop is None:
            return tf.constant(False)
        if not multi_worker:
            return stop.read_value()
        votes = strategy.run(lambda: tf.cast(stop.read_value(), tf.float32))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None) > 0

    @tf.function
    def train_block(iterator, num_steps):
        totals = {k: tf.zeros(example_sums[k] or [], tf.float32) for k in keys}
        done, finite, stopped = tf.constant(0, tf.int32), tf.constant(True), stop_requested()
        while tf.logical_and(tf.logical_and(done < num_steps, finite), tf.logical_not(stopped)):
            batch = next(iterator)
            per_replica = strategy.run(replica_step, args=(batch,))
            if after_update is not None:
                after_update()
            step_sums = _reduce_sums(strategy, per_replica)
            totals = {k: totals[k] + step_sums[k] for k in keys}
            finite = tf.math.is_finite(step_sums["loss_sum"])
            done += 1
            stopped = stop_requested()
        return {**totals, "steps_run": tf.cast(done, tf.float32),
                "stopped": tf.cast(stopped, tf.float32)}

    return train_block


def make_evaluate(*, strategy, replica_eval_step, example_sums):
    """Compiles one full pass over a finite distributed evaluation dataset.

    `example_sums` maps each key to its shape (None = a scalar), e.g. [C, C] for "confusion".
    """
    keys = sorted(example_sums)

    @tf.function
    def evaluate(dist_dataset):
        totals = {k: tf.zeros(example_sums[k] or [], tf.float32) for k in keys}
        for batch in dist_dataset:
            step_sums = _reduce_sums(strategy, strategy.run(replica_eval_step, args=(batch,)))
            totals = {k: totals[k] + step_sums[k] for k in keys}
        return totals

    return evaluate


def make_ema_update(*, ema_model, model, decay):
    """Closure doing the EMA step over all variables (cross-replica context)."""
    ema_vars, online_vars = list(ema_model.variables), list(model.variables)

    def after_update():
        ema_lib.ema_update(ema_vars, online_vars, decay=decay)

    return after_update


TRAIN_SUM_KEYS = supervised_objective.sum_keys
EVAL_SUM_KEYS = ("loss_sum", "count", "correct", "correct_top5", "ema_correct",
                 "ema_correct_top5")
