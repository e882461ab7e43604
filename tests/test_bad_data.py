"""A generated corpus of bad data through the real split stage: each file or folder fault has
its expected outcome (kept, converted with a reason, rejected with a reason, or a clear error
before any work), and no good image is lost."""

import glob
import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from fixmatch.data import schema
from fixmatch.splitting import recordio, sources
from fixtures.bad_data import bad_files
from fixtures.splitting_data import image_bytes
from stages import prepare_splits

ONE_WORKER = ["--direct_num_workers=1"]

#: kind -> ("converted" | "rejected", reason in split.json)
EXPECTED = {
    "zero_bytes": ("rejected", "empty file"),
    "truncated_jpeg": ("rejected", "truncated or corrupt image"),
    "random_bytes": ("rejected", "not an image (no known image format)"),
    "huge_header": ("rejected", "image too large"),
    "png_named_jpeg": ("converted", "PNG data in a .JPEG file"),
    "cmyk_jpeg": ("converted", "CMYK JPEG"),
    "grayscale_jpeg": ("converted", "grayscale JPEG"),
    "rgba_png": ("converted", "PNG file"),
    "png_16bit": ("converted", "PNG (16-bit) file"),
    "animated_gif_named_jpeg": ("converted", "GIF data in a .JPEG file"),
    "webp_named_jpeg": ("converted", "WEBP data in a .JPEG file"),
}


def good_tree(root, train=("a", "b"), val=("a", "b"), per_class=12):
    for split, classes, n in (("train", train, per_class), ("val", val, 2)):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        for c in classes:
            os.makedirs(os.path.join(root, split, c), exist_ok=True)
            for i in range(n):
                with open(os.path.join(root, split, c, f"{c}_{i}.JPEG"), "wb") as f:
                    f.write(image_bytes("rgb", i))


def records(out, set_name):
    return {schema.parse_example(r)[schema.FILENAME]: schema.parse_example(r)
            for p in glob.glob(schema.shard_glob(out, set_name))
            for _, r in recordio.scan_records(p)}


def test_bad_files_are_converted_or_rejected_and_good_ones_kept(tmp_path):
    root, out = str(tmp_path / "data"), str(tmp_path / "split")
    good_tree(root)
    corpus = bad_files()
    assert set(corpus) == set(EXPECTED)
    for name, data in corpus.values():
        with open(os.path.join(root, "train", "a", name), "wb") as f:
            f.write(data)
    facts = prepare_splits.run(input=root, output=out, split="frac10.seed1",
                               beam_args=ONE_WORKER)
    want = {"rejected": {}, "converted": {}}
    for outcome, reason in EXPECTED.values():
        want[outcome][reason] = want[outcome].get(reason, 0) + 1
    assert facts["rejected"]["reasons"] == want["rejected"]
    assert facts["converted"]["reasons"] == want["converted"]
    rejected = {json.loads(line)["file"]: json.loads(line)["reason"]
                for line in open(os.path.join(out, "rejected.jsonl"))}
    assert rejected == {f"train/a/{corpus[k][0]}": reason
                        for k, (outcome, reason) in EXPECTED.items() if outcome == "rejected"}
    written = records(out, schema.UNLABELED)
    kept = {f"{c}_{i}.JPEG" for c in "ab" for i in range(12)}
    converted = {corpus[k][0] for k, (outcome, _) in EXPECTED.items() if outcome == "converted"}
    assert set(written) == kept | converted  # every good image and every convertible one
    for name in converted:
        im = Image.open(io.BytesIO(written[name][schema.ENCODED]))
        assert (im.format, im.mode) == ("JPEG", "RGB")
    # 16-bit values are scaled to 8 bits (not clipped to white).
    sixteen = np.asarray(Image.open(io.BytesIO(corpus["png_16bit"][1])), dtype=np.int64) >> 8
    stored = np.asarray(Image.open(io.BytesIO(written["sixteen.png"][schema.ENCODED])))
    assert np.abs(stored[..., 0].astype(int) - sixteen).mean() < 12


def test_non_utf8_file_name_is_rejected_by_name_and_the_rest_kept(tmp_path):
    root, out = str(tmp_path / "data"), str(tmp_path / "split")
    good_tree(root)
    with open(os.path.join(root, "train", "a").encode() + b"/caf\xe9.JPEG", "wb") as f:
        f.write(image_bytes("rgb", 99))
    facts = prepare_splits.run(input=root, output=out, split="frac10.seed1",
                               beam_args=ONE_WORKER)
    assert facts["rejected"]["reasons"] == {"file name is not valid UTF-8": 1}
    assert [json.loads(line)["file"] for line in open(os.path.join(out, "rejected.jsonl"))] == [
        "train/a/caf\\xe9.JPEG"]
    assert facts["counts"]["unlabeled"] == 24


def test_symlink_loop_is_not_followed(tmp_path):
    root, out = str(tmp_path / "data"), str(tmp_path / "split")
    good_tree(root)
    os.symlink("..", os.path.join(root, "train", "a", "loop"))
    facts = prepare_splits.run(input=root, output=out, split="frac10.seed1",
                               beam_args=ONE_WORKER)
    assert facts["counts"] == {"labeled": 2, "unlabeled": 24, "validation": 4}


@pytest.mark.parametrize("case,needle", [
    ("class_folder_without_images", "1 empty class folder(s) in {root}/train (no "),
    ("validation_class_missing_from_train", "validation class(es) in {root}/val are not "
                                            "train classes: ['z']"),
    ("empty_train_folder", "{root}/train has no class folders"),
    ("symlink_loop_as_class", "empty class folder(s) in {root}/train"),
])
def test_folder_faults_fail_before_any_work(tmp_path, case, needle):
    root, out = str(tmp_path / "data"), str(tmp_path / "split")
    if case == "validation_class_missing_from_train":
        good_tree(root, val=("a", "b", "z"))
    elif case == "empty_train_folder":
        good_tree(root, train=())
    else:
        good_tree(root)
        if case == "class_folder_without_images":
            os.makedirs(os.path.join(root, "train", "c"))
        else:
            os.symlink(".", os.path.join(root, "train", "loop"))
    with pytest.raises(sources.SourceError, match=needle.format(root=root).replace(
            "(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        prepare_splits.run(input=root, output=out, split="frac10.seed1", beam_args=ONE_WORKER)
    assert not os.path.exists(out)
    shutil.rmtree(root)
