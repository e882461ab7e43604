"""How many shards a set gets, and which shard each record goes to.

Shard count is a power of two chosen from the record count alone (never from
the runner or worker count, so the output is the same everywhere): at most
MAX_PER_SHARD records per shard (~140 MB of ImageNet JPEGs, the size
imagenet_to_gcs uses: 1024 train shards), and for mid-size sets at least
MIN_SHARDS shards of >= MIN_PER_SHARD records so that readers and the job
itself have parallelism.

Assignment: records are ranked class by class (classes in label order, images
in shuffled order inside a class) and dealt round-robin, so shard sizes differ
by at most one and every shard holds the same class mix; inside a shard,
records are written in shuffled (order-key) order.
"""

from typing import Dict, Mapping

MAX_PER_SHARD = 1280
MIN_PER_SHARD = 256
MIN_SHARDS = 16


def choose_num_shards(num_records: int) -> int:
    if num_records <= 0:
        return 1
    want = max(num_records / MAX_PER_SHARD, min(MIN_SHARDS, num_records / MIN_PER_SHARD), 1)
    shards = 1
    while shards < want:
        shards *= 2
    return shards


def shard_name(set_name: str, index: int, num_shards: int) -> str:
    """`labeled.tfrecord-00003-of-00016` (matches schema.shard_glob)."""
    return f"{set_name}.tfrecord-{index:05d}-of-{num_shards:05d}"


def class_offsets(class_counts: Mapping[int, int]) -> Dict[int, int]:
    """Label -> number of records of all lower labels (start of its rank range)."""
    offsets, total = {}, 0
    for label in sorted(class_counts):
        offsets[label] = total
        total += class_counts[label]
    return offsets


def shard_of(offset: int, rank: int, num_shards: int) -> int:
    return (offset + rank) % num_shards
