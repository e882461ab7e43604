"""Pass 1 of the split job: list the input and decide every record's place.

Only small references (name, class, location) flow here, never image bytes, so
the one grouping step (per class, needed to rank a class and pick its labeled
images) costs memory proportional to one class's file names.
"""

import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from fixmatch.splitting import names as names_lib
from fixmatch.splitting import example_codec, recordio, selection, sources

NAMESPACE = "prepare_splits"
REJECTED = "rejected"


class ScanTFRecordFile(beam.DoFn):
    """(set, path) of an imagenet_to_gcs file -> one reference per record.

    Labels are converted to 0-based here. Records without a usable filename or
    label go to the `rejected` output with a reason.
    """

    def process(self, unit, root):
        set_name, path = unit
        for offset, data in recordio.scan_records(path):
            where = f"{path[len(root.rstrip('/')) + 1:]}@{offset}"
            try:
                feature = example_codec.decode_features(data)
                name = feature["image/filename"][0].decode("utf-8")
                label = int(feature["image/class/label"][0]) - 1
                synsets = feature.get("image/class/synset")
                synset = synsets[0].decode("utf-8") if synsets else str(label)
            except Exception as e:  # malformed Example of any kind: reject, keep going
                yield beam.pvalue.TaggedOutput(REJECTED, {
                    "file": where, "set": set_name, "class": None,
                    "reason": "record without image/filename or image/class/label",
                    "detail": repr(e)})
                continue
            if label < 0:
                yield beam.pvalue.TaggedOutput(REJECTED, {
                    "file": where, "set": set_name, "class": synset,
                    "reason": "image/class/label is not 1-based (must be >= 1)",
                    "detail": f"label {label + 1}"})
                continue
            yield {"set": set_name, "label": label, "synset": synset,
                   "name": name.rsplit("/", 1)[-1], "path": path, "offset": offset,
                   "size": len(data), "rel": where}


class ListClassDir(beam.DoFn):
    """(set, label, synset, dir) of a class folder -> its image references (+ rejected)."""

    def process(self, unit, root):
        for item in sources.list_class_dir(unit, root):
            if "rejected" in item:
                yield beam.pvalue.TaggedOutput(REJECTED, item["rejected"])
            else:
                yield item


class ListInputs(beam.PTransform):
    """Source -> references of every train and validation image (+ rejected)."""

    def __init__(self, source: sources.Source):
        super().__init__()
        self._source = source

    def expand(self, pbegin):
        units = (pbegin
                 | "ListUnits" >> beam.Create(list(self._source.units))
                 | "SpreadUnits" >> beam.Reshuffle())
        if self._source.kind == sources.FOLDERS:
            out = units | "ListImages" >> beam.ParDo(
                ListClassDir(), root=self._source.root).with_outputs(REJECTED, main="refs")
            return out.refs, out[REJECTED]
        out = units | "ScanRecords" >> beam.ParDo(
            ScanTFRecordFile(), root=self._source.root).with_outputs(REJECTED, main="refs")
        return out.refs, out[REJECTED]


class RankClasses(beam.DoFn):
    """((set, label), refs of that class) -> planned refs with rank / lrank."""

    def __init__(self, spec: names_lib.SplitSpec):
        self._spec = spec
        self._labeled_names = None

    def setup(self):
        if self._spec.kind == names_lib.LIST:
            self._labeled_names = selection.list_names(self._spec)

    def process(self, keyed):
        (set_name, _), refs = keyed
        for entry in selection.rank_class(
                refs, spec=self._spec, labeled_names=self._labeled_names,
                with_labels=set_name == sources.TRAIN):
            yield entry


class PlanSplit(beam.PTransform):
    """References -> planned references (one group per class, keys only)."""

    def __init__(self, spec: names_lib.SplitSpec):
        super().__init__()
        self._spec = spec

    def expand(self, refs):
        return (refs
                | "KeyByClass" >> beam.Map(lambda r: ((r["set"], r["label"]), r))
                | "GroupByClass" >> beam.GroupByKey()
                | "RankWithinClass" >> beam.ParDo(RankClasses(self._spec)))


