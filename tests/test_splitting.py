"""fixmatch.splitting: split names, selection, image checks, shard layout, record framing."""

import io
import random
from fractions import Fraction

import pytest
from PIL import Image

from fixmatch.splitting import images, layout, names, recordio, selection, shards
from fixtures.splitting_data import image_bytes


# --- split names -------------------------------------------------------------

def test_split_names_parse_to_their_definition():
    assert names.parse_split_name("full").kind == names.FULL
    one = names.parse_split_name("simclr_1pct")
    assert (one.kind, one.list_file) == (names.LIST, "imagenet_subsets/1percent.txt")
    alias = names.parse_split_name("imagenet128116.3")
    assert alias == names.parse_split_name("fixmatch_10pct.3")
    assert alias.list_file.endswith("split3.txt")
    frac = names.parse_split_name("frac12.5.seed7")
    assert (frac.kind, frac.percent, frac.seed) == (names.FRAC, Fraction(25, 2), 7)


@pytest.mark.parametrize("bad", ["", "frac0.seed1", "frac101.seed1", "frac10", "fixmatch_10pct.6",
                                 "simclr_5pct", "frac10.seedx"])
def test_bad_split_name_is_a_clear_error_quoting_it(bad):
    with pytest.raises(names.SplitNameError, match="split"):
        names.parse_split_name(bad)


# --- selection ----------------------------------------------------------------

@pytest.mark.parametrize("size,percent,expected", [
    (15, 10, 2), (25, 10, 3), (35, 10, 4), (8, 10, 1), (4, 10, 1), (1300, 10, 130),
    (7, 50, 4), (10, 100, 10), (0, 10, 0), (3, 1, 1)])
def test_target_count_rounds_half_up_with_at_least_one(size, percent, expected):
    assert selection.target_count(size, Fraction(percent)) == expected


def _refs(n, prefix="/data/train/n1"):
    return [{"name": f"n1_{i}.JPEG", "path": f"{prefix}/n1_{i}.JPEG", "offset": -1}
            for i in range(n)]


def _labeled(entries):
    return {e["name"] for e in entries if e["lrank"] >= 0}


def test_frac_selection_is_exact_and_independent_of_order_and_location():
    spec = names.parse_split_name("frac10.seed1")
    refs = _refs(35)
    first = selection.rank_class(refs, spec=spec)
    assert len(_labeled(first)) == 4
    shuffled = refs[:]
    random.Random(0).shuffle(shuffled)
    moved = _refs(35, prefix="gs://bucket/elsewhere/n1")
    assert _labeled(selection.rank_class(shuffled, spec=spec)) == _labeled(first)
    assert _labeled(selection.rank_class(moved, spec=spec)) == _labeled(first)
    assert [e["rank"] for e in first] == list(range(35))
    assert sorted(e["lrank"] for e in first if e["lrank"] >= 0) == [0, 1, 2, 3]
    other_seed = selection.rank_class(refs, spec=names.parse_split_name("frac10.seed2"))
    assert _labeled(other_seed) != _labeled(first)


def test_list_selection_marks_exactly_the_listed_names():
    spec = names.parse_split_name("simclr_1pct")
    refs = _refs(6)
    listed = frozenset({"n1_2.JPEG", "n1_5.JPEG", "not_here.JPEG"})
    assert _labeled(selection.rank_class(refs, spec=spec, labeled_names=listed)) == {
        "n1_2.JPEG", "n1_5.JPEG"}
    assert not _labeled(selection.rank_class(refs, spec=spec, labeled_names=listed,
                                             with_labels=False))


def test_fixmatch_list_names_drop_shard_columns():
    fold = selection.list_names(names.parse_split_name("fixmatch_10pct.1"))
    assert len(fold) == 128116 and all("," not in n for n in list(fold)[:100])
    assert selection.list_sha256(names.parse_split_name("simclr_1pct")).startswith("71e82a48")


# --- images -------------------------------------------------------------------

def test_valid_rgb_jpeg_is_kept_byte_for_byte():
    data = image_bytes("rgb", 1)
    out = images.decode_image(data, "a.JPEG")
    assert isinstance(out, images.Decoded)
    assert (out.encoded, out.converted, out.height, out.width) == (data, None, 24, 28)


@pytest.mark.parametrize("kind,filename,reason", [
    ("cmyk", "a.JPEG", "CMYK JPEG"), ("gray", "a.jpg", "grayscale JPEG"),
    ("png", "a.png", "PNG file"), ("png", "a.JPEG", "PNG data in a .JPEG file"),
    ("png_rgba", "a.png", "PNG file")])
def test_other_formats_are_converted_to_rgb_jpeg(kind, filename, reason):
    out = images.decode_image(image_bytes(kind, 2), filename)
    assert isinstance(out, images.Decoded) and out.converted == reason
    im = Image.open(io.BytesIO(out.encoded))
    assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (28, 24))


