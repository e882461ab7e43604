"""Neighbourhood-filter primitive ops (Sharpness, Blur, Smooth) on one uint8 [H, W, 3] image.

Kernels: Smooth/Sharpness [[1,1,1],[1,5,1],[1,1,1]] / 13; Blur a 5x5 ring of ones around a zero
3x3 interior, / 16.

Conventions (spec section 4.2), which differ between the ops on purpose:
- Sharpness(f): the smoothed image is computed on the valid interior only; the one-pixel border
  keeps the original values; result = blend(smoothed, x, f) (f=1 original).
- Blur(f) / Smooth(f): "same" convolution with zero padding, +0.5 for rounding (as PIL's filter),
  result = blend(x, filtered + 0.5, f): 0 is the original, 1 the fully filtered image.

Speed: no convolution op. TensorFlow's depthwise convolution is fast only where its oneDNN
kernels are on (by default only on CPUs with AVX-512 VNNI/BF16 or AMX), so each kernel is built
from box sums, which are separable: sums of shifted slices along the rows, then along the
columns. Smooth's kernel is `box3 + 4 delta`, Blur's ring is `box5 - box3`.

Rounding: every box sum of uint8 values is an integer far below 2^24, so it is exact in float32
whatever order the adds run in (Grappler may regroup adds into AddN). The blend with the original
is then the single inexact step `x + g * D`, with D an exact integer (or half-integer) image and
g = f / divisor a scalar: `blend(x, K x + 0.5, f) = x + (f / n) (n K x + n / 2 - n x)`. Both
image-sized inexact ops take a non-constant operand, and g is computed behind a cast (`_gain`), so
constant folding cannot re-associate them with the caller's level-to-factor arithmetic (see
commit 76828e4: folded constants once flipped .5 ties between eager and tf.function).
Sharpness truncates its smoothed image to uint8 before blending in the reference; this form does
not, so it may differ from the literal formula by one grey level (tests check within 1).
"""

import tensorflow as tf

from fixmatch.augment.ops_color import _to_uint8, _unit


def _shifted_sum(values, axis, size):
    """Sum of the `size` slices of `values` shifted by 0 .. size-1 along `axis` ('valid').

    Negative slice ends keep the slices valid for images of unknown size."""
    total = None
    for start in range(size):
        stop = start - (size - 1) or None
        piece = values[start:stop] if axis == 0 else values[:, start:stop]
        total = piece if total is None else total + piece
    return total


def _box(values, size):
    """'valid' size x size box sum of a float32 [H, W, C] image: row sums, then column sums."""
    return _shifted_sum(_shifted_sum(values, 1, size), 0, size)


def _padded(image, radius):
    """The float32 image with `radius` zero pixels on every side ('same' zero padding)."""
    pad = [[radius, radius], [radius, radius], [0, 0]]
    return tf.cast(tf.pad(image, pad), tf.float32)


def _gain(numerator, divisor):
    """The scalar `numerator / divisor` as float32, computed in float64.

    The factor reaches the ops as an expression such as `0.1 + 1.8 level`; inside tf.function
    Grappler merges its constants with ours (`1 - f` becomes `0.9 - 1.8 level`), which rounds
    differently from eager mode. A cast is a barrier that this rewriting does not cross, and
    float64 makes `1 - f` exact.
    """
    return tf.cast(tf.cast(numerator, tf.float64) / divisor, tf.float32)


def _blend_toward(x, strength, divisor, scaled_filtered_minus_x):
    """x + (f / n) D as uint8, with D = n (filtered + 0.5 - x) exact; inside [0, 255.5], no clip."""
    gain = _gain(_unit(strength), divisor)
    return _to_uint8(x + gain * scaled_filtered_minus_x, clip=False)


def smooth(image, strength):
    """blend(x, smooth(x) + 0.5, strength); strength (clamped to [0, 1]) 0 is the original.

    13 (smooth(x) + 0.5 - x) = box3(x) + 4 x + 6.5 - 13 x = box3(x) - 9 x + 6.5.
    """
    x = tf.cast(image, tf.float32)
    scaled = _box(_padded(image, 1), 3) - 9.0 * x + 6.5
    return _blend_toward(x, strength, 13.0, scaled)


def blur(image, strength):
    """blend(x, ring_blur(x) + 0.5, strength); strength (clamped to [0, 1]) 0 is the original.

    16 (ring(x) / 16 + 0.5 - x) = box5(x) - box3(x) - 16 x + 8; box3 is the middle of box5's
    row sums, so both come from one set of row sums.
    """
    x = tf.cast(image, tf.float32)
    padded = _padded(image, 2)
    rows3 = padded[:, 1:-3] + padded[:, 2:-2] + padded[:, 3:-1]
    rows5 = rows3 + padded[:, :-4] + padded[:, 4:]
    ring = _shifted_sum(rows5, 0, 5) - _shifted_sum(rows3[1:-1], 0, 3)
    return _blend_toward(x, strength, 16.0, ring - 16.0 * x + 8.0)


def sharpness(image, factor):
    """blend(smoothed-interior-with-original-border, x, factor); factor 1 is the original.

    On the interior: smoothed + f (x - smoothed) = x + ((1 - f) / 13) (box3(x) - 9 x), clipped
    (factors above 1 extrapolate).
    """
    x = tf.cast(image, tf.float32)
    center = x[1:-1, 1:-1]
    gain = _gain(1.0 - tf.cast(factor, tf.float64), 13.0)
    interior = _to_uint8(center + gain * (_box(x, 3) - 9.0 * center), clip=True)
    # Border rows/columns are unchanged (the degenerate image equals x there, so the blend is x).
    middle = tf.concat([image[1:-1, :1], interior, image[1:-1, _last(image, 1):]], axis=1)
    return tf.concat([image[:1], middle, image[_last(image, 0):]], axis=0)


def _last(image, axis):
    """Start of the last row/column along `axis`, past the end if the image is one pixel thick
    there (its only row/column is then already the first)."""
    size = image.shape[axis]
    if size is None:
        return tf.maximum(tf.shape(image)[axis] - 1, 1)
    return max(size - 1, 1)
