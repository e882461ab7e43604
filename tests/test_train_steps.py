"""fixmatch.train.steps.model_inputs: uint8 batches scaled on the device give the model exactly
the values the host-scaled float path gives, for both settings of input.scale_and_center and
under mixed precision; probe images are scaled too."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from fixmatch.augment import weak
from fixmatch.models import build_model
from fixmatch.train import steps

SIZE, CLASSES = 16, 3


def _uint8_batch(seed=0, n=4):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    pixels[0, 0, 0] = [0, 255, 128]  # the extremes and the midpoint are always present
    return {"image": tf.constant(pixels), "label": tf.constant(rng.integers(0, CLASSES, n))}


def _host_float(batch, scale_and_center):
    """What the pipelines emit with image_dtype=float32 (host-side scaling)."""
    image = (weak.scale_and_center(batch["image"]) if scale_and_center
             else tf.cast(batch["image"], tf.float32))
    return dict(batch, image=image)


@pytest.mark.parametrize("scale_and_center", [True, False])
def test_uint8_scaled_on_device_equals_host_scaled_float(scale_and_center):
    batch = _uint8_batch()
    device = steps.model_inputs(batch, scale_and_center=scale_and_center)
    host = _host_float(batch, scale_and_center)
    assert device["image"].dtype == tf.float32
    np.testing.assert_array_equal(device["image"].numpy(), host["image"].numpy())
    low, high = (-1.0, 1.0) if scale_and_center else (0.0, 255.0)
    assert device["image"].numpy().min() == low and device["image"].numpy().max() == high
    # Float images were prepared by the host: unchanged, whatever the setting.
    again = steps.model_inputs(host, scale_and_center=not scale_and_center)
    assert again["image"] is host["image"]


def test_every_image_key_is_scaled_and_other_keys_pass_through():
    batch = _uint8_batch()
    image = batch["image"]
    full = {"image": image, "unsup_image": image, "unsup_aug_image": 255 - image,
            "probe_image": image[:, ::-1], "label": batch["label"],
            "probe_op_indices": tf.zeros([4, 2], tf.int32)}
    out = steps.model_inputs(full)
    for key in steps.IMAGE_KEYS:
        np.testing.assert_array_equal(out[key].numpy(), weak.scale_and_center(full[key]).numpy())
    assert out["label"] is full["label"] and out["probe_op_indices"] is full["probe_op_indices"]


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("scale_and_center", [True, False])
def test_eval_step_sees_the_same_values_either_way(policy, scale_and_center):
    model = build_model("resnet_tiny", num_classes=CLASSES, image_size=SIZE,
                        dtype_policy=policy)
    step = tf.function(functools.partial(steps.eval_step, model=model, ema_model=None,
                                         scale_and_center=scale_and_center))
    batch = _uint8_batch(seed=1)
    on_device = {k: v.numpy() for k, v in step(batch).items()}
    on_host = {k: v.numpy() for k, v in step(_host_float(batch, scale_and_center)).items()}
    assert on_device == on_host


def test_train_step_scales_probes_before_the_hook():
    model = build_model("resnet_tiny", num_classes=CLASSES, image_size=SIZE)
    seen = {}

    def after_step(batch):
        seen.update(batch)
        return {}

    grad_fn = functools.partial(steps.compute_gradients, model=model,
                                objective=steps.supervised_objective, num_replicas=1)
    batch = _uint8_batch(seed=2)
    batch["probe_image"] = 255 - batch["image"]
    steps.train_step(batch, model=model, optimizer=keras.optimizers.SGD(0.0), grad_fn=grad_fn,
                     after_step=after_step)
    assert seen["probe_image"].dtype == tf.float32
    np.testing.assert_array_equal(seen["probe_image"].numpy(),
                                  weak.scale_and_center(255 - batch["image"]).numpy())
