"""Cost of the unbiased batch-norm moving variance: the engine's block with the project's
`UnbiasedBatchNormalization` against the same block with Keras' stock `BatchNormalization`,
same run, interleaved (bench/train_step.py's runners and timing).

    python bench/bn_variance.py                      # supervised, resnet_tiny 32 px, batch 64
    python bench/bn_variance.py --program fixmatch   # FixMatch block, uratio 3

Ratio = unbiased / stock images/s; 1.00 means the correction (a scalar factor on a [C] vector
per layer) costs nothing measurable. Both sides have the EMA update, as in training.
"""

import argparse
import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from bench import machine, train_step  # noqa: E402
from fixmatch.models import resnet  # noqa: E402


@contextlib.contextmanager
def stock_batch_norm():
    """Builds models with Keras' own BatchNormalization (the biased moving variance)."""
    saved = resnet.UnbiasedBatchNormalization
    resnet.UnbiasedBatchNormalization = keras.layers.BatchNormalization
    try:
        yield
    finally:
        resnet.UnbiasedBatchNormalization = saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet_tiny")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--program", choices=("supervised", "fixmatch"), default="supervised")
    parser.add_argument("--uratio", type=int, default=3)
    args = parser.parse_args()
    for name in ("image_size", "batch_size", "steps", "repeats", "uratio"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    args.wu, args.confidence = 1.0, 0.8
    fixmatch = args.program == "fixmatch"
    images, labels = train_step.synthetic(batch_size=args.batch_size,
                                          image_size=args.image_size,
                                          num_classes=args.num_classes)
    with stock_batch_norm():
        stock = train_step.engine_runner(args, images, labels, use_xla=False, fixmatch=fixmatch)
    unbiased = train_step.engine_runner(args, images, labels, use_xla=False, fixmatch=fixmatch)
    per_step = args.batch_size * (1 + 2 * args.uratio if fixmatch else 1)
    rates = train_step.interleaved_rates(
        args, {"stock BatchNormalization": stock, "UnbiasedBatchNormalization": unbiased},
        images_per_step=per_step)
    print("\n" + machine.header())
    print(f"{args.program}: {args.model} {args.image_size}px batch {args.batch_size}, "
          f"{args.steps} steps per block, median of {args.repeats}")
    print(f"{'batch norm':<30} {'images/s':>10} {'images/cpu-s':>13}")
    for name, (rate, cpu_rate) in rates.items():
        print(f"{name:<30} {rate:>10.1f} {cpu_rate:>13.1f}")
    (s, s_cpu), (u, u_cpu) = rates.values()
    print(f"ratio unbiased / stock: {u / s:.2f} wall, {u_cpu / s_cpu:.2f} CPU time")


if __name__ == "__main__":
    main()
