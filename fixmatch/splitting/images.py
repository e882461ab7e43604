"""Decode every image once: keep valid RGB JPEGs as they are, convert the rest.

The training input pipeline decodes `image/encoded` as a 3-channel JPEG, so
anything else that slipped into the data (CMYK or grayscale JPEGs, PNG data,
PNG bytes behind a .JPEG name as in ImageNet) is re-encoded here, and anything
that does not decode completely (empty, truncated, not an image) is rejected
with a reason instead of failing a training job hours later.
"""

import dataclasses
import io
import os
from typing import Optional

import numpy as np
from PIL import Image, UnidentifiedImageError

#: Quality used when an image has to be re-encoded (high: converted images are
#: rare and should not lose more detail than necessary).
JPEG_QUALITY = 95
JPEG_EXTENSIONS = (".jpeg", ".jpg")
IMAGE_EXTENSIONS = JPEG_EXTENSIONS + (".png",)

_MODE_NAMES = {"L": "grayscale", "CMYK": "CMYK", "RGBA": "RGBA", "P": "palette",
               "LA": "grayscale+alpha", "I;16": "16-bit grayscale", "YCbCr": "YCbCr"}


#: Pillow's modes of 16-bit (and 32-bit integer) single-channel images, e.g. 16-bit PNGs.
#: Its convert("RGB") clips them to 255 (a white image), so they are scaled down instead.
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _to_8bit(image):
    """A 16-bit grayscale image as 8-bit "L": the top 8 bits of each value."""
    values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
    return Image.fromarray((values >> 8).astype(np.uint8), mode="L")


@dataclasses.dataclass(frozen=True)
class Decoded:
    """A valid image ready to be written: RGB JPEG bytes and their size."""

    encoded: bytes
    height: int
    width: int
    converted: Optional[str] = None  # reason if re-encoded, None if kept as is


@dataclasses.dataclass(frozen=True)
class Rejected:
    reason: str       # a category, counted in the manifest
    detail: str = ""  # the decoder's message, listed in rejected.jsonl


def is_image_name(name: str) -> bool:
    """True for the extensions the folder reader accepts (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _conversion_reason(fmt: str, mode: str, filename: str) -> Optional[str]:
    if fmt != "JPEG":
        ext = os.path.splitext(filename)[1]
        depth = " (16-bit)" if mode in _HIGH_DEPTH_MODES else ""
        if ext.lower() in JPEG_EXTENSIONS:
            return f"{fmt}{depth} data in a {ext} file"
        return f"{fmt}{depth} file"
    if mode != "RGB":
        return f"{_MODE_NAMES.get(mode, mode)} JPEG"
    return None


def decode_image(data: bytes, filename: str = "") -> "Decoded | Rejected":
    """Fully decode `data` once; return Decoded (kept or converted) or Rejected."""
    if not data:
        return Rejected("empty file")
    try:
        image = Image.open(io.BytesIO(data))
        fmt = image.format or "unknown"
        image.load()  # the full decode: raises on truncated or corrupt data
    except UnidentifiedImageError:
        return Rejected("not an image (no known image format)")
    except Image.DecompressionBombError as e:
        return Rejected("image too large", str(e))
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        return Rejected("truncated or corrupt image", str(e))
    width, height = image.size
    if width == 0 or height == 0:
        return Rejected("image has zero size", f"{width}x{height}")
    reason = _conversion_reason(fmt, image.mode, filename)
    if reason is None:
        return Decoded(encoded=data, height=height, width=width)
    if image.mode in _HIGH_DEPTH_MODES:
        image = _to_8bit(image)
    elif image.mode in ("P", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
    rgb = image.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return Decoded(encoded=buf.getvalue(), height=height, width=width, converted=reason)
