"""Contracts of the tf.data pipelines on a tiny split directory (spec 3.2)."""

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from fixmatch.augment import weak
from fixmatch.augment.ctaugment import CTAPolicy
from fixmatch.augment.randaugment import RandAugment
from fixmatch.data import pipelines, schema

SIZE = 16
NUM_CLASSES = 5
COUNTS = {schema.LABELED: 10, schema.UNLABELED: 12, schema.VALIDATION: 7}


def _jpeg(rng, height, width):
    small = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((width, height), Image.BICUBIC).save(
        buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_split(directory, counts=COUNTS, shards=2, seed=0):
    """Tiny split directory: JPEGs of varied sizes (30..48 x 40..64), 0-based labels.

    Validation labels are unique (0..n-1) so exactly-once can be checked.
    """
    rng = np.random.default_rng(seed)
    for set_name, count in counts.items():
        writers = [tf.io.TFRecordWriter(os.path.join(
            directory, f"{set_name}.tfrecord-{k:05d}-of-{shards:05d}")) for k in range(shards)]
        for i in range(count):
            height, width = int(rng.integers(30, 49)), int(rng.integers(40, 65))
            label = i if set_name == schema.VALIDATION else i % NUM_CLASSES
            writers[i % shards].write(schema.make_example(
                encoded=_jpeg(rng, height, width), filename=f"{set_name}_{i}.JPEG",
                label=label, synset=f"c{label}", height=height, width=width))
        for writer in writers:
            writer.close()
    return str(directory)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split"))


def _first(ds):
    return {k: v.numpy() for k, v in next(iter(ds)).items()}


def _invert(image):
    return 255 - image


def test_labeled_batch_shapes_dtypes_ranges(split_dir):
    batch = _first(pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=4,
                                             image_dtype=tf.float32))
    assert set(batch) == {"image", "label"}
    assert batch["image"].shape == (4, SIZE, SIZE, 3) and batch["image"].dtype == np.float32
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["label"].shape == (4,) and batch["label"].dtype in (np.int32, np.int64)
    assert 0 <= batch["label"].min() and batch["label"].max() < NUM_CLASSES


def test_default_output_is_uint8_for_on_device_scaling(split_dir):
    # uint8 unless saturate_uint8 is off (then host-scaled float32, as the hparams say).
    for ds in (pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=4),
               pipelines.eval_dataset(split_dir, image_size=SIZE, batch_size=4),
               pipelines.unlabeled_dataset(split_dir, image_size=SIZE, batch_size=4,
                                           strong=_invert)):
        for key, value in _first(ds).items():
            if key != "label":
                assert value.dtype == np.uint8 and value.shape == (4, SIZE, SIZE, 3), key
    unsaturated = _first(pipelines.eval_dataset(
        split_dir, image_size=SIZE, batch_size=4,
        hparams_input={"saturate_uint8": False, "scale_and_center": False}))
    assert unsaturated["image"].dtype == np.float32 and unsaturated["image"].max() > 1.0


def test_labeled_training_repeats_and_drops_remainder(split_dir):
    ds = pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=3)
    sizes = [b["label"].shape[0] for b in ds.take(9)]  # 27 > 10 records: repeats
    assert sizes == [3] * 9


def test_labeled_strong_replaces_training_image(split_dir):
    black = lambda image: tf.zeros_like(image)  # noqa: E731
    batch = _first(pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=4,
                                             strong=black, image_dtype=tf.float32))
    np.testing.assert_array_equal(batch["image"], -1.0)


def test_labeled_probe_is_made_from_the_weak_view(split_dir):
    def probe(image):
        return _invert(image), tf.constant([3, 17]), tf.constant([0.25, 0.75])

    batch = _first(pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=4,
                                             probe=probe, image_dtype=tf.float32))
    assert batch["probe_image"].shape == (4, SIZE, SIZE, 3)
    np.testing.assert_allclose(batch["probe_image"], -batch["image"], atol=1e-6)
    assert batch["probe_op_indices"].dtype == np.int32
    np.testing.assert_array_equal(batch["probe_op_indices"], [[3, 17]] * 4)
    assert batch["probe_op_args"].dtype == np.float32
    np.testing.assert_array_equal(batch["probe_op_args"], [[0.25, 0.75]] * 4)


