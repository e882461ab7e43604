"""Colour (point-wise and global-statistics) primitive ops on one uint8 [H, W, 3] image.

Each function takes the image and its *explicit* argument (a factor, a threshold, a number of bits),
never a level in [0, 1]; the level-to-argument tables of RandAugment and CTAugment live in
`registry.py`, because the two policies map the same level to different arguments.

Definitions follow the reference specification (section 4.2), which mirrors PIL:
`blend(a, b, f) = clip_uint8(a + f * (b - a))` in float, truncated when cast to uint8.

Speed is the design constraint: these run once per image inside `tf.data`, where every op pays
for each pass over the 150k values of a 224x224 image (~20-70 us per float32 pass on one core;
more inside a busy pipeline than alone) and a little for each graph node it runs. So:

- Every blend-with-a-derived-image is folded into the fewest passes. Brightness, Contrast,
  AutoContrast(+Blend) and InvertBlend are one per-channel affine map `x * scale + bias`;
  Color is one `[N, 3] x [3, 3]` matrix product; EqualizeBlend blends the 256-entry look-up table
  instead of the image. Where the factor keeps the result inside [0, 255] the clip is skipped.
- Folding changes float rounding, and PIL's intermediate images (rounded gray, rounded mean)
  are not materialised, so results may differ from the literal formula by one grey level at some
  pixels (tests/test_augment_ops.py checks the folded blends against the literal spec formula and
  the enhancers against Pillow, within 1). Equalize, Invert, Solarize, SolarizeAdd and Posterize
  stay exact.
- uint8 arithmetic wherever it is exact (SolarizeAdd, Solarize, Posterize), no int32 copies of
  the image except Equalize's histogram index, and no broadcasting of a [3] vector over
  [H, W, 3] (see `_rows`).
"""

import tensorflow as tf

# PIL's ITU-R 601-2 luma weights ('L' conversion: (19595 R + 38470 G + 7471 B) / 2^16).
_LUMA = (19595.0 / 65536.0, 38470.0 / 65536.0, 7471.0 / 65536.0)
# Added to AutoContrast's map so that max -> exactly 255 survives float rounding and truncation.
_NUDGE = 1e-3


def _float(image):
    return tf.cast(image, tf.float32)


def _to_uint8(values, *, clip):
    """float32 -> uint8 by truncation (PIL's int()); `clip` only where values may leave [0, 255]."""
    if clip:
        values = tf.clip_by_value(values, 0.0, 255.0)
    return tf.cast(values, tf.uint8)


def _unit(factor):
    """A blend factor clamped to [0, 1]: the result then stays within its two inputs, no clip."""
    return tf.clip_by_value(tf.cast(factor, tf.float32), 0.0, 1.0)


def identity(image):
    return tf.identity(image)


def invert(image):
    return tf.constant(255, tf.uint8) - image


def _uint8_scalar(value):
    return tf.cast(tf.clip_by_value(tf.cast(value, tf.int32), 0, 255), tf.uint8)


def solarize(image, threshold):
    """Inverts pixels >= threshold; the threshold saturates to uint8 (256 behaves like 255).

    `255 - x == x ^ 255` for uint8, so the select is an XOR with a 0/255 mask.
    """
    return tf.bitwise.bitwise_xor(image, _mask(image >= _uint8_scalar(threshold)))


def _mask(condition):
    """bool -> uint8 0/255 as `~(u8(condition) - 1)` (wrapping): uint8 multiplies do not
    vectorise on x86 (there is no 8-bit SIMD multiply), subtraction and bitwise ops do. (`0 - x`
    would be rewritten to Neg by Grappler, which has no uint8 kernel.)"""
    return tf.bitwise.invert(tf.cast(condition, tf.uint8) - tf.constant(1, tf.uint8))


