"""Per-op cost of the augmentation registry: microseconds per image, measured inside tf.data.

Why inside tf.data: that is where the ops run in training, so the numbers include the per-element
graph-function overhead every op pays (shown by the `Identity` row). Why CPU time (process time)
rather than wall time: the work is single-threaded, so CPU time is the per-core cost, and it stays
meaningful on a machine shared with other jobs, where wall time mostly measures the neighbours.
Each op is mapped, single-threaded (one map call at a time, intra-op parallelism 1), over random
images of `image_size` x `image_size`, batched by 50 so Python runs once per batch; the Identity
row includes the batching copy, so "minus Identity" is the op's own cost. Every op keeps one
iterator for all its rounds (see `_iterator`), and the best of several interleaved rounds is
kept. Levels are drawn uniformly per image, so level-dependent costs are averaged; each op uses
its CTAugment mapping where it has one, else its RandAugment one. Whole policies (RandAugment,
CTAugment strong view, CTAugment probe) are listed after the single ops when those modules are
available. The first line names the CPU and whether oneDNN is on (bench/machine.py): costs of
some ops change several-fold with it.

    python bench/op_costs.py [--image_size 224] [--repeats 200] [--rounds 3]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import machine  # noqa: E402
from fixmatch.augment import registry  # noqa: E402


def _single_ops():
    """(name, fn(image, level)) for every op of the registry, in a stable order."""
    cta = dict(registry.CTA_OPS)
    rows = []
    for name in registry.REGISTRY:
        op = registry.cta_op(name) if name in cta else registry.randaugment_op(name)
        rows.append((name, op))
    return rows


def _policies():
    """(name, fn(image, level)) for the whole strong policies; empty if not importable yet."""
    rows = []
    try:
        from fixmatch.augment.randaugment import RandAugment  # pylint: disable=g-import-not-at-top
        ra = RandAugment()
        rows.append(("RandAugment (2 layers, p=0.5)", lambda image, level: ra(image)))
    except ImportError:
        pass
    try:
        from fixmatch.augment.ctaugment import CTAPolicy  # pylint: disable=g-import-not-at-top
        policy = CTAPolicy()
        rows.append(("CTAugment strong (2 layers, p=0.5)",
                     lambda image, level: policy.strong(image)))
        rows.append(("CTAugment probe (2 layers)", lambda image, level: policy.probe(image)[0]))
    except ImportError:
        pass
    return rows


def _iterator(op, images, batch):
    """A long-lived iterator over batches of op outputs (single-threaded map).

    Long-lived on purpose: creating an iterator instantiates and optimises the map function, which
    for a 19-branch switch costs ~0.2 s; a fresh iterator per timing would charge that to the op.
    Training pipelines also keep one iterator for the whole run.
    """
    n = int(images.shape[0])
    @tf.autograph.experimental.do_not_convert  # plain graph code: skip AutoGraph's slow conversion
    def apply(i):
        return op(tf.gather(images, i % n), tf.random.uniform([]))

    ds = tf.data.Dataset.range(2 ** 62).map(apply).batch(batch)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    # No background work: an injected prefetch (or a parallelised map or batch) would compute the
    # next batch before the timer starts, and a round could time a batch that is already done.
    options.experimental_optimization.apply_default_optimizations = False
    options.experimental_optimization.inject_prefetch = False
    options.experimental_optimization.map_parallelization = False
    options.experimental_optimization.parallel_batch = False
    iterator = iter(ds.with_options(options))
    next(iterator)  # warm-up: instantiation, first-call allocations
    return iterator


def _time_once(iterator, batches, batch):
    start = time.process_time()
    for _ in range(batches):
        next(iterator)
    return (time.process_time() - start) / (batches * batch) * 1e6


def op_cost_table(image_size=224, repeats=200, rounds=3, include_policies=True, seed=0):
    """Returns [(op name, microseconds per image)] for every registry op (and the policies).

    Each op is timed `rounds` times (process CPU time), interleaved with the other ops, and the
    minimum is kept as the least disturbed estimate of the op's own cost.
    """
    if image_size < 8 or repeats < 1 or rounds < 1:
        raise ValueError(f"need image_size >= 8, repeats >= 1 and rounds >= 1, got "
                         f"image_size={image_size!r}, repeats={repeats!r}, rounds={rounds!r}")
    rng = np.random.default_rng(seed)
    # Smooth random images (not white noise) so histograms and filters see realistic statistics.
    base = rng.integers(0, 256, size=(16, image_size // 8 + 1, image_size // 8 + 1, 3))
    images = tf.image.resize(base.astype(np.float32), [image_size, image_size], method="bilinear")
    images = tf.saturate_cast(images + rng.normal(0, 8, images.shape), tf.uint8)
    rows = _single_ops() + (_policies() if include_policies else [])
    batch = min(repeats, 50)
    batches = max(1, repeats // batch)
    iterators = [(name, _iterator(op, images, batch)) for name, op in rows]
    best = {name: float("inf") for name, _ in iterators}
    for _ in range(rounds):
        for name, iterator in iterators:
            best[name] = min(best[name], _time_once(iterator, batches, batch))
    return [(name, best[name]) for name, _ in iterators]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    table = op_cost_table(image_size=args.image_size, repeats=args.repeats, rounds=args.rounds)
    overhead = dict(table)["Identity"]
    print(machine.header())
    print(f"CPU cost per {args.image_size}x{args.image_size} uint8 image, one core, inside tf.data "
          f"({args.repeats} images per op, best of {args.rounds} rounds)")
    print(f"{'op':<36}{'us/image':>10}{'minus Identity':>16}")
    for name, micros in table:
        print(f"{name:<36}{micros:>10.1f}{micros - overhead:>16.1f}")


if __name__ == "__main__":
    main()
