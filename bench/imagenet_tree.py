"""An ImageNet-shaped input tree of tiny JPEGs, for rehearsing the chain at its real shape.

    python bench/imagenet_tree.py --out /tmp/inet --fraction 0.01        # 13,300 files
    python bench/imagenet_tree.py --out /tmp/inet --fraction 1           # 1.33M files, ~5 GB

Layout: DIR/train/<synset>/<name>.JPEG (1,000 synset folders) and
DIR/val/<synset>/ILSVRC2012_val_<8 digits>.JPEG. The train names are the 600,087 real ImageNet
names of the shipped split lists (SimCLR 1%/10%, the reference's five 10% folds), completed
per class with generated names of the same form (`<synset>_<number>.JPEG`) up to 1,281,167 in
all; a class gets images in proportion to its share of the SimCLR 10% list (that list samples
each class at about 10%). The validation names and classes are the real ones (the reference's
`files2labels_valid.txt`, labels 1..1000 in sorted synset order). At a fraction below 1 each
name is kept when a hash of it falls below the fraction, so a smaller tree is a subset of the
full one and the named splits need `--allow_missing`.

Every image is one of a few pre-encoded 32x32 JPEGs (one colour per class and a few noise
patterns): writing 1.33M files is then bounded by file creation, not by encoding.
"""

import argparse
import collections
import hashlib
import io
import os
import sys
import time
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from fixmatch import split_lists  # noqa: E402
from fixmatch.splitting import names as split_names  # noqa: E402

TRAIN_IMAGES = 1_281_167
VAL_LIST = "fixmatch_splits/files2labels_valid.txt"
LIST_ORDER = ("simclr_1pct", "simclr_10pct", "fixmatch_10pct.1")  # priority under a cap
SIDE = 32
VARIANTS = 4  # noise patterns per class


def _listed_names():
    """Every train file name in the shipped lists (the FixMatch folds' lines carry shard
    columns after the name)."""
    listed = set()
    for list_name in dict.fromkeys(split_names.NAMED_LISTS.values()):
        listed.update(line.split(",")[0] for line in split_lists.read_lines(list_name))
    return listed


def _class_sizes(listed, synsets):
    """Images per class at full size: proportional to the class's SimCLR 10% count, at least
    its listed names, summing to exactly TRAIN_IMAGES."""
    ten = collections.Counter(n.split("_")[0] for n in
                              split_lists.read_lines(split_names.NAMED_LISTS["simclr_10pct"]))
    have = collections.Counter(n.split("_")[0] for n in listed)
    total_ten = sum(ten.values())
    sizes = {s: max(have[s], round(ten[s] * TRAIN_IMAGES / total_ten)) for s in synsets}
    excess = sum(sizes.values()) - TRAIN_IMAGES
    order = sorted(synsets, key=lambda s: sizes[s] - have[s], reverse=True)
    i = 0
    while excess:  # take the difference from (or give it to) the classes with most slack
        s = order[i % len(order)]
        step = 1 if excess > 0 else -1
        if step < 0 or sizes[s] > have[s]:
            sizes[s] -= step
            excess -= step
        i += 1
    return sizes


def full_listing():
    """(train names by synset, [(val name, synset)]) of the full-size tree."""
    listed = _listed_names()
    synsets = sorted({n.split("_")[0] for n in listed})
    if len(synsets) != 1000:
        raise RuntimeError(f"expected 1000 synsets in the shipped lists, found {len(synsets)}")
    sizes = _class_sizes(listed, synsets)
    by_class = collections.defaultdict(list)
    for name in listed:
        by_class[name.split("_")[0]].append(name)
    train = {}
    for s in synsets:
        names = set(by_class[s])
        number = 1
        while len(names) < sizes[s]:
            name = f"{s}_{number}.JPEG"
            names.add(name)
            number += 1
        train[s] = sorted(names)
    val = []
    for line in split_lists.read_lines(VAL_LIST):
        name, label = line.split(",")
        val.append((name, synsets[int(label) - 1]))
    return train, sorted(val)


