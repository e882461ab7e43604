"""Geometric primitive ops (Rotate, ShearX/Y, TranslateX/Y, Rescale) on one uint8 [H, W, 3] image.

Definition (spec section 4.2): the reference warps with `ImageProjectiveTransformV3` (core TF; no
tensorflow-addons), nearest-neighbour sampling; a transform maps an *output* pixel (x, y) to the
*input* location (a0 x + a1 y + a2, b0 x + b1 y + b2) (affine: the projective row is 0), rounded
half away from zero; pixels whose source lies outside the image become gray (128, 128, 128).
`warp` runs that kernel literally and is what the tests hold the fast paths to.

Gray fill. The reference appends a constant-1 channel, warps with zero fill, and paints gray
wherever that channel became 0. With nearest sampling the extra channel is 0 exactly when the
rounded source location lies outside the image, so warping with `fill_value=128` is the same
result without the extra channel (tests check it against the trick computed literally).

Speed. The kernel computes the source coordinate of every output *element* (three per pixel)
with a division, which costs ~0.4-0.6 ms per 224x224 image on one core. Rotate and Shear here
compute the coordinates once per pixel with a few vectorised float ops and copy whole pixels
with one gather from the image padded by a one-pixel gray ring (coordinates are clipped into
that ring, so "outside" needs no mask): 25-45% cheaper per op inside the input pipeline. The
float evaluation order differs from the kernel's, so a coordinate within rounding of a .5 tie
may round the other way (tests allow 0.2% of pixels for generic arguments, a little more for
tie-prone ones such as 45 degrees); eager, tf.function and tf.data results are identical (see
`registry._symmetric` for the one graph rewrite that had to be avoided). Translations copy rows
or column runs, exactly the kernel's result.
"""

import math

import tensorflow as tf

GRAY = 128.0


def warp(image, transform, *, fill_value=GRAY):
    """The reference warp of a [H, W, C] image: nearest sampling, constant `fill_value` outside."""
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=tf.cast(transform, tf.float32)[None],
        output_shape=tf.shape(image)[:2],
        fill_value=fill_value,
        interpolation="NEAREST",
        fill_mode="CONSTANT")
    return out[0]


def _size(image):
    """(height, width): Python ints when static (the pipelines' case), else int32 scalars."""
    dims = tf.shape(image)
    return tuple(image.shape[i] if image.shape[i] is not None else dims[i] for i in (0, 1))


def _center(size):
    """(size - 1) / 2 as a Python float for a static size, else a float32 tensor."""
    if isinstance(size, int):
        return (size - 1) / 2.0
    return (tf.cast(size, tf.float32) - 1.0) / 2.0


def _grid(image):
    """Output pixel coordinates as float32 x [W] and y [H, 1] (broadcast to [H, W] together)."""
    height, width = _size(image)
    return tf.range(width, dtype=tf.float32), tf.range(height, dtype=tf.float32)[:, None]


def _sample(image, x_src, y_src):
    """Gather at source coordinates + 1.5 (float, broadcastable to [H, W]), gray outside.

    The image is padded by a one-pixel gray ring, so padded position = round(v) + 1 and the
    shifted coordinate v + 1.5 truncates to it (after clipping into [0, size + 1], the ring, it is
    non-negative, where truncation is floor). Callers add the 1.5 where it is exact or part of a
    scalar (see `rotate`). round(v) = floor(v + 0.5) differs from the kernel's half away from zero
    only at v = -0.5 exactly (a source half a pixel outside the first row or column).
    """
    height, width = _size(image)
    col = tf.cast(tf.clip_by_value(x_src, 0.0, tf.cast(width, tf.float32) + 1.0), tf.int32)
    row = tf.cast(tf.clip_by_value(y_src, 0.0, tf.cast(height, tf.float32) + 1.0), tf.int32)
    padded = tf.pad(image, [[1, 1], [1, 1], [0, 0]], constant_values=int(GRAY))
    return tf.gather(tf.reshape(padded, [-1, tf.shape(image)[2]]), row * (width + 2) + col)


def rotate(image, degrees):
    """Rotates counter-clockwise (as PIL's Image.rotate) by `degrees` about the image centre.

    x_in = cos (x - cx) - sin (y - cy) + cx ; y_in = sin (x - cx) + cos (y - cy) + cy, with the
    + 1.5 of `_sample` folded into the constant part.
    """
    height, width = _size(image)
    radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    cos, sin = tf.cos(radians), tf.sin(radians)
    cx, cy = _center(width), _center(height)  # Python floats for static shapes: fewer graph nodes
    # Each sum of inexact terms is one kernel call, so no graph rewrite can re-associate it
    # (Grappler does so to chained adds inside tf.data functions, not in eager mode, and a tie
    # would flip):
    # the offsets (+ 1.5) as one [2, 3] x [3] product, the column terms as one [W, 2] x [2].
    offsets = tf.linalg.matvec(tf.convert_to_tensor([[cx + 1.5, -cx, cy], [cy + 1.5, -cy, -cx]]),
                               tf.stack([1.0, cos, sin]))
    x, y = _grid(image)
    columns = tf.stack([x, tf.ones_like(x)], axis=1)
    x_src = tf.linalg.matvec(columns, tf.stack([cos, offsets[0]])) - y * sin
    y_src = tf.linalg.matvec(columns, tf.stack([sin, offsets[1]])) + y * cos
    return _sample(image, x_src, y_src)


