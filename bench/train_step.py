"""Images/s of the engine's inner loop vs a plain baseline, same run: supervised vs Keras
`model.fit`, FixMatch vs a minimal hand-written tf.GradientTape loop.

    python bench/train_step.py --model resnet_tiny --image_size 32 --batch_size 64
    python bench/train_step.py --program fixmatch --uratio 3

Both train the same architecture (fixmatch.models.build_model, L2 regularizers
included) on the same in-memory synthetic batches with SGD + Nesterov
momentum 0.9 on CPU. The engine side is `steps.make_train_block` exactly as
the training loop uses it: `steps_per_run` steps in one tf.function, plus the
EMA update of every variable after each step (work Keras fit does not do).
The baseline is `model.fit` with `steps_per_execution` equal to the block
length (Keras' own fastest setting). Each side is warmed up with one untimed block
of the timed length (tracing, then the kernels' first-run setup), then the
sides are timed in turn `--repeats` times (interleaved, so a busy machine slows
both alike) and the medians are reported, per wall second and per CPU second of
this process (robust when other jobs share the cores). Ratio = engine / fit. The summary's
first line names the CPU and whether oneDNN is on (bench/machine.py): both sides' convolutions
run on oneDNN or on Eigen accordingly.

FixMatch (`--program fixmatch`): the engine's block with `steps.make_fixmatch_objective`
(B labeled + uratio*B weak + uratio*B strong images in one forward pass, hard pseudo-labels,
threshold, wu) plus EMA, against a tf.function loop written directly with tf.GradientTape that
computes the same concatenated forward pass and loss and applies the same optimizer (no EMA).
Images/s count all B * (1 + 2 * uratio) images of a step.

`--options` (FixMatch): the engine's step once more per pseudo-label option
(`fixmatch.threshold`, optionally `+` a `fixmatch.dist_align`, e.g. `softmatch+uniform`), each
timed in the same interleaved rounds and reported as a ratio to the engine's `fixed` step
(issue 21 asks >= 0.97x).

    python bench/train_step.py --program fixmatch --options freematch,softmatch,softmatch+uniform
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
from fixmatch.hparams import DIST_ALIGN, THRESHOLDS  # noqa: E402
from fixmatch.models import build_model  # noqa: E402
from fixmatch.train import ema, loop, steps  # noqa: E402


def synthetic(*, batch_size, image_size, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (batch_size * 4, image_size, image_size, 3)).astype("float32")
    labels = rng.integers(0, num_classes, batch_size * 4).astype("int64")
    return images, labels


def fixmatch_data(args, images, labels):
    """The per-step dict of a FixMatch batch, from the synthetic images."""
    u = args.batch_size * args.uratio
    rng = np.random.default_rng(1)
    pick = functools.partial(rng.choice, len(images), replace=True)
    ds = tf.data.Dataset.from_tensors({
        "image": images[:args.batch_size], "label": labels[:args.batch_size],
        "unsup_image": images[pick(u)], "unsup_aug_image": images[pick(u)]})
    return ds.repeat().prefetch(4)


def make_labeler(option, *, num_classes, confidence):
    """thresholds.PseudoLabeler of an `--options` entry: THRESHOLD[+DIST_ALIGN]."""
    from fixmatch.train import thresholds
    kind, _, align = option.partition("+")
    rule = thresholds.make_rule(kind, num_classes=num_classes, confidence=confidence,
                                momentum=0.999)
    target = thresholds.alignment_target(align or "none", num_classes=num_classes,
                                         labeled_counts=[1] * num_classes)
    return thresholds.PseudoLabeler(
        rule, thresholds.DistributionAlignment(target) if target else None)


def engine_runner(args, images, labels, *, use_xla, fixmatch=False, option="fixed"):
    """Builds the engine's block; returns run() -> seconds for `args.steps` steps.
    `option`: FixMatch's pseudo-label rule (see `make_labeler`)."""
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    model_fn = functools.partial(build_model, args.model, num_classes=args.num_classes,
                                 image_size=args.image_size)
    model, ema_model = model_fn(), model_fn()
    ema.copy_weights(source=model, target=ema_model)
    optimizer = loop.create_optimizer(learning_rate=0.01)
    optimizer.build(model.trainable_variables)
    objective = (steps.make_fixmatch_objective(
        wu=args.wu, num_classes=args.num_classes, labeler=make_labeler(
            option, num_classes=args.num_classes, confidence=args.confidence))
        if fixmatch else steps.supervised_objective)
    grad_fn = functools.partial(steps.compute_gradients, model=model,
                                objective=objective, num_replicas=1)
    if use_xla:
        grad_fn = tf.function(grad_fn, jit_compile=True)
    block = steps.make_train_block(
        strategy=strategy,
        replica_step=functools.partial(steps.train_step, model=model, optimizer=optimizer,
                                       grad_fn=grad_fn),
        after_update=steps.make_ema_update(ema_model=ema_model, model=model, decay=0.999),
        example_sums={k: getattr(objective, "sum_shapes", {}).get(k)
                      for k in objective.sum_keys})
    if fixmatch:
        ds = fixmatch_data(args, images, labels)
    else:
        ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
        ds = ds.repeat().batch(args.batch_size, drop_remainder=True).prefetch(4)
    iterator = iter(strategy.distribute_datasets_from_function(lambda ctx: ds))
    n = tf.constant(args.steps, tf.int32)
    block(iterator, n)["count"].numpy()  # trace + warm up: one full block, as fit's warm-up

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


