"""The one op registry: primitive ops by name, plus the two policies' level-to-argument tables.

Design. RandAugment and CTAugment apply the same primitive operations but map a level in [0, 1]
to the operation's argument differently (spec sections 4.3 and 4.4; e.g. Rotate is 30 * level
degrees with a random sign in RandAugment but (2 level - 1) * 45 in CTAugment). So there are
three layers, all in this module:

  REGISTRY[name]           primitive with explicit arguments: `fn(image, *args) -> image`
                           (e.g. `REGISTRY["Rotate"](image, degrees)`).
  RANDAUGMENT_OPS          ordered ((name, level_to_args), ...) -- the 16 ops of the RandAugment
                           pool in the spec's order.
  CTA_OPS                  ordered ((name, level_to_args), ...) -- the 19 CTAugment ops in the
                           spec's index order (index 0 AutoContrastBlend ... 18 TranslateY);
                           these indices are what probes record and what `rates[op, bin]` uses.

`level_to_args(level) -> tuple of args` takes a float32 scalar tensor. `randaugment_op(name)` and
`cta_op(name)` bind a table entry to its primitive, giving the uniform op signature every caller
uses: `op(image: uint8 [H, W, 3], level: float32 scalar) -> uint8 [H, W, 3]`, pure TF and
graph-compatible. `apply_indexed(table, index, image, level)` runs the op chosen by an int32 tensor
with `tf.switch_case`, so inside tf.data only the selected branch executes (see `_branch_ops`).

Random signs (RandAugment's Rotate/Shear/Translate) are drawn inside `level_to_args` with the
stateful `tf.random.uniform`, i.e. only when that op is actually selected. `check_image` is the
shared trace-time guard of the policies (one uint8 RGB image, not a batch, not floats).
"""

import functools

import tensorflow as tf

from fixmatch.augment import ops_color as color
from fixmatch.augment import ops_filter as filt
from fixmatch.augment import ops_geometric as geo

REGISTRY = {
    "Identity": color.identity,
    "AutoContrast": color.autocontrast,
    "Equalize": color.equalize,
    "Invert": color.invert,
    "Solarize": color.solarize,
    "SolarizeAdd": color.solarize_add,
    "Posterize": color.posterize,
    "Color": color.color,
    "Contrast": color.contrast,
    "Brightness": color.brightness,
    "Sharpness": filt.sharpness,
    "Rotate": geo.rotate,
    "ShearX": geo.shear_x,
    "ShearY": geo.shear_y,
    "TranslateX": geo.translate_x,
    "TranslateY": geo.translate_y,
    "AutoContrastBlend": color.autocontrast_blend,
    "EqualizeBlend": color.equalize_blend,
    "InvertBlend": color.invert_blend,
    "Blur": filt.blur,
    "Smooth": filt.smooth,
    "Rescale": geo.rescale,
}


# ---------------------------------------------------------------------------------------------
# Level -> argument helpers (level is a float32 scalar tensor).

def _no_args(level):
    del level
    return ()


def _itself(level):
    return (level,)


def _scaled(scale, offset=0.0):
    return lambda level: (offset + scale * level,)


def _int_of(scale, offset=0):
    """`offset + int(scale * level)` (truncation; levels are non-negative)."""
    return lambda level: (offset + tf.cast(scale * level, tf.int32),)


def _posterize_bits(scale):
    """RandAugment's `int(scale * level)` bits, but at least 1.

    The spec's formula gives 0 bits (a black image, as Pillow does) for the three lowest of the
    eleven levels. The reference computed the shift `8 - bits` on uint8 and TensorFlow clamps a
    shift of 8 to 7, so its RandAugment really gave 1-bit images there, and its published
    accuracy was trained without black strong views: this table follows that effective
    behaviour. The Posterize primitive itself keeps the exact formula (0 bits = black).
    """
    return lambda level: (tf.maximum(1, tf.cast(scale * level, tf.int32)),)


def _symmetric(scale):
    """CTAugment's `(2 level - 1) * scale`, evaluated as `level * 2 scale - scale`.

    Why this order: when the last operation is the multiplication by a constant, Grappler's constant
    push-down merges it with the op's own constant factors inside `tf.function` (e.g. Rotate's
    degrees-to-radians, Shear's `y * shear` with a constant `y`), while eager mode rounds each
    product separately; the result then differed on .5 ties (up to 108 pixels of a 64x64 ShearX).
    A subtraction on top leaves nothing to merge.
    """
    return lambda level: (level * (2.0 * scale) - scale,)


def _random_sign(scale):
    """RandAugment's `scale * level`, negated with probability 0.5."""
    def args(level):
        flip = tf.random.uniform([]) < 0.5
        value = scale * level
        return (tf.where(flip, -value, value),)
    return args


# ---------------------------------------------------------------------------------------------
# Policy tables (spec 4.3 and 4.4). Order matters: it is the op index.

