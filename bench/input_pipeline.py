"""Input-pipeline throughput: FixMatch's weak+strong views vs. decode+crop+resize+flip alone.

Generates ImageNet-like JPEGs (about 500x375, smooth multi-scale noise plus random shapes plus
sensor-like grain, quality 92, ~90 KiB, so decode cost resembles real photos) into a split
directory and measures, in one process:

  (a) baseline   TFRecord read + parse + fused decode/random crop + bicubic resize + flip + batch
  (b) labeled    fixmatch.data.pipelines.labeled_dataset (weak view)
  (c) unlabeled  pipelines.unlabeled_dataset with RandAugment: weak + strong view per image
  (d) unlabeled  pipelines.unlabeled_dataset with CTAugment (CTAPolicy.strong)
  plus diagnostics: (c0) unlabeled with an identity strong op (cost of the second view alone),
  (cf) = (c) with float32 output scaled to [-1, 1] on the host (the pre-default path),
  (c-)/(d-) = (c)/(d) with prob_to_apply 0: policy sampling + the op switch dispatching to
  Identity, i.e. the policy's fixed cost; the rest of (c)/(d) is the ops themselves.
(b), (c), (d) run the pipelines exactly as training uses them: uint8 batches (the engine scales
them to [-1, 1] inside its compiled step, on the accelerator).

Throughput is counted in *source images* (one unlabeled element = one decoded image = two
views). The machine is shared, so cases run interleaved for several rounds and medians are
reported, both as wall-clock images/s and as images per CPU-second of this process ("per core",
the contention-robust number: it does not change when other processes steal the cores). Ratios
to (a) are printed for both. The per-op cost table of bench/op_costs.py follows when available.
The header names the CPU and whether oneDNN is on (bench/machine.py), which moves the ratios.

    python bench/input_pipeline.py [--images 300] [--rounds 5] [--batches 20] [--batch_size 32]
                                   [--image_size 224] [--threads 0] [--skip_op_table]
                                   [--op_table_repeats 100] [--op_table_rounds 3]
                                   [--warmup_rounds 1]
"""

import argparse
import io
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from bench import machine  # noqa: E402
from fixmatch.augment import weak  # noqa: E402
from fixmatch.data import pipelines, schema  # noqa: E402

_SHAPES = ((500, 375), (375, 500), (500, 333), (500, 400), (450, 338), (333, 500))


