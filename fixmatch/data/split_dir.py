"""The one reader of a split directory (the output of prepare_splits), local or gs://.

A split directory holds `<set>.tfrecord-*` shards, `classes.txt` (line i = label i) and
`split.json`, the split stage's own facts (counts, shards, rejected/converted), written last:
a directory with split.json is complete. Training, evaluation and export read it through
`read_split`, which checks it once and returns a frozen `Split`, so each program fails before
any work with an error that names the directory and what to do.
"""

import contextlib
import dataclasses
import json
import re
from typing import Mapping, Tuple

from fixmatch import fs
from fixmatch.data import schema

SPLIT_FILE = "split.json"
CLASSES_FILE = "classes.txt"


class SplitDirError(ValueError):
    """A directory that is not a complete, usable split."""


@dataclasses.dataclass(frozen=True)
class Split:
    """What a program needs to know about a split directory."""

    path: str
    name: str
    classes: Tuple[str, ...]
    counts: Mapping[str, int]  # images per set: labeled, unlabeled, validation
    shards: Mapping[str, Tuple[str, ...]]  # full paths of each set's shard files
    labeled_class_counts: Tuple[int, ...] = ()  # labeled images of class i (fixmatch.dist_align)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_labeled(self) -> int:
        return self.counts[schema.LABELED]

    @property
    def num_unlabeled(self) -> int:
        return self.counts[schema.UNLABELED]

    @property
    def num_validation(self) -> int:
        return self.counts[schema.VALIDATION]


def shard_files(path: str, set_name: str) -> list:
    """Sorted shard paths of one set; FileNotFoundError naming the pattern if there are none."""
    pattern = schema.shard_glob(path, set_name)
    files = fs.glob(pattern)
    if not files:
        raise FileNotFoundError(f"no TFRecord shards match {pattern!r}; is {path!r} the output "
                                "directory of the prepare_splits stage?")
    return files


def damaged_shards(split: Split) -> list:
    """(path, reason) of every shard with a record that fails its length or CRC check."""
    import tensorflow as tf
    damaged = []
    for paths in split.shards.values():
        for path in paths:
            try:
                tf.data.TFRecordDataset(path).reduce(0, lambda n, _: n + 1).numpy()
            except tf.errors.DataLossError as e:
                # Keep the reason ("corrupted record at 12"), drop the op and device names.
                reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", e.message.splitlines()[0]).strip()
                damaged.append((path, reason))
    return damaged


@contextlib.contextmanager
def naming_damaged_shards(split: Split):
    """TensorFlow's "corrupted record at N" names no file: on that error, read every shard of
    the split once and raise a SplitDirError naming the damaged ones."""
    import tensorflow as tf
    try:
        yield
    except tf.errors.DataLossError:
        damaged = damaged_shards(split)
        if not damaged:
            raise
        raise SplitDirError(
            "damaged TFRecord shard(s): " + "; ".join(f"{p} ({why})" for p, why in damaged)
            + f". Rebuild the split (prepare_splits into a new --out) rather than use "
            f"{split.path} as it is") from None


def read_split(path, *, sets=(schema.LABELED, schema.VALIDATION), flag="--data") -> Split:
    """Checks a split directory and returns it as a `Split`.

    `sets`: the record sets the caller reads; each must have images and shards. `flag` names
    the option the path came from, for the messages.
    """
    if not path:
        raise SplitDirError(f"{flag} is required: the output directory of prepare_splits")
    path = fs.normalize(path)
    if not fs.isdir(path):
        raise SplitDirError(f"{flag} {path!r} is not a directory; pass the output directory "
                            "of the prepare_splits stage")
    missing = [n for n in (CLASSES_FILE, SPLIT_FILE) if not fs.isfile(fs.join(path, n))]
    if missing:
        raise SplitDirError(f"{flag} {path!r} has no {' or '.join(missing)}; is it a finished "
                            f"prepare_splits output ({SPLIT_FILE} is written last)?")
    classes = tuple(line.strip() for line in fs.read_text(fs.join(path, CLASSES_FILE))
                    .splitlines() if line.strip())
    facts_path = fs.join(path, SPLIT_FILE)
    try:
        facts = json.loads(fs.read_text(facts_path))
        counts = {s: int(facts["counts"][s]) for s in sets}
        counts.update({s: int(facts["counts"].get(s, 0)) for s in schema.SETS if s not in sets})
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        wanted = "/".join(f"counts.{s}" for s in sets)
        raise SplitDirError(f"{facts_path} is unreadable or has no {wanted} ({e!r}); rebuild "
                            "the split with prepare_splits") from None
    if len(classes) < 2:
        raise SplitDirError(f"{fs.join(path, CLASSES_FILE)} lists {len(classes)} classes; "
                            "need at least 2")
    empty = [s for s in sets if counts[s] < 1]
    if empty:
        raise SplitDirError(f"split {path!r} has no {' and no '.join(empty)} images "
                            f"(counts {counts}); those sets must be non-empty")
    shards = {}
    for set_name in sets:
        try:
            shards[set_name] = tuple(shard_files(path, set_name))
        except FileNotFoundError:
            raise SplitDirError(f"{flag} {path!r} has no {set_name}.tfrecord-* shards") from None
    per_class = facts.get("counts_per_class", {}).get(schema.LABELED, {})
    return Split(path=path, name=str(facts.get("split", "")), classes=classes, counts=counts,
                 shards=shards, labeled_class_counts=tuple(
                     int(per_class.get(c, 0)) for c in classes) if per_class else ())