def solarize_add(image, addition, threshold=128):
    """clip(x + addition) for pixels below `threshold` (saturated to uint8, as Solarize's), others
    unchanged. Exact, in uint8: each move is clamped so it cannot wrap.

    The policies only add (addition >= 0): x + min(255 - x, a & below_mask) is a few uint8
    passes; a subtraction takes the symmetric branch.
    """
    addition = tf.cast(addition, tf.int32)
    below = _mask(image < _uint8_scalar(threshold))

    def add():
        move = tf.bitwise.bitwise_and(below, _uint8_scalar(addition))
        return image + tf.minimum(tf.constant(255, tf.uint8) - image, move)

    def subtract():
        return image - tf.minimum(image, tf.bitwise.bitwise_and(below, _uint8_scalar(-addition)))

    return tf.cond(addition >= 0, add, subtract)


def posterize(image, bits):
    """Keeps the top `bits` bits of every value (bits=0 gives black, as PIL and the formula do).

    The mask is computed in int32 on purpose: `tf.bitwise.right_shift` on uint8 clamps shifts of 8
    to 7, which would silently turn bits=0 into bits=1.
    """
    shift = 8 - tf.clip_by_value(tf.cast(bits, tf.int32), 0, 8)
    mask = tf.bitwise.bitwise_and(tf.bitwise.left_shift(255, shift), 255)
    return tf.bitwise.bitwise_and(image, tf.cast(mask, tf.uint8))


def _rows(image, values, *vectors):
    """`values` (shaped like the [H, W, 3] image) as [H, W * 3] rows, and each per-channel [3]
    vector tiled W times, ready to combine.

    Broadcasting a [3] vector over [H, W, 3] is ~3x slower on CPU than a scalar op (the inner
    dimension is too short to vectorise); against a row-length vector (tiling it is a tiny op) the
    broadcast runs over whole rows. Unknown widths keep the plain broadcast.
    """
    width = image.shape[1]
    if width is None:
        return (values,) + vectors
    return (tf.reshape(values, [-1, 3 * width]),) + tuple(tf.tile(v, [width]) for v in vectors)


def _autocontrast_map(image):
    """Per-channel (scale, bias) float32 [3] of AutoContrast: [min, max] -> [0, 255].

    Flat channels (max == min) get the identity map. The nudge makes max land on 255.001, not
    254.99997, so truncation gives 255 as the exact formula does.
    """
    lo = _float(tf.reduce_min(image, axis=[0, 1]))  # uint8 reductions, then cast 3 values
    hi = _float(tf.reduce_max(image, axis=[0, 1]))
    spread = hi > lo
    scale = tf.where(spread, 255.0 / tf.maximum(hi - lo, 1.0), 1.0)
    bias = tf.where(spread, _NUDGE - lo * scale, 0.0)
    return scale, bias


def autocontrast(image):
    """Per channel, maps [min, max] linearly onto [0, 255]; a channel with max == min is kept."""
    scale, bias = _autocontrast_map(image)
    return _channel_affine(image, scale, bias)


def _channel_affine(image, scale, bias):
    """`x * scale + bias` per channel (float32 [3] each), truncated to uint8, no clip."""
    values, scale, bias = _rows(image, _float(image), scale, bias)
    return tf.reshape(_to_uint8(values * scale + bias, clip=False), tf.shape(image))


def autocontrast_blend(image, factor):
    """blend(AutoContrast(x), x, factor in [0, 1] (clamped)): 0 is the full op, 1 the original.

    (1 - f) * (s x + b) + f x = x * ((1 - f) s + f) + (1 - f) b: one affine map, inside [0, 255].
    """
    f = _unit(factor)
    scale, bias = _autocontrast_map(image)
    return _channel_affine(image, (1.0 - f) * scale + f, (1.0 - f) * bias)


