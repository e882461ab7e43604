"""The command line of stages.prepare_splits on Dataflow, and what its workers install."""

import os
import shutil
import subprocess
import sys
import tarfile

from apache_beam.options.pipeline_options import (GoogleCloudOptions, SetupOptions,
                                                  StandardOptions)

from fixmatch import split_lists
from stages import prepare_splits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dataflow_command_reaches_pipeline_options():
    argv = ["prepare_splits", "--input=gs://bucket/imagenet", "--output=gs://bucket/splits/f1",
            "--split=imagenet128116.1", "--runner=DataflowRunner", "--project=my-project",
            "--region=europe-west4", "--temp_location=gs://bucket/tmp",
            "--setup_file=./setup.py", "--max_num_workers=50"]
    kwargs, beam_args = prepare_splits.parse_args(argv)
    assert kwargs == {"input": "gs://bucket/imagenet", "output": "gs://bucket/splits/f1",
                      "split": "imagenet128116.1", "allow_missing": False}
    runner, options = prepare_splits.pipeline_options(beam_args)
    assert runner == "DataflowRunner"
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    gcp = options.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region, gcp.temp_location) == (
        "my-project", "europe-west4", "gs://bucket/tmp")
    assert options.view_as(SetupOptions).setup_file == "./setup.py"
    assert options.get_all_options()["max_num_workers"] == 50


def test_dataflow_without_setup_file_ships_this_package():
    _, options = prepare_splits.pipeline_options(["--runner=DataflowRunner", "--project=p"])
    assert options.view_as(SetupOptions).setup_file == os.path.join(REPO, "setup.py")


def test_direct_runner_defaults_to_all_cores_in_processes():
    runner, options = prepare_splits.pipeline_options([])
    all_options = options.get_all_options()
    assert type(runner).__name__ == "FnApiRunner"
    assert (all_options["direct_num_workers"], all_options["direct_running_mode"]) == (
        0, "multi_processing")
    _, options = prepare_splits.pipeline_options(["--direct_num_workers=1"])
    assert options.get_all_options()["direct_running_mode"] == "in_memory"
    # small inputs are decoded in one process: starting workers would cost more
    assert prepare_splits.local_workers(100) == 1
    assert prepare_splits.local_workers(10 ** 7) == os.cpu_count()


def test_sdist_from_setup_py_carries_the_split_lists_and_the_stage(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "__pycache__", "*.egg-info", "build", "dist", "*.tfrecord*"))
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                    "--outdir", str(tmp_path / "dist")], cwd=src, check=True,
                   capture_output=True)
    (sdist,) = list((tmp_path / "dist").glob("*.tar.gz"))
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    for name in split_lists.LISTS:
        assert f"fixmatch/split_lists/data/{name}" in members
    for module in ("stages/prepare_splits.py", "fixmatch/splitting/write_transforms.py",
                   "fixmatch/data/schema.py", "setup.py"):
        assert module in members


def test_cli_reports_bad_input_as_an_error_message(tmp_path, capsys):
    code = prepare_splits.main(["prepare_splits", f"--input={tmp_path / 'missing'}",
                                f"--output={tmp_path / 'out'}", "--split=frac10.seed1"])
    assert code == 2
    assert "missing' does not exist" in capsys.readouterr().err
    assert prepare_splits.main(["prepare_splits", f"--input={tmp_path}",
                                f"--output={tmp_path / 'out'}", "--split=frac0.seed1"]) == 2
    assert "percentage must be in (0, 100]" in capsys.readouterr().err


def test_flags_do_not_leak_between_parses():
    kwargs, _ = prepare_splits.parse_args(["p", "--input=a", "--output=b", "--allow_missing",
                                           "--split=full"])
    assert kwargs["allow_missing"] and kwargs["split"] == "full"
    kwargs, rest = prepare_splits.parse_args(["p", "--input=a", "--output=b", "--foo=1"])
    assert (kwargs["allow_missing"], kwargs["split"], rest) == (False, "frac10.seed1", ["--foo=1"])


def test_both_passes_construct_for_dataflow_in_dry_run_mode(tmp_path, monkeypatch):
    """Each pass of a real local run is also built for DataflowRunner with --dry_run: the job
    graph is translated (every DoFn pickled) and the job request made, with no network."""
    from apache_beam.options.pipeline_options import TestOptions
    from stages import demo_data
    data = tmp_path / "images"
    demo_data.run(out_dir=str(data), train_per_class=10, val_per_class=2, image_size=16,
                  num_classes=3)
    real = prepare_splits._run_pipeline
    dry_runs = []

    def run_and_dry_run(build, beam_args, **kwargs):
        dataflow = ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west4",
                    "--temp_location=gs://no-such-bucket/tmp", "--dry_run=true"]
        result, _ = real(build, dataflow, **kwargs)
        options = result.job.options  # the request Dataflow would have received
        assert options.view_as(TestOptions).dry_run
        assert options.view_as(SetupOptions).setup_file == os.path.join(REPO, "setup.py")
        assert result.job.proto.steps or result.job.proto_pipeline.components.transforms
        dry_runs.append(build.__name__)
        return real(build, beam_args, **kwargs)

    monkeypatch.setattr(prepare_splits, "_run_pipeline", run_and_dry_run)
    facts = prepare_splits.run(input=str(data), output=str(tmp_path / "split"),
                               split="frac10.seed1",
                               beam_args=["--direct_num_workers=2",
                                          "--direct_running_mode=multi_processing"])
    assert len(dry_runs) == 2, dry_runs  # the planning pass and the writing pass
    assert facts["counts"]["labeled"] == 3 and facts["counts"]["validation"] == 6
