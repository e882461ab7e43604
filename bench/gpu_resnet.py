"""Training throughput (images/s) of the reference ResNet-50 on one accelerator.

Usage (what bench/gpu.sh runs):
    python bench/gpu_resnet.py                      # ResNet-50, 224 px, bfloat16, XLA, batch 256
    python bench/gpu_resnet.py --batch_size 128 --steps 200 --no-xla
    python bench/gpu_resnet.py --program fixmatch   # FixMatch step, uratio 5: synthetic + real input
    python bench/gpu_resnet.py --smoke [--program fixmatch]   # CPU check: resnet_tiny, 32 px

What is timed: the training engine's own step (fixmatch.train.timing, wired as the engine wires
it: forward, loss incl. L2, backward, SGD-Nesterov update, EMA of all variables; a block of
steps runs in one compiled function). Supervised: synthetic data only, which isolates the step
from JPEG decoding and augmentation, as the public anchor does: NVIDIA's TensorFlow ResNet-50
reaches about 2,400 images/s on one A100 with mixed precision and XLA.

FixMatch (--program fixmatch): one forward pass over B labeled + uratio*B weak + uratio*B strong
images per step (spec section 6), timed twice: on synthetic uint8 batches, then fed by the real
input pipeline (fixmatch.data.pipelines.fixmatch_dataset with RandAugment, as training runs it)
over generated ImageNet-like JPEGs (bench/input_pipeline.py's generator). The pipeline is also
timed alone, with the CPU cores it kept busy; the step is input-bound when the pipeline alone
delivers fewer images/s than the step consumes on synthetic data. images/s counts images through
the model (B * (1 + 2 * uratio) per step). Warm-up steps (tracing, XLA compilation, cuDNN
autotuning) are excluded from every timing. One device only, like the anchor; multi-GPU training
goes through the engine's strategy selection instead.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after the log level, which TensorFlow reads at import)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fixmatch.models import build_model  # noqa: E402
from fixmatch.train import timing  # noqa: E402

ANCHOR_IMAGES_PER_SECOND = 2400
ANCHOR = ("NVIDIA's TensorFlow ResNet-50 reaches about 2,400 images/s on one A100 "
          "with mixed precision and XLA")
SMOKE = dict(model="resnet_tiny", image_size=32, batch_size=16, num_classes=10,
             warmup_steps=2, steps=4)
#: FixMatch defaults: 32 labeled images per step, the reference's per-core batch on TPU.
FIXMATCH = dict(batch_size=32, steps=50)
FIXMATCH_SMOKE = dict(batch_size=4, images=24, pipeline_batches=3)


def parse_args(argv):
    # No abbreviations: --smoke must see exactly which flags were given explicitly.
    parser = argparse.ArgumentParser(
        description="ResNet training images/s on synthetic data (" + ANCHOR + ").",
        allow_abbrev=False)
    parser.add_argument("--program", choices=("supervised", "fixmatch"), default="supervised",
                        help="fixmatch: the FixMatch step, on synthetic and on real input")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=None, help="labeled images per "
                        "step (default 256; FixMatch 32, plus uratio x as many unlabeled)")
    parser.add_argument("--uratio", type=int, default=5, help="FixMatch: unlabeled/labeled")
    parser.add_argument("--images", type=int, default=512, help="FixMatch: generated JPEGs "
                        "the real input pipeline reads (repeated)")
    parser.add_argument("--pipeline_batches", type=int, default=20,
                        help="FixMatch: steps' worth of batches the pipeline is timed alone")
    parser.add_argument("--num_classes", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100, help="timed steps")
    parser.add_argument("--warmup_steps", type=int, default=20, help="untimed steps first")
    parser.add_argument("--bfloat16", action=argparse.BooleanOptionalAction, default=True,
                        help="mixed bfloat16 compute, float32 variables and logits")
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=True,
                        help="compile the train step with XLA (jit_compile)")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU check: " + ", ".join(f"{k}={v}" for k, v in SMOKE.items())
                        + " unless given explicitly")
    parser.add_argument("--allow_cpu", action="store_true",
                        help="measure on CPU even without --smoke (ResNet-50 is very slow there)")
    args = parser.parse_args(argv)
    explicit = {a.split("=")[0].lstrip("-") for a in argv if a.startswith("--")}
    fixmatch = args.program == "fixmatch"
    defaults = {"batch_size": 256, **(FIXMATCH if fixmatch else {})}
    if args.smoke:
        defaults.update(SMOKE)
        defaults.update(FIXMATCH_SMOKE if fixmatch else {})
    for key, value in defaults.items():
        if key not in explicit:
            setattr(args, key, value)
    for key in ("image_size", "batch_size", "num_classes", "steps", "uratio", "images",
                "pipeline_batches"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be >= 1, got {getattr(args, key)}")
    if args.warmup_steps < 1:
        parser.error(f"--warmup_steps must be >= 1 (the first step compiles), "
                     f"got {args.warmup_steps}")
    return args


def model_fn(args):
    """The benchmarked model, built twice by the block (online and EMA)."""
    policy = "mixed_bfloat16" if args.bfloat16 else "float32"
    return lambda: build_model(args.model, num_classes=args.num_classes,
                               image_size=args.image_size, dtype_policy=policy)


def synthetic_batches(strategy, *, batch_size, image_size, num_classes, image_dtype):
    """One fixed random batch repeated forever, fed through tf.data like real training."""
    rng = np.random.default_rng(0)
    batch = {"image": tf.cast(rng.uniform(-1.0, 1.0, (batch_size, image_size, image_size, 3))
                              .astype(np.float32), image_dtype),
             "label": tf.constant(rng.integers(0, num_classes, batch_size), tf.int64)}
    dataset = tf.data.Dataset.from_tensors(batch).repeat().prefetch(2)
    return iter(strategy.experimental_distribute_dataset(dataset))


def device_name(args):
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not (args.smoke or args.allow_cpu):
        sys.exit("error: no GPU visible to TensorFlow. This benchmark is meant for a GPU; run "
                 "`bash bench/gpu.sh --smoke` for a quick CPU check, or add --allow_cpu.")
    if not gpus:
        return "CPU"
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{gpus[0].name} ({details.get('device_name', 'unknown GPU')})"


def timed(args, train_block, iterator, label):
    """(seconds per step, mean loss) of `args.steps` steps after `args.warmup_steps`."""
    seconds, loss, warmup = timing.time_block(train_block, iterator,
                                              warmup_steps=args.warmup_steps,
                                              steps_timed=args.steps)
    print(f"{label} warm-up: {args.warmup_steps} steps in {warmup:.1f} s "
          f"(compilation included, not timed)", flush=True)
    if not np.isfinite(loss):
        sys.exit(f"error: training loss became {loss} during the benchmark")
    return seconds, loss


def measure(args):
    """Supervised: (images/s, seconds per step, mean loss) on synthetic data."""
    device = device_name(args)
    keras.utils.set_random_seed(0)
    # Learning rate scaled by batch / 256 as in the reference; the value does not change speed.
    strategy, train_block = timing.build_train_block(
        model_fn=model_fn(args), objective=timing.make_objective("supervised", {}),
        learning_rate=0.1 * args.batch_size / 256, use_xla=args.xla)
    # bfloat16 input images as the reference feeds them with mixed precision (half the copy).
    batches = synthetic_batches(strategy, batch_size=args.batch_size,
                                image_size=args.image_size, num_classes=args.num_classes,
                                image_dtype=tf.bfloat16 if args.bfloat16 else tf.float32)
    print(f"model={args.model} image_size={args.image_size} batch_size={args.batch_size} "
          f"bfloat16={args.bfloat16} xla={args.xla} device={device}", flush=True)
    seconds, loss = timed(args, train_block, batches, "supervised")
    return args.batch_size / seconds, seconds, loss


def pipeline_alone(dataset, *, batches):
    """(batches per wall second, CPU cores kept busy) of the input pipeline with no model:
    a fresh iterator, one untimed batch (start-up, autotuning), then `batches` timed."""
    iterator = iter(dataset)
    next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return batches / wall, cpu / wall


def measure_fixmatch(args):
    """FixMatch: the step on synthetic data, the pipeline alone, the step fed by the pipeline."""
    from bench.input_pipeline import write_split
    from fixmatch.augment.randaugment import RandAugment
    from fixmatch.data import pipelines
    from fixmatch.hparams import resolve

    device = device_name(args)
    keras.utils.set_random_seed(0)
    hp = resolve(program="fixmatch", preset="imagenet",
                 overrides={"augment": {"type": "randaugment"}, "uratio": args.uratio,
                            "input": {"image_size": args.image_size}})
    per_step = args.batch_size * (1 + 2 * args.uratio)
    print(f"program=fixmatch model={args.model} image_size={args.image_size} "
          f"batch_size={args.batch_size} uratio={args.uratio} images_per_step={per_step} "
          f"bfloat16={args.bfloat16} xla={args.xla} device={device}", flush=True)

    def block():
        return timing.build_train_block(
            model_fn=model_fn(args), objective=timing.make_objective("fixmatch", hp),
            learning_rate=0.1 * args.batch_size / 256, use_xla=args.xla)

    strategy, train_block = block()
    synthetic = timing.synthetic_dataset("fixmatch", batch_size=args.batch_size,
                                         image_size=args.image_size,
                                         num_classes=args.num_classes, uratio=args.uratio)
    seconds, _ = timed(args, train_block,
                       iter(strategy.experimental_distribute_dataset(synthetic)), "synthetic")
    synthetic_rate = per_step / seconds
    print(f"synthetic images/s: {synthetic_rate:.1f} ({1000 * seconds:.1f} ms per step)",
          flush=True)

    with tempfile.TemporaryDirectory(prefix="gpu_fixmatch_") as split_dir:
        start = time.perf_counter()
        kib = write_split(split_dir, args.images, shards=min(8, args.images))
        print(f"generated {args.images} ImageNet-like JPEGs ({kib:.0f} KiB each on average) "
              f"in {time.perf_counter() - start:.1f} s", flush=True)
        real = pipelines.fixmatch_dataset(
            split_dir, image_size=args.image_size, batch_size=args.batch_size,
            uratio=args.uratio, strong=RandAugment.from_hparams(hp["augment"]),
            hparams_input=hp["input"])
        steps_per_second, cores = pipeline_alone(real, batches=args.pipeline_batches)
        pipeline_rate = steps_per_second * per_step
        sources = steps_per_second * args.batch_size * (1 + args.uratio)
        print(f"input pipeline alone: {pipeline_rate:.1f} images/s ({sources:.1f} decoded "
              f"source images/s) using {cores:.1f} of {os.cpu_count()} cores", flush=True)
        strategy, train_block = block()  # fresh weights: the synthetic run moved them
        seconds, _ = timed(args, train_block,
                           iter(strategy.experimental_distribute_dataset(real)), "real input")
    real_rate = per_step / seconds
    print(f"real input images/s: {real_rate:.1f} ({1000 * seconds:.1f} ms per step, "
          f"{real_rate / synthetic_rate:.2f} of synthetic)", flush=True)
    bound = pipeline_rate < synthetic_rate
    print(f"input-bound: {'yes' if bound else 'no'} (the pipeline alone delivers "
          f"{pipeline_rate:.0f} images/s, the step takes {synthetic_rate:.0f})")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.program == "fixmatch":
        measure_fixmatch(args)
        return
    images_per_second, step_seconds, loss = measure(args)
    print(f"step time: {1000 * step_seconds:.1f} ms over {args.steps} timed steps, "
          f"mean loss {loss:.3f}")
    print(f"anchor: {ANCHOR}")
    if args.model == "resnet50" and args.image_size == 224:
        print(f"ratio to anchor: {images_per_second / ANCHOR_IMAGES_PER_SECOND:.2f}")
    print(f"images/s: {images_per_second:.1f}")


if __name__ == "__main__":
    main()
