"""Pass 2 of the split job: decode each image once and write the shards.

Work is grouped by output shard, but what is grouped is the small plan
references; each shard writer reads its images itself, decodes them once,
writes its shard, and copies the labeled members into a per-shard staging file.
Labeled shards are then assembled from staging by (file, offset) references.
So no image byte ever crosses a shuffle, and a worker holds one image at a
time: memory stays flat however large the input is.
"""

import collections
import json
import sys
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from fixmatch.data import schema
from fixmatch.splitting import example_codec, images, recordio, selection, shards, sources
from fixmatch.splitting.plan_transforms import write_json_file

NAMESPACE = "prepare_splits"
PROGRESS_LINES = 64  # shard lines per set in the local progress output
LABELED_INDEX, REJECTED = "labeled_index", "rejected"


def new_stats():
    return {"read": 0, "written": {}, "rejected": {}, "converted": {}}


def merge_stats(a, b):
    """Sum two nested count dicts (ints at the leaves)."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            out[key] = merge_stats(out.get(key, {}), value)
        else:
            out[key] = out.get(key, 0) + value
    return out


def _bump(stats, *path):
    node = stats
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = node.get(path[-1], 0) + 1


class MergeStatsFn(beam.CombineFn):
    def create_accumulator(self):
        return new_stats()

    def add_input(self, acc, value):
        return merge_stats(acc, value)

    def merge_accumulators(self, accs):
        out = new_stats()
        for acc in accs:
            out = merge_stats(out, acc)
        return out

    def extract_output(self, acc):
        return acc


class _AtomicWriter:
    """TFRecord file written under work_dir/tmp and renamed into place on close,
    so a retried or killed worker never leaves a half-written shard behind."""

    def __init__(self, final_path, work_dir):
        self.final_path = final_path
        self._tmp = f"{work_dir}/tmp/{final_path.rsplit('/', 1)[-1]}.{uuid.uuid4().hex}"
        self._f = FileSystems.create(self._tmp)
        self.position = 0

    def write(self, data):
        offset = self.position
        self.position += recordio.write_record(self._f, data)
        return offset

    def close(self):
        self._f.close()
        FileSystems.rename([self._tmp], [self.final_path])


class _Readers:
    """A few open files for offset reads (TFRecord input, staging files)."""

    def __init__(self, capacity=16):
        self._open = collections.OrderedDict()
        self._capacity = capacity

    def record(self, path, offset):
        f = self._open.pop(path, None)
        if f is None:
            f = FileSystems.open(path, compression_type="uncompressed")
            if len(self._open) >= self._capacity:
                self._open.popitem(last=False)[1].close()
        self._open[path] = f
        return recordio.read_record_at(f, path, offset)

    def close(self):
        for f in self._open.values():
            f.close()
        self._open.clear()


def assign_shards(entry, layout):
    """Plan entry -> ((set, shard), entry) with `lshard` for labeled members."""
    set_name = schema.UNLABELED if entry["set"] == sources.TRAIN else schema.VALIDATION
    info = layout[set_name]
    shard = shards.shard_of(info["offsets"][entry["label"]], entry["rank"], info["shards"])
    entry = dict(entry, lshard=-1)
    if set_name == schema.UNLABELED and entry["lrank"] >= 0:
        lab = layout[schema.LABELED]
        entry["lshard"] = shards.shard_of(lab["offsets"][entry["label"]], entry["lrank"],
                                          lab["shards"])
    return (set_name, shard), entry


def _order(entry):
    return (selection.order_key(entry["name"]), entry["name"], entry["path"], entry["offset"])


class WriteImageShard(beam.DoFn):
    """((set, shard), plan entries) -> one unlabeled/validation shard on disk."""

    def __init__(self, out_dir, work_dir, layout):
        self._out_dir, self._work_dir, self._layout = out_dir, work_dir, layout
        self._counters = {name: Metrics.counter(NAMESPACE, name) for name in (
            "images_read", "images_written", "images_rejected", "images_converted")}

    @staticmethod
    def _read(entry, readers):
        if entry["offset"] < 0:
            with FileSystems.open(entry["path"], compression_type="uncompressed") as f:
                return f.read()
        record = readers.record(entry["path"], entry["offset"])
        return example_codec.decode_features(record)["image/encoded"][0]

    def process(self, keyed):
        (set_name, shard), entries = keyed
        num = self._layout[set_name]["shards"]
        out = _AtomicWriter(f"{self._out_dir}/{shards.shard_name(set_name, shard, num)}",
                            self._work_dir)
        staging = None
        if set_name == schema.UNLABELED:
            staging = _AtomicWriter(
                f"{self._work_dir}/staging-labeled-from-{shard:05d}.tfrecord", self._work_dir)
        stats, index, rejected, readers = new_stats(), [], [], _Readers()
        for entry in sorted(entries, key=_order):
            stats["read"] += 1
            self._counters["images_read"].inc()
            try:
                result = images.decode_image(self._read(entry, readers), entry["name"])
            except (OSError, ValueError, IndexError) as e:
                result = images.Rejected("unreadable file", repr(e))
            if isinstance(result, images.Rejected):
                self._counters["images_rejected"].inc()
                _bump(stats, "rejected", result.reason)
                rejected.append({"file": entry.get("rel", entry["path"]), "set": entry["set"],
                                 "class": entry["synset"], "reason": result.reason,
                                 "detail": result.detail})
                continue
            if result.converted:
                self._counters["images_converted"].inc()
                _bump(stats, "converted", result.converted)
            example = example_codec.make_example(
                encoded=result.encoded, filename=entry["name"], label=entry["label"],
                synset=entry["synset"], height=result.height, width=result.width)
            out.write(example)
            self._counters["images_written"].inc()
            _bump(stats, "written", set_name, str(entry["label"]))
            if staging is not None and entry["lshard"] >= 0:
                offset = staging.write(example)
                index.append((entry["lshard"], (_order(entry), staging.final_path, offset,
                                                entry["label"])))
        readers.close()
        out.close()
        if staging is not None:
            staging.close()
        # Progress for local runs (Dataflow shows the Beam counters live in its console): at
        # most PROGRESS_LINES lines per set (ImageNet's unlabeled set has 1,024 shards), each
        # in one write, so that lines of parallel worker processes never run into each other.
        if shard % max(1, num // PROGRESS_LINES) == 0:
            sys.stderr.write(f"prepare_splits: {set_name} shard {shard + 1}/{num}: "
                             f"{stats['read']} read, {len(rejected)} rejected\n")
            sys.stderr.flush()
        yield stats
        for item in index:
            yield beam.pvalue.TaggedOutput(LABELED_INDEX, item)
        for item in rejected:
            yield beam.pvalue.TaggedOutput(REJECTED, item)


class AssembleLabeledShard(beam.DoFn):
    """(labeled shard, [(order, staging path, offset, label)]) -> labeled shard."""

    def __init__(self, out_dir, work_dir, num_shards):
        self._out_dir, self._work_dir, self._num = out_dir, work_dir, num_shards
        self._written = Metrics.counter(NAMESPACE, "labeled_written")

    def process(self, keyed):
        shard, items = keyed
        out = _AtomicWriter(
            f"{self._out_dir}/{shards.shard_name(schema.LABELED, shard, self._num)}",
            self._work_dir)
        stats, readers = new_stats(), _Readers()
        for _, path, offset, label in sorted(items, key=lambda item: tuple(item[0])):
            out.write(readers.record(path, offset))
            self._written.inc()
            _bump(stats, "written", schema.LABELED, str(label))
        readers.close()
        out.close()
        yield stats


def build_write_pipeline(pipeline, *, plan_glob, out_dir, work_dir, layout):
    """Pass 2: read the plan, write every shard, collect stats and rejections."""
    grouped = (pipeline
               | "ReadPlan" >> beam.io.ReadFromText(plan_glob)
               | "ParsePlan" >> beam.Map(json.loads)
               | "AssignShards" >> beam.Map(assign_shards, layout=layout)
               | "GroupByShard" >> beam.GroupByKey())
    written = grouped | "ReadImages" >> beam.ParDo(
        WriteImageShard(out_dir, work_dir, layout)).with_outputs(
            LABELED_INDEX, REJECTED, main="stats")
    labeled_stats = (written[LABELED_INDEX]
                     | "GroupLabeledByShard" >> beam.GroupByKey()
                     | "WriteLabeledShards" >> beam.ParDo(AssembleLabeledShard(
                         out_dir, work_dir, layout[schema.LABELED]["shards"])))
    _ = ((written.stats, labeled_stats)
         | "AllStats" >> beam.Flatten()
         | "SumStats" >> beam.CombineGlobally(MergeStatsFn())
         | "WriteStats" >> beam.Map(write_json_file, path=f"{work_dir}/stats.json"))
    _ = (written[REJECTED]
         | "RejectedToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
         | "WriteRejected" >> beam.io.WriteToText(f"{work_dir}/rejected/part",
                                                  file_name_suffix=".jsonl"))
