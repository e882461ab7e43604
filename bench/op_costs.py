"""Per-op cost of the augmentation registry: microseconds per image, measured inside tf.data.

Why inside tf.data: that is where the ops run in training, so the numbers include the per-element
graph-function overhead every op pays (shown by the `Identity` row). Each op is mapped, single-
threaded (one map call at a time, intra-op parallelism 1), over `repeats` distinct random images of
`image_size` x `image_size`, and the dataset is consumed with `Dataset.reduce` so no Python runs per
element. The time of one warm-up pass is discarded. Levels are drawn uniformly per image, so
level-dependent costs are averaged; each op uses its CTAugment mapping where it has one, else its
RandAugment one. Whole policies (RandAugment, CTAugment strong view, CTAugment probe) are listed
after the single ops when those modules are available.

    python bench/op_costs.py [--image_size 224] [--repeats 200]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

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
    rows.append(("CTAugment strong (2 layers, p=0.5)", lambda image, level: policy.strong(image)))
    rows.append(("CTAugment probe (2 layers)", lambda image, level: policy.probe(image)[0]))
  except ImportError:
    pass
  return rows


def _time_op(op, images, repeats):
  n = int(images.shape[0])
  ds = tf.data.Dataset.range(repeats).map(
      lambda i: op(tf.gather(images, i % n), tf.random.uniform([])))
  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.threading.max_intra_op_parallelism = 1
  options.autotune.enabled = False
  ds = ds.with_options(options)
  checksum = lambda acc, image: acc + tf.cast(image[0, 0, 0], tf.int64)
  ds.reduce(tf.constant(0, tf.int64), checksum)  # warm-up: traces and builds the function
  start = time.perf_counter()
  ds.reduce(tf.constant(0, tf.int64), checksum)
  return (time.perf_counter() - start) / repeats * 1e6


def op_cost_table(image_size=224, repeats=200, include_policies=True, seed=0):
  """Returns [(op name, microseconds per image)] for every registry op (and the policies)."""
  if image_size < 8 or repeats < 1:
    raise ValueError(f"need image_size >= 8 and repeats >= 1, got image_size={image_size!r}, "
                     f"repeats={repeats!r}")
  rng = np.random.default_rng(seed)
  # Smooth random images (not white noise) so histograms and filters see realistic statistics.
  base = rng.integers(0, 256, size=(16, image_size // 8 + 1, image_size // 8 + 1, 3))
  images = tf.image.resize(base.astype(np.float32), [image_size, image_size], method="bilinear")
  images = tf.saturate_cast(images + rng.normal(0, 8, images.shape), tf.uint8)
  rows = _single_ops() + (_policies() if include_policies else [])
  return [(name, _time_op(op, images, repeats)) for name, op in rows]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--repeats", type=int, default=200)
  args = parser.parse_args()
  table = op_cost_table(image_size=args.image_size, repeats=args.repeats)
  overhead = dict(table)["Identity"]
  print(f"op cost per {args.image_size}x{args.image_size} uint8 image, one core, inside tf.data "
        f"({args.repeats} images per op)")
  print(f"{'op':<36}{'us/image':>10}{'minus Identity':>16}")
  for name, micros in table:
    print(f"{name:<36}{micros:>10.1f}{micros - overhead:>16.1f}")


if __name__ == "__main__":
  main()