def tape_runner(args, images, labels):
    """A minimal hand-written FixMatch loop; returns run() -> seconds for `args.steps` steps."""
    keras.utils.set_random_seed(0)
    model = build_model(args.model, num_classes=args.num_classes, image_size=args.image_size)
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True)
    optimizer.build(model.trainable_variables)
    b, u = args.batch_size, args.batch_size * args.uratio
    xe = functools.partial(tf.nn.sparse_softmax_cross_entropy_with_logits)

    @tf.function
    def block(iterator, n):
        for _ in tf.range(n):
            batch = next(iterator)
            with tf.GradientTape() as tape:
                logits = model(tf.concat([batch["image"], batch["unsup_image"],
                                          batch["unsup_aug_image"]], 0), training=True)
                z_l, z_w, z_s = tf.split(logits, [b, u, u])
                probs = tf.stop_gradient(tf.nn.softmax(z_w))
                mask = tf.cast(tf.reduce_max(probs, -1) >= args.confidence, tf.float32)
                loss_u = tf.reduce_mean(mask * xe(labels=tf.argmax(probs, -1), logits=z_s))
                loss = (tf.reduce_mean(xe(labels=batch["label"], logits=z_l))
                        + args.wu * loss_u + tf.add_n(model.losses))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    iterator = iter(fixmatch_data(args, images, labels))
    n = tf.constant(args.steps, tf.int32)
    block(iterator, n).numpy()  # trace + warm up: one full block, as the engine's

    def run():
        t0 = time.perf_counter()
        block(iterator, n).numpy()
        return time.perf_counter() - t0
    return run


def interleaved_rates(args, runners, *, images_per_step):
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
    images = args.steps * images_per_step
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
    parser.add_argument("--program", choices=("supervised", "fixmatch"), default="supervised")
    parser.add_argument("--uratio", type=int, default=3, help="FixMatch: unlabeled per labeled")
    parser.add_argument("--wu", type=float, default=1.0, help="FixMatch: unlabeled weight")
    parser.add_argument("--confidence", type=float, default=0.8, help="FixMatch: threshold")
    parser.add_argument("--options", default="",
                        help="FixMatch: comma-separated THRESHOLD[+DIST_ALIGN] options to time "
                             "against the fixed threshold, e.g. freematch,softmatch+uniform")
    args = parser.parse_args()
    options = [o for o in args.options.split(",") if o]
    for option in options:
        kind, _, align = option.partition("+")
        if kind not in THRESHOLDS or (align and align not in DIST_ALIGN):
            parser.error(f"--options entry {option!r}: expected THRESHOLD[+DIST_ALIGN] with "
                         f"THRESHOLD in {list(THRESHOLDS)} and DIST_ALIGN in {list(DIST_ALIGN)}")
    if options and args.program != "fixmatch":
        parser.error("--options needs --program fixmatch")
    for name in ("image_size", "batch_size", "steps", "repeats", "uratio"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")

    images, labels = synthetic(batch_size=args.batch_size, image_size=args.image_size,
                               num_classes=args.num_classes)
    fixmatch = args.program == "fixmatch"
    if fixmatch:
        runners = {"engine FixMatch (block + EMA)": engine_runner(
                       args, images, labels, use_xla=False, fixmatch=True),
                   "hand-written GradientTape loop": tape_runner(args, images, labels)}
        for option in options:
            runners[f"engine FixMatch {option}"] = engine_runner(
                args, images, labels, use_xla=False, fixmatch=True, option=option)
    else:
        runners = {
            "engine (tf.function block + EMA)": engine_runner(args, images, labels,
                                                              use_xla=False),
            "keras fit (steps_per_execution)": fit_runner(args, images, labels,
                                                          jit_compile=False),
        }
    if args.xla and fixmatch:
        runners["engine FixMatch, XLA"] = engine_runner(args, images, labels, use_xla=True,
                                                        fixmatch=True)
    elif args.xla:
        runners["engine, XLA"] = engine_runner(args, images, labels, use_xla=True)
        runners["keras fit, XLA"] = fit_runner(args, images, labels, jit_compile=True)
    per_step = args.batch_size * (1 + 2 * args.uratio if fixmatch else 1)
    rows = list(interleaved_rates(args, runners, images_per_step=per_step).items())
    print("\n" + machine.header())
    print(f"{args.program}: {args.model} {args.image_size}px batch {args.batch_size}"
          + (f" (+ 2 x {args.uratio} x {args.batch_size} unlabeled)" if fixmatch else "")
          + f", {args.steps} steps "
          f"per block, median of {args.repeats}, CPU threads "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}")
    print(f"{'path':<36} {'images/s':>10} {'images/cpu-s':>13}")
    for name, (rate, cpu_rate) in rows:
        print(f"{name:<36} {rate:>10.1f} {cpu_rate:>13.1f}")
    (_, (engine, engine_cpu)), (_, (fit, fit_cpu)) = rows[0], rows[1]
    baseline = "hand-written loop" if fixmatch else "keras fit"
    print(f"ratio engine / {baseline}: {engine / fit:.2f} wall, {engine_cpu / fit_cpu:.2f} "
          f"CPU time (target >= 1.0)")
    for name, (rate, cpu_rate) in rows[2:2 + len(options)]:
        print(f"ratio {name} / engine FixMatch fixed: {rate / engine:.3f} wall, "
              f"{cpu_rate / engine_cpu:.3f} CPU time (target >= 0.97)")
    if args.xla and fixmatch:
        _, (exla, exla_cpu) = rows[-1]
        print(f"ratio engine FixMatch XLA / without XLA: {exla / engine:.2f} wall, "
              f"{exla_cpu / engine_cpu:.2f} CPU time")
    elif args.xla:
        (_, (exla, exla_cpu)), (_, (fxla, fxla_cpu)) = rows[2], rows[3]
        print(f"ratio engine XLA / keras fit XLA: {exla / fxla:.2f} wall, "
              f"{exla_cpu / fxla_cpu:.2f} CPU time")


if __name__ == "__main__":
    main()
