"""stages.train_supervised: validation before work, a smoke run (kill + resume: test_train_faults).

The split directory is written directly in the data contract of design
section 3 (schema.make_example shards + classes.txt + split.json counts),
tiny: 3 classes, 16 px images.
"""

import json
import os
import subprocess
import sys

import pytest

from fixmatch import hparams
from fixtures.split_dirs import write_split
from fixmatch.data import split_dir as split_dir_lib
from fixmatch.train import experiment
from stages import train_supervised

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "tiny")


def test_bad_hparams_fail_before_anything_is_built(tmp_path):
    with pytest.raises(hparams.HParamsError, match="learning_rate.base_lr"):
        train_supervised.run(data=str(tmp_path / "absent"), model_dir=str(tmp_path / "m"),
                             preset="smoke", hparams='"learning_rate": {"base_lr": -1}')
    with pytest.raises(hparams.HParamsError, match="run.steps_per_run"):
        train_supervised.run(data=str(tmp_path), model_dir=str(tmp_path / "m"),
                             preset="smoke", steps_per_run=0)
    with pytest.raises(hparams.HParamsError, match="unknown preset 'smok'"):
        train_supervised.run(data=str(tmp_path), model_dir=str(tmp_path / "m"), preset="smok")
    assert not (tmp_path / "m").exists()


def test_bad_split_directories_are_named(tmp_path, split_dir):
    with pytest.raises(split_dir_lib.SplitDirError, match="is not a directory"):
        train_supervised.run(data=str(tmp_path / "nope"), model_dir=str(tmp_path / "m"),
                             preset="smoke")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "classes.txt").write_text("a\nb\n")
    with pytest.raises(split_dir_lib.SplitDirError, match="split.json"):
        train_supervised.run(data=str(tmp_path / "half"), model_dir=str(tmp_path / "m"),
                             preset="smoke")
    (tmp_path / "half" / "split.json").write_text('{"counts": {"labeled": 4}}')
    with pytest.raises(split_dir_lib.SplitDirError, match="counts.validation"):
        split_dir_lib.read_split(str(tmp_path / "half"))
    info = split_dir_lib.read_split(split_dir)
    assert info.num_classes == 3 and info.num_labeled == 24


def test_cli_reports_bad_flags_clearly(tmp_path):
    cmd = [sys.executable, "-m", "stages.train_supervised", "--data", str(tmp_path),
           "--model_dir", str(tmp_path / "m"), "--preset", "smoke",
           "--hparams", '"augment": {"type": "autoaugment"}']
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "augment.type" in proc.stderr and "autoaugment" in proc.stderr
    proc = subprocess.run(cmd[:5] + ["--preset", "large"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "large" in proc.stderr


def test_smoke_run_with_ctaugment_saves_state_and_refuses_other_hparams(tmp_path, split_dir):
    import tensorflow as tf

    model_dir = str(tmp_path / "model")
    lines = []
    result = train_supervised.run(data=split_dir, model_dir=model_dir, preset="smoke",
                                  hparams='"augment": {"type": "cta"}', log=lines.append)
    assert result["steps"] == 3 and result["eval_examples"] == 12  # ceil(24 / 8 * 1 epoch)
    saved = json.loads(open(os.path.join(model_dir, "hparams.json")).read())
    assert saved["augment"]["type"] == "cta" and saved["run"]["max_steps"] == 4
    assert "3 classes" in lines[0] and "steps/epoch" in lines[0]
    # The CTA rates were updated from the probes and checkpointed with the model.
    reader = tf.train.load_checkpoint(result["checkpoint"])
    rates = reader.get_tensor("cta/rates/.ATTRIBUTES/VARIABLE_VALUE")
    assert rates.shape == (19, 15) and rates.min() < 1.0 and rates.max() <= 1.0
    with pytest.raises(experiment.ModelDirError, match="augment.type"):
        train_supervised.run(data=split_dir, model_dir=model_dir, preset="smoke")
