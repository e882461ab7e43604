"""gs:// code paths without a network: TensorFlow's in-memory ram:// file system has the same
tf.io.gfile API, so training, resume, evaluation and export on ram:// run what gs:// would."""

import json
import os

import pytest

from fixmatch import fs
from fixtures.split_dirs import write_split


@pytest.fixture(scope="module")
def remote_split(tmp_path_factory):
    local = write_split(tmp_path_factory.mktemp("split") / "tiny")
    url = f"ram://remote-{os.getpid()}/splits/tiny"
    fs.copy_tree(local, url)
    return url


def test_train_resume_evaluate_and_export_on_ram(remote_split, capsys):
    from stages import evaluate, export, train_supervised
    base = f"ram://remote-{os.getpid()}"
    model_dir, published = f"{base}/model", f"{base}/published"
    hparams = '"run": {"max_steps": 4}, "num_epochs": 2'
    first = train_supervised.run(data=remote_split, model_dir=model_dir, preset="smoke",
                                 hparams=hparams)
    assert first["steps"] == 4 and fs.exists(f"{model_dir}/checkpoint-4.index")
    # The rerun of a finished run restores its checkpoint from ram:// and trains nothing.
    lines = []
    again = train_supervised.run(data=remote_split, model_dir=model_dir, preset="smoke",
                                 hparams=hparams, publish_dir=published, log=lines.append)
    assert any(line.startswith("restored") and "(step 4)" in line for line in lines), lines
    assert again["steps_this_run"] == 0 and again["top1"] == first["top1"]
    assert json.loads(fs.read_text(f"{published}/metrics.json"))["steps"] == 4
    result = evaluate.run(model=published, data=remote_split, out=f"{base}/eval")
    assert result["count"] == 12 and fs.exists(f"{base}/eval/evaluation.json")
    exported = export.run(model=published, data=remote_split, out=f"{base}/export")
    assert fs.exists(f"{base}/export/saved_model/saved_model.pb"), exported
