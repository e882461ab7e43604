"""Images/s of the engine's supervised inner loop vs Keras `model.fit`, same run.

    python bench/train_step.py --model resnet_tiny --image_size 32 --batch_size 64

Both train the same architecture (fixmatch.models.build_model, L2 regularizers
included) on the same in-memory synthetic batches with SGD + Nesterov
momentum 0.9 on CPU. The engine side is `steps.make_train_block` exactly as
the training loop uses it: `steps_per_run` steps in one tf.function, plus the
EMA update of every variable after each step (work Keras fit does not do).
The baseline is `model.fit` with `steps_per_execution` equal to the block
length (Keras' own fastest setting). Each side is warmed up (tracing), then the
sides are timed in turn `--repeats` times (interleaved, so a busy machine slows
both alike) and the medians are reported, per wall second and per CPU second of
this process (robust when other jobs share the cores). Ratio = engine / fit. The summary's
first line names the CPU and whether oneDNN is on (bench/machine.py): both sides' convolutions
run on oneDNN or on Eigen accordingly.
"""

import argparse
import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import machine  # noqa: E402
from fixmatch.models import build_model  # noqa: E402
from fixmatch.train import ema, loop, steps  # noqa: E402


def synthetic(*, batch_size, image_size, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (batch_size * 4, image_size, image_size, 3)).astype("float32")
    labels = rng.integers(0, num_classes, batch_size * 4).astype("int64")
    return images, labels


def engine_runner(args, images, labels, *, use_xla):
    """Builds the engine's block; returns run() -> seconds for `args.steps` steps."""
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    model_fn = functools.partial(build_model, args.model, num_classes=args.num_classes,
                                 image_size=args.image_size)
    model, ema_model = model_fn(), model_fn()
    ema.copy_weights(source=model, target=ema_model)
    optimizer = loop.create_optimizer(learning_rate=0.01)
    optimizer.build(model.trainable_variables)
    grad_fn = functools.partial(steps.compute_gradients, model=model,
                                objective=steps.supervised_objective, num_replicas=1)
    if use_xla:
        grad_fn = tf.function(grad_fn, jit_compile=True)
    block = steps.make_train_block(
        strategy=strategy,
        replica_step=functools.partial(steps.train_step, model=model, optimizer=optimizer,
                                       grad_fn=grad_fn),
        after_update=steps.make_ema_update(ema_model=ema_model, model=model, decay=0.999),
        example_sums=dict.fromkeys(steps.TRAIN_SUM_KEYS))
    ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    ds = ds.repeat().batch(args.batch_size, drop_remainder=True).prefetch(4)
    iterator = iter(strategy.distribute_datasets_from_function(lambda ctx: ds))
    n = tf.constant(args.steps, tf.int32)
    block(iterator, tf.constant(2, tf.int32))["count"].numpy()  # trace + warm up

    def run():
        t0 = time.perf_counter()
        block(iterator, n)["count"].numpy()
        return time.perf_counter() - t0
    return run


def fit_runner(args, images, labels, *, jit_compile):
    """Builds the Keras baseline; returns run() -> seconds for `args.steps` steps."""
    keras.utils.set_random_seed(0)
    model = build_model(args.model, num_classes=args.num_classes, image_size=args.image_size)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], steps_per_execution=args.steps,
                  jit_compile=jit_compile)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.repeat().batch(args.batch_size, drop_remainder=True).prefetch(4)
    model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)  # trace + warm up

    def run():
        t0 = time.perf_counter()
        model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
        return time.perf_counter() - t0
    return run


def interleaved_rates(args, runners):
    """Median images/s per runner over wall time and over this process's CPU time.

    Runners are timed in turn so load drift hits all alike; the CPU-time rate is
    the robust one on a shared machine (other processes inflate wall time only).
    """
    wall = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            c0 = time.process_time()
            wall[name].append(run())
            cpu[name].append(time.process_time() - c0)
    images = args.steps * args.batch_size
    return {name: (images / statistics.median(wall[name]), images / statistics.median(cpu[name]))
            for name in runners}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet_tiny")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--xla", action="store_true", help="also time both sides with XLA")
    args = parser.parse_args()
    for name in ("image_size", "batch_size", "steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")

    images, labels = synthetic(batch_size=args.batch_size, image_size=args.image_size,
                               num_classes=args.num_classes)
    runners = {
        "engine (tf.function block + EMA)": engine_runner(args, images, labels, use_xla=False),
        "keras fit (steps_per_execution)": fit_runner(args, images, labels, jit_compile=False),
    }
    if args.xla:
        runners["engine, XLA"] = engine_runner(args, images, labels, use_xla=True)
        runners["keras fit, XLA"] = fit_runner(args, images, labels, jit_compile=True)
    rows = list(interleaved_rates(args, runners).items())
    print("\n" + machine.header())
    print(f"{args.model} {args.image_size}px batch {args.batch_size}, {args.steps} steps "
          f"per block, median of {args.repeats}, CPU threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
    print(f"{'path':<36} {'images/s':>10} {'images/cpu-s':>13}")
    for name, (rate, cpu_rate) in rows:
        print(f"{name:<36} {rate:>10.1f} {cpu_rate:>13.1f}")
    (_, (engine, engine_cpu)), (_, (fit, fit_cpu)) = rows[0], rows[1]
    print(f"ratio engine / keras fit: {engine / fit:.2f} wall, {engine_cpu / fit_cpu:.2f} "
          f"CPU time (target >= 1.0)")
    if args.xla:
        (_, (exla, exla_cpu)), (_, (fxla, fxla_cpu)) = rows[2], rows[3]
        print(f"ratio engine XLA / keras fit XLA: {exla / fxla:.2f} wall, "
              f"{exla_cpu / fxla_cpu:.2f} CPU time")


if __name__ == "__main__":
    main()
