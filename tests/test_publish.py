"""checkpoint.publish_run: a finished model_dir becomes a self-contained output, local or URL."""

import json
import os

import pytest
import tensorflow as tf

from fixmatch import fs
from fixmatch.train import checkpoint


def finished_run(model_dir):
    """A model_dir as the engine leaves it: three checkpoints, hparams, metrics, summaries."""
    value = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=value), model_dir, max_to_keep=3,
                                         checkpoint_name=checkpoint.CHECKPOINT_NAME)
    for step in (2, 4, 6):
        value.assign(float(step))
        latest = manager.save(checkpoint_number=step)
    os.makedirs(os.path.join(model_dir, "summaries"))
    with open(os.path.join(model_dir, "summaries", "events.out"), "w") as f:
        f.write("events")
    with open(os.path.join(model_dir, "hparams.json"), "w") as f:
        json.dump({"num_epochs": 1}, f)
    os.makedirs(os.path.join(model_dir, ".tmp-worker-1"))
    return {"top1": 0.5, "steps": 6, "checkpoint": latest}


@pytest.mark.parametrize("where", ["local", "url"])
def test_publish_copies_the_final_checkpoint_with_relative_paths(tmp_path, where):
    model_dir = str(tmp_path / "work")
    metrics = finished_run(model_dir)
    out = str(tmp_path / "out") if where == "local" else "ram://publish_test/out"
    fs.makedirs(out)
    published = checkpoint.publish_run(model_dir=model_dir, out_dir=out, metrics=metrics)
    assert published == dict(metrics, checkpoint="checkpoint/checkpoint-6")
    assert json.loads(fs.read_text(fs.join(out, "metrics.json"))) == published
    assert fs.read_text(fs.join(out, "summaries", "events.out")) == "events"
    assert json.loads(fs.read_text(fs.join(out, "hparams.json"))) == {"num_epochs": 1}
    assert sorted(fs.listdir(out)) == ["checkpoint", "hparams.json", "metrics.json", "summaries"]
    latest = tf.train.latest_checkpoint(fs.join(out, "checkpoint"))
    assert latest == fs.join(out, "checkpoint", "checkpoint-6")
    assert not [n for n in fs.listdir(fs.join(out, "checkpoint")) if "checkpoint-4" in n]
    value = tf.Variable(-1.0)
    tf.train.Checkpoint(v=value).restore(latest).assert_existing_objects_matched()
    assert float(value.numpy()) == 6.0


# ------------------------------------------------ a remote publish interrupted partway (cache)

def _build(task):
    import luigi
    return luigi.build([task], local_scheduler=True, log_level="CRITICAL")


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_remote_publish_interrupted_partway_is_not_complete_and_is_redone(monkeypatch,
                                                                         fail_at):
    """On gs:// (here TF's ram://, the same tf.io.gfile code) a stage output is copied file by
    file; the copy failing at file `fail_at` must leave the task incomplete (the manifest is
    its last write), and the next run must publish the whole output. Every position is tried,
    so a manifest copied along with the files (or written first) is caught wherever it lands."""
    from pipeline import cache
    from tests.cache_fixture_tasks import Toy
    root = f"ram://publish-interrupted-{os.getpid()}-{fail_at}/runs"
    task = Toy(value=3, pad_bytes=64, root=root)
    copy, copies = tf.io.gfile.copy, []

    def failing_copy(src, dst, overwrite=False):
        copies.append(dst)
        if len(copies) == fail_at:
            raise tf.errors.UnavailableError(None, None, f"copy of {dst} interrupted (test)")
        return copy(src, dst, overwrite=overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", failing_copy)
    assert not _build(task)
    assert len(copies) == fail_at  # the run stopped at the failing copy
    assert not task.complete() and not fs.exists(fs.join(task.out_dir, cache.MANIFEST))
    monkeypatch.setattr(tf.io.gfile, "copy", copy)
    assert _build(task) and task.complete()
    assert sorted(fs.listdir(task.out_dir)) == sorted(
        [cache.MANIFEST, cache.PARAMS, "pad.bin", "partial.txt", "value.txt"])
    assert fs.read_text(fs.join(task.out_dir, "value.txt")) == "6"
    assert len(fs.read_bytes(fs.join(task.out_dir, "pad.bin"))) == 64
    assert task.manifest()["result"] == {"doubled": 6}
    assert [n for n in fs.listdir(task.stage_dir) if n != task.fingerprint] == []