def _equalize_lut(image):
    """(flat int32 [H*W*3] index `value + 256 * channel`, int32 [3, 256] PIL equalisation LUT).

    PIL: step = (pixels - count of the channel's largest value) // 255; if step == 0 the channel is
    unchanged, else lut[v] = (step // 2 + sum(hist[:v])) // step, clipped to 255. One bincount over
    the channel-offset values gives all three histograms.
    """
    values, offsets = _rows(image, tf.cast(image, tf.int32), tf.constant([0, 256, 512]))
    index = tf.reshape(values + offsets, [-1])
    hist = tf.reshape(
        tf.math.bincount(index, minlength=768, maxlength=768, dtype=tf.int32), [3, 256])
    top = tf.cast(tf.reduce_max(image, axis=[0, 1]), tf.int32)
    step = (tf.reduce_sum(hist, axis=1) - tf.gather(hist, top, batch_dims=1)) // 255
    safe_step = tf.maximum(step, 1)[:, None]
    lut = (tf.cumsum(hist, axis=1, exclusive=True) + safe_step // 2) // safe_step
    lut = tf.where(step[:, None] > 0, tf.minimum(lut, 255), tf.range(256)[None, :])
    return index, lut


def _apply_lut(image, index, lut):
    """uint8 [3, 256] LUT applied through the flat channel-offset index (gather_nd with [N, 1]
    indices is measured ~2x cheaper than tf.gather for 1-byte elements)."""
    out = tf.gather_nd(tf.reshape(lut, [-1]), index[:, None])
    return tf.reshape(out, tf.shape(image))


def equalize(image):
    """PIL-style per-channel histogram equalisation (exact)."""
    index, lut = _equalize_lut(image)
    return _apply_lut(image, index, tf.cast(lut, tf.uint8))


def equalize_blend(image, factor):
    """blend(Equalize(x), x, factor in [0, 1] (clamped)): 0 is the full op, 1 the original.

    Equalize is a per-channel LUT, so the blend is applied to the 256 LUT entries, not the image:
    blend(lut[v], v, f) is exactly what every pixel of value v gets.
    """
    index, lut = _equalize_lut(image)
    lut = _float(lut)
    blended = lut + _unit(factor) * (tf.range(256, dtype=tf.float32)[None, :] - lut)
    return _apply_lut(image, index, _to_uint8(blended, clip=False))


def brightness(image, factor):
    """Blend with black: factor 0 is black, 1 the original."""
    return _to_uint8(_float(image) * tf.cast(factor, tf.float32), clip=True)


def color(image, factor):
    """Blend with the grayscale image: factor 0 is gray, 1 the original (PIL ImageEnhance.Color).

    out_c = f x_c + (1 - f) * luma(x): one [N, 3] x [3, 3] product with M = f I + (1 - f) w 1^T.
    The luma is not rounded to an integer first (PIL rounds it): within 1 of PIL.
    """
    f = tf.cast(factor, tf.float32)
    matrix = (1.0 - f) * tf.constant([[w] * 3 for w in _LUMA]) + f * tf.eye(3)
    out = tf.matmul(tf.reshape(_float(image), [-1, 3]), matrix)
    return tf.reshape(_to_uint8(out, clip=True), tf.shape(image))


def contrast(image, factor):
    """Blend with a constant image at the rounded mean gray level (PIL's ImageEnhance.Contrast).

    The mean gray is the luma of the channel means (PIL averages rounded lumas: the rounded level
    may differ by one, the output by less than one level).
    """
    pixels = _float(image)
    # Column sums of the [H, W * 3] view first (a reduction over whole rows vectorises; one
    # straight to [3] over [H * W, 3] does not), then per channel.
    column_sums = tf.reduce_sum(_rows(image, pixels)[0], axis=0)
    sums = tf.reduce_sum(tf.reshape(column_sums, [-1, 3]), axis=0)
    mean_gray = tf.reduce_sum(sums * tf.constant(_LUMA)) / tf.cast(tf.size(image) // 3, tf.float32)
    level = tf.floor(mean_gray + 0.5)
    f = tf.cast(factor, tf.float32)
    return _to_uint8(pixels * f + (1.0 - f) * level, clip=True)


def invert_blend(image, factor):
    """blend(Invert(x), x, factor in [0, 1] (clamped)): 0 is the full op, 1 the original.

    (255 - x) + f (x - (255 - x)) = x (2 f - 1) + 255 (1 - f): one affine map, inside [0, 255].
    """
    f = _unit(factor)
    return _to_uint8(_float(image) * (2.0 * f - 1.0) + 255.0 * (1.0 - f), clip=False)
