"""Batch normalization whose moving variance tracks the *unbiased* batch variance.

Why: the reference trained with Keras 2's fused batch norm (TF's FusedBatchNorm kernel), which
normalises the batch with its biased variance but moves the moving variance towards the
unbiased one, `var * n / (n - 1)` with n = images x height x width of the layer's input (Bessel's
correction). Keras 3's `BatchNormalization` uses the biased variance for both, so its moving
variance is smaller by a factor (n - 1) / n at every step; the published accuracy was trained
(and its inference statistics accumulated) with the unbiased update. This layer changes only
that update:

    moving_mean     <- momentum * moving_mean     + (1 - momentum) * mean
    moving_variance <- momentum * moving_variance + (1 - momentum) * var * n / (n - 1)
    output          =  gamma * (x - mean) / sqrt(var + epsilon) + beta      (var biased)

(Ioffe & Szegedy 2015, Algorithm 2, step 10 uses the unbiased estimate m/(m-1) Var[x] for
inference.) With n == 1 (no unbiased estimate exists) the factor is taken as 1. Inference,
frozen layers (`trainable=False`), masks and batch renormalisation keep Keras' own code path.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fixmatch")
class UnbiasedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with the fused kernel's unbiased moving variance."""

    def __init__(self, *, synchronized=False, **kwargs):
        if synchronized:
            # The correction would need the global count of a synchronized batch; the
            # reference never synchronized batch statistics across replicas.
            raise ValueError("UnbiasedBatchNormalization does not support synchronized=True "
                             "(the reference normalises each replica's batch on its own)")
        super().__init__(**kwargs)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        # As Keras: statistics in float32 even for bfloat16 inputs (overflow-prone).
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        axis = self.axis % len(x.shape)
        reduce_axes = [i for i in range(len(x.shape)) if i != axis]
        mean, variance = ops.moments(x, axes=reduce_axes)
        shape = ops.shape(x)
        count = 1
        for i in reduce_axes:
            count = count * shape[i]
        count = ops.cast(count, x.dtype)
        bessel = count / ops.maximum(count - 1.0, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(
            ops.cast(self.moving_mean, x.dtype) * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(
            ops.cast(self.moving_variance, x.dtype) * momentum
            + variance * bessel * (1.0 - momentum))
        gamma = ops.cast(self.gamma, x.dtype) if self.scale else None
        beta = ops.cast(self.beta, x.dtype) if self.center else None
        outputs = ops.batch_normalization(x=x, mean=mean, variance=variance, axis=self.axis,
                                          offset=beta, scale=gamma, epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)