@pytest.mark.parametrize("strong,relation", [
    (tf.image.flip_up_down, lambda weak_view: weak_view[:, ::-1]),
    (_invert, lambda weak_view: -weak_view),
])
def test_unlabeled_pairs_share_crop_and_flip(split_dir, strong, relation):
    ds = pipelines.unlabeled_dataset(split_dir, image_size=SIZE, batch_size=6, strong=strong,
                                     image_dtype=tf.float32)
    for batch in ds.take(3):
        weak_view = batch["unsup_image"].numpy()
        assert set(batch) == {"unsup_image", "unsup_aug_image"}
        assert weak_view.shape == (6, SIZE, SIZE, 3) and weak_view.dtype == np.float32
        assert -1.0 <= weak_view.min() and weak_view.max() <= 1.0
        np.testing.assert_allclose(batch["unsup_aug_image"].numpy(), relation(weak_view),
                                   atol=1e-6)


def test_unlabeled_weak_views_are_random_crops(split_dir):
    # Same records seen twice (12 records, 4 batches of 6) get different crops.
    ds = pipelines.unlabeled_dataset(split_dir, image_size=SIZE, batch_size=6,
                                     strong=_invert, seed=1)
    views = [v.tobytes() for b in ds.take(4) for v in b["unsup_image"].numpy()]
    assert len(set(views)) == len(views)


def test_unlabeled_with_randaugment(split_dir):
    # Never-applied layers: the strong view must equal the weak view pixel for pixel.
    off = pipelines.unlabeled_dataset(split_dir, image_size=SIZE, batch_size=6,
                                      strong=RandAugment(prob_to_apply=0.0))
    batch = _first(off)
    np.testing.assert_array_equal(batch["unsup_aug_image"], batch["unsup_image"])
    ds = pipelines.unlabeled_dataset(split_dir, image_size=SIZE, batch_size=6,
                                     strong=RandAugment(prob_to_apply=1.0, magnitude=1.0),
                                     image_dtype=tf.float32)
    changed = 0
    for batch in ds.take(2):
        aug = batch["unsup_aug_image"].numpy()
        assert aug.shape == (6, SIZE, SIZE, 3) and aug.dtype == np.float32
        assert -1.0 <= aug.min() and aug.max() <= 1.0
        changed += int(np.sum(np.any(aug != batch["unsup_image"].numpy(), axis=(1, 2, 3))))
    assert changed >= 6  # 2 layers always applied: most pairs differ (Identity is 1/16)


def test_labeled_with_ctaugment_strong_and_probes(split_dir):
    policy = CTAPolicy()
    ds = pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=5,
                                   strong=policy.strong, probe=policy.probe,
                                   image_dtype=tf.float32)
    for batch in ds.take(2):
        batch = {k: v.numpy() for k, v in batch.items()}
        assert set(batch) == {"image", "label", "probe_image", "probe_op_indices",
                              "probe_op_args"}
        assert batch["probe_image"].shape == (5, SIZE, SIZE, 3)
        assert -1.0 <= batch["probe_image"].min() and batch["probe_image"].max() <= 1.0
        assert batch["probe_op_indices"].shape == (5, 2)
        assert 0 <= batch["probe_op_indices"].min() and batch["probe_op_indices"].max() < 19
        assert 0.0 <= batch["probe_op_args"].min() and batch["probe_op_args"].max() < 1.0


def _eval_batches(split_dir, batch_size, **kwargs):
    return [{k: v.numpy() for k, v in b.items()} for b in
            pipelines.eval_dataset(split_dir, image_size=SIZE, batch_size=batch_size, **kwargs)]


def test_eval_sees_every_image_once_and_keeps_partial_batch(split_dir):
    batches = _eval_batches(split_dir, 3)
    assert [len(b["label"]) for b in batches] == [3, 3, 1]
    labels = np.concatenate([b["label"] for b in batches])
    assert sorted(labels.tolist()) == list(range(COUNTS[schema.VALIDATION]))
    again = _eval_batches(split_dir, 3)
    for first, second in zip(batches, again):  # deterministic order and pixels
        np.testing.assert_array_equal(first["image"], second["image"])
        np.testing.assert_array_equal(first["label"], second["label"])


def test_eval_images_are_center_crops(split_dir):
    records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(
        schema.shard_glob(split_dir, schema.VALIDATION))))
    expected = {}
    for serialized in records:
        fields = schema.parse_example(serialized.numpy())
        image = weak.center_from_jpeg(fields[schema.ENCODED], image_size=SIZE)
        expected[fields[schema.LABEL]] = weak.scale_and_center(image).numpy()
    for batch in _eval_batches(split_dir, 4, image_dtype=tf.float32):
        for image, label in zip(batch["image"], batch["label"]):
            np.testing.assert_array_equal(image, expected[int(label)])


