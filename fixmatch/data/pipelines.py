"""tf.data input pipelines over the TFRecords of a split directory.

Three streams, as in the reference (spec section 3):

* ``labeled_dataset``: weak view (or a strong view for supervised RA/CTA
  training), optionally CTAugment probe images with their recorded ops.
* ``unlabeled_dataset``: each record decoded once; the weak view and the strong
  view share the crop and the flip because the strong ops are applied on top
  of the weak uint8 image.
* ``eval_dataset``: center crop, file order, every image exactly once, the last
  partial batch kept.

Why the pipeline looks the way it does (profiled with bench/input_pipeline.py
on ~500x375 JPEGs, CPU time per source image on this project's 2-core
machine): decode + crop + bicubic resize + flip ~1.6 ms, so the decode is fused
with the crop (see ``fixmatch.augment.weak``) and done once per record even
when the crop falls back to the center; records are shuffled while still
serialized (cheap to copy); images stay uint8 until after ``batch`` so batching
copies 4x fewer bytes; by default the batches stay uint8 and the training
engine scales them inside its compiled step (``fixmatch.train.steps
.model_inputs``), which saves the host ~0.17 ms per view and moves 4x fewer
bytes to the accelerator (``image_dtype=tf.float32`` scales once per batch on
the host instead); only the two features that are used are parsed.
The strong policies run inside the same per-record map as the weak view, on
the uint8 image: ~0.1 ms per image of fixed cost (sampling, and the 16/19-way
op switch, whose branches are non-inlined calls so untaken ops cost nothing;
see ``fixmatch.augment.registry.apply_indexed``) plus ~0.4 ms of ops on average
for either policy (bench/input_pipeline.py rows (c0), (c-)/(d-), (c)/(d)).

Batch sizes: every function takes the batch size *this pipeline* emits. Under
a distribution strategy use ``distribute``, which asks the strategy for the
per-replica batch size and passes the ``tf.distribute.InputContext`` along so
files are sharded when there are several input pipelines (multi-host).
"""

import tensorflow as tf

from fixmatch.augment import weak
from fixmatch.data import schema
from fixmatch.data import split_dir as split_dir_lib

#: Reference values (spec section 3.2).
SHUFFLE_BUFFER = 1024
INTERLEAVE_CYCLE = 16
READ_BUFFER_BYTES = 16 * 1024 * 1024

_INPUT_DEFAULTS = {"saturate_uint8": True, "scale_and_center": True,
                   "use_default_augment": True, "crop_min_area": weak.AREA_RANGE[0]}
_AUTOTUNE = tf.data.AUTOTUNE

# The map functions (and every augmentation they call) are plain graph code without Python
# control flow on tensors, so AutoGraph has nothing to convert; skipping its source
# transformation makes building a RandAugment/CTAugment pipeline several times faster (the
# policies trace 16-19 ops per layer).
_graph_function = tf.autograph.experimental.do_not_convert


# --------------------------------------------------------------------------
# Validation


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _input_options(hparams_input, image_size):
    """Merge the ``input`` hparams over the reference defaults, checking keys."""
    opts = dict(_INPUT_DEFAULTS)
    if hparams_input is None:
        return opts
    if not isinstance(hparams_input, dict):
        raise ValueError(f"hparams_input must be a dict (hparams['input']), got {hparams_input!r}")
    for key, value in hparams_input.items():
        if key == "image_size":
            if value != image_size:
                raise ValueError(
                    f"hparams_input['image_size']={value!r} disagrees with image_size="
                    f"{image_size!r}; pass the same value to both")
            continue
        if key not in opts:
            raise ValueError(f"unknown hparams_input key {key!r}; known: "
                             f"{sorted(opts) + ['image_size']}")
        if key == "crop_min_area":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    0 < value <= 1):
                raise ValueError(f"hparams_input['crop_min_area'] must be in (0, 1], got "
                                 f"{value!r}")
        elif not isinstance(value, bool):
            raise ValueError(f"hparams_input[{key!r}] must be true/false, got {value!r}")
        opts[key] = value
    return opts


def _check_callable(name, fn):
    if fn is not None and not callable(fn):
        raise TypeError(f"{name} must be a callable on one uint8 image, got {fn!r}")


# --------------------------------------------------------------------------
# Records


