"""Which train images are labeled, and in what order records are written.

Everything here is a pure function of file *base names* (plus the split seed),
never of paths, worker ids or arrival order, so membership is identical on any
runner with any number of workers, and a copy of the data set at another
location gives the same split.

Stratified `frac<P>.seed<N>` selection, per class of size n:
  k = min(n, max(1, floor(n * P / 100 + 1/2)))   (round half up, at least one)
and the labeled images are the k with the smallest sha256(seed, base name)
(ties broken by name, then location). A selected image that later fails to
decode is rejected, not replaced: replacing it would make membership depend on
decoding, and the manifest counts show the shortfall.
"""

import hashlib
from fractions import Fraction
from typing import Iterable, List, Optional

from fixmatch import split_lists
from fixmatch.splitting import names as names_lib


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def selection_key(seed: int, basename: str) -> int:
    """64-bit key of an image for frac<P>.seed<seed> (smaller = chosen first)."""
    return _hash64(f"select\x00{seed}\x00{basename}")


def order_key(basename: str) -> int:
    """64-bit key fixing the shuffled position of a record (same for all splits)."""
    return _hash64(f"order\x00{basename}")


def target_count(class_size: int, percent: Fraction) -> int:
    """Labeled images of a class of `class_size` for P = `percent` (see module doc)."""
    if class_size <= 0:
        return 0
    k = (Fraction(class_size) * Fraction(percent) / 100 + Fraction(1, 2)).__floor__()
    return min(class_size, max(1, int(k)))


def list_names(spec: names_lib.SplitSpec) -> frozenset:
    """Base names of a named list (sha256-verified shipped file)."""
    if spec.kind != names_lib.LIST:
        raise ValueError(f"split {spec.name!r} is not a named list")
    return frozenset(line.split(",", 1)[0].strip()
                     for line in split_lists.read_lines(spec.list_file))


def list_sha256(spec: names_lib.SplitSpec) -> Optional[str]:
    """sha256 of the shipped list file of `spec`, None when the split has no list."""
    if spec.kind != names_lib.LIST:
        return None
    split_lists.verified_path(spec.list_file)
    return split_lists.LISTS[spec.list_file][0]


def _tiebreak(ref: dict):
    return (ref["name"], ref["path"], ref.get("offset", -1))


def rank_class(refs: Iterable[dict], *, spec: names_lib.SplitSpec,
               labeled_names: Optional[frozenset] = None,
               with_labels: bool = True) -> List[dict]:
    """Rank the images of ONE class and mark the labeled ones.

    Returns copies of `refs` sorted by order key, each with `rank` (position in
    the class, 0-based) and `lrank` (position among the class's labeled images,
    -1 if not labeled). `with_labels=False` (validation) marks nothing labeled.
    """
    ordered = sorted(refs, key=lambda r: (order_key(r["name"]), _tiebreak(r)))
    chosen = set()
    if with_labels:
        if spec.kind == names_lib.FULL:
            chosen = set(range(len(ordered)))
        elif spec.kind == names_lib.LIST:
            if labeled_names is None:
                raise ValueError("rank_class needs labeled_names for a named-list split")
            chosen = {i for i, r in enumerate(ordered) if r["name"] in labeled_names}
        else:
            k = target_count(len(ordered), spec.percent)
            by_selection = sorted(
                range(len(ordered)),
                key=lambda i: (selection_key(spec.seed, ordered[i]["name"]),
                               _tiebreak(ordered[i])))
            chosen = set(by_selection[:k])
    out, lrank = [], 0
    for i, ref in enumerate(ordered):
        entry = dict(ref, rank=i, lrank=-1)
        if i in chosen:
            entry["lrank"] = lrank
            lrank += 1
        out.append(entry)
    return out