@pytest.mark.parametrize("num_pipelines", [2, 3])  # 3 > 2 shards: records are split
def test_eval_exactly_once_across_input_pipelines(split_dir, num_pipelines):
    labels = []
    for pid in range(num_pipelines):
        ctx = tf.distribute.InputContext(num_input_pipelines=num_pipelines,
                                         input_pipeline_id=pid, num_replicas_in_sync=1)
        labels += [int(x) for b in _eval_batches(split_dir, 2, input_context=ctx)
                   for x in b["label"]]
    assert sorted(labels) == list(range(COUNTS[schema.VALIDATION]))


def test_eval_max_examples_caps_each_pipeline_to_its_share(split_dir):
    # run.eval_examples: a cheaper evaluation during training on a large validation set
    assert [len(b["label"]) for b in _eval_batches(split_dir, 2, max_examples=5)] == [2, 2, 1]
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                     num_replicas_in_sync=1)
    assert sum(len(b["label"]) for b in _eval_batches(split_dir, 2, max_examples=4,
                                                      input_context=ctx)) == 2


def test_fixmatch_dataset_zips_labeled_and_unlabeled(split_dir):
    batch = _first(pipelines.fixmatch_dataset(split_dir, image_size=SIZE, batch_size=2,
                                              uratio=3, strong=_invert,
                                              image_dtype=tf.float32))
    assert set(batch) == {"image", "label", "unsup_image", "unsup_aug_image"}
    assert batch["image"].shape[0] == 2 and batch["unsup_image"].shape[0] == 6
    np.testing.assert_allclose(batch["unsup_aug_image"], -batch["unsup_image"], atol=1e-6)


@pytest.mark.parametrize("strong_labeled", [False, True])
def test_strong_labeled_gives_labeled_images_the_strong_view(split_dir, strong_labeled):
    black = _first(pipelines.fixmatch_dataset(split_dir, image_size=SIZE, batch_size=2, uratio=1,
                                              strong=tf.zeros_like, image_dtype=tf.float32,
                                              strong_labeled=strong_labeled))
    np.testing.assert_array_equal(black["unsup_aug_image"], -1.0)
    assert bool(np.all(black["image"] == -1.0)) == strong_labeled


def test_input_hparams_switch_flip_and_scaling(split_dir):
    raw = _first(pipelines.eval_dataset(split_dir, image_size=SIZE, batch_size=7,
                                        hparams_input={"scale_and_center": False},
                                        image_dtype=tf.float32))
    scaled = _first(pipelines.eval_dataset(split_dir, image_size=SIZE, batch_size=7,
                                           image_dtype=tf.float32))
    assert raw["image"].max() > 1.0 and raw["image"].max() <= 255.0
    np.testing.assert_allclose(raw["image"] / 127.5 - 1, scaled["image"], atol=1e-6)
    hp = {"use_default_augment": False, "saturate_uint8": True, "scale_and_center": True,
          "image_size": SIZE}
    bf16 = _first(pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=2,
                                            hparams_input=hp, image_dtype=tf.bfloat16))
    assert bf16["image"].dtype == tf.bfloat16.as_numpy_dtype


def test_uint8_output_defers_scaling_to_the_consumer(split_dir):
    raw = _first(pipelines.eval_dataset(split_dir, image_size=SIZE, batch_size=7,
                                        image_dtype=tf.uint8))
    scaled = _first(pipelines.eval_dataset(split_dir, image_size=SIZE, batch_size=7,
                                           image_dtype=tf.float32))
    assert raw["image"].dtype == np.uint8
    np.testing.assert_array_equal(weak.scale_and_center(raw["image"]).numpy(), scaled["image"])
    pair = _first(pipelines.unlabeled_dataset(split_dir, image_size=SIZE, batch_size=4,
                                              strong=_invert, image_dtype="uint8"))
    np.testing.assert_array_equal(pair["unsup_aug_image"], 255 - pair["unsup_image"])


