"""Procedural images for the demo data set: ten classes that need real visual features.

Why procedural: the pipeline must run end to end on a fresh machine with no download, and
the result must still be a classification problem on which labels matter. Each image is
one object (a shape, or a patch of texture) at a random position, scale, rotation, aspect
and colour, over a random colour gradient with distractor lines and specks, some lines on
top of the object, and pixel noise. Colours are drawn independently of the class, so
neither mean colour nor any fixed pixel template identifies a class (a linear classifier on
raw pixels does poorly), while local edge and texture features do (a small CNN does well).

Why per-image seeds: `image_rng(seed=, split=, class_index=, index=)` derives a private
generator for every image, so an image does not depend on generation order, on how many
other images are made, or on the number of classes; same arguments = same pixels. Encoding
uses a fixed JPEG quality and writes no metadata, so same pixels = same bytes (for a given
Pillow/libjpeg build).
"""

import functools
import io

import numpy as np
from PIL import Image, ImageDraw

#: Bump when a change alters any generated pixel (callers put it in cache fingerprints).
FORMAT_VERSION = 2

#: Class names in label order. A data set of k classes uses the first k.
CLASSES = ("circle", "ring", "square", "triangle", "star",
           "cross", "crescent", "stripes", "checker", "dots")
SPLITS = ("train", "val")
JPEG_QUALITY = 90
MIN_IMAGE_SIZE = 16

_SUPERSAMPLE = 2  # draw at 2x and box-filter down: cheap anti-aliasing


def image_rng(*, seed: int, split: str, class_index: int, index: int) -> np.random.Generator:
    """The private generator of one image, a pure function of its identity."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), SPLITS.index(split), int(class_index), int(index)]))


def draw_image(class_name: str, rng: np.random.Generator, *, image_size: int = 64) -> Image.Image:
    """One RGB image of `class_name`, every random choice taken from `rng`."""
    if class_name not in CLASSES:
        raise ValueError(f"unknown demo class {class_name!r}; known: {', '.join(CLASSES)}")
    if int(image_size) < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    w = int(image_size) * _SUPERSAMPLE
    bg0, bg1 = rng.uniform(0, 255, size=(2, 3))
    canvas = _gradient(rng, w, bg0, bg1)
    _draw_clutter(rng, canvas, w, lines=int(rng.integers(1, 5)), specks=int(rng.integers(0, 4)))

    fg = _contrasting_colour(rng, (bg0 + bg1) / 2.0)
    mask = _object_mask(class_name, rng, w)
    canvas = canvas * (1.0 - mask[..., None]) + fg * mask[..., None]
    _draw_clutter(rng, canvas, w, lines=int(rng.integers(0, 2)), specks=0)

    small = canvas.reshape(image_size, _SUPERSAMPLE, image_size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    small += rng.normal(0.0, rng.uniform(2.0, 10.0), size=small.shape)
    return Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8))


def encode_jpeg(image: Image.Image) -> bytes:
    """Baseline JPEG at a fixed quality with no EXIF/ICC/JFIF density extras: reproducible bytes."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=2, optimize=False,
               progressive=False)
    return buf.getvalue()


def make_jpeg(*, seed: int, split: str, class_index: int, index: int, image_size: int = 64) -> bytes:
    """Encoded bytes of image `index` of class `class_index` in `split`."""
    rng = image_rng(seed=seed, split=split, class_index=class_index, index=index)
    return encode_jpeg(draw_image(CLASSES[class_index], rng, image_size=image_size))


# --- drawing helpers --------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _grid(w: int):
    """Pixel-centre coordinates of a w x w canvas (cached: every image of a size shares it)."""
    ys, xs = np.mgrid[0:w, 0:w].astype(np.float64) + 0.5
    return xs, ys


def _gradient(rng, w, c0, c1):
    """A linear colour ramp from c0 to c1 at a random angle: a background with no fixed layout."""
    xs, ys = _grid(w)
    a = rng.uniform(0, 2 * np.pi)
    t = ((xs - w / 2) * np.cos(a) + (ys - w / 2) * np.sin(a)) / w + 0.5
    t = np.clip(t, 0.0, 1.0)[..., None]
    return c0 * (1.0 - t) + c1 * t


def _contrasting_colour(rng, against, min_distance=110.0):
    """A random colour at least `min_distance` (RGB euclidean) from `against`, so the object shows."""
    for _ in range(64):
        c = rng.uniform(0, 255, size=3)
        if np.linalg.norm(c - against) >= min_distance:
            return c
    return np.where(against > 127.5, 0.0, 255.0)


