"""Colour (point-wise and global-statistics) primitive ops on one uint8 [H, W, 3] image.

Each function takes the image and its *explicit* argument (a factor, a threshold, a number of bits),
never a level in [0, 1]; the level-to-argument tables of RandAugment and CTAugment live in
`registry.py`, because the two policies map the same level to different arguments.

Conventions follow the reference specification (section 4.2), which mirrors PIL:
- `blend(a, b, f) = clip_uint8(a + f * (b - a))` in float32, truncated towards zero when cast (as
  both PIL's `Image.blend` and the reference TF code do).
- Grayscale is PIL's ITU-R 601-2 luma in 16-bit fixed point, `(19595 R + 38470 G + 7471 B + 2^15) >> 16`,
  so Color/Contrast agree bit-for-bit with `ImageEnhance` on the degenerate image.

Speed: everything is vectorised over the three channels (no Python loops per channel, no per-channel
`tf.cond`), histograms come from one `tf.math.bincount` over `value + 256 * channel`, and look-up
tables (Equalize) are applied with a single `tf.gather_nd`. Measured on CPU: `tf.where` over a whole
image and broadcasting a [3] vector over [H, W, 3] are each ~10x slower than a same-shape or
scalar elementwise op, so the ops avoid both where an exact alternative exists. These functions run once per image inside `tf.data`,
so a few elementwise passes over 150k values is the budget.
"""

import tensorflow as tf



def blend(image1, image2, factor):
  """`clip_uint8(image1 + factor * (image2 - image1))`; inputs uint8 or float, output uint8."""
  a = tf.cast(image1, tf.float32)
  b = tf.cast(image2, tf.float32)
  out = a + tf.cast(factor, tf.float32) * (b - a)
  return tf.cast(tf.clip_by_value(out, 0.0, 255.0), tf.uint8)


def _planes(image):
  """uint8 [H, W, 3] -> uint8 [3, H*W]: channels on the outer axis, each plane contiguous."""
  return tf.transpose(tf.reshape(image, [-1, 3]))


def _from_planes(planes, like):
  """Inverse of `_planes` for [3, H*W] planes of any dtype, reshaped like `like`."""
  return tf.reshape(tf.transpose(planes), tf.shape(like))


def _luma(planes):
  """PIL 'L' of float32 [3, N] planes, exact integer formula, rounded: float32 [N] integers.

  (19595 R + 38470 G + 7471 B + 2^15) <= 16744448 < 2^24, so every partial sum is an exact float32
  integer and the division by 2^16 is exact: floor() gives PIL's `>> 16` bit for bit, without the
  uint8 -> int32 cast (which costs about as much as the arithmetic).
  """
  weighted = planes[0] * 19595.0 + planes[1] * 38470.0 + planes[2] * 7471.0 + 32768.0
  return tf.floor(weighted * (1.0 / 65536.0))


def grayscale(image):
  """PIL 'L' conversion as uint8 [H, W] (exact integer formula, rounded)."""
  gray = _luma(tf.cast(_planes(image), tf.float32))
  return tf.cast(tf.reshape(gray, tf.shape(image)[:2]), tf.uint8)


def identity(image):
  return tf.identity(image)


def invert(image):
  return tf.constant(255, tf.uint8) - image


def _uint8_scalar(value):
  return tf.cast(tf.clip_by_value(tf.cast(value, tf.int32), 0, 255), tf.uint8)


def solarize(image, threshold):
  """Inverts pixels >= threshold; the threshold saturates to uint8 (256 behaves like 255).

  `255 - x == x ^ 255` for uint8, so the select is an XOR with a 0/255 mask (tf.where on whole
  images is ~10x slower than these uint8 elementwise ops on CPU).
  """
  flip = tf.cast(image >= _uint8_scalar(threshold), tf.uint8) * tf.constant(255, tf.uint8)
  return tf.bitwise.bitwise_xor(image, flip)


def solarize_add(image, addition, threshold=128):
  """clip(x + addition) for pixels below `threshold`, others unchanged; all in uint8 arithmetic."""
  addition = tf.cast(addition, tf.int32)
  up = tf.minimum(tf.constant(255, tf.uint8) - image, _uint8_scalar(addition))
  down = tf.minimum(image, _uint8_scalar(-addition))
  below = tf.cast(tf.cast(image, tf.int32) < tf.cast(threshold, tf.int32), tf.uint8)
  return image + below * up - below * down


def posterize(image, bits):
  """Keeps the top `bits` bits of every value (bits=0 gives black, as PIL and the formula do).

  The mask is computed in int32 on purpose: `tf.bitwise.right_shift` on uint8 clamps shifts of 8
  to 7, which would silently turn bits=0 into bits=1.
  """
  shift = 8 - tf.clip_by_value(tf.cast(bits, tf.int32), 0, 8)
  mask = tf.bitwise.bitwise_and(tf.bitwise.left_shift(255, shift), 255)
  return tf.bitwise.bitwise_and(image, tf.cast(mask, tf.uint8))


