"""Training throughput (images/s) of the reference ResNet-50 on one accelerator, synthetic data.

Usage (what bench/gpu.sh runs):
    python bench/gpu_resnet.py                      # ResNet-50, 224 px, bfloat16, XLA, batch 256
    python bench/gpu_resnet.py --batch_size 128 --steps 200 --no-xla
    python bench/gpu_resnet.py --smoke              # CPU check: resnet_tiny, 32 px, a few steps

Why synthetic data: it isolates the model step (forward, loss incl. L2, backward, SGD-Nesterov
update) from JPEG decoding and augmentation, which is what the public anchor measures as well:
NVIDIA's TensorFlow ResNet-50 reaches about 2,400 images/s on one A100 with mixed precision and
XLA. Warm-up steps (tracing, XLA compilation, cuDNN autotuning) are excluded from the timing.
"""

import argparse
import os
import sys
import time

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


def make_train_step(model, optimizer, *, jit_compile):
    """One SGD step on cross-entropy + the model's L2 losses, as the supervised program does."""
    import keras
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            xe = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True))
            loss = xe + tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return train_step


def measure(args):
    import keras
    import numpy as np
    import tensorflow as tf

    from fixmatch.models import build_model

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not (args.smoke or args.allow_cpu):
        sys.exit("error: no GPU visible to TensorFlow. This benchmark is meant for a GPU; run "
                 "`bash bench/gpu.sh --smoke` for a quick CPU check, or add --allow_cpu.")
    device = gpus[0].name if gpus else "CPU"
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"{device} ({details.get('device_name', 'unknown GPU')})"

    keras.utils.set_random_seed(0)
    model = build_model(args.model, num_classes=args.num_classes, image_size=args.image_size,
                        dtype_policy="mixed_bfloat16" if args.bfloat16 else "float32")
    # Learning rate scaled by batch / 256 as in the reference; the value does not change speed.
    optimizer = keras.optimizers.SGD(0.1 * args.batch_size / 256, momentum=0.9, nesterov=True)
    train_step = make_train_step(model, optimizer, jit_compile=args.xla)

    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1.0, 1.0, (args.batch_size, args.image_size,
                                                 args.image_size, 3)).astype(np.float32))
    labels = tf.constant(rng.integers(0, args.num_classes, args.batch_size), tf.int64)

    print(f"model={args.model} image_size={args.image_size} batch_size={args.batch_size} "
          f"bfloat16={args.bfloat16} xla={args.xla} device={device}", flush=True)
    start = time.perf_counter()
    for _ in range(args.warmup_steps):
        loss = train_step(images, labels)
    float(loss)  # waits for the device
    print(f"warm-up: {args.warmup_steps} steps in {time.perf_counter() - start:.1f} s "
          f"(compilation included, not timed)", flush=True)

    start = time.perf_counter()
    for _ in range(args.steps):
        loss = train_step(images, labels)
    final_loss = float(loss)  # steps are dispatched asynchronously; this waits for the last
    seconds = time.perf_counter() - start
    if not np.isfinite(final_loss):
        sys.exit(f"error: training loss became {final_loss} during the benchmark")
    return args.steps * args.batch_size / seconds, seconds / args.steps, final_loss


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    images_per_second, step_seconds, loss = measure(args)
    print(f"step time: {1000 * step_seconds:.1f} ms over {args.steps} timed steps, "
          f"final loss {loss:.3f}")
    print(f"anchor: {ANCHOR}")
    if args.model == "resnet50" and args.image_size == 224:
        print(f"ratio to anchor: {images_per_second / ANCHOR_IMAGES_PER_SECOND:.2f}")
    print(f"images/s: {images_per_second:.1f}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
