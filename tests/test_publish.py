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