def natural_jpeg(rng, width, height, *, quality=92, grain=12.0):
    """One photo-like JPEG: smooth colour fields at several scales, shapes, fine grain."""
    field = np.zeros((height, width, 3), np.float32)
    for cells, amplitude in ((3, 70.0), (9, 35.0), (30, 18.0), (90, 10.0), (200, 6.0)):
        grid = rng.normal(0.0, 1.0, size=(cells, max(2, cells * width // height), 3))
        layer = np.stack([np.asarray(Image.fromarray(grid[..., c].astype(np.float32), mode="F")
                                     .resize((width, height), Image.BICUBIC))
                          for c in range(3)], axis=-1)
        field += amplitude * layer
    field += rng.uniform(60, 190, size=3)
    image = Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(20, width // 2)), y0 + int(rng.integers(20, height // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        else:
            draw.polygon([(x0, y0), (x1, y0 + 10), (x0 + 15, y1)], fill=colour)
    pixels = np.asarray(image, np.float32) + rng.normal(0.0, grain, size=(height, width, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue(), height, width


def write_split(directory, num_images, *, shards=8, seed=0):
    """labeled/unlabeled/validation shards over the same generated images; returns mean KiB."""
    rng = np.random.default_rng(seed)
    images = [natural_jpeg(rng, *_SHAPES[i % len(_SHAPES)]) for i in range(num_images)]
    for set_name in schema.SETS:
        writers = [tf.io.TFRecordWriter(os.path.join(
            directory, f"{set_name}.tfrecord-{k:05d}-of-{shards:05d}")) for k in range(shards)]
        for i, (encoded, height, width) in enumerate(images):
            writers[i % shards].write(schema.make_example(
                encoded=encoded, filename=f"img_{i}.JPEG", label=i % 10, synset=f"c{i % 10}",
                height=height, width=width))
        for writer in writers:
            writer.close()
    return sum(len(e) for e, _, _ in images) / len(images) / 1024


def baseline_dataset(split_dir, *, image_size, batch_size):
    """(a): the least work any FixMatch pipeline must do, with the same fused crop."""
    files = sorted(tf.io.gfile.glob(schema.shard_glob(split_dir, schema.UNLABELED)))
    spec = {schema.ENCODED: schema.parse_spec()[schema.ENCODED]}

    @tf.autograph.experimental.do_not_convert
    def decode(serialized):
        encoded = tf.io.parse_single_example(serialized, spec)[schema.ENCODED]
        return weak.weak_from_jpeg(encoded, image_size=image_size)

    ds = tf.data.Dataset.from_tensor_slices(files).repeat().interleave(
        tf.data.TFRecordDataset, cycle_length=len(files), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _strong_policies():
    """{case key: (label, strong callable)} for the policies that are importable."""
    found = {}
    try:
        from fixmatch.augment.randaugment import RandAugment
        found["c"] = ("unlabeled + RandAugment", RandAugment())
    except ImportError as err:
        print(f"(c) skipped: {err}")
    try:
        from fixmatch.augment.ctaugment import CTAPolicy
        found["d"] = ("unlabeled + CTAugment", CTAPolicy().strong)
    except ImportError as err:
        print(f"(d) skipped: {err}")
    return found


def build_cases(split_dir, *, image_size, batch_size):
    """Ordered {key: (label, dataset)}."""
    common = dict(image_size=image_size, batch_size=batch_size)
    cases = {
        "a": ("baseline decode+crop+resize+flip", baseline_dataset(split_dir, **common)),
        "b": ("labeled (weak)", pipelines.labeled_dataset(split_dir, **common)),
        "c0": ("unlabeled + identity strong", pipelines.unlabeled_dataset(
            split_dir, strong=tf.identity, **common)),
    }
    policies = _strong_policies()
    for key, (label, strong) in policies.items():
        cases[key] = (label, pipelines.unlabeled_dataset(split_dir, strong=strong, **common))
    if "c" in policies:
        cases["cf"] = ("(c), float32 out (scale on host)", pipelines.unlabeled_dataset(
            split_dir, strong=policies["c"][1], image_dtype=tf.float32, **common))
        from fixmatch.augment.randaugment import RandAugment
        cases["c-"] = ("(c), no layer applied (dispatch)", pipelines.unlabeled_dataset(
            split_dir, strong=RandAugment(prob_to_apply=0.0), **common))
    if "d" in policies:
        from fixmatch.augment.ctaugment import CTAPolicy
        cases["d-"] = ("(d), no layer applied (dispatch)", pipelines.unlabeled_dataset(
            split_dir, strong=CTAPolicy(prob_to_apply=0.0).strong, **common))
    return cases


def _with_threads(ds, threads):
    if not threads:
        return ds
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return ds.with_options(options)


def measure(dataset, *, warmup, batches, batch_size):
    """(source images per wall second, per CPU second) over `batches` batches.

    A fresh iterator per measurement: an idle iterator keeps prefetching in the background, so
    a reused one would hand out a full buffer for free. The first `warmup` batches (pipeline
    start, autotuning) are not timed; the iterator is dropped afterwards so that no other
    pipeline's threads run while the next case is measured.
    """
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    del iterator
    images = batches * batch_size
    return images / wall, images / max(cpu, 1e-9)


def run(*, num_images, rounds, batches, batch_size, image_size, threads, workdir,
        warmup_rounds=1):
    kib = write_split(workdir, num_images)
    cases = build_cases(workdir, image_size=image_size, batch_size=batch_size)
    samples = {key: [] for key in cases}
    for round_index in range(warmup_rounds + rounds):  # warm-up rounds are not counted
        for key, (_, ds) in cases.items():
            sample = measure(_with_threads(ds, threads), warmup=3, batches=batches,
                             batch_size=batch_size)
            if round_index >= warmup_rounds:
                samples[key].append(sample)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(machine.header())
    print(f"{num_images} generated JPEGs (mean {kib:.0f} KiB, ~500x375) -> {image_size}x"
          f"{image_size}; batch {batch_size}; {rounds} interleaved rounds x {batches} batches; "
          f"{cores} cores visible, load avg {os.getloadavg()[0]:.1f}; medians")
    header = (f"{'case':<40}{'img/s':>9}{'ratio':>8}{'img/core-s':>12}{'ratio':>8}")
    print(header)
    print("-" * len(header))
    base_wall = statistics.median(s[0] for s in samples["a"])
    base_cpu = statistics.median(s[1] for s in samples["a"])
    results = {}
    for key, (label, _) in cases.items():
        wall = statistics.median(s[0] for s in samples[key])
        cpu = statistics.median(s[1] for s in samples[key])
        results[key] = (wall, wall / base_wall, cpu, cpu / base_cpu)
        print(f"({key}) {label:<{36 - len(key)}}{wall:>9.1f}{wall / base_wall:>8.2f}{cpu:>12.1f}"
              f"{cpu / base_cpu:>8.2f}")
    print("ratio = per source image relative to (a); (c)/(d) produce two views per image; "
          "target (c), (d) >= 0.75")
    return results


def print_op_costs(image_size, repeats, rounds=3):
    try:
        from bench.op_costs import op_cost_table
    except ImportError as err:
        print(f"\nper-op cost table unavailable: {err}")
        return
    table = op_cost_table(image_size=image_size, repeats=repeats, rounds=rounds)
    overhead = dict(table).get("Identity", 0.0)
    print(f"\nper-op cost, us per {image_size}x{image_size} image, one core, inside tf.data")
    print(f"{'op':<40}{'us/image':>10}{'minus Identity':>16}")
    for name, micros in table:
        print(f"{name:<40}{micros:>10.1f}{micros - overhead:>16.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300, help="generated JPEGs")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--warmup_rounds", type=int, default=1, help="uncounted rounds first")
    parser.add_argument("--batches", type=int, default=20,
                        help="batches per measurement (fewer measure the start-up of the "
                             "pipelines' 1,024-record shuffle buffer, not their steady state)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=0,
                        help="tf.data private threadpool size per pipeline (0 = TF default)")
    parser.add_argument("--op_table_repeats", type=int, default=100)
    parser.add_argument("--op_table_rounds", type=int, default=3)
    parser.add_argument("--skip_op_table", action="store_true")
    parser.add_argument("--workdir", default=None, help="keep the generated split here")
    args = parser.parse_args(argv)
    for name in ("images", "rounds", "batches", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)!r}")
    kwargs = dict(num_images=args.images, rounds=args.rounds, batches=args.batches,
                  batch_size=args.batch_size, image_size=args.image_size, threads=args.threads,
                  warmup_rounds=args.warmup_rounds)
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        results = run(workdir=args.workdir, **kwargs)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_input_") as workdir:
            results = run(workdir=workdir, **kwargs)
    if not args.skip_op_table:
        print_op_costs(args.image_size, args.op_table_repeats, args.op_table_rounds)
    return results  # {case key: (img/s, ratio, img/core-s, ratio)}


if __name__ == "__main__":
    main()