@pytest.mark.parametrize("kind,reason", [
    ("empty", "empty file"), ("text", "not an image"), ("truncated", "truncated or corrupt")])
def test_broken_files_are_rejected_with_a_reason(kind, reason):
    out = images.decode_image(image_bytes(kind, 3), "a.JPEG")
    assert isinstance(out, images.Rejected) and out.reason.startswith(reason)


# --- shards and layout --------------------------------------------------------

@pytest.mark.parametrize("records,expected", [
    (1281167, 1024), (128116, 128), (50000, 64), (12811, 16), (3000, 16), (40, 1), (0, 1)])
def test_shard_count_scales_with_size(records, expected):
    assert shards.choose_num_shards(records) == expected


def test_round_robin_assignment_balances_shards_and_classes():
    per_class = {0: 13, 1: 7, 2: 20}
    offsets = shards.class_offsets(per_class)
    num = 4
    sizes, class_mix = [0] * num, {}
    for label, n in per_class.items():
        for rank in range(n):
            s = shards.shard_of(offsets[label], rank, num)
            sizes[s] += 1
            class_mix.setdefault(label, [0] * num)[s] += 1
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 40
    assert all(max(m) - min(m) <= 1 for m in class_mix.values())
    assert shards.shard_name("labeled", 3, 16) == "labeled.tfrecord-00003-of-00016"


def test_layout_checks_name_the_problem():
    rows = [["train", 0, "n1", 5, 1], ["train", 2, "n3", 5, 1], ["validation", 0, "n1", 2, 0]]
    with pytest.raises(layout.SplitError, match=r"not contiguous.*\[2\]"):
        layout.class_names(rows)
    rows = [["train", 0, "n1", 5, 1], ["validation", 1, "n9", 2, 0]]
    with pytest.raises(layout.SplitError, match="n9"):
        layout.check_validation_classes(rows, layout.class_names(rows))
    with pytest.raises(layout.SplitError, match=r"2 of 3 entries.*allow_missing"):
        layout.check_list_coverage(list_names=["a", "b", "c"], matched=["a"], list_file="x.txt",
                                   allow_missing=False)
    cov = layout.check_list_coverage(list_names=["a", "b", "c"], matched=["a"],
                                     list_file="x.txt", allow_missing=True)
    assert (cov["missing"], cov["missing_examples"]) == (2, ["b", "c"])


# --- TFRecord framing ---------------------------------------------------------

def test_records_round_trip_and_are_readable_by_tensorflow(tmp_path):
    import tensorflow as tf

    path = str(tmp_path / "x.tfrecord")
    payloads = [b"", b"a", bytes(range(256)) * 40]
    offsets = []
    with open(path, "wb") as f:
        pos = 0
        for p in payloads:
            offsets.append(pos)
            pos += recordio.write_record(f, p)
    assert list(recordio.scan_records(path)) == list(zip(offsets, payloads))
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == payloads
    with open(path, "rb") as f:
        assert recordio.read_record_at(f, path, offsets[2]) == payloads[2]
    raw = bytearray(open(path, "rb").read())
    raw[-5] ^= 0xFF
    open(path, "wb").write(bytes(raw))
    with pytest.raises(recordio.RecordError, match="checksum"):
        list(recordio.scan_records(path))


# --- Example encoding without TensorFlow --------------------------------------

def test_example_codec_matches_tensorflow_deterministic_serialization():
    import tensorflow as tf

    from fixmatch.data import schema
    from fixmatch.splitting import example_codec

    kwargs = dict(encoded=image_bytes("rgb", 4), filename="n01440764_10026.JPEG", label=999,
                  synset="n01440764", height=24, width=28)
    ours = example_codec.make_example(**kwargs)
    theirs = tf.train.Example.FromString(schema.make_example(**kwargs))
    assert ours == theirs.SerializeToString(deterministic=True)
    assert ours == schema.make_example(**kwargs)  # both writers give the same bytes
    assert schema.parse_example(ours) == schema.parse_example(schema.make_example(**kwargs))
    decoded = example_codec.decode_features(example_codec.encode_example(
        {"a": b"x", "n": -5, "big": 2 ** 40}))
    assert decoded == {"a": [b"x"], "n": [-5], "big": [2 ** 40]}
    unpacked = tf.train.Example(features=tf.train.Features(feature={
        "l": tf.train.Feature(int64_list=tf.train.Int64List(value=[3, 4])),
        "f": tf.train.Feature(float_list=tf.train.FloatList(value=[1.5]))}))
    assert example_codec.decode_features(unpacked.SerializeToString()) == {"l": [3, 4], "f": []}