def shear_x(image, shear):
    """x_in = x + shear * y."""
    x, y = _grid(image)
    return _sample(image, (x + 1.5) + y * tf.cast(shear, tf.float32), y + 1.5)


def shear_y(image, shear):
    """y_in = shear * x + y."""
    x, y = _grid(image)
    return _sample(image, x + 1.5, (y + 1.5) + x * tf.cast(shear, tf.float32))


# Translations. For the transform [1, 0, p, 0, 1, 0, 0, 0] the kernel computes
# x_in = (1 x + 0 y + p) / 1 = fl(x + p) (the products and the division are exact, so no FMA
# contraction can change it) and y_in = y; then `round` (half away from zero) and gray outside.
# x_in depends on the column only, so the whole warp is a column (or row) selection:
# `_source_index` reproduces the kernel's index per column in float32, and copying those columns
# (rows), gray where the index is outside, is bit-identical to the kernel.


def _source_index(size, shift):
    """The warp kernel's source index of each output position 0..size-1 for x_in = fl(x + shift).

    int32 [size]; `size` (one past the end, the gray pad) where the kernel reads outside.
    std::round(v) lies in [0, size - 1] exactly when -0.5 < v < size - 0.5; inside that range
    it is floor(v) + (frac(v) >= 0.5) (frac is exact in float32).
    """
    v = tf.range(size, dtype=tf.float32) + tf.cast(shift, tf.float32)
    floor = tf.floor(v)
    index = tf.cast(floor, tf.int32) + tf.cast(v - floor >= 0.5, tf.int32)
    inside = (v > -0.5) & (v < tf.cast(size, tf.float32) - 0.5)
    return tf.where(inside, index, size)


def _gray_block(image, axis, length):
    """Gray fill shaped like `image` but `length` long along `axis`."""
    shape = tf.tensor_scatter_nd_update(tf.shape(image), [[axis]], [length])
    return tf.fill(shape, tf.cast(GRAY, image.dtype))


def _shift(image, pixels, axis):
    """Content moved by -pixels along `axis` (0 rows, 1 columns), gray where it left the frame.

    The kernel's source positions form one contiguous run [first, first + count) for every shift
    in practice, so the result is gray | image[run] | gray: one copy of the image, ~2x cheaper
    than padding it with gray and gathering. A gather from the padded image covers the general
    case (float rounding that repeats or skips a position), so the result is exact for any shift.
    """
    size = _size(image)[axis]
    source = _source_index(size, pixels)
    inside = source < size
    count = tf.reduce_sum(tf.cast(inside, tf.int32))
    first_out = tf.argmax(tf.cast(inside, tf.int32), output_type=tf.int32)  # 0 if none inside
    first_in = tf.minimum(source[first_out], size)
    contiguous = tf.reduce_all(
        tf.logical_or(tf.logical_not(inside), source - tf.range(size) == first_in - first_out))

    def run():
        end = first_in + count
        kept = image[first_in:end] if axis == 0 else image[:, first_in:end]
        return tf.concat([_gray_block(image, axis, first_out), kept,
                          _gray_block(image, axis, size - first_out - count)], axis=axis)

    return tf.cond(contiguous, run, lambda: _gather_positions(image, source, axis))


def _gather_positions(image, source, axis):
    """Rows/columns `source` (int32, `size` = gray) of the image: the general path of `_shift`."""
    pad = [[0, 0], [0, 0], [0, 0]]
    pad[axis][1] = 1
    padded = tf.pad(image, pad, constant_values=tf.cast(GRAY, image.dtype))
    return tf.gather(padded, source, axis=axis)


def translate_x(image, pixels):
    """Shifts the content by -pixels along x (x_in = x + pixels); bit-identical to the warp."""
    return _shift(image, pixels, 1)


def translate_y(image, pixels):
    """Shifts the content by -pixels along y (y_in = y + pixels); bit-identical to the warp."""
    return _shift(image, pixels, 0)


def rescale(image, level):
    """Drops the first floor(0.25 level H) rows and floor(0.25 level W) columns; bicubic back
    to H x W.

    The resize output is saturated to uint8 (clip, then truncate), as the reference.
    """
    height, width = _size(image)
    scale = 0.25 * tf.cast(level, tf.float32)
    top = tf.cast(scale * tf.cast(height, tf.float32), tf.int32)
    left = tf.cast(scale * tf.cast(width, tf.float32), tf.int32)
    resized = tf.image.resize(image[top:, left:], [height, width], method="bicubic")
    return tf.saturate_cast(resized, tf.uint8)