def _records(split_dir, set_name, *, training, input_context, seed):
    """Serialized Examples: sharded per input pipeline; shuffled+repeated if training."""
    files = split_dir_lib.shard_files(split_dir, set_name)
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    shard_records = False
    if pipelines > 1 and len(files) < pipelines:
        if training:
            raise ValueError(
                f"{len(files)} {set_name} shards in {split_dir!r} cannot be split over "
                f"{pipelines} input pipelines; write at least {pipelines} shards")
        shard_records = True  # eval: keep exactly-once by sharding records instead
    ds = tf.data.Dataset.from_tensor_slices(files)
    if pipelines > 1 and not shard_records:
        ds = ds.shard(pipelines, pipeline_id)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.interleave(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=READ_BUFFER_BYTES),
        cycle_length=min(INTERLEAVE_CYCLE, len(files)),
        num_parallel_calls=_AUTOTUNE,
        deterministic=not training)
    if shard_records:
        ds = ds.shard(pipelines, pipeline_id)
    if training:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    return ds


def _parse(serialized, *extra_keys):
    """The JPEG bytes, the (0-based) label and any `extra_keys`, in that order, from one parse
    of only those features: cheaper than the full spec."""
    spec = schema.parse_spec()
    keys = (schema.ENCODED, schema.LABEL) + extra_keys
    features = tf.io.parse_single_example(serialized, {k: spec[k] for k in keys})
    return tuple(features[k] for k in keys)


def _image_dtype(image_dtype, opts):
    """float32/bfloat16/float16, or uint8 = leave 0..255 pixels for on-device scaling.

    None (the default) is uint8 whenever the images are saturated to uint8 (the
    training engine scales them inside its compiled step, ``fixmatch.train.steps
    .model_inputs``), else float32 scaled on the host as the hparams say.
    """
    if image_dtype is None:
        return tf.uint8 if opts["saturate_uint8"] else tf.float32
    try:
        dtype = tf.as_dtype(image_dtype)
    except TypeError:
        dtype = None
    if dtype not in (tf.float32, tf.bfloat16, tf.float16, tf.uint8):
        raise ValueError(f"image_dtype must be float32, bfloat16, float16 or uint8, "
                         f"got {image_dtype!r}")
    if dtype == tf.uint8 and not opts["saturate_uint8"]:
        raise ValueError("image_dtype=uint8 needs saturate_uint8=True (unsaturated bicubic "
                         "output is float)")
    return dtype