def test_bad_arguments_fail_before_work(split_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="labeled.tfrecord-"):
        pipelines.labeled_dataset(str(tmp_path), image_size=SIZE, batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        pipelines.eval_dataset(split_dir, image_size=SIZE, batch_size=0)
    with pytest.raises(ValueError, match="'flip'"):
        pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=2,
                                  hparams_input={"flip": True})
    with pytest.raises(ValueError, match="disagrees"):
        pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=2,
                                  hparams_input={"image_size": 224})
    with pytest.raises(ValueError, match="strong="):
        pipelines.unlabeled_dataset(split_dir, image_size=SIZE, batch_size=2, strong=None)
    with pytest.raises(TypeError, match="strong"):
        pipelines.unlabeled_dataset(split_dir, image_size=SIZE, batch_size=2, strong="ra")
    with pytest.raises(ValueError, match="uint8"):
        pipelines.unlabeled_dataset(split_dir, image_size=SIZE, batch_size=2, strong=_invert,
                                    hparams_input={"saturate_uint8": False})
    with pytest.raises(ValueError, match="image_dtype must be .* got 'int32'"):
        pipelines.eval_dataset(split_dir, image_size=SIZE, batch_size=2, image_dtype="int32")
    with pytest.raises(ValueError, match="saturate_uint8"):
        pipelines.eval_dataset(split_dir, image_size=SIZE, batch_size=2, image_dtype=tf.uint8,
                               hparams_input={"saturate_uint8": False})
    ctx = tf.distribute.InputContext(num_input_pipelines=3, input_pipeline_id=0)
    with pytest.raises(ValueError, match="2 labeled shards"):
        pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=2, input_context=ctx)


_MIRRORED_SCRIPT = textwrap.dedent("""
    import functools, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from fixmatch.data import pipelines
    split_dir = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    train = pipelines.distribute(strategy, functools.partial(
        pipelines.unlabeled_dataset, split_dir, image_size=8, strong=lambda x: 255 - x),
        global_batch_size=6)
    batch = next(iter(train))
    for key in ("unsup_image", "unsup_aug_image"):
        shapes = [tuple(t.shape) for t in strategy.experimental_local_results(batch[key])]
        assert shapes == [(3, 8, 8, 3)] * 2, shapes
    evals = pipelines.distribute(strategy, functools.partial(
        pipelines.eval_dataset, split_dir, image_size=8), global_batch_size=4)
    labels = []
    for batch in evals:
        for part in strategy.experimental_local_results(batch["label"]):
            assert part.shape[0] <= 2, part.shape
            labels += part.numpy().tolist()
    assert sorted(labels) == list(range(7)), labels
    from fixmatch.augment.ctaugment import CTAPolicy
    policy = CTAPolicy()  # host-local: created outside the strategy scope
    probes = pipelines.distribute(strategy, functools.partial(
        pipelines.labeled_dataset, split_dir, image_size=8, probe=policy.probe),
        global_batch_size=4)
    batch = next(iter(probes))
    for key, shape in (("image", (2, 8, 8, 3)), ("probe_image", (2, 8, 8, 3)),
                       ("probe_op_indices", (2, 2)), ("label", (2,))):
        shapes = [tuple(t.shape) for t in strategy.experimental_local_results(batch[key])]
        assert shapes == [shape] * 2, (key, shapes)
    print("MIRRORED-OK")
""")


def test_per_replica_batches_under_mirrored_strategy(split_dir):
    # Logical CPU devices must be configured before TF initialises: own process.
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT, split_dir], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MIRRORED-OK" in proc.stdout


def test_crop_min_area_reaches_the_weak_crop(split_dir, monkeypatch):
    seen = []
    real = pipelines.weak.weak_from_jpeg

    def recording(encoded, **kw):
        seen.append(kw["min_area"])
        return real(encoded, **kw)

    monkeypatch.setattr(pipelines.weak, "weak_from_jpeg", recording)
    ds = pipelines.fixmatch_dataset(split_dir, image_size=SIZE, batch_size=2, uratio=1,
                                    strong=lambda x: x, hparams_input={"crop_min_area": 0.4})
    next(iter(ds))
    assert seen == [0.4, 0.4]  # traced once for the labeled, once for the unlabeled stream
    seen.clear()
    next(iter(pipelines.fixmatch_dataset(split_dir, image_size=SIZE, batch_size=2, uratio=1,
                                         strong=lambda x: x, hparams_input={"crop_min_area": 0.4},
                                         unlabeled_crop_min_area=0.9)))
    assert seen == [0.4, 0.9]  # fixmatch.unlabeled_crop_min_area: the unlabeled stream only
    seen.clear()
    next(iter(pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=2)))
    assert seen == [0.08]  # the reference's Inception crop by default
    with pytest.raises(ValueError, match="crop_min_area"):
        pipelines.labeled_dataset(split_dir, image_size=SIZE, batch_size=2,
                                  hparams_input={"crop_min_area": 0})
