"""ResNet family (v1.5, post-activation) as Keras 3 functional models, channels-last.

ResNet-50 reproduces the reference FixMatch ImageNet model layer for layer (spec section 5): the
stride of a downsampling bottleneck sits on its 3x3 conv (v1.5), the first block of a stage gets
a 1x1 conv + BN projection shortcut, BN uses momentum 0.9 / epsilon 1e-5, starts at gamma 1
(no zero-gamma trick) and moves its moving variance towards the unbiased batch variance as the
reference's fused kernel did (`batch_norm.UnbiasedBatchNormalization`), and weight decay is an
L2 penalty on every conv kernel plus the dense kernel and bias (never BN). Keeping the decay as
per-layer regularizers means `model.losses` is exactly the reference's
`L_wd = sum(weight_decay * ||w||^2)` and the engine just adds it.

Smaller members share every convention so a CPU demo exercises the same code path:
`resnet18` (basic blocks) and `resnet_tiny` (basic blocks, widths 16/32/64, a 3x3 stride-1 stem
without max-pool, for 16-64 px images where a 7x7/2 stem plus pool would discard most pixels).

Mixed precision is passed per layer (`dtype=policy`) instead of through the global Keras policy,
so building one bfloat16 model never changes models built later in the same process. The logits
always leave through a float32 layer: the loss and softmax must not run in bfloat16 (spec 5/10).
"""

from functools import partial
import numbers

import keras

from fixmatch.models.batch_norm import UnbiasedBatchNormalization

BN_MOMENTUM = 0.9  # Keras semantics: moving = 0.9 * moving + 0.1 * batch, as the reference.
BN_EPSILON = 1e-5
DENSE_INIT_STDDEV = 0.01
DEFAULT_WEIGHT_DECAY = 3e-4
DTYPE_POLICIES = ("float32", "mixed_bfloat16")  # the reference has no float16/loss-scaling path


def _conv_initializer():
    # He-normal, fan-in, truncated: what Keras calls "he_normal". A fresh instance per layer so
    # no two layers ever share an initializer's state.
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_in", distribution="truncated_normal")


class _LayerFactory:
    """Creates layers with the model-wide conventions (init, L2, BN constants, dtype policy)."""

    def __init__(self, *, weight_decay, dtype_policy):
        self.weight_decay = weight_decay
        self.dtype_policy = dtype_policy

    def l2(self):
        # Always attached, even for weight_decay == 0, so model.losses never becomes empty and
        # the set of regularized weights does not depend on the hparam value.
        return keras.regularizers.L2(self.weight_decay)

    def conv(self, x, filters, kernel_size, *, strides=1, padding="same", name):
        return keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding=padding, use_bias=False,
            kernel_initializer=_conv_initializer(), kernel_regularizer=self.l2(),
            dtype=self.dtype_policy, name=name)(x)

    def bn(self, x, *, name):
        return UnbiasedBatchNormalization(
            axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
            gamma_initializer="ones", beta_initializer="zeros",
            dtype=self.dtype_policy, name=name)(x)

    def relu(self, x, *, name):
        return keras.layers.ReLU(dtype=self.dtype_policy, name=name)(x)

    def conv_bn_relu(self, x, filters, kernel_size, *, strides=1, name):
        x = self.conv(x, filters, kernel_size, strides=strides, name=f"{name}_conv")
        x = self.bn(x, name=f"{name}_bn")
        return self.relu(x, name=f"{name}_relu")

    def add_relu(self, residual, shortcut, *, name):
        x = keras.layers.Add(dtype=self.dtype_policy, name=f"{name}_add")([residual, shortcut])
        return self.relu(x, name=f"{name}_out")


def _shortcut(layers, x, out_channels, strides, *, name):
    """Identity when shapes already match, else the 1x1 conv + BN projection with the stride."""
    if strides == 1 and x.shape[-1] == out_channels:
        return x
    x = layers.conv(x, out_channels, 1, strides=strides, name=f"{name}_proj_conv")
    return layers.bn(x, name=f"{name}_proj_bn")


def bottleneck_block(layers, x, *, filters, strides, name):
    """1x1 reduce -> 3x3 (carries the stride: v1.5) -> 1x1 expand x4, add, ReLU."""
    out_channels = filters * bottleneck_block.expansion
    shortcut = _shortcut(layers, x, out_channels, strides, name=name)
    y = layers.conv_bn_relu(x, filters, 1, name=f"{name}_1")
    y = layers.conv_bn_relu(y, filters, 3, strides=strides, name=f"{name}_2")
    y = layers.conv(y, out_channels, 1, name=f"{name}_3_conv")
    y = layers.bn(y, name=f"{name}_3_bn")
    return layers.add_relu(y, shortcut, name=name)


bottleneck_block.expansion = 4