def autocontrast(image):
  """Per channel, linearly maps [min, max] onto [0, 255]; channels with max == min stay unchanged.

  Computed as `(x - lo) * 255 / (hi - lo)` so that x == hi lands exactly on 255 (the product is an
  exact integer and the division is correctly rounded), then truncated like PIL's `int()`. Works
  plane by plane with scalar arithmetic (see the module docstring on broadcasting costs).
  """
  planes = tf.cast(_planes(image), tf.float32)
  lo = tf.cast(tf.reduce_min(image, axis=[0, 1]), tf.float32)  # uint8 reductions are faster
  hi = tf.cast(tf.reduce_max(image, axis=[0, 1]), tf.float32)
  spread = hi > lo
  lo = tf.where(spread, lo, 0.0)
  span = tf.where(spread, hi - lo, 255.0)
  # x in [lo, hi] so every result is already in [0, 255]: no clip needed.
  out = tf.stack([(planes[c] - lo[c]) * 255.0 / span[c] for c in range(3)])
  return _from_planes(tf.cast(out, tf.uint8), image)


def equalize(image):
  """PIL-style per-channel histogram equalisation.

  step = (pixels - count of the channel's largest value) // 255; if step == 0 the channel is
  unchanged, else lut[v] = (step // 2 + sum(hist[:v])) // step, clipped to 255.

  Layout: channels are moved to the outer axis ([3, H*W], a cheap transpose) so that the flat
  index `value + 256 * channel` is built with scalar adds and a contiguous concat; broadcasting a
  [3] offset over [H, W, 3] costs ~10x more on CPU. One bincount gives all three histograms.
  """
  planes = tf.cast(_planes(image), tf.int32)
  index = tf.concat([planes[0], planes[1] + 256, planes[2] + 512], axis=0)
  hist = tf.reshape(
      tf.math.bincount(index, minlength=768, maxlength=768, dtype=tf.int32), [3, 256])
  top = tf.cast(tf.reduce_max(image, axis=[0, 1]), tf.int32)
  top_count = tf.gather(hist, top, batch_dims=1)
  step = (tf.reduce_sum(hist, axis=1) - top_count) // 255
  safe_step = tf.maximum(step, 1)[:, None]
  lut = (tf.cumsum(hist, axis=1, exclusive=True) + safe_step // 2) // safe_step
  lut = tf.where(step[:, None] > 0, tf.minimum(lut, 255), tf.range(256)[None, :])
  # gather_nd with [N, 1] indices: measured ~2x cheaper than tf.gather for 1-byte elements.
  out = tf.gather_nd(tf.cast(tf.reshape(lut, [-1]), tf.uint8), index[:, None])  # [3 * H * W]
  return _from_planes(tf.reshape(out, [3, -1]), image)


def brightness(image, factor):
  """Blend with black: factor 0 is black, 1 the original."""
  return tf.cast(tf.clip_by_value(tf.cast(image, tf.float32) * factor, 0.0, 255.0), tf.uint8)


def color(image, factor):
  """Blend with the grayscale image: factor 0 is gray, 1 the original (PIL ImageEnhance.Color)."""
  planes = tf.cast(_planes(image), tf.float32)
  gray = _luma(planes)
  factor = tf.cast(factor, tf.float32)
  out = tf.stack([gray + factor * (planes[c] - gray) for c in range(3)])
  return _from_planes(tf.cast(tf.clip_by_value(out, 0.0, 255.0), tf.uint8), image)


def contrast(image, factor):
  """Blend with a constant image at the rounded mean gray level (PIL's ImageEnhance.Contrast)."""
  gray = _luma(tf.cast(_planes(image), tf.float32))
  total = tf.reduce_sum(tf.cast(gray, tf.int64))  # exact for any image size
  mean = tf.cast(total, tf.float64) / tf.cast(tf.size(gray), tf.float64)
  level = tf.cast(tf.floor(mean + 0.5), tf.float32)
  return blend(level, image, factor)


def autocontrast_blend(image, factor):
  """blend(AutoContrast(x), x, factor): 0 is the full op, 1 the original."""
  return blend(autocontrast(image), image, factor)


def equalize_blend(image, factor):
  """blend(Equalize(x), x, factor): 0 is the full op, 1 the original."""
  return blend(equalize(image), image, factor)


def invert_blend(image, factor):
  """blend(Invert(x), x, factor): 0 is the full op, 1 the original."""
  return blend(invert(image), image, factor)
