"""The labeled-subset file lists shipped with the package, and their checksums.

The lists define the standard ImageNet semi-supervised splits. They are data, so
they are verified by sha256 before use: a truncated or edited list would silently
change which images are labeled and make results incomparable with the literature.
"""

import hashlib
import os

_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

#: Relative path inside the package data directory -> (sha256, number of lines).
LISTS = {
    "imagenet_subsets/1percent.txt": (
        "71e82a48ba78252683ae334c4d019ebd5c6e855b9599c1389fbe83eb9549cf17", 12811),
    "imagenet_subsets/10percent.txt": (
        "6d09de11e7bdaf5b1f3b1f249b6183695f97310cdd20f0c03e7235b6b9392091", 128116),
    "fixmatch_splits/files2labels_valid.txt": (
        "5de0d1b54ed7d6e4e66cf942c7dc429a7f54054dc97f3a4f127baa691e23b8b8", 50000),
    "fixmatch_splits/files2shards_train_size128116_split1.txt": (
        "d897658efd96e71ebf79042287a0975e6215f5b9e772a275e25aad050f554666", 128116),
    "fixmatch_splits/files2shards_train_size128116_split2.txt": (
        "f8fb70ce216edd7914f809e19e6162a9041aea1f1b97ad91ee2b72dbc76db63e", 128116),
    "fixmatch_splits/files2shards_train_size128116_split3.txt": (
        "18459c21fe96fae051c26c384facda5fa610ee5c7c23e79df849ff4a2ae4eb8b", 128116),
    "fixmatch_splits/files2shards_train_size128116_split4.txt": (
        "1cc5caf164a1b71820b624988fb46040bad25d09fb3c3e068043bb0fcdcab415", 128116),
    "fixmatch_splits/files2shards_train_size128116_split5.txt": (
        "79c7b20aff5a9cc8600fa9ac9a331e86efd67bf480aa8136f11bd1ab759bbf67", 128116),
}


class SplitListError(RuntimeError):
    """A shipped split list is missing or does not match its recorded checksum."""


def path(name: str) -> str:
    """Absolute path of a shipped list, e.g. ``path("imagenet_subsets/1percent.txt")``."""
    if name not in LISTS:
        raise SplitListError(f"unknown split list {name!r}; known lists: {sorted(LISTS)}")
    return os.path.join(_DATA_DIR, name)


def sha256(name: str) -> str:
    """sha256 of the file as installed."""
    digest = hashlib.sha256()
    with open(path(name), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_path(name: str) -> str:
    """Path of a list after checking its sha256; raises SplitListError on mismatch."""
    p = path(name)
    if not os.path.exists(p):
        raise SplitListError(
            f"split list {name} is missing from the installed package ({p}); "
            "reinstall fixmatch-pipeline")
    actual = sha256(name)
    if actual != LISTS[name][0]:
        raise SplitListError(
            f"split list {name} has sha256 {actual}, expected {LISTS[name][0]}; "
            "the installed file is corrupt or edited, reinstall fixmatch-pipeline")
    return p


def read_lines(name: str) -> list:
    """Verified list contents as stripped, non-empty lines."""
    with open(verified_path(name), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]