def _draw_clutter(rng, canvas, w, *, lines, specks):
    """Distractors: thin random lines and small blobs, painted into `canvas` in place."""
    layer = Image.new("L", (w, w), 0)
    draw = ImageDraw.Draw(layer)
    colours = []
    for i in range(lines + specks):
        colours.append(rng.uniform(0, 255, size=3))
        if i < lines:
            x0, y0, x1, y1 = rng.uniform(0, w, size=4)
            draw.line([(x0, y0), (x1, y1)], fill=i + 1, width=int(rng.integers(1, 2 * _SUPERSAMPLE + 1)))
        else:
            cx, cy = rng.uniform(0, w, size=2)
            rx, ry = rng.uniform(0.02, 0.06, size=2) * w
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=i + 1)
    ids = np.asarray(layer)
    for i, colour in enumerate(colours):
        canvas[ids == i + 1] = colour


def _object_mask(class_name, rng, w):
    """Float mask in [0, 1] of the one object, at a random pose."""
    r = rng.uniform(0.24, 0.38) * w
    margin = 0.75 * r
    cx, cy = rng.uniform(margin, w - margin, size=2)
    theta = rng.uniform(0, 2 * np.pi)
    aspect = rng.uniform(0.8, 1.0)
    pose = (cx, cy, r, theta, aspect)
    if class_name in _TEXTURES:
        # Texture patches are larger than shapes so that several periods always show.
        region = "circle" if rng.random() < 0.5 else "square"
        inside = _polygon_mask(w, pose, np.asarray(_OUTLINES[region]()) * 1.3)
        return inside * _TEXTURES[class_name](rng, w, pose)
    mask = _polygon_mask(w, pose, _OUTLINES[class_name]())
    for hole in _HOLES.get(class_name, lambda _rng: [])(rng):
        mask = mask * (1.0 - _polygon_mask(w, pose, hole))
    return mask


def _polygon_mask(w, pose, vertices):
    """Rasterize `vertices` (object coordinates, unit radius) at `pose` into a 0/1 mask."""
    cx, cy, r, theta, aspect = pose
    v = np.asarray(vertices, dtype=np.float64) * np.array([1.0, aspect])
    c, s = np.cos(theta), np.sin(theta)
    px = cx + r * (v[:, 0] * c - v[:, 1] * s)
    py = cy + r * (v[:, 0] * s + v[:, 1] * c)
    layer = Image.new("L", (w, w), 0)
    ImageDraw.Draw(layer).polygon(list(zip(px.tolist(), py.tolist())), fill=255)
    return np.asarray(layer, dtype=np.float64) / 255.0


def _local_coords(w, pose):
    """Object coordinates (u, v) of every pixel, in units of the object radius."""
    cx, cy, r, theta, aspect = pose
    xs, ys = _grid(w)
    dx, dy = xs - cx, ys - cy
    c, s = np.cos(theta), np.sin(theta)
    return (dx * c + dy * s) / r, (-dx * s + dy * c) / (r * aspect)


def _regular(n, radius=1.0, phase=0.0, centre=(0.0, 0.0)):
    a = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)], axis=1)


def _star():
    outer = _regular(5, 1.0, -np.pi / 2)
    inner = _regular(5, 0.42, -np.pi / 2 + np.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(-1, 2)


def _cross():
    a, b = 0.3, 1.0
    return [(a, b), (a, a), (b, a), (b, -a), (a, -a), (a, -b),
            (-a, -b), (-a, -a), (-b, -a), (-b, a), (-a, a), (-a, b)]


_OUTLINES = {
    "circle": lambda: _regular(48),
    "ring": lambda: _regular(48),
    "crescent": lambda: _regular(48),
    "square": lambda: _regular(4, 1.15, np.pi / 4),
    "triangle": lambda: _regular(3, 1.2, -np.pi / 2),
    "star": _star,
    "cross": _cross,
}

_HOLES = {
    "ring": lambda rng: [_regular(48, rng.uniform(0.5, 0.7))],
    "crescent": lambda rng: [_regular(48, rng.uniform(0.75, 0.9), centre=(rng.uniform(0.35, 0.55), 0.0))],
}


def _stripes(rng, w, pose):
    u, _ = _local_coords(w, pose)
    period = rng.uniform(0.45, 0.65)
    return (np.floor(u / period + rng.random()) % 2 == 0).astype(np.float64)


def _checker(rng, w, pose):
    u, v = _local_coords(w, pose)
    period = rng.uniform(0.45, 0.65)
    cell = np.floor(u / period + rng.random()) + np.floor(v / period + rng.random())
    return (cell % 2 == 0).astype(np.float64)


def _dots(rng, w, pose):
    u, v = _local_coords(w, pose)
    period = rng.uniform(0.5, 0.7)
    fu = (u / period + rng.random()) % 1.0 - 0.5
    fv = (v / period + rng.random()) % 1.0 - 0.5
    return (fu * fu + fv * fv <= 0.3 ** 2).astype(np.float64)


_TEXTURES = {"stripes": _stripes, "checker": _checker, "dots": _dots}
