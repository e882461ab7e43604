"""TrainSupervised through the real Luigi scheduler on a tiny demo split."""

import glob
import json
import os

import luigi
import pytest

from pipeline import train_tasks

DEMO = {"image_size": 32, "train_per_class": 8, "val_per_class": 3, "num_classes": 3}


def task(root, **kw):
    return train_tasks.TrainSupervised(root=str(root), demo=DEMO, split="frac50.seed1",
                                       preset="smoke", **kw)


def test_train_supervised_task_publishes_metrics_and_checkpoint(tmp_path):
    t = task(tmp_path, hparams='"augment": {"type": "horizontal_flip"}')
    assert luigi.build([t], local_scheduler=True, log_level="WARNING")
    out = t.output().path
    result = t.manifest()["result"]
    assert result["steps"] >= 1 and 0.0 <= result["top1"] <= 1.0
    assert result["eval_examples"] == 9
    assert json.load(open(os.path.join(out, "metrics.json")))["steps"] == result["steps"]
    hp = json.load(open(os.path.join(out, "hparams.json")))
    assert hp["augment"]["type"] == "horizontal_flip" and hp["model"]["name"] == "resnet_tiny"
    import tensorflow as tf
    ckpt = tf.train.latest_checkpoint(os.path.join(out, "checkpoint"))
    assert ckpt and ckpt.endswith(f"checkpoint-{result['steps']}")
    with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:  # no .work/ paths
        assert json.load(f)["checkpoint"] == f"checkpoint/checkpoint-{result['steps']}"
    names = {n.split("/")[0] for n, _ in tf.train.list_variables(ckpt)}
    assert {"model", "ema_model", "optimizer"} <= names
    # Published: the resume scratch is gone, the event files moved to their one named place.
    assert not os.path.exists(t.work_dir) and "summaries" not in os.listdir(out)
    assert result["tensorboard"] == f"tensorboard/{t.run_name}"
    assert t.run_name == f"supervised-frac50.seed1-smoke-{t.fingerprint[:8]}"
    tags = tensorboard_tensors(os.path.join(str(tmp_path), result["tensorboard"]))
    assert "test/accuracy" in tags and "train/loss" in tags  # the engine's curves, moved
    card = tags["run"][0].tensor_proto.string_val[0].decode()
    assert f"| run | {t.run_name} |" in card and f"`{t.fingerprint}`" in card
    assert "| augment | horizontal_flip |" in card and "thousandths of a labeled epoch" in card
    # Same parameters (spelled differently) = same fingerprint = nothing to do.
    same = task(tmp_path, hparams='{"augment": {"type": "horizontal_flip"}}')
    assert same.fingerprint == t.fingerprint and same.complete()


def tensorboard_tensors(log_dir):
    """Tag -> events, read with TensorBoard's own loader (as `tensorboard --logdir` would)."""
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(log_dir, size_guidance={"tensors": 0})
    acc.Reload()
    return {tag: acc.Tensors(tag) for tag in acc.Tags()["tensors"]}


def test_bad_hparams_fail_when_the_task_is_fingerprinted(tmp_path):
    from fixmatch.hparams import HParamsError
    with pytest.raises(HParamsError, match="augment.typo"):
        task(tmp_path, hparams='"augment": {"typo": 1}').fingerprint


def test_train_fixmatch_task_shares_the_split_and_publishes_its_diagnostics(tmp_path):
    sup = task(tmp_path)
    fm = train_tasks.TrainFixMatch(root=str(tmp_path), demo=DEMO, split="frac50.seed1",
                                   preset="smoke")
    # Independent trainings of one split: `--workers 2` runs them side by side.
    assert fm.requires().fingerprint == sup.requires().fingerprint
    assert fm.fingerprint != sup.fingerprint and fm.stage_name == "train_fixmatch"
    assert luigi.build([fm], local_scheduler=True, log_level="WARNING")
    result = fm.manifest()["result"]
    assert result["steps"] >= 1 and 0.0 <= result["mask_rate"] <= 1.0
    metrics = json.load(open(os.path.join(fm.output().path, "metrics.json")))
    assert metrics["checkpoint"] == f"checkpoint/checkpoint-{result['steps']}"
    hp = json.load(open(os.path.join(fm.output().path, "hparams.json")))
    assert hp["uratio"] == 2 and hp["augment"]["type"] == "randaugment"
    from fixmatch.hparams import HParamsError
    with pytest.raises(HParamsError, match="FixMatch needs a strong augmentation"):
        train_tasks.TrainFixMatch(root=str(tmp_path), demo=DEMO, preset="smoke",
                                  hparams='"augment": {"type": "noop"}').fingerprint


def test_a_failed_run_keeps_its_work_dir_and_the_rerun_resumes_from_it(tmp_path, monkeypatch):
    """The work dir exists for one reason: a failed or killed run resumes from it."""
    from fixmatch.train import checkpoint
    t = task(tmp_path)
    publish = checkpoint.publish_run

    def fail(**kw):
        raise OSError("publish failed (test)")

    monkeypatch.setattr(checkpoint, "publish_run", fail)
    assert not luigi.build([t], local_scheduler=True, log_level="WARNING")
    assert not t.complete() and glob.glob(os.path.join(t.work_dir, "checkpoint-*.index"))
    monkeypatch.setattr(checkpoint, "publish_run", publish)
    assert luigi.build([t], local_scheduler=True, log_level="WARNING")
    result = t.manifest()["result"]
    assert result["steps"] == result["total_steps"] and result["steps_this_run"] == 0  # resumed
    assert not os.path.exists(t.work_dir)


