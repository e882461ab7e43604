"""Build a split directory (labeled / unlabeled / validation TFRecords) with Beam.

    python -m stages.prepare_splits --input DATA --output OUT --split frac10.seed1
    python -m stages.prepare_splits --input gs://b/imagenet --output gs://b/splits/s1 \\
        --split fixmatch_10pct.1 --runner=DataflowRunner --project=P --region=R \\
        --temp_location=gs://b/tmp --setup_file=./setup.py

Flags this module does not know are Beam pipeline options. Two Beam passes:
pass 1 lists the input and plans every record (small references only); run()
then checks the plan (named-list coverage, class consistency) before pass 2
decodes each image once and writes the shards. run() writes classes.txt,
rejected.jsonl and finally split.json (its facts), so a directory with split.json is
complete.

Memory: no image byte crosses a Beam shuffle, so worker processes stay flat as the input
grows. The local runner (FnApiRunner) keeps all inter-stage data in the driver's memory;
here that is file references only, measured at ~4-5 KB per image (~6 GB for the full
ImageNet train set): use Dataflow (or another distributed runner) at that scale.
"""

import json
import logging
import os
import sys
import time

from absl import flags

import fixmatch
from fixmatch import fs
from fixmatch.data import schema
from fixmatch.data.split_dir import SPLIT_FILE
from fixmatch.splitting import layout as layout_lib
from fixmatch.splitting import names as names_lib
from fixmatch.splitting import plan_transforms, selection, sources, write_transforms
from stages import cli

FORMAT_VERSION = 1
WORK = ".work"

PROGRAM = cli.Program("prepare_splits", __doc__, required=("input", "output"),
                      unknown_flags=True)
flags.DEFINE_string("input", None, "Image-folder data set or imagenet_to_gcs TFRecord dir "
                    "(local or gs://).", flag_values=PROGRAM.flags)
flags.DEFINE_string("output", None, "Split directory to create (local or gs://).",
                    flag_values=PROGRAM.flags)
flags.DEFINE_string("split", "frac10.seed1", "full | simclr_1pct | simclr_10pct | "
                    "fixmatch_10pct.K (alias imagenet128116.K) | frac<P>.seed<N>",
                    flag_values=PROGRAM.flags)
flags.DEFINE_bool("allow_missing", False, "Accept named-list entries that have no image "
                  "in the input (e.g. a subset of ImageNet).", flag_values=PROGRAM.flags)


def parse_args(argv):
    """argv (with program name) -> (run() keyword args, Beam pipeline args)."""
    values, beam_args = PROGRAM.parse(argv)
    kwargs = {name: values[name].value for name in ("input", "output", "split", "allow_missing")}
    return kwargs, beam_args


def pipeline_options(beam_args=None):
    """(runner, PipelineOptions) for the job.

    No --runner or DirectRunner: Beam's FnApiRunner in multi-process mode over
    all cores (unless --direct_num_workers / --direct_running_mode say
    otherwise; run() uses fewer processes for small inputs, see local_workers).
    It is used directly because the DirectRunner first tries to download the
    Prism runner binary. DataflowRunner: --setup_file defaults to
    this package's setup.py so workers install the code and the split lists.
    """
    from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions,
                                                      SetupOptions, StandardOptions)
    args = list(beam_args or [])
    options = PipelineOptions(args)
    runner = options.view_as(StandardOptions).runner
    given = " ".join(args)
    if runner in (None, "DirectRunner", "FnApiRunner"):
        direct = options.view_as(DirectOptions)
        if "--direct_num_workers" not in given:
            direct.direct_num_workers = 0
        if "--direct_running_mode" not in given:
            direct.direct_running_mode = ("in_memory" if direct.direct_num_workers == 1
                                          else "multi_processing")
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return FnApiRunner(), options
    if runner == "DataflowRunner":
        setup = options.view_as(SetupOptions)
        default_setup = os.path.join(_repo_root(), "setup.py")
        if not setup.setup_file and os.path.exists(default_setup):
            setup.setup_file = default_setup
    return runner, options


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(fixmatch.__file__)))


#: A local worker process costs ~1.5 CPU-seconds to start (Python + Beam imports), about
#: what decoding 1,000-2,000 ImageNet JPEGs costs; fewer images per process than this and
#: extra processes cost more than they save.
IMAGES_PER_LOCAL_WORKER = 2500


