"""Between the two passes: check the plan and lay out the shards.

Pure functions over the small per-class facts of pass 1, so the checks (a
named list that does not match the input, validation classes unknown to train,
inconsistent TFRecord labels) fail with a clear message before any image is
decoded.
"""

from typing import Dict, List, Sequence

from fixmatch.data import schema
from fixmatch.splitting import shards, sources


class SplitError(ValueError):
    """The input and the requested split do not fit together."""


def class_names(rows: Sequence[Sequence], known: Sequence[str] = ()) -> List[str]:
    """classes.txt lines (line i = label i) from [set, label, synset, n, n_lab] rows.

    Image folders: the train class folder names, already sorted (`known`).
    TFRecords: the synset of each train label (labels were converted to 0-based);
    every label 0..max must be present exactly once with one synset.
    """
    train = {}
    for set_name, label, synset, _, _ in rows:
        if set_name != sources.TRAIN:
            continue
        if train.setdefault(label, synset) != synset:
            raise SplitError(f"train label {label + 1} (1-based) has two synsets: "
                             f"{train[label]!r} and {synset!r}")
    if known:
        return list(known)
    if not train:
        raise SplitError("the input has no readable train records")
    missing = sorted(set(range(max(train) + 1)) - set(train))
    if missing:
        raise SplitError(
            f"train labels are not contiguous: {len(missing)} label(s) missing, 1-based "
            f"{[m + 1 for m in missing[:5]]}; classes.txt needs one synset per label")
    return [train[i] for i in range(max(train) + 1)]


def check_validation_classes(rows, classes: Sequence[str]) -> None:
    """Validation labels must be train labels with the same class name."""
    bad = sorted({synset for set_name, label, synset, _, _ in rows
                  if set_name == sources.VALIDATION
                  and not (0 <= label < len(classes) and classes[label] == synset)})
    if bad:
        raise SplitError(f"{len(bad)} validation class(es) are not train classes: {bad[:5]}; "
                         "validation labels must come from the train classes")


def check_list_coverage(*, list_names, matched, list_file, allow_missing) -> dict:
    """Named list entries without an image are an error unless allow_missing."""
    missing = sorted(set(list_names) - set(matched))
    if missing and not allow_missing:
        raise SplitError(
            f"{len(missing)} of {len(list_names)} entries of split list {list_file} have no "
            f"image in the train input, e.g. {missing[:5]}; check --input (is it the ImageNet "
            "train set?) or pass --allow_missing to use the entries that are present")
    return {"list_entries": len(list_names), "matched": len(set(matched)),
            "missing": len(missing), "missing_examples": missing[:5]}


def per_set_class_counts(rows) -> Dict[str, Dict[int, int]]:
    """{labeled|unlabeled|validation: {label: planned records}} from pass-1 rows."""
    out = {name: {} for name in schema.SETS}
    for set_name, label, _, n, n_labeled in rows:
        if set_name == sources.TRAIN:
            out[schema.UNLABELED][label] = n
            if n_labeled:
                out[schema.LABELED][label] = n_labeled
        else:
            out[schema.VALIDATION][label] = n
    return out


def shard_layout(counts: Dict[str, Dict[int, int]]) -> dict:
    """{set: {"shards": S, "offsets": {label: first global rank}, "records": n}}."""
    layout = {}
    for set_name, per_class in counts.items():
        total = sum(per_class.values())
        layout[set_name] = {"shards": shards.choose_num_shards(total),
                            "offsets": shards.class_offsets(per_class), "records": total}
    return layout


def shard_names(layout) -> List[str]:
    return [shards.shard_name(set_name, i, info["shards"])
            for set_name, info in sorted(layout.items()) for i in range(info["shards"])]