def _listed_first(names, groups):
    """`names` reordered so that a capped class folder holds images of every named split: one
    name of the first list, one of the second, ..., then the others, round-robin."""
    buckets = [[] for _ in range(len(groups) + 1)]
    for name in names:
        buckets[next((i for i, g in enumerate(groups) if name in g), len(groups))].append(name)
    out = []
    while any(buckets):
        out += [b.pop(0) for b in buckets if b]
    return out


def keep(name, fraction):
    """Stable membership of `name` in a tree of this fraction (nested across fractions)."""
    if fraction >= 1:
        return True
    h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
    return h < fraction * 2 ** 64


def _jpegs(synsets):
    rng = np.random.default_rng(0)
    noise = [rng.integers(-24, 24, (SIDE, SIDE, 3)) for _ in range(VARIANTS)]
    out = {}
    for i, s in enumerate(synsets):
        colour = np.array([(i * 37) % 256, (i * 91) % 256, (i * 173) % 256])
        for v in range(VARIANTS):
            pixels = np.clip(colour + noise[v], 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, "JPEG", quality=75)
            out[s, v] = buf.getvalue()
    return out


def build(out, fraction, *, max_per_class=None, max_val_per_class=None, progress=True):
    """Write the tree under `out` (skipped when `out/COMPLETE` records the same settings);
    returns {"train": n, "val": n, "bytes": n}."""
    settings = (f"fraction={fraction} max_per_class={max_per_class} "
                f"max_val_per_class={max_val_per_class} side={SIDE}\n")
    marker = os.path.join(out, "COMPLETE")
    if os.path.exists(marker):
        with open(marker) as f:
            lines = f.read().splitlines()
        if lines and lines[0] + "\n" == settings:
            counts = (item.split("=") for item in lines[1].split())
            return {key: int(value) for key, value in counts} | {"reused": True}
        raise SystemExit(f"{out} holds a tree built with other settings ({lines[0]}); "
                         "remove it or choose another --out")
    train, val = full_listing()
    jpegs = _jpegs(sorted(train))
    groups = [{line.split(",")[0] for line in split_lists.read_lines(
        split_names.NAMED_LISTS[name])} for name in LIST_ORDER]
    counts = {"train": 0, "val": 0, "bytes": 0}
    start = time.time()
    jobs = [("train", s, names) for s, names in train.items()]
    val_by_class = collections.defaultdict(list)
    for name, s in val:
        val_by_class[s].append(name)
    jobs += [("val", s, names) for s, names in sorted(val_by_class.items())]
    for done, (split, s, names) in enumerate(jobs, 1):
        chosen = [n for n in names if keep(n, fraction)]
        if max_per_class is not None and split == "train":
            chosen = _listed_first(chosen, groups)[:max_per_class]
        elif max_val_per_class is not None and split == "val":
            chosen = chosen[:max_val_per_class]
        if not chosen:  # an empty class folder is an input error for the split job
            continue
        folder = os.path.join(out, split, s)
        os.makedirs(folder, exist_ok=True)
        for n in chosen:
            data = jpegs[s, zlib.crc32(n.encode()) % VARIANTS]
            with open(os.path.join(folder, n), "wb") as f:
                f.write(data)
            counts["bytes"] += len(data)
        counts[split] += len(chosen)
        if progress and (done % 200 == 0 or done == len(jobs)):
            print(f"  tree: {done}/{len(jobs)} folders, {counts['train'] + counts['val']:,} "
                  f"files, {time.time() - start:.0f} s", flush=True)
    with open(marker, "w") as f:
        f.write(settings + " ".join(f"{k}={v}" for k, v in counts.items()) + "\n")
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory to write (train/, val/)")
    parser.add_argument("--fraction", type=float, default=0.01,
                        help="share of the full 1,281,167 + 50,000 images (0 < f <= 1)")
    parser.add_argument("--max_per_class", type=int, default=None,
                        help="cap per class folder (a tiny 1,000-class tree for tests); the "
                        "train images kept are taken from each named split's list in turn")
    parser.add_argument("--max_val_per_class", type=int, default=None,
                        help="cap per validation class folder")
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    print(build(args.out, args.fraction, max_per_class=args.max_per_class,
                max_val_per_class=args.max_val_per_class))


if __name__ == "__main__":
    main()