def basic_block(layers, x, *, filters, strides, name):
    """3x3 (carries the stride) -> 3x3, add, ReLU: the ResNet-18/34 block."""
    shortcut = _shortcut(layers, x, filters, strides, name=name)
    y = layers.conv_bn_relu(x, filters, 3, strides=strides, name=f"{name}_1")
    y = layers.conv(y, filters, 3, name=f"{name}_2_conv")
    y = layers.bn(y, name=f"{name}_2_bn")
    return layers.add_relu(y, shortcut, name=name)


basic_block.expansion = 1


def imagenet_stem(layers, x, *, width):
    """Zero-pad 3, 7x7/2 valid conv, BN, ReLU, 3x3/2 'same' max-pool: total stride 4."""
    x = keras.layers.ZeroPadding2D(3, dtype=layers.dtype_policy, name="stem_pad")(x)
    x = layers.conv(x, width, 7, strides=2, padding="valid", name="stem_conv")
    x = layers.bn(x, name="stem_bn")
    x = layers.relu(x, name="stem_relu")
    return keras.layers.MaxPooling2D(3, strides=2, padding="same", dtype=layers.dtype_policy,
                                     name="stem_pool")(x)


imagenet_stem.stride = 4


def small_image_stem(layers, x, *, width):
    """3x3/1 conv, BN, ReLU, no pool: keeps every pixel of 16-64 px images."""
    return layers.conv_bn_relu(x, width, 3, name="stem")


small_image_stem.stride = 1


def _check_int(value, *, what, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_dtype_policy(dtype_policy):
    if dtype_policy not in DTYPE_POLICIES:
        raise ValueError(
            f"dtype_policy must be one of {list(DTYPE_POLICIES)}, got {dtype_policy!r} "
            "(the reference only has bfloat16 mixed precision; no float16 loss scaling)")


def _check_weight_decay(weight_decay):
    if (isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real)
            or not 0.0 <= float(weight_decay) < float("inf")):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    return float(weight_decay)


def resnet(*, stage_sizes, block, widths, stem, name, num_classes, image_size=None,
           weight_decay=DEFAULT_WEIGHT_DECAY, dtype_policy="float32"):
    """Builds a ResNet; the named variants below fix the architecture arguments.

    Stage i has `stage_sizes[i]` blocks of width `widths[i]`; the first stage keeps the
    resolution after the stem, every later one halves it in its first block. `image_size=None`
    accepts any spatial size (global pooling); a fixed size must be at least the total stride so
    the last stage still sees a distinct pixel per position instead of a padded 1x1 map.
    """
    num_classes = _check_int(num_classes, what="num_classes", minimum=2)
    total_stride = stem.stride * 2 ** (len(stage_sizes) - 1)
    if image_size is not None:
        image_size = _check_int(
            image_size, what=f"image_size for {name} (its total stride)", minimum=total_stride)
    weight_decay = _check_weight_decay(weight_decay)
    _check_dtype_policy(dtype_policy)

    layers = _LayerFactory(weight_decay=weight_decay, dtype_policy=dtype_policy)
    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="images")
    x = stem(layers, inputs, width=widths[0])
    for stage, (num_blocks, filters) in enumerate(zip(stage_sizes, widths)):
        for index in range(num_blocks):
            strides = 2 if stage > 0 and index == 0 else 1
            x = block(layers, x, filters=filters, strides=strides,
                      name=f"stage{stage + 2}_block{index + 1}")
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype_policy, name="avg_pool")(x)
    x = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=DENSE_INIT_STDDEV),
        bias_initializer="zeros",
        kernel_regularizer=layers.l2(), bias_regularizer=layers.l2(),
        dtype=dtype_policy, name="classifier")(x)
    # float32 exit whatever the compute dtype, so losses and softmax never run in bfloat16.
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=name)


ResNet50 = partial(resnet, stage_sizes=(3, 4, 6, 3), block=bottleneck_block,
                   widths=(64, 128, 256, 512), stem=imagenet_stem, name="resnet50")
ResNet18 = partial(resnet, stage_sizes=(2, 2, 2, 2), block=basic_block,
                   widths=(64, 128, 256, 512), stem=imagenet_stem, name="resnet18")
ResNetTiny = partial(resnet, stage_sizes=(1, 1, 1), block=basic_block,
                     widths=(16, 32, 64), stem=small_image_stem, name="resnet_tiny")

MODELS = {"resnet50": ResNet50, "resnet18": ResNet18, "resnet_tiny": ResNetTiny}
MODEL_NAMES = tuple(MODELS)


def build_model(name, *, num_classes, image_size=None, weight_decay=DEFAULT_WEIGHT_DECAY,
                dtype_policy="float32"):
    """The model called `name` (one of MODEL_NAMES): images [N, S, S, 3] -> float32 logits."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model name {name!r}; known models: {list(MODEL_NAMES)}")
    return MODELS[name](num_classes=num_classes, image_size=image_size,
                        weight_decay=weight_decay, dtype_policy=dtype_policy)
