"""Find out what the input is and list it, failing early on bad layouts.

Two input forms (design section 2), local or gs://:
  folders:  ROOT/train/<class>/<image>, ROOT/val|validation/<class>/<image>
  tfrecord: ROOT/train-*-of-*, ROOT/validation-*-of-*  (imagenet_to_gcs output)

`inspect_source` runs on the driver and only looks at class folders (it never
holds the file list of the whole set); the per-class listing of image files
happens inside the pipeline (`list_class_dir`), one class per element.
"""

import dataclasses
import glob
import hashlib
import os
from typing import Dict, Iterator, Tuple

from apache_beam.io.filesystems import FileSystems

from fixmatch.splitting import images

FOLDERS, TFRECORD = "folders", "tfrecord"
TRAIN, VALIDATION = "train", "validation"
VAL_DIR_NAMES = ("val", "validation")


class SourceError(ValueError):
    """The input directory is missing or not in a supported layout."""


@dataclasses.dataclass(frozen=True)
class Source:
    kind: str
    root: str
    #: folders: sorted train class names (label i = classes[i]); tfrecord: ()
    classes: Tuple[str, ...] = ()
    #: folders: (set, label, class name, class dir); tfrecord: (set, file path)
    units: Tuple[tuple, ...] = ()
    #: tfrecord only: sha256 of the (name, size, mtime) listing of the files
    listing_fingerprint: str = ""


def _is_local(path: str) -> bool:
    return "://" not in path


def _join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/"), *parts[1:]])


def _match(pattern: str, limit=None):
    result = FileSystems.match([pattern], limits=[limit])[0]
    return sorted(result.metadata_list, key=lambda m: m.path)


def _escape(path: str) -> str:
    """A literal directory for a glob pattern (local class folders may contain `[`)."""
    return glob.escape(path) if _is_local(path) else path


def _class_dirs(path: str) -> Dict[str, int]:
    """Class folder name -> number of image files in it (local or remote)."""
    counts: Dict[str, int] = {}
    if _is_local(path):
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if entry.is_dir() and not entry.name.startswith("."):
                counts[entry.name] = sum(
                    1 for f in os.scandir(entry.path)
                    if f.is_file() and images.is_image_name(f.name))
        return counts
    prefix = path.rstrip("/") + "/"
    for meta in _match(prefix + "*/*"):
        cls, _, name = meta.path[len(prefix):].partition("/")
        counts[cls] = counts.get(cls, 0) + (1 if images.is_image_name(name) else 0)
    return counts


def _is_dir(path: str) -> bool:
    if _is_local(path):
        return os.path.isdir(path)
    return bool(_match(path.rstrip("/") + "/**", limit=1))  # object stores: any object below


def _check_classes(set_dir: str, counts: Dict[str, int]) -> None:
    if not counts:
        raise SourceError(f"{set_dir} has no class folders; expected {set_dir}/<class>/<image>")
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise SourceError(
            f"{len(empty)} empty class folder(s) in {set_dir} (no .JPEG/.jpg/.jpeg/.png files): "
            f"{empty[:5]}; remove them or add their images")


def inspect_source(root: str) -> Source:
    """Detect the layout of `root` and validate it before any job starts."""
    if not root:
        raise SourceError("no input directory given (--input)")
    if _is_local(root) and not os.path.isdir(root):
        raise SourceError(f"input directory {root!r} does not exist (or is not a directory)")
    train_dir = _join(root, TRAIN)
    if _is_dir(train_dir):
        return _inspect_folders(root, train_dir)
    train_files = _match(_join(_escape(root), "train-*-of-*"))
    if train_files:
        return _inspect_tfrecords(root, train_files)
    if not _is_local(root) and not _match(_join(root, "**"), limit=1):
        raise SourceError(f"input {root!r} does not exist or is empty")
    raise SourceError(
        f"input {root!r} is neither an image-folder data set (train/<class>/<image>) nor "
        "imagenet_to_gcs TFRecords (train-*-of-*, validation-*-of-*)")


def _inspect_folders(root: str, train_dir: str) -> Source:
    train_counts = _class_dirs(train_dir)
    _check_classes(train_dir, train_counts)
    val_dir = next((d for d in (_join(root, n) for n in VAL_DIR_NAMES) if _is_dir(d)), None)
    if val_dir is None:
        raise SourceError(f"{root} has train/ but no val/ or validation/ folder")
    val_counts = _class_dirs(val_dir)
    _check_classes(val_dir, val_counts)
    classes = tuple(sorted(train_counts))
    unknown = sorted(set(val_counts) - set(classes))
    if unknown:
        raise SourceError(
            f"{len(unknown)} validation class(es) in {val_dir} are not train classes: "
            f"{unknown[:5]}; validation labels must come from the train classes")
    label = {c: i for i, c in enumerate(classes)}
    units = [(TRAIN, label[c], c, _join(train_dir, c)) for c in classes]
    units += [(VALIDATION, label[c], c, _join(val_dir, c)) for c in sorted(val_counts)]
    return Source(kind=FOLDERS, root=root, classes=classes, units=tuple(units))


def _inspect_tfrecords(root: str, train_files) -> Source:
    val_files = _match(_join(_escape(root), "validation-*-of-*"))
    if not val_files:
        raise SourceError(f"{root} has train-*-of-* TFRecords but no validation-*-of-* files")
    digest = hashlib.sha256()
    for meta in train_files + val_files:
        digest.update(f"{os.path.basename(meta.path)}\0{meta.size_in_bytes}\0"
                      f"{int(meta.last_updated_in_seconds)}\n".encode())
    units = [(TRAIN, m.path) for m in train_files] + [(VALIDATION, m.path) for m in val_files]
    return Source(kind=TFRECORD, root=root, units=tuple(units),
                  listing_fingerprint=digest.hexdigest())


def list_class_dir(unit: tuple, root: str) -> Iterator[dict]:
    """Image references of one class folder (runs inside the pipeline).

    A file name that is not valid UTF-8 cannot be stored in image/filename, so it is yielded
    as {"rejected": record} (its name with the bad bytes escaped) for the split's rejected list.
    """
    set_name, label, synset, class_dir = unit
    for meta in _match(_join(_escape(class_dir), "*")):
        name = meta.path.rsplit("/", 1)[-1]
        if not images.is_image_name(name):
            continue
        rel = (os.path.relpath(meta.path, root) if _is_local(root)
               else meta.path[len(root.rstrip("/")) + 1:])
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            yield {"rejected": {
                "file": os.fsencode(rel).decode("utf-8", "backslashreplace"),
                "set": set_name, "class": synset, "reason": "file name is not valid UTF-8",
                "detail": "rename the file to store it"}}
            continue
        yield {"set": set_name, "label": label, "synset": synset, "name": name,
               "path": meta.path, "offset": -1, "size": meta.size_in_bytes,
               "mtime": int(meta.last_updated_in_seconds), "rel": rel}


def ref_fingerprint(ref: dict) -> str:
    """sha256 (hex) of one image's (relative path, size, mtime); the source
    fingerprint is their sum mod 2**256, which does not depend on order."""
    text = f"{ref.get('rel', ref['path'])}\0{ref.get('size', -1)}\0{ref.get('mtime', -1)}"
    return hashlib.sha256(text.encode()).hexdigest()