RANDAUGMENT_OPS = (
    ("AutoContrast", _no_args),
    ("Equalize", _no_args),
    ("Invert", _no_args),
    ("Rotate", _random_sign(30.0)),
    ("Posterize", _posterize_bits(4.0)),
    ("Solarize", _int_of(256.0)),
    ("Color", _scaled(1.8, 0.1)),
    ("Contrast", _scaled(1.8, 0.1)),
    ("Brightness", _scaled(1.8, 0.1)),
    ("Sharpness", _scaled(1.8, 0.1)),
    ("ShearX", _random_sign(0.3)),
    ("ShearY", _random_sign(0.3)),
    ("TranslateX", _random_sign(100.0)),
    ("TranslateY", _random_sign(100.0)),
    ("SolarizeAdd", _int_of(110.0)),
    ("Identity", _no_args),
)

CTA_OPS = (
    ("AutoContrastBlend", _itself),
    ("Blur", _itself),
    ("Brightness", _scaled(1.9, 0.1)),
    ("Color", _scaled(1.9, 0.1)),
    ("Contrast", _scaled(1.9, 0.1)),
    ("EqualizeBlend", _itself),
    ("InvertBlend", _itself),
    ("Identity", _no_args),
    ("Posterize", _int_of(7.999, offset=1)),
    ("Rescale", _itself),
    ("Rotate", _symmetric(45.0)),
    ("Sharpness", _scaled(1.9, 0.1)),
    ("ShearX", _symmetric(0.3)),
    ("ShearY", _symmetric(0.3)),
    ("Smooth", _itself),
    ("Solarize", _int_of(256.0)),
    ("SolarizeAdd", _int_of(110.0)),
    ("TranslateX", _symmetric(100.0)),
    ("TranslateY", _symmetric(100.0)),
)

RANDAUGMENT_NAMES = tuple(name for name, _ in RANDAUGMENT_OPS)
CTA_NAMES = tuple(name for name, _ in CTA_OPS)
RANDAUGMENT_IDENTITY = RANDAUGMENT_NAMES.index("Identity")
CTA_IDENTITY = CTA_NAMES.index("Identity")


def _bind(table, name, policy):
    entries = dict(table)
    if name not in entries:
        raise KeyError(f"{policy} has no op {name!r}; known ops: {sorted(entries)}")
    primitive, level_to_args = REGISTRY[name], entries[name]

    def op(image, level):
        level = tf.convert_to_tensor(level, tf.float32)
        return primitive(image, *level_to_args(level))

    op.__name__ = f"{policy}_{name}"
    return op


def randaugment_op(name):
    """`op(image, level)` with RandAugment's level-to-argument mapping."""
    return _bind(RANDAUGMENT_OPS, name, "randaugment")


def cta_op(name):
    """`op(image, level)` with CTAugment's level-to-argument mapping."""
    return _bind(CTA_OPS, name, "cta")


def level_ops(table):
    """The table's ops as a list of `op(image, level)` in index order."""
    policy = "cta" if table is CTA_OPS else "randaugment"
    return [_bind(table, name, policy) for name, _ in table]


def check_image(image):
    """Raises TypeError unless `image` is one uint8 [H, W, 3] image (checked at trace time)."""
    bad_rank = image.shape.rank is not None and image.shape.rank != 3
    bad_channels = not bad_rank and image.shape.rank == 3 and image.shape[-1] not in (None, 3)
    if image.dtype != tf.uint8 or bad_rank or bad_channels:
        raise TypeError(f"augmentation expects one uint8 image [H, W, 3], got dtype "
                        f"{image.dtype.name} and shape {image.shape}; apply it per image "
                        f"(inside Dataset.map) before the float conversion")


@functools.cache
def _branch_ops(table):
    """The table's ops as switch branches: non-inlined function calls, except Identity.

    Why calls: `tf.switch_case` inside tf.data is lowered to Switch/Merge, and the executor then
    walks every (dead) node of every *untaken* branch for each image: the ops have ~600-730 nodes
    per table, ~0.07 ms per image and layer. A call is one node, so only the taken op costs
    anything (~0.07 ms for the call itself, measured in the pipeline). Identity, the branch of
    every skipped layer, stays inline. Built once per table (each entry is a `tf.function`,
    traced per image shape).
    """
    return tuple(
        op if name == "Identity" else tf.function(
            op, autograph=False, experimental_attributes={"_noinline": True})
        for (name, _), op in zip(table, level_ops(table)))


def apply_indexed(table, index, image, level):
    """Applies `table[index]` (int32 scalar tensor) at `level`; only that branch runs.

    The result keeps the input's static shape, so chains of ops stay shape-inferable in tf.data.
    The branches are non-inlined calls (`_branch_ops`): the same pixels as the inline ops
    (tested), faster in the RandAugment/CTAugment pipelines (docs/performance.md) and no different
    in accuracy (the A/B in docs/results.md).
    """
    level = tf.convert_to_tensor(level, tf.float32)
    branches = [(lambda op=op: op(image, level)) for op in _branch_ops(table)]
    out = tf.switch_case(tf.cast(index, tf.int32), branches)
    return tf.ensure_shape(out, image.shape)
