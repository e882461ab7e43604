"""Training throughput (images/s) of the reference ResNet-50 on one accelerator, synthetic data.

Usage (what bench/gpu.sh runs):
    python bench/gpu_resnet.py                      # ResNet-50, 224 px, bfloat16, XLA, batch 256
    python bench/gpu_resnet.py --batch_size 128 --steps 200 --no-xla
    python bench/gpu_resnet.py --smoke              # CPU check: resnet_tiny, 32 px, a few steps

What is timed: the training engine's own supervised step (fixmatch.train.steps: forward, loss
incl. L2, backward, SGD-Nesterov update, EMA of all variables; a block of steps runs in one
compiled function). Why synthetic data: it isolates that step from JPEG decoding and
augmentation, which is what the public anchor measures as well: NVIDIA's TensorFlow ResNet-50
reaches about 2,400 images/s on one A100 with mixed precision and XLA. Warm-up steps (tracing,
XLA compilation, cuDNN autotuning) are excluded from the timing. One device only, like the
anchor; multi-GPU training goes through the engine's strategy selection instead.
"""

import argparse
import functools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after the log level, which TensorFlow reads at import)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fixmatch.models import build_model  # noqa: E402
from fixmatch.train import ema, loop, steps  # noqa: E402

ANCHOR_IMAGES_PER_SECOND = 2400
ANCHOR = ("NVIDIA's TensorFlow ResNet-50 reaches about 2,400 images/s on one A100 "
          "with mixed precision and XLA")
SMOKE = dict(model="resnet_tiny", image_size=32, batch_size=16, num_classes=10,
             warmup_steps=2, steps=4)


def parse_args(argv):
    # No abbreviations: --smoke must see exactly which flags were given explicitly.
    parser = argparse.ArgumentParser(
        description="ResNet training images/s on synthetic data (" + ANCHOR + ").",
        allow_abbrev=False)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=256, help="images per step")
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
    if args.smoke:
        explicit = {a.split("=")[0].lstrip("-") for a in argv if a.startswith("--")}
        for key, value in SMOKE.items():
            if key not in explicit:
                setattr(args, key, value)
    for key in ("image_size", "batch_size", "num_classes", "steps"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be >= 1, got {getattr(args, key)}")
    if args.warmup_steps < 1:
        parser.error(f"--warmup_steps must be >= 1 (the first step compiles), "
                     f"got {args.warmup_steps}")
    return args


def make_train_block(model, ema_model, *, learning_rate, jit_compile):
    """The engine's own supervised step (fixmatch.train), wired as train_and_evaluate does.

    Each step: forward over the batch, L = L_x + L_wd (the model's L2 losses), gradients
    (XLA-compiled when `jit_compile`), SGD-Nesterov update, EMA update of all variables; a block
    of steps runs inside one tf.function. Checkpoints and evaluation are left out: they happen
    once per `steps_per_run`, not per step.
    """
    strategy = tf.distribute.get_strategy()  # one device: the anchor is a one-GPU number
    optimizer = loop.create_optimizer(learning_rate=learning_rate)
    optimizer.build(model.trainable_variables)
    grad_fn = functools.partial(steps.compute_gradients, model=model,
                                objective=steps.supervised_objective, num_replicas=1)
    if jit_compile:
        grad_fn = tf.function(grad_fn, jit_compile=True)
    replica_step = functools.partial(steps.train_step, model=model, optimizer=optimizer,
                                     grad_fn=grad_fn)
    after_update = steps.make_ema_update(ema_model=ema_model, model=model, decay=0.999)
    train_block = steps.make_train_block(strategy=strategy, replica_step=replica_step,
                                         after_update=after_update,
                                         example_sums=dict.fromkeys(steps.TRAIN_SUM_KEYS))
    return strategy, train_block


def synthetic_batches(strategy, *, batch_size, image_size, num_classes, image_dtype):
    """One fixed random batch repeated forever, fed through tf.data like real training."""
    rng = np.random.default_rng(0)
    batch = {"image": tf.cast(rng.uniform(-1.0, 1.0, (batch_size, image_size, image_size, 3))
                              .astype(np.float32), image_dtype),
             "label": tf.constant(rng.integers(0, num_classes, batch_size), tf.int64)}
    dataset = tf.data.Dataset.from_tensors(batch).repeat().prefetch(2)
    return iter(strategy.experimental_distribute_dataset(dataset))


def measure(args):
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not (args.smoke or args.allow_cpu):
        sys.exit("error: no GPU visible to TensorFlow. This benchmark is meant for a GPU; run "
                 "`bash bench/gpu.sh --smoke` for a quick CPU check, or add --allow_cpu.")
    device = gpus[0].name if gpus else "CPU"
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"{device} ({details.get('device_name', 'unknown GPU')})"

    keras.utils.set_random_seed(0)
    policy = "mixed_bfloat16" if args.bfloat16 else "float32"
    model, ema_model = (build_model(args.model, num_classes=args.num_classes,
                                    image_size=args.image_size, dtype_policy=policy)
                        for _ in range(2))
    ema.copy_weights(source=model, target=ema_model)
    # Learning rate scaled by batch / 256 as in the reference; the value does not change speed.
    strategy, train_block = make_train_block(model, ema_model, jit_compile=args.xla,
                                             learning_rate=0.1 * args.batch_size / 256)
    # bfloat16 input images as the reference feeds them with mixed precision (half the copy).
    batches = synthetic_batches(strategy, batch_size=args.batch_size,
                                image_size=args.image_size, num_classes=args.num_classes,
                                image_dtype=tf.bfloat16 if args.bfloat16 else tf.float32)

    print(f"model={args.model} image_size={args.image_size} batch_size={args.batch_size} "
          f"bfloat16={args.bfloat16} xla={args.xla} device={device}", flush=True)
    start = time.perf_counter()
    train_block(batches, tf.constant(args.warmup_steps, tf.int32))["loss_sum"].numpy()
    print(f"warm-up: {args.warmup_steps} steps in {time.perf_counter() - start:.1f} s "
          f"(compilation included, not timed)", flush=True)

    start = time.perf_counter()
    sums = train_block(batches, tf.constant(args.steps, tf.int32))
    loss = float(sums["loss_sum"].numpy() / sums["count"].numpy())  # waits for the device
    seconds = time.perf_counter() - start
    if not np.isfinite(loss):
        sys.exit(f"error: training loss became {loss} during the benchmark")
    return args.steps * args.batch_size / seconds, seconds / args.steps, loss


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    images_per_second, step_seconds, loss = measure(args)
    print(f"step time: {1000 * step_seconds:.1f} ms over {args.steps} timed steps, "
          f"mean loss {loss:.3f}")
    print(f"anchor: {ANCHOR}")
    if args.model == "resnet50" and args.image_size == 224:
        print(f"ratio to anchor: {images_per_second / ANCHOR_IMAGES_PER_SECOND:.2f}")
    print(f"images/s: {images_per_second:.1f}")


if __name__ == "__main__":
    main()
