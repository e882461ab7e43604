"""Where the images come from: the generated demo data set, or the user's --data-dir.

    luigi --module pipeline DemoData --local-scheduler --image-size 32 --train-per-class 20

A downstream task with a `data_dir` parameter asks `data_source(self, data_dir)` for its
upstream: `DemoData` when data_dir is empty, else `ImageFolder(data_dir)`. Both expose
`out_dir` (the directory holding train/ and val/, or the train-*/validation-* TFRecords) and
`fingerprint`, so downstream code treats them alike.
"""

import hashlib

import luigi

from fixmatch import fs
from pipeline import cache

TFRECORD_PREFIXES = ("train-", "validation-")  # imagenet_to_gcs shard names
IMAGE_SPLIT_DIRS = ("train", "val", "validation")


class DataDirError(ValueError):
    """The --data-dir is missing or not in a layout the pipeline reads."""


class DemoData(cache.CachedTask):
    """The procedural demo data set (stages/demo_data.py) as ROOT/demo_data/<fp>/{train,val}/."""

    stage_name = "demo_data"

    seed = luigi.IntParameter(default=0, description="Generator seed; same seed = same bytes.")
    image_size = luigi.IntParameter(default=64, description="Side of the square images (px).")
    train_per_class = luigi.IntParameter(default=300, description="Training images per class.")
    val_per_class = luigi.IntParameter(default=50, description="Validation images per class.")
    num_classes = luigi.IntParameter(default=10, description="Number of classes (2..10).")

    def external_fingerprint(self):
        # The pictures are drawn by fixmatch.demo_images; its format version changes them.
        from fixmatch import demo_images
        return {"demo_images_format_version": demo_images.FORMAT_VERSION}

    def run_stage(self, tmp_dir):
        from stages import demo_data
        return demo_data.run(out_dir=tmp_dir, seed=self.seed, image_size=self.image_size,
                             train_per_class=self.train_per_class,
                             val_per_class=self.val_per_class, num_classes=self.num_classes)


class ImageFolder(cache.CachedTask):
    """An existing data set (local or gs://): an external input, never written by us.

    Its fingerprint is a sha256 over the sorted (relative path, size, mtime) of every input
    file, so adding, removing, resizing or rewriting any image reruns everything downstream.
    The data_dir string itself is not fingerprinted: moving the same files keeps the cache.
    """

    stage_name = "image_folder"

    data_dir = luigi.Parameter(description="Image folders DIR/train/<class>/<image> (and val/ "
                                           "or validation/), or imagenet_to_gcs TFRecords "
                                           "DIR/train-*; local path or gs:// URL.")

    def significant_params(self):
        return {}

    def external_fingerprint(self):
        return listing_fingerprint(self.data_dir)

    @property
    def out_dir(self):
        return fs.normalize(self.data_dir)

    def output(self):
        return _ExternalData(self.data_dir)

    def complete(self):
        return self.output().exists()

    def run(self):
        # Only reached when complete() is False: say exactly what is wrong with data_dir.
        detect_layout(self.data_dir)
        raise DataDirError(f"data_dir {self.data_dir!r} is not readable input")


def data_source(task, data_dir="", **demo_params):
    """The upstream data task of `task` (same root): DemoData(**demo_params) when data_dir is
    empty, else ImageFolder(data_dir), checked now so a bad path fails before any work.
    demo_params (seed, image_size, ...) only shape the demo data; with a data_dir they are
    unused, so callers can always pass their demo settings."""
    if data_dir:
        detect_layout(data_dir)
        return task.upstream(ImageFolder, data_dir=data_dir)
    return task.upstream(DemoData, **demo_params)


class _ExternalData(luigi.Target):
    def __init__(self, data_dir):
        self.path = fs.normalize(data_dir)

    def exists(self):
        try:
            detect_layout(self.path)
        except DataDirError:
            return False
        return True


def detect_layout(data_dir) -> str:
    """"image_folder" or "tfrecord"; raises DataDirError naming the path and the fix."""
    path = fs.normalize(data_dir)
    if not data_dir or not fs.isdir(path):
        raise DataDirError(f"data_dir {str(data_dir)!r} does not exist or is not a directory; "
                           "give a directory with train/<class>/<image> folders or "
                           "imagenet_to_gcs train-* TFRecords, or leave it empty for demo data")
    names = fs.listdir(path)
    if "train" in names and fs.isdir(fs.join(path, "train")):
        return "image_folder"
    if any(n.startswith("train-") for n in names):
        return "tfrecord"
    shown = ", ".join(sorted(names)[:10]) or "nothing"
    raise DataDirError(f"data_dir {str(data_dir)!r} has no train/ folder and no train-* "
                       f"TFRecords (it contains: {shown}); expected DIR/train/<class>/<image> "
                       "(+ val/ or validation/) or DIR/train-00000-of-01024 ...")


def listing_fingerprint(data_dir) -> dict:
    """{layout, files, bytes, sha256} over the sorted (relative path, size, mtime_ns) list of
    the input files: train/val/validation trees, or the top-level train-*/validation-* files.

    Listed by `fs.listing_lines`: in bulk on object stores (size and update time come with the
    listing, about one request per 1,000 objects), by directory descriptor on local disks."""
    layout = detect_layout(data_dir)
    path = fs.normalize(data_dir)
    if layout == "tfrecord":
        lines = [line for line in fs.listing_lines(path, recursive=False)
                 if line.startswith(TFRECORD_PREFIXES)]
    else:
        present = set(fs.listdir(path))  # not isdir(path/val): object stores match prefixes
        lines = []
        for split in IMAGE_SPLIT_DIRS:
            if split in present:
                lines += fs.listing_lines(fs.join(path, split), prefix=split + "/")
    text = "".join(lines)
    return {"layout": layout, "files": len(lines),
            "bytes": sum(int(line.split("\0", 2)[1]) for line in lines),
            "sha256": hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()}
