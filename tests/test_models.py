"""Contracts of fixmatch.models: the reference ResNet-50 layer for layer, init, L2, precision."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from fixmatch import models
from fixmatch.models import resnet

WD = 3e-4


@pytest.fixture(scope="module")
def resnet50():
    return models.build_model("resnet50", num_classes=1000, image_size=224, weight_decay=WD)


def _layers_of(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


def _num_params(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


# --- architecture -------------------------------------------------------------------------

def test_resnet50_parameter_count_matches_reference(resnet50):
    # Keras/TF-official ResNet-50 (no conv biases): 25,557,032 trainable; plus 53,120 BN
    # moving statistics = 25,610,152 in total.
    assert _num_params(resnet50.trainable_weights) == 25_557_032
    assert resnet50.count_params() == 25_610_152
    assert resnet50.input.shape == (None, 224, 224, 3)
    assert resnet50.output.shape == (None, 1000)


def test_resnet50_stem(resnet50):
    pad = resnet50.get_layer("stem_pad")
    assert isinstance(pad, keras.layers.ZeroPadding2D) and pad.padding == ((3, 3), (3, 3))
    conv = resnet50.get_layer("stem_conv")
    assert (conv.filters, conv.kernel_size, conv.strides, conv.padding, conv.use_bias) == (
        64, (7, 7), (2, 2), "valid", False)
    pool = resnet50.get_layer("stem_pool")
    assert isinstance(pool, keras.layers.MaxPooling2D)
    assert (pool.pool_size, pool.strides, pool.padding) == ((3, 3), (2, 2), "same")
    assert pool.output.shape == (None, 56, 56, 64)


def test_resnet50_stages_strides_and_projections(resnet50):
    convs = _layers_of(resnet50, keras.layers.Conv2D)
    assert len(convs) == 53  # stem + 16 blocks x 3 + 4 projections
    assert all(not conv.use_bias for conv in convs)
    projections = [conv for conv in convs if conv.name.endswith("_proj_conv")]
    assert [p.name for p in projections] == [f"stage{s}_block1_proj_conv" for s in (2, 3, 4, 5)]
    expected_out = {2: (56, 256), 3: (28, 512), 4: (14, 1024), 5: (7, 2048)}
    for stage, blocks in zip((2, 3, 4, 5), (3, 4, 6, 3)):
        stride = 1 if stage == 2 else 2
        prefix = f"stage{stage}_block1"
        proj = resnet50.get_layer(f"{prefix}_proj_conv")
        assert (proj.kernel_size, proj.strides) == ((1, 1), (stride, stride))
        # v1.5: the 3x3 conv carries the stride, the first 1x1 does not.
        assert resnet50.get_layer(f"{prefix}_1_conv").strides == (1, 1)
        mid = resnet50.get_layer(f"{prefix}_2_conv")
        assert (mid.kernel_size, mid.strides) == ((3, 3), (stride, stride))
        for index in range(2, blocks + 1):
            assert all(resnet50.get_layer(f"stage{stage}_block{index}_{k}_conv").strides == (1, 1)
                       for k in (1, 2, 3))
        with pytest.raises(ValueError):
            resnet50.get_layer(f"stage{stage}_block{blocks + 1}_out")
        size, channels = expected_out[stage]
        out = resnet50.get_layer(f"stage{stage}_block{blocks}_out").output
        assert out.shape == (None, size, size, channels)


def test_residual_is_added_before_the_final_relu(resnet50):
    add = resnet50.get_layer("stage3_block1_add")
    parents = {t._keras_history.operation.name for t in add._inbound_nodes[0].input_tensors}
    assert parents == {"stage3_block1_3_bn", "stage3_block1_proj_bn"}
    relu = resnet50.get_layer("stage3_block1_out")
    assert relu._inbound_nodes[0].input_tensors[0]._keras_history.operation is add
    # Identity shortcut of a later block: the previous block's output feeds the add directly.
    add2 = resnet50.get_layer("stage3_block2_add")
    parents2 = {t._keras_history.operation.name for t in add2._inbound_nodes[0].input_tensors}
    assert parents2 == {"stage3_block2_3_bn", "stage3_block1_out"}


def test_head_is_global_pool_then_dense_with_bias(resnet50):
    assert isinstance(resnet50.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)
    dense = resnet50.get_layer("classifier")
    assert dense.use_bias and dense.units == 1000 and dense.kernel.shape == (2048, 1000)


def test_batchnorm_constants(resnet50):
    bns = _layers_of(resnet50, keras.layers.BatchNormalization)
    assert len(bns) == 53
    for bn in bns:
        assert bn.momentum == pytest.approx(0.9) and bn.epsilon == pytest.approx(1e-5)
        assert bn.gamma_regularizer is None and bn.beta_regularizer is None


def test_l2_on_every_conv_kernel_and_dense_kernel_and_bias(resnet50):
    for conv in _layers_of(resnet50, keras.layers.Conv2D):
        assert isinstance(conv.kernel_regularizer, keras.regularizers.L2), conv.name
        assert conv.kernel_regularizer.l2 == pytest.approx(WD)
    dense = resnet50.get_layer("classifier")
    for reg in (dense.kernel_regularizer, dense.bias_regularizer):
        assert isinstance(reg, keras.regularizers.L2) and reg.l2 == pytest.approx(WD)
    assert len(resnet50.losses) == 53 + 2


def test_losses_sum_is_weight_decay_times_sum_of_squares(resnet50):
    dense = resnet50.get_layer("classifier")
    old_bias = dense.bias.numpy()
    # A non-zero bias so the bias term visibly counts.
    dense.bias.assign(np.linspace(-1.0, 1.0, 1000).astype(np.float32))
    try:
        regularized = [conv.kernel for conv in _layers_of(resnet50, keras.layers.Conv2D)]
        regularized += [dense.kernel, dense.bias]
        expected = WD * sum(np.sum(np.square(v.numpy().astype(np.float64))) for v in regularized)
        total = float(tf.add_n(resnet50.losses))
        assert total == pytest.approx(expected, rel=1e-5)
        # Exactly those weights: BN gamma/beta of 53 layers would add WD * 53 * 2 * ... > 0.
        bn_sq = sum(np.sum(np.square(bn.gamma.numpy())) for bn in
                    _layers_of(resnet50, keras.layers.BatchNormalization))
        assert abs(total - expected) < 0.01 * WD * bn_sq
    finally:
        dense.bias.assign(old_bias)


# --- initialisation ------------------------------------------------------------------------

def test_initial_values_follow_the_reference(resnet50):
    dense = resnet50.get_layer("classifier")
    kernel = dense.kernel.numpy()
    assert abs(kernel.mean()) < 1e-4
    assert kernel.std() == pytest.approx(0.01, rel=0.02)
    assert np.all(dense.bias.numpy() == 0.0)
    for bn in _layers_of(resnet50, keras.layers.BatchNormalization):
        assert np.all(bn.gamma.numpy() == 1.0), f"{bn.name}: no zero-gamma trick"
        assert np.all(bn.beta.numpy() == 0.0)
        assert np.all(bn.moving_mean.numpy() == 0.0) and np.all(bn.moving_variance.numpy() == 1.0)
    for name in ("stem_conv", "stage5_block1_2_conv", "stage4_block3_3_conv"):
        w = resnet50.get_layer(name).kernel.numpy()
        he_std = np.sqrt(2.0 / np.prod(w.shape[:-1]))  # fan-in = kh * kw * in_channels
        assert w.std() == pytest.approx(he_std, rel=0.05), name
        # Truncated at two standard deviations of the underlying (pre-truncation) normal.
        assert np.abs(w).max() <= 2 * he_std / 0.87962566103423978 * 1.0001, name


# --- smaller members of the family ------------------------------------------------------------

def test_resnet18_is_basic_block_v1():
    model = models.build_model("resnet18", num_classes=1000, image_size=224)
    assert _num_params(model.trainable_weights) == 11_689_512
    projections = [layer.name for layer in _layers_of(model, keras.layers.Conv2D)
                   if layer.name.endswith("_proj_conv")]
    assert projections == [f"stage{s}_block1_proj_conv" for s in (3, 4, 5)]
    assert model.get_layer("stage3_block1_1_conv").strides == (2, 2)
    assert model.get_layer("stage5_block2_out").output.shape == (None, 7, 7, 512)
    assert len(model.losses) == len(_layers_of(model, keras.layers.Conv2D)) + 2


def test_variants_are_partials_of_one_builder():
    for variant in (models.ResNet50, models.ResNet18, models.ResNetTiny):
        assert isinstance(variant, functools.partial) and variant.func is resnet.resnet
    assert models.MODEL_NAMES == ("resnet50", "resnet18", "resnet_tiny")


@pytest.mark.parametrize("size", [16, 32])
def test_tiny_forward_backward(size):
    model = models.build_model("resnet_tiny", num_classes=10, image_size=size)
    assert model.get_layer("stem_conv").strides == (1, 1)
    assert not _layers_of(model, keras.layers.MaxPooling2D)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, (8, size, size, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, 10, 8))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)

    def loss_and_grads():
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            xe = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True))
            loss = xe + tf.add_n(model.losses)
        return logits, xe, tape.gradient(loss, model.trainable_variables)

    logits, first_xe, grads = loss_and_grads()
    assert logits.shape == (8, 10) and logits.dtype == tf.float32
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
    for _ in range(5):
        _, xe, grads = loss_and_grads()
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    assert float(loss_and_grads()[1]) < float(first_xe)


def test_batchnorm_moving_average_uses_momentum_0_9():
    model = models.build_model("resnet_tiny", num_classes=10, image_size=16)
    images = tf.constant(np.random.default_rng(1).uniform(0, 1, (4, 16, 16, 3)), tf.float32)
    stem_conv = keras.Model(model.input, model.get_layer("stem_conv").output)
    batch_mean = tf.reduce_mean(stem_conv(images), axis=[0, 1, 2]).numpy()
    model(images, training=True)
    moving = model.get_layer("stem_bn").moving_mean.numpy()
    np.testing.assert_allclose(moving, 0.1 * batch_mean, rtol=1e-4, atol=1e-7)


def test_any_image_size_when_unset():
    model = models.build_model("resnet_tiny", num_classes=3)
    assert model.input.shape == (None, None, None, 3)
    for size in (16, 24):
        assert model(tf.zeros((2, size, size, 3))).shape == (2, 3)


# --- precision --------------------------------------------------------------------------------

def test_mixed_bfloat16_computes_in_bfloat16_with_float32_logits():
    before = keras.config.dtype_policy().name
    mixed = models.build_model("resnet_tiny", num_classes=10, image_size=16,
                               dtype_policy="mixed_bfloat16")
    assert keras.config.dtype_policy().name == before == "float32"  # no global side effect
    assert mixed.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert mixed.get_layer("classifier").compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in mixed.weights)
    probe = keras.Model(mixed.input, mixed.get_layer("stage4_block1_out").output)
    images = tf.constant(np.random.default_rng(2).uniform(-1, 1, (4, 16, 16, 3)), tf.float32)
    assert probe(images).dtype == tf.bfloat16
    logits = mixed(images)
    assert logits.dtype == tf.float32
    assert mixed(tf.cast(images, tf.bfloat16)).dtype == tf.float32  # bfloat16 input is accepted
    # Same weights in float32 give nearly the same logits: only the compute precision differs.
    full = models.build_model("resnet_tiny", num_classes=10, image_size=16)
    full.set_weights(mixed.get_weights())
    np.testing.assert_allclose(logits.numpy(), full(images).numpy(), atol=0.05)
    # The regularization losses stay float32 as well.
    assert all(loss.dtype == tf.float32 for loss in mixed.losses)


def test_resnet50_mixed_bfloat16_output_is_float32():
    model = models.build_model("resnet50", num_classes=1000, image_size=224,
                               dtype_policy="mixed_bfloat16")
    assert model.output.dtype == "float32"
    assert model.get_layer("stage5_block3_out").output.dtype == "bfloat16"


# --- errors -----------------------------------------------------------------------------------

def test_unknown_model_name_lists_known_names():
    with pytest.raises(ValueError, match=r"'resnet51'.*resnet50.*resnet18.*resnet_tiny"):
        models.build_model("resnet51", num_classes=10)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_classes=0), r"num_classes must be an integer >= 2, got 0"),
    (dict(num_classes="10"), r"num_classes .* got '10'"),
    (dict(num_classes=True), r"num_classes .* got True"),
    (dict(num_classes=10, image_size=2), r"image_size for resnet_tiny .* >= 4, got 2"),
    (dict(num_classes=10, image_size=32.0), r"image_size .* got 32.0"),
    (dict(num_classes=10, weight_decay=-1e-4), r"weight_decay .* got -0.0001"),
    (dict(num_classes=10, weight_decay=float("nan")), r"weight_decay .* got nan"),
    (dict(num_classes=10, dtype_policy="mixed_float16"), r"mixed_bfloat16.*got 'mixed_float16'"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build_model("resnet_tiny", **kwargs)


def test_resnet50_image_size_must_cover_total_stride():
    with pytest.raises(ValueError, match=r"image_size for resnet50 .* >= 32, got 16"):
        models.build_model("resnet50", num_classes=10, image_size=16)
