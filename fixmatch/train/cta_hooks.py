"""CTAugment inside the engine (spec sections 4.4 and 9).

Per training step, after the optimizer update and on every replica, the probe
images of the batch are classified by the probe model (EMA model, or online
when EMA or `use_ema_probe_image` is off) in inference mode;
`proximity = softmax(logits)[true label]` then updates the CTA rates (the
state averages the increments across replicas). At the start of each block
the engine copies the state's `probs` into the host-local policy. Probe images
arrive as uint8 and are scaled with the other images at the top of the train
step (steps.model_inputs), before this hook sees them.

The state/policy objects are duck-typed: `state.update(op_indices, levels,
proximity)`, `state.probs`, `policy.set_probs(probs)` (fixmatch.augment.ctaugment).
"""


import tensorflow as tf

from fixmatch.train.loop import CTAHooks

PROBE_KEYS = ("probe_image", "probe_op_indices", "probe_op_args")
SUM_KEYS = ("cta_proximity_sum",)


def probe_proximity(probe_model, probe_images, labels):
    """softmax(probe_model(probe_images))[label] per probe, float32 [N]."""
    logits = tf.cast(probe_model(probe_images, training=False), tf.float32)
    probs = tf.nn.softmax(logits)
    return tf.gather(probs, tf.cast(labels, tf.int32), axis=1, batch_dims=1)


def probe_update(batch, *, probe_model, state):
    """Replica step hook: scores the probes and updates the CTA rates.

    Returns the sum of proximities, logged as `cta/proximity` (mean per labeled
    image), a cheap signal that the probe model is sensible.
    """
    missing = [k for k in PROBE_KEYS if k not in batch]
    if missing:
        raise ValueError(f"augment.type 'cta' needs probe images in the batch; missing "
                         f"{missing}: build the labeled dataset with probe=policy.probe")
    proximity = probe_proximity(probe_model, batch["probe_image"], batch["label"])
    state.update(batch["probe_op_indices"], batch["probe_op_args"], proximity)
    return {"cta_proximity_sum": tf.reduce_sum(proximity)}


def make_cta_hooks(*, state, policy, use_ema_probe: bool = True) -> CTAHooks:
    """CTAHooks for `loop.train_and_evaluate`.

    `use_ema_probe=False` scores probes with the online model even when an EMA
    model exists (hparam `augment.use_ema_probe_image`).
    """
    def update_fn(batch, *, probe_model, online_model=None):
        model = probe_model if use_ema_probe or online_model is None else online_model
        return probe_update(batch, probe_model=model, state=state)

    return CTAHooks(state=state, policy=policy, update_fn=update_fn, sum_keys=SUM_KEYS)


