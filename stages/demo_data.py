"""Stage `demo_data`: write the procedural demo data set as an ImageNet-style image folder.

    python -m stages.demo_data --out /tmp/demo                  # 10 classes, 3,000 + 500 images
    python -m stages.demo_data --out /tmp/tiny --image_size 32 --train_per_class 20 \\
        --val_per_class 5 --num_classes 3

Layout (design section 2): OUT/train/<class>/<class>_<n>.JPEG and OUT/val/<class>/<class>_<n>.JPEG,
n = 0 .. count-1. Same arguments = byte-identical files. This stage only validates, lays out
files and reports progress; the pictures come from `fixmatch.demo_images`. It writes no
manifest: the cached pipeline task that calls `run()` writes one last, beside these files.
"""

import numbers
import os
import shutil
import sys
import time

from absl import flags

from fixmatch import demo_images
from stages import cli

PROGRESS_EVERY = 500  # images between progress lines on stderr


class DemoDataError(cli.StageError):
    """A bad argument or output directory, reported before any image is written."""


def run(*, out_dir, seed=0, image_size=64, train_per_class=300, val_per_class=50,
        num_classes=10) -> dict:
    """Generate the data set into `out_dir` (absent or empty) and return a JSON-able summary.

    The summary is {seed, image_size, classes, counts: {split: {class: n}}, totals,
    format_version, jpeg_quality}. On any failure the files written so far are removed, so
    a half-written directory never looks like a finished data set.
    """
    _check_int("seed", seed, minimum=0)
    _check_int("image_size", image_size, minimum=demo_images.MIN_IMAGE_SIZE)
    _check_int("train_per_class", train_per_class, minimum=1)
    _check_int("val_per_class", val_per_class, minimum=1)
    _check_int("num_classes", num_classes, minimum=2, maximum=len(demo_images.CLASSES))
    out_dir = os.fspath(out_dir)
    cli.check_new_dir(out_dir)

    classes = list(demo_images.CLASSES[:num_classes])
    per_split = {"train": int(train_per_class), "val": int(val_per_class)}
    total = num_classes * sum(per_split.values())
    created = not os.path.exists(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    start, done = time.monotonic(), 0
    try:
        for split, count in per_split.items():
            for class_index, name in enumerate(classes):
                class_dir = os.path.join(out_dir, split, name)
                os.makedirs(class_dir)
                for n in range(count):
                    data = demo_images.make_jpeg(seed=seed, split=split, class_index=class_index,
                                                 index=n, image_size=image_size)
                    with open(os.path.join(class_dir, f"{name}_{n}.JPEG"), "wb") as f:
                        f.write(data)
                    done += 1
                    if done % PROGRESS_EVERY == 0 or done == total:
                        cli.progress(PROGRAM.name, f"{done}/{total} images, "
                                     f"{time.monotonic() - start:.1f} s")
    except BaseException:
        for split in per_split:
            shutil.rmtree(os.path.join(out_dir, split), ignore_errors=True)
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise

    return {
        "seed": int(seed),
        "image_size": int(image_size),
        "classes": classes,
        "counts": {split: {name: count for name in classes} for split, count in per_split.items()},
        "totals": {split: count * num_classes for split, count in per_split.items()},
        "format_version": demo_images.FORMAT_VERSION,
        "jpeg_quality": demo_images.JPEG_QUALITY,
    }


def _check_int(name, value, *, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DemoDataError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        hint = ""
        if name == "num_classes":
            hint = f" (the defined classes are {', '.join(demo_images.CLASSES)})"
        raise DemoDataError(f"{name} must be {bound}, got {value!r}{hint}")


PROGRAM = cli.Program("demo_data", __doc__, required=("out",))
flags.DEFINE_string("out", None, "Output directory (must be absent or empty). Receives "
                    "train/<class>/<class>_<n>.JPEG and val/<class>/<class>_<n>.JPEG.",
                    flag_values=PROGRAM.flags)
flags.DEFINE_integer("seed", 0, "Seed (>= 0). Same seed and sizes = byte-identical files.",
                     flag_values=PROGRAM.flags)
flags.DEFINE_integer("image_size", 64, f"Side of the square RGB images in pixels "
                     f"(>= {demo_images.MIN_IMAGE_SIZE}).", flag_values=PROGRAM.flags)
flags.DEFINE_integer("train_per_class", 300, "Training images per class.",
                     flag_values=PROGRAM.flags)
flags.DEFINE_integer("val_per_class", 50, "Validation images per class.",
                     flag_values=PROGRAM.flags)
flags.DEFINE_integer("num_classes", 10, f"Number of classes, 2..{len(demo_images.CLASSES)}; "
                     f"the first of: {', '.join(demo_images.CLASSES)}.", flag_values=PROGRAM.flags)


def main(argv=None):
    def body(f, _):
        return run(out_dir=f.out, seed=f.seed, image_size=f.image_size,
                   train_per_class=f.train_per_class, val_per_class=f.val_per_class,
                   num_classes=f.num_classes)

    return PROGRAM.main(body, argv)


if __name__ == "__main__":
    sys.exit(main())