def local_workers(num_images: int) -> int:
    """Worker processes for the decoding pass of a local run without --direct_num_workers."""
    return max(1, min(os.cpu_count() or 1, num_images // IMAGES_PER_LOCAL_WORKER))


def _run_pipeline(build, beam_args, *, workers=None, **kwargs):
    """Build and run one pass; returns (result, description of the runner used).

    `workers`: for a local run without an explicit --direct_num_workers, the number of
    worker processes (1 = in this process); see IMAGES_PER_LOCAL_WORKER."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import DirectOptions
    runner, options = pipeline_options(beam_args)
    local = not isinstance(runner, str)
    direct = options.view_as(DirectOptions)
    if local and workers and "--direct_num_workers" not in " ".join(beam_args or []):
        direct.direct_num_workers = workers
        direct.direct_running_mode = "in_memory" if workers == 1 else "multi_processing"
    used = ({"runner": "FnApiRunner", "workers": direct.direct_num_workers or os.cpu_count(),
             "mode": direct.direct_running_mode} if local else {"runner": runner})
    # Local worker processes must import this package like the driver does.
    path = os.environ.get("PYTHONPATH", "")
    if _repo_root() not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_repo_root(), path) if p)
    pipeline = beam.Pipeline(runner=runner, options=options)
    build(pipeline, **kwargs)
    result = pipeline.run()
    result.wait_until_finish()
    return result, used


def _counters(result):
    """Committed values of the job's Beam counters (images_read, images_written, ...)."""
    from apache_beam.metrics.metric import MetricsFilter
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(
            write_transforms.NAMESPACE))["counters"]
    except (NotImplementedError, KeyError, AttributeError):  # a runner without metrics
        return {}
    totals = {}
    for counter in found:
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (
            counter.committed or 0)
    return dict(sorted(totals.items()))


def _read_json(path):
    return json.loads(fs.read_text(path))


def _read_lines(pattern):
    return [ln for path in fs.glob(pattern) for ln in fs.read_text(path).splitlines()
            if ln.strip()]


def _prepare_output(output):
    """Refuse a finished split; clear what an interrupted run of ours left."""
    if fs.exists(f"{output}/{SPLIT_FILE}"):
        raise layout_lib.SplitError(
            f"{output} already holds a finished split ({SPLIT_FILE}); choose a new --output")
    fs.require_writable(output, what="--output", error=layout_lib.SplitError)
    for pattern in [f"{output}/{s}.tfrecord-*" for s in schema.SETS] + [
            f"{output}/classes.txt", f"{output}/rejected.jsonl"]:
        for path in fs.glob(pattern):
            fs.remove(path)
    fs.rmtree(f"{output}/{WORK}")
    fs.makedirs(output)


def run(*, input, output, split, allow_missing=False, beam_args=None) -> dict:
    """Build split `split` of `input` into `output`; returns the facts dict."""
    spec = names_lib.parse_split_name(split)
    output = output.rstrip("/")
    source = sources.inspect_source(input)
    list_sha = selection.list_sha256(spec)
    _prepare_output(output)
    work = f"{output}/{WORK}"
    started = time.time()

    _progress(f"pass 1/2: listing and planning {input} (split {spec.name})")
    _run_pipeline(plan_transforms.build_plan_pipeline, beam_args,
                  workers=1 if source.kind == sources.FOLDERS else None,
                  source=source, spec=spec, work_dir=work)
    rows = _read_json(f"{work}/class_counts.json")
    classes = layout_lib.class_names(rows, source.classes)
    layout_lib.check_validation_classes(rows, classes)
    coverage = None
    if spec.kind == names_lib.LIST:
        coverage = layout_lib.check_list_coverage(
            list_names=selection.list_names(spec), matched=_read_json(f"{work}/matched_names.json"),
            list_file=spec.list_file, allow_missing=allow_missing)
    counts = layout_lib.per_set_class_counts(rows)
    if not counts[schema.LABELED]:
        raise layout_lib.SplitError(f"split {spec.name!r} selects no labeled image from {input}")
    layout = layout_lib.shard_layout(counts)
    _progress("pass 2/2: decoding and writing " + ", ".join(
        f"{name} {sum(counts[name].values())} images in {layout[name]['shards']} shards"
        for name in schema.SETS))

    result, runner_used = _run_pipeline(
        write_transforms.build_write_pipeline, beam_args,
        workers=local_workers(layout[schema.UNLABELED]["records"]
                              + layout[schema.VALIDATION]["records"]),
        plan_glob=f"{work}/plan/part*", out_dir=output, work_dir=work, layout=layout)
    counters = _counters(result)
    _progress(f"Beam counters {counters}")
    stats = _read_json(f"{work}/stats.json")
    _complete_empty_shards(output, layout)
    plan_rejected = _read_lines(f"{work}/plan_rejected/part*")
    rejected = sorted(_read_lines(f"{work}/rejected/part*") + plan_rejected)
    fs.write_text(f"{output}/classes.txt", "".join(c + "\n" for c in classes))
    fs.write_text(f"{output}/rejected.jsonl", "".join(r + "\n" for r in rejected))
    facts = _facts(spec=spec, split=split, source=source, classes=classes, layout=layout,
                         stats=stats, rejected=rejected, plan_rejected=plan_rejected,
                         coverage=coverage, list_sha=list_sha,
                         allow_missing=allow_missing,
                         fingerprint=_read_json(f"{work}/fingerprint.json"))
    fs.rmtree(work)
    facts["seconds"] = round(time.time() - started, 1)
    facts["beam_counters"] = counters
    facts["runner"] = runner_used
    fs.write_text(f"{output}/{SPLIT_FILE}", json.dumps(facts, indent=2, sort_keys=True))
    return facts


def _progress(message):
    cli.progress(PROGRAM.name, message)


def _complete_empty_shards(output, layout):
    """A shard whose every image was rejected still exists (as an empty file)."""
    from fixmatch.splitting import shards
    for set_name, info in layout.items():
        for i in range(info["shards"]):
            path = f"{output}/{shards.shard_name(set_name, i, info['shards'])}"
            if not fs.exists(path):
                fs.write_text(path, "")


def _facts(*, spec, split, source, classes, layout, stats, rejected, plan_rejected,
              coverage, list_sha,
              allow_missing, fingerprint):
    per_class = {s: {classes[int(label)]: n for label, n in sorted(
        stats["written"].get(s, {}).items(), key=lambda kv: int(kv[0]))} for s in schema.SETS}
    plan_reasons = {}
    for line in plan_rejected:  # malformed TFRecord entries found while planning
        reason = json.loads(line)["reason"]
        plan_reasons[reason] = plan_reasons.get(reason, 0) + 1
    reasons = write_transforms.merge_stats(stats["rejected"], plan_reasons)
    return {
        "stage": "prepare_splits", "format_version": FORMAT_VERSION,
        "package_version": fixmatch.__version__,
        "split": spec.name, "requested_split": split, "split_kind": spec.kind,
        "selection": _describe(spec),
        "list_file": spec.list_file, "list_sha256": list_sha, "allow_missing": allow_missing,
        "list_coverage": coverage,
        "input": source.root, "input_format": source.kind,
        "source_fingerprint": source.listing_fingerprint or fingerprint,
        "num_classes": len(classes),
        "counts": {s: sum(per_class[s].values()) for s in schema.SETS},
        "counts_per_class": per_class,
        "planned": {s: layout[s]["records"] for s in schema.SETS},
        "shards": {s: layout[s]["shards"] for s in schema.SETS},
        "images_read": stats["read"],
        "rejected": {"count": len(rejected), "reasons": reasons},
        "converted": {"count": sum(stats["converted"].values()), "reasons": stats["converted"]},
    }


def _describe(spec):
    if spec.kind == names_lib.FULL:
        return "every train image is labeled"
    if spec.kind == names_lib.LIST:
        return f"train images whose base name is in {spec.list_file}"
    return (f"per class of n images: k = min(n, max(1, floor(n*{spec.percent}/100 + 1/2))) "
            f"with the smallest sha256(seed={spec.seed}, base name)")


def main(argv=None):
    def body(values, beam_args):
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        kwargs = {name: values[name].value for name in ("input", "output", "split",
                                                         "allow_missing")}
        split = run(**kwargs, beam_args=beam_args)
        return {k: split[k] for k in ("split", "counts", "shards", "rejected", "converted")}

    return PROGRAM.main(body, argv, errors=(names_lib.SplitNameError, sources.SourceError,
                                            layout_lib.SplitError))


if __name__ == "__main__":
    sys.exit(main())