# ------------------------------------------------------------------ each task, its parameters

FULL_RUN_FLAGS = {"--root": "ROOT", "--data-dir": "", "--split": "frac50.seed1",
                  "--allow-missing": None, "--demo": json.dumps(DEMO), "--preset": "smoke",
                  "--hparams": '"weight_decay": 0.001',
                  "--supervised-hparams": '"run": {"seed": 1}',
                  "--fixmatch-hparams": '"uratio": 3', "--beam-args": "--direct_num_workers=1",
                  "--tpu": ""}


def graph(task):
    """Every task FullRun (or `task`) reaches, by task id."""
    tasks, todo = {}, [task]
    while todo:
        t = todo.pop()
        tasks[t.task_id] = t
        todo.extend(luigi.task.flatten(t.requires()))
    return tasks


def from_command_line(family, flags):
    from luigi.cmdline_parser import CmdlineParser
    argv = [family]
    for flag, value in flags.items():
        argv.append(flag if value is None else f"{flag}={value}")
    with CmdlineParser.global_instance(argv) as parser:
        return parser.get_task_obj()


def test_every_task_alone_with_full_run_flags_is_the_task_full_run_builds(tmp_path):
    """`luigi --module pipeline <Task>` with FullRun's flags (those the task takes) names the
    same task, so it finds FullRun's cached outputs; a flag of the other program is refused."""
    import pipeline  # noqa: F401  (registers every task family)
    flags = dict(FULL_RUN_FLAGS, **{"--root": str(tmp_path)})
    full = from_command_line("FullRun", flags)
    tasks = graph(full)
    families = sorted(t.get_task_family() for t in tasks.values())
    assert families == sorted(["FullRun", "Report", "TrainSupervised", "TrainFixMatch",
                               "EvaluateSupervised", "EvaluateFixMatch", "ExportFixMatch",
                               "PrepareSplits", "DemoData"]), families
    for t in tasks.values():
        if t.get_task_family() in ("FullRun", "DemoData"):
            continue  # DemoData takes FullRun's --demo dict, not its flags
        own = {n.replace("_", "-") for n, _ in t.get_params()}
        alone = from_command_line(t.get_task_family(),
                                  {f: v for f, v in flags.items() if f[2:] in own})
        assert alone.task_id == t.task_id, t.get_task_family()
        assert alone.out_dir == t.out_dir
    with pytest.raises(SystemExit):  # argparse: unrecognized arguments
        from_command_line("TrainSupervised", {"--fixmatch-hparams": '"uratio": 3'})
    with pytest.raises(SystemExit):
        from_command_line("EvaluateFixMatch", {"--supervised-hparams": '"run": {"seed": 1}'})


def test_a_program_override_changes_only_that_programs_tasks(tmp_path):
    from pipeline import report_tasks
    kw = dict(root=str(tmp_path), demo=DEMO, split="frac50.seed1", preset="smoke")
    one = graph(report_tasks.FullRun(**kw, fixmatch_hparams='"uratio": 3'))
    two = graph(report_tasks.FullRun(**kw, fixmatch_hparams='"uratio": 4'))
    changed = sorted(t.get_task_family() for i, t in one.items() if i not in two)
    assert changed == ["EvaluateFixMatch", "ExportFixMatch", "FullRun", "Report",
                       "TrainFixMatch"], changed
    one = graph(report_tasks.FullRun(**kw, supervised_hparams='"run": {"seed": 3}'))
    two = graph(report_tasks.FullRun(**kw, supervised_hparams='"run": {"seed": 4}'))
    changed = sorted(t.get_task_family() for i, t in one.items() if i not in two)
    assert changed == ["EvaluateSupervised", "FullRun", "Report", "TrainSupervised"], changed


@pytest.mark.parametrize("where", ["local", "url"])
def test_event_files_move_to_their_named_place_replacing_a_failed_runs(tmp_path, where):
    """The move behind `ROOT/tensorboard/<run name>/`: a rename on disk, copy + delete on an
    object store (here TF's ram://, the gs:// code path); what an earlier failed run left at
    the destination is replaced, not merged."""
    from fixmatch import fs
    base = str(tmp_path) if where == "local" else f"ram://move-test-{os.getpid()}"
    src, dst = fs.join(base, "work", "summaries"), fs.join(base, "tensorboard", "run-1")
    fs.makedirs(fs.join(src, "sub"))
    fs.write_text(fs.join(src, "events.out.tfevents.1"), "new")
    fs.write_text(fs.join(src, "sub", "events.out.tfevents.2"), "new sub")
    fs.makedirs(dst)
    fs.write_text(fs.join(dst, "events.out.tfevents.0"), "stale")
    train_tasks._move_tree(src, dst)
    assert not fs.exists(src)
    assert sorted(fs.listdir(dst)) == ["events.out.tfevents.1", "sub"]
    assert fs.read_text(fs.join(dst, "sub", "events.out.tfevents.2")) == "new sub"
