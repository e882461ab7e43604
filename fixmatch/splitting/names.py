"""Split names accepted by `prepare_splits --split` and what each one selects.

A split name is the whole definition of the labeled subset: the same input and
the same name must give the same labeled membership on any runner, so every
name maps to either a shipped file list (sha256-checked) or a pure function of
(seed, file name).
"""

import dataclasses
import re
from fractions import Fraction
from typing import Optional

FULL, LIST, FRAC = "full", "list", "frac"

#: Named lists -> shipped file (fixmatch.split_lists name). Lines of the FixMatch
#: fold files are `file_name,shard,index`; only the file name is used.
NAMED_LISTS = {
    "simclr_1pct": "imagenet_subsets/1percent.txt",
    "simclr_10pct": "imagenet_subsets/10percent.txt",
    **{f"fixmatch_10pct.{k}": f"fixmatch_splits/files2shards_train_size128116_split{k}.txt"
       for k in range(1, 6)},
}

#: The reference's own dataset names for the five folds.
ALIASES = {f"imagenet128116.{k}": f"fixmatch_10pct.{k}" for k in range(1, 6)}

_FRAC_RE = re.compile(r"^frac(?P<pct>\d+(?:\.\d+)?)\.seed(?P<seed>\d+)$")


class SplitNameError(ValueError):
    """The --split value is not one of the known forms."""


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """A parsed split name. `name` is canonical (aliases resolved)."""

    name: str
    kind: str                        # FULL | LIST | FRAC
    list_file: Optional[str] = None  # for LIST: fixmatch.split_lists name
    percent: Optional[Fraction] = None  # for FRAC: 0 < percent <= 100
    seed: Optional[int] = None       # for FRAC


def parse_split_name(name: str) -> SplitSpec:
    """Parse `full`, a named list (or its alias) or `frac<P>.seed<N>`."""
    if not isinstance(name, str) or not name.strip():
        raise SplitNameError(f"split name must be a non-empty string, got {name!r}")
    name = name.strip()
    if name == FULL:
        return SplitSpec(name=FULL, kind=FULL)
    canonical = ALIASES.get(name, name)
    if canonical in NAMED_LISTS:
        return SplitSpec(name=canonical, kind=LIST, list_file=NAMED_LISTS[canonical])
    match = _FRAC_RE.match(name)
    if match:
        percent = Fraction(match.group("pct"))
        if not 0 < percent <= 100:
            raise SplitNameError(
                f"split {name!r}: the percentage must be in (0, 100], got {match.group('pct')}")
        return SplitSpec(name=name, kind=FRAC, percent=percent, seed=int(match.group("seed")))
    known = [FULL, *NAMED_LISTS, *ALIASES]
    raise SplitNameError(
        f"unknown split name {name!r}; use one of {known} or frac<P>.seed<N> "
        "(e.g. frac10.seed1 = a stratified 10% per class chosen with seed 1)")