class _SumModFn(beam.CombineFn):
    """Order-independent sum of 256-bit hex digests (the source fingerprint).
    Accumulators are Python ints, which Beam encodes with its pickle coder."""

    def create_accumulator(self):
        return 0

    def add_input(self, acc, value):
        return (acc + int(value, 16)) % (1 << 256)

    def merge_accumulators(self, accs):
        return sum(accs) % (1 << 256)

    def extract_output(self, acc):
        return format(acc, "064x")


def _sum_pairs(values):
    images = labeled = 0
    for a, b in values:
        images += a
        labeled += b
    return images, labeled


def write_json_file(value, path: str):
    """Write one small JSON value to `path` (a side file collected by run())."""
    with FileSystems.create(path) as f:
        f.write(json.dumps(value, sort_keys=True).encode("utf-8"))
    return path


class SummarisePlan(beam.PTransform):
    """Write the small facts run() needs between the passes into `work_dir`.

    class_counts.json: [[set, label, synset, images, labeled], ...]
    matched_names.json: labeled base names (named lists only; bounded by the list)
    fingerprint.json: order-independent hash of (relative path, size, mtime)
    """

    def __init__(self, work_dir: str, spec: names_lib.SplitSpec):
        super().__init__()
        self._work_dir = work_dir
        self._spec = spec

    def _side_file(self, pcoll, label, name):
        return pcoll | f"Write{label}" >> beam.Map(write_json_file,
                                                   path=f"{self._work_dir}/{name}")

    def expand(self, planned):
        counts = (planned
                  | "ClassKey" >> beam.Map(lambda e: ((e["set"], e["label"], e["synset"]),
                                                      (1, int(e["lrank"] >= 0))))
                  | "CountPerClass" >> beam.CombinePerKey(_sum_pairs)
                  | "FlattenCount" >> beam.Map(lambda kv: [*kv[0], *kv[1]])
                  | "AllClasses" >> beam.combiners.ToList()
                  | "SortClasses" >> beam.Map(sorted))
        written = [self._side_file(counts, "ClassCounts", "class_counts.json")]
        fingerprint = (planned
                       | "RefHash" >> beam.Map(sources.ref_fingerprint)
                       | "SumHashes" >> beam.CombineGlobally(_SumModFn()))
        written.append(self._side_file(fingerprint, "Fingerprint", "fingerprint.json"))
        if self._spec.kind == names_lib.LIST:
            matched = (planned
                       | "Labeled" >> beam.Filter(lambda e: e["lrank"] >= 0)
                       | "LabeledName" >> beam.Map(lambda e: e["name"])
                       | "MatchedNames" >> beam.combiners.ToSet()
                       | "SortNames" >> beam.Map(sorted))
            written.append(self._side_file(matched, "Matched", "matched_names.json"))
        return written


class CountListed(beam.DoFn):
    """Beam counter of listed images, so progress shows during pass 1."""

    def __init__(self):
        self._listed = Metrics.counter(NAMESPACE, "images_listed")

    def process(self, ref):
        self._listed.inc()
        yield ref


def build_plan_pipeline(pipeline, *, source, spec, work_dir):
    """Pass 1: list, rank, write the plan (JSON lines) and the side files."""
    refs, rejected = pipeline | "ReadInputs" >> ListInputs(source)
    planned = (refs
               | "CountListed" >> beam.ParDo(CountListed())
               | "PlanSplit" >> PlanSplit(spec))
    _ = (planned
         | "PlanToJson" >> beam.Map(lambda e: json.dumps(e, sort_keys=True))
         | "WritePlan" >> beam.io.WriteToText(f"{work_dir}/plan/part", file_name_suffix=".jsonl"))
    _ = (rejected
         | "RejectedToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
         | "WriteRejectedRecords" >> beam.io.WriteToText(
             f"{work_dir}/plan_rejected/part", file_name_suffix=".jsonl"))
    _ = planned | "SummarisePlan" >> SummarisePlan(work_dir, spec)
