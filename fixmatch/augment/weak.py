"""Weak augmentation and evaluation preprocessing, straight from JPEG bytes.

FixMatch's weak view is the Inception-style random crop + bicubic resize +
random horizontal flip of the reference (spec sections 3.1 and 4.1). The crop
window is sampled on the *JPEG header shape* (``tf.image.extract_jpeg_shape``)
and only that window is decoded (``tf.image.decode_and_crop_jpeg``): decoding
dominates the cost of the whole input pipeline, and a crop covers on average
about half of the image, so fusing the two roughly halves the decode work.

The reference falls back to the evaluation center crop when the sampler
returns the whole image (it could not find a valid box in 10 attempts). Here
the fallback is decided on the *window* before decoding, so each image is still
decoded exactly once.

All functions work on one image, are graph-compatible (they run inside
``tf.data`` map functions) and take the output size as a parameter: 224 for
ImageNet, smaller for the demo and the tests.
"""

import tensorflow as tf

#: Parameters of the reference's Inception crop (spec section 3.1).
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
AREA_RANGE = (0.08, 1.0)
MAX_ATTEMPTS = 10
#: Side of the evaluation crop relative to the shorter image side (224 / 256).
CENTER_CROP_FRACTION = 0.875

_WHOLE_IMAGE_BOX = ((0.0, 0.0, 1.0, 1.0),)


def center_crop_window(height, width, *, crop_fraction=CENTER_CROP_FRACTION):
    """Window ``[offset_y, offset_x, side, side]`` (int32) of the eval crop.

    ``side = int(crop_fraction * min(H, W))``; offsets ``((H - side) + 1) // 2``
    and ``((W - side) + 1) // 2`` as in the reference, so an odd margin puts the
    extra pixel above/left of the crop.
    """
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    side = tf.cast(crop_fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
    side = tf.maximum(side, 1)
    offset_y = ((height - side) + 1) // 2
    offset_x = ((width - side) + 1) // 2
    return tf.stack([offset_y, offset_x, side, side])


def random_crop_window(image_shape, *, seed=None, min_area=AREA_RANGE[0]):
    """Window ``[offset_y, offset_x, h, w]`` (int32) of the training crop.

    ``image_shape`` is ``[H, W, C]`` (e.g. from ``extract_jpeg_shape``).
    ``seed``: optional int32/int64 tensor of shape [2]; when given the stateless
    sampler is used, so the same seed always yields the same window (tests,
    reproducible pipelines). When the sampler falls back to the whole image the
    evaluation center-crop window is returned instead (reference behaviour).
    ``min_area``: the smallest crop as a fraction of the image (the reference's
    0.08; larger keeps more of an image whose object is small).
    """
    image_shape = tf.cast(image_shape, tf.int32)
    boxes = tf.constant([_WHOLE_IMAGE_BOX], tf.float32)
    kwargs = dict(bounding_boxes=boxes,
                  min_object_covered=MIN_OBJECT_COVERED,
                  aspect_ratio_range=ASPECT_RATIO_RANGE,
                  area_range=(min_area, AREA_RANGE[1]),
                  max_attempts=MAX_ATTEMPTS,
                  use_image_if_no_bounding_boxes=True)
    if seed is None:
        # A seed drawn by a stateful op, then the stateless sampler: random as before, but
        # governed by the global seed (run.seed) and allowed under op determinism, where the
        # stateful sampler demands a fixed non-zero op seed (one sequence for every run).
        seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape, seed=seed, **kwargs)
    sampled = tf.stack([begin[0], begin[1], size[0], size[1]])
    # ``size`` is [h, w, -1]: compare height and width only.
    fell_back = tf.reduce_all(tf.equal(size[:2], image_shape[:2]))
    return tf.where(fell_back, center_crop_window(image_shape[0], image_shape[1]), sampled)