def _finish(ds, *, batch_size, training, float_keys, opts, image_dtype):
    """Batch (uint8), then convert/scale every image key once per batch.

    With ``image_dtype=tf.uint8`` the batches keep raw 0..255 pixels: the
    consumer applies ``weak.scale_and_center`` on the accelerator, which saves
    the host about 0.17 ms per 224x224 view (measured, bench/input_pipeline.py)
    and moves 4x fewer bytes to the device.
    """
    # A plain batch: its copy is cheap next to the per-image map, and a parallel batch's copy
    # threads compete with the map's for the cores (measured: -3% per core, -5% wall-clock on
    # the unlabeled pipeline with 2 cores).
    ds = ds.batch(batch_size, drop_remainder=training)

    @_graph_function
    def to_model_inputs(batch):
        out = dict(batch)
        for key in float_keys:
            if opts["scale_and_center"]:
                out[key] = weak.scale_and_center(batch[key], image_dtype)
            else:
                out[key] = tf.cast(batch[key], image_dtype)
        return out

    if image_dtype != tf.uint8:
        ds = ds.map(to_model_inputs, num_parallel_calls=_AUTOTUNE, deterministic=not training)
    ds = ds.prefetch(_AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = not training
    return ds.with_options(options)


def _weak(encoded, image_size, opts):
    return weak.weak_from_jpeg(encoded, image_size=image_size,
                               flip=opts["use_default_augment"],
                               saturate_uint8=opts["saturate_uint8"],
                               min_area=float(opts["crop_min_area"]))


def _needs_uint8(opts, **callables):
    used = [name for name, fn in callables.items() if fn is not None]
    if used and not opts["saturate_uint8"]:
        raise ValueError(f"{' and '.join(used)} need uint8 images; "
                         f"saturate_uint8=False is only valid without them")


# --------------------------------------------------------------------------
# Public pipelines


def labeled_dataset(split_dir, *, image_size, batch_size, training=True, strong=None,
                    probe=None, hparams_input=None, input_context=None, seed=None,
                    image_dtype=None):
    """Labeled stream of dicts ``{"image": [B,S,S,3], "label": int64 [B]}``.

    ``strong``: optional callable uint8 image -> uint8 image (RandAugment,
    ``CTAPolicy.strong``); when given it *replaces* the training image
    (supervised training with RA/CTA). ``probe``: optional callable uint8 image
    -> (image, op_indices int32 [k], levels float32 [k]) (``CTAPolicy.probe``);
    it adds ``probe_image``, ``probe_op_indices``, ``probe_op_args``, made from
    the weak view. ``training=False`` gives weak-free center crops in file
    order (use ``eval_dataset`` for the validation set). ``hparams_input``:
    the ``input`` hparams (saturate_uint8, scale_and_center,
    use_default_augment). ``seed`` seeds the file and record shuffles only.
    Images are uint8 0..255 by default, scaled on the device by the engine
    (``image_dtype=None``); ``image_dtype=tf.float32`` (or bfloat16/float16)
    scales them on the host instead: [-1, 1], or 0..255 floats when
    ``scale_and_center`` is false.
    """
    _positive_int("image_size", image_size)
    _positive_int("batch_size", batch_size)
    _check_callable("strong", strong)
    _check_callable("probe", probe)
    opts = _input_options(hparams_input, image_size)
    _needs_uint8(opts, strong=strong, probe=probe)
    image_dtype = _image_dtype(image_dtype, opts)
    if not training and (strong is not None or probe is not None):
        raise ValueError("strong/probe augmentations are for training=True only")

    @_graph_function
    def preprocess(serialized):
        encoded, label = _parse(serialized)
        if not training:
            return {"image": weak.center_from_jpeg(encoded, image_size=image_size,
                                                   saturate_uint8=opts["saturate_uint8"]),
                    "label": label}
        image = _weak(encoded, image_size, opts)
        out = {"image": strong(image) if strong is not None else image, "label": label}
        if probe is not None:
            probe_image, op_indices, levels = probe(image)
            out.update(probe_image=probe_image,
                       probe_op_indices=tf.cast(op_indices, tf.int32),
                       probe_op_args=tf.cast(levels, tf.float32))
        return out

    ds = _records(split_dir, schema.LABELED, training=training,
                  input_context=input_context, seed=seed)
    ds = ds.map(preprocess, num_parallel_calls=_AUTOTUNE, deterministic=not training)
    keys = ("image", "probe_image") if probe is not None else ("image",)
    return _finish(ds, batch_size=batch_size, training=training, float_keys=keys,
                   opts=opts, image_dtype=image_dtype)


def unlabeled_dataset(split_dir, *, image_size, batch_size, strong, hparams_input=None,
                      input_context=None, seed=None, image_dtype=None, with_labels=False):
    """Unlabeled stream of dicts ``{"unsup_image", "unsup_aug_image"}``, each [B,S,S,3].

    Every record is decoded once; ``unsup_image`` is its weak view and
    ``unsup_aug_image`` is ``strong(weak view)``, so both share crop and flip
    (spec section 4.1). Always a training stream. The label is discarded, unless
    ``with_labels``: then ``unsup_label`` carries it, for diagnostics only (the
    pseudo-label accuracy; training never reads it).
    """
    _positive_int("image_size", image_size)
    _positive_int("batch_size", batch_size)
    if strong is None:
        raise ValueError("unlabeled_dataset needs strong= (RandAugment or CTAPolicy.strong)")
    _check_callable("strong", strong)
    opts = _input_options(hparams_input, image_size)
    _needs_uint8(opts, strong=strong)
    image_dtype = _image_dtype(image_dtype, opts)

    @_graph_function
    def preprocess(serialized):
        encoded, label = _parse(serialized)
        image = _weak(encoded, image_size, opts)
        out = {"unsup_image": image, "unsup_aug_image": strong(image)}
        if with_labels:
            out["unsup_label"] = label
        return out

    ds = _records(split_dir, schema.UNLABELED, training=True,
                  input_context=input_context, seed=seed)
    ds = ds.map(preprocess, num_parallel_calls=_AUTOTUNE, deterministic=False)
    return _finish(ds, batch_size=batch_size, training=True,
                   float_keys=("unsup_image", "unsup_aug_image"), opts=opts,
                   image_dtype=image_dtype)


def eval_dataset(split_dir, *, image_size, batch_size, input_context=None,
                 hparams_input=None, image_dtype=None, with_filenames=False,
                 max_examples=None):
    """Validation stream ``{"image", "label"}``: center crop, file order, last batch kept.

    Every validation image appears exactly once per iteration (also across
    input pipelines: files, or records when there are fewer files than
    pipelines, are split between them). ``with_filenames`` adds ``filename``
    (the record's image/filename), to name per-image predictions. ``max_examples``
    keeps about that many (each input pipeline its share), for a cheaper evaluation
    during training on a large validation set.
    """
    _positive_int("image_size", image_size)
    _positive_int("batch_size", batch_size)
    opts = _input_options(hparams_input, image_size)
    image_dtype = _image_dtype(image_dtype, opts)

    @_graph_function
    def preprocess(serialized):
        encoded, label, *filename = _parse(
            serialized, *((schema.FILENAME,) if with_filenames else ()))
        out = {"image": weak.center_from_jpeg(encoded, image_size=image_size,
                                              saturate_uint8=opts["saturate_uint8"]),
               "label": label}
        if with_filenames:
            out["filename"] = filename[0]
        return out

    ds = _records(split_dir, schema.VALIDATION, training=False,
                  input_context=input_context, seed=None)
    if max_examples is not None:
        pipelines = input_context.num_input_pipelines if input_context else 1
        ds = ds.take(max(1, max_examples // pipelines))
    ds = ds.map(preprocess, num_parallel_calls=_AUTOTUNE, deterministic=True)
    return _finish(ds, batch_size=batch_size, training=False, float_keys=("image",),
                   opts=opts, image_dtype=image_dtype)


def fixmatch_dataset(split_dir, *, image_size, batch_size, uratio, strong, probe=None,
                     hparams_input=None, input_context=None, seed=None,
                     image_dtype=None, with_labels=False, strong_labeled=False,
                     unlabeled_crop_min_area=None):
    """Zip of labeled (B weak, optional probes) and unlabeled (uratio*B pairs) streams.

    One dict per step with ``image, label, unsup_image, unsup_aug_image`` (and
    the probe keys when ``probe`` is given): the per-step keys of spec 3.2;
    ``with_labels`` adds ``unsup_label`` (see ``unlabeled_dataset``);
    ``strong_labeled`` gives the labeled images ``strong`` too (the reference keeps them weak);
    ``unlabeled_crop_min_area`` replaces ``crop_min_area`` for the unlabeled stream only.
    """
    _positive_int("uratio", uratio)
    _positive_int("batch_size", batch_size)
    common = dict(image_size=image_size, hparams_input=hparams_input,
                  input_context=input_context, seed=seed, image_dtype=image_dtype)
    labeled = labeled_dataset(split_dir, batch_size=batch_size, probe=probe,
                              strong=strong if strong_labeled else None, **common)
    if unlabeled_crop_min_area is not None:
        common["hparams_input"] = dict(hparams_input or {},
                                       crop_min_area=unlabeled_crop_min_area)
    unlabeled = unlabeled_dataset(split_dir, batch_size=batch_size * uratio,
                                  strong=strong, with_labels=with_labels, **common)
    return tf.data.Dataset.zip((labeled, unlabeled)).map(
        lambda lab, unl: {**lab, **unl}).prefetch(_AUTOTUNE)


def distribute(strategy, dataset_fn, *, global_batch_size):
    """Distributed dataset whose replicas each receive per-replica batches.

    ``dataset_fn(batch_size=..., input_context=...)`` builds one pipeline, e.g.
    ``functools.partial(labeled_dataset, split_dir, image_size=224)``; it is
    called once per input pipeline with ``ctx.get_per_replica_batch_size`` and
    the context, so files are sharded across hosts.
    """
    _positive_int("global_batch_size", global_batch_size)
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f"global_batch_size={global_batch_size} is not divisible by "
                         f"the {replicas} replicas of {type(strategy).__name__}")

    def per_pipeline(ctx):
        return dataset_fn(batch_size=ctx.get_per_replica_batch_size(global_batch_size),
                          input_context=ctx)

    return strategy.distribute_datasets_from_function(per_pipeline)