def _decode_window_resized(encoded, window, image_size, saturate_uint8):
    """Decode only ``window`` of the JPEG and resize it bicubically to a square."""
    crop = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
    resized = tf.image.resize(crop, [image_size, image_size],
                              method=tf.image.ResizeMethod.BICUBIC)
    if saturate_uint8:
        return tf.saturate_cast(resized, tf.uint8)
    return resized  # float32 in about [0, 255]; bicubic may overshoot slightly


def _check_size(image_size):
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")


def weak_from_jpeg(encoded, *, image_size, flip=True, saturate_uint8=True, seed=None,
                   min_area=AREA_RANGE[0]):
    """Weak view of one JPEG: Inception crop, bicubic resize, uint8, random flip.

    Returns uint8 ``[image_size, image_size, 3]`` (float32 0..255 if
    ``saturate_uint8`` is false). ``flip`` is the reference's
    ``use_default_augment``. ``seed``: optional stateless seed, shape [2]; it
    fixes both the crop and the flip.
    """
    _check_size(image_size)
    if seed is not None:
        seed = tf.cast(seed, tf.int64)
        crop_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, num=2))
    else:
        crop_seed = flip_seed = None
    window = random_crop_window(tf.image.extract_jpeg_shape(encoded), seed=crop_seed,
                                min_area=min_area)
    image = _decode_window_resized(encoded, window, image_size, saturate_uint8)
    if flip:
        image = random_flip(image, seed=flip_seed)
    return image


def random_flip(image, *, seed=None):
    """Horizontal flip with probability 0.5 (stateless when ``seed`` is given)."""
    if seed is None:
        coin = tf.random.uniform([])
    else:
        coin = tf.random.stateless_uniform([], seed=seed)
    return tf.cond(coin < 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)


def center_from_jpeg(encoded, *, image_size, saturate_uint8=True,
                     crop_fraction=CENTER_CROP_FRACTION):
    """Evaluation view of one JPEG: center crop, bicubic resize, uint8, no flip."""
    _check_size(image_size)
    shape = tf.image.extract_jpeg_shape(encoded)
    window = center_crop_window(shape[0], shape[1], crop_fraction=crop_fraction)
    return _decode_window_resized(encoded, window, image_size, saturate_uint8)


def center_from_image(encoded, *, image_size, crop_fraction=CENTER_CROP_FRACTION):
    """Evaluation view of any encoded image (JPEG, PNG, GIF's first frame, BMP; grayscale or
    with alpha), uint8 RGB. JPEGs take exactly the path of `center_from_jpeg`, so a served
    model sees the validation pixels bit for bit; other formats are decoded whole, then cropped
    and resized the same way."""
    def other_format():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        shape = tf.shape(image)
        window = center_crop_window(shape[0], shape[1], crop_fraction=crop_fraction)
        crop = tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])
        resized = tf.image.resize(crop, [image_size, image_size],
                                  method=tf.image.ResizeMethod.BICUBIC)
        return tf.saturate_cast(resized, tf.uint8)

    _check_size(image_size)
    return tf.cond(tf.io.is_jpeg(encoded),
                   lambda: center_from_jpeg(encoded, image_size=image_size,
                                            crop_fraction=crop_fraction),
                   other_format)


def scale_and_center(images, dtype=tf.float32):
    """Map 0..255 pixels (uint8 or float) to ``x / 127.5 - 1`` in [-1, 1].

    Works on single images and whole batches; the pipelines call it once per
    batch, after batching uint8 images, which moves 4x fewer bytes through
    ``batch`` than batching float32.
    """
    # Multiplying by the reciprocal is ~25% cheaper than dividing on CPU and differs from
    # x / 127.5 by at most one float32 ulp; 0 and 255 still map exactly to -1 and 1.
    scaled = tf.cast(images, tf.float32) * (1.0 / 127.5) - 1.0
    return scaled if dtype == tf.float32 else tf.cast(scaled, dtype)
