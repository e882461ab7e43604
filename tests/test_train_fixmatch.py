"""stages.train_fixmatch and the FixMatch experiment: validation, smoke runs, diagnostics, seeds.

Tiny split of tests/fixtures/split_dirs.py (3 classes, 20 px) with an unlabeled set; the smoke
preset (resnet_tiny at 16 px, 4 steps).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fixmatch import hparams
from fixmatch.data import split_dir as split_dir_lib
from fixtures.split_dirs import write_split
from stages import train_fixmatch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "tiny", unlabeled_per_class=8)


def scalars(log_dir):
    """Tag -> [(step, value)] read with TensorBoard's own event loader."""
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(log_dir, size_guidance={"tensors": 0})
    acc.Reload()
    return {tag: [(e.step, float(np.asarray(e.tensor_proto.float_val or
                                            [np.frombuffer(e.tensor_proto.tensor_content,
                                                           np.float32)[0]])[0]))
                  for e in acc.Tensors(tag)] for tag in acc.Tags()["tensors"]}


def test_bad_input_fails_before_any_work(tmp_path, split_dir):
    model_dir = tmp_path / "m"
    with pytest.raises(hparams.HParamsError, match="FixMatch needs a strong augmentation"):
        train_fixmatch.run(data=split_dir, model_dir=str(model_dir), preset="imagenet")
    with pytest.raises(hparams.HParamsError, match="run.seed"):
        train_fixmatch.run(data=split_dir, model_dir=str(model_dir), preset="smoke",
                           hparams='"run": {"deterministic": true}')
    supervised_only = write_split(tmp_path / "sup")
    with pytest.raises(split_dir_lib.SplitDirError, match="no unlabeled images"):
        train_fixmatch.run(data=supervised_only, model_dir=str(model_dir), preset="smoke")
    with pytest.raises(split_dir_lib.SplitDirError,
                       match="asks for split 'fixmatch_10pct.2', but --data .* holds split 'tiny'"):
        train_fixmatch.run(data=split_dir, model_dir=str(model_dir), preset="smoke",
                           dataset="imagenet128116.2")
    assert not model_dir.exists()


def test_cli_errors_are_one_line(tmp_path, split_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "stages.train_fixmatch", "--data", split_dir, "--model_dir",
         str(tmp_path / "m"), "--preset", "smoke", "--dataset", "imagenet999.1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("train_fixmatch: error: ")
    assert "imagenet999.1" in proc.stderr


@pytest.mark.parametrize("augment", ["randaugment", "cta"])
def test_smoke_run_logs_the_fixmatch_diagnostics(tmp_path, split_dir, augment):
    import tensorflow as tf

    lines = []
    model_dir = str(tmp_path / "model")
    result = train_fixmatch.run(
        data=split_dir, model_dir=model_dir, preset="smoke",
        hparams=f'"augment": {{"type": "{augment}"}}, "fixmatch": {{"confidence": 0.34}}',
        log=lines.append)
    assert result["steps"] == 3 and result["eval_examples"] == 12
    # 8 labeled + 2 * uratio(2) * 8 unlabeled images per step.
    assert "uratio 2" in lines[0] and result["global_batch_size"] == 8
    # Their values are recomputed from the step's batch in test_train_fixmatch_runs.py; here:
    # confidence 0.34 over 3 classes, nearly every pseudo-label passes, so there is an accuracy.
    assert result["mask_rate"] > 0 and result["pseudo_label_accuracy"] is not None
    progress = [line for line in lines if line.startswith("step ")]
    assert progress and all(" mask " in line and " pseudo " in line for line in progress)
    tags = scalars(os.path.join(model_dir, "summaries"))
    for tag in ("train/total_loss", "loss/xe", "loss/xeu", "loss/wd", "train/accuracy",
                "train/learning_rate", "train/mask_rate", "train/pseudo_label_accuracy",
                "test/accuracy", "test/ema_accuracy", "test/accuracy_top5"):
        assert tag in tags, (tag, sorted(tags))
    assert "train/loss" not in tags
    assert [v for _, v in tags["train/mask_rate"]][-1] == pytest.approx(result["mask_rate"])
    saved = json.load(open(os.path.join(model_dir, "hparams.json")))
    assert saved["uratio"] == 2 and saved["augment"]["type"] == augment
    if augment == "cta":  # probes on labeled images moved the rates, which were checkpointed
        rates = tf.train.load_checkpoint(result["checkpoint"]).get_tensor(
            "cta/rates/.ATTRIBUTES/VARIABLE_VALUE")
        assert rates.min() < 1.0


# CTAugment whose sampling table changes a lot at every block (rates jump to the probes'
# proximities, and bins under 0.99 of the best one get only epsilon): a pipeline that read the
# table at a different moment would draw different ops.
_VOLATILE_CTA = {"type": "cta", "cta_decay": 0.0, "cta_confidence_threshold": 0.99}


def _cli_run(program, split_dir, model_dir, seed, deterministic=True, log=None, augment=None):
    hp = {"run": {"seed": seed, "deterministic": deterministic}}
    if augment:  # three blocks, so a resume starts where the table has changed twice
        hp = {"run": hp["run"] | {"min_steps": 6, "max_steps": 6}, "augment": augment}
    hp = json.dumps(hp)
    proc = subprocess.run(
        [sys.executable, "-m", f"stages.train_{program}", "--data", split_dir, "--model_dir",
         str(model_dir), "--preset", "smoke", "--hparams", hp],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    import tensorflow as tf
    metrics = json.loads(proc.stdout)
    reader = tf.train.load_checkpoint(metrics["checkpoint"])
    weights = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
               if name.startswith(("model/", "ema_model/"))}
    losses = [line.split(" loss ")[1].split()[0] for line in proc.stderr.splitlines()
              if line.startswith("step ")]
    if log is not None:
        log.extend(proc.stderr.splitlines())
    return metrics, weights, losses


_DETERMINISM_CASES = pytest.mark.parametrize(
    "program,augment", [("fixmatch", None), ("supervised", None), ("fixmatch", _VOLATILE_CTA)],
    ids=["fixmatch", "supervised", "fixmatch-cta"])


def _keep_only_checkpoint(model_dir, step):
    """Points the checkpoint state file at checkpoint-<step> alone (what a kill leaves)."""
    import tensorflow as tf
    tf.compat.v1.train.update_checkpoint_state(str(model_dir), f"checkpoint-{step}",
                                               [f"checkpoint-{step}"])


@_DETERMINISM_CASES
def test_same_seed_with_deterministic_gives_identical_runs(tmp_path, split_dir, program,
                                                           augment):
    first = _cli_run(program, split_dir, tmp_path / "a", seed=7, augment=augment)
    second = _cli_run(program, split_dir, tmp_path / "b", seed=7, augment=augment)
    assert first[2] and first[2] == second[2]  # block losses, as printed
    for key in ("test_loss", "top1", "online_top1"):
        assert first[0][key] == second[0][key], key
    assert first[1].keys() == second[1].keys() and len(first[1]) > 10
    for name in first[1]:
        np.testing.assert_array_equal(first[1][name], second[1][name], err_msg=name)
    if program == "fixmatch":
        other = _cli_run(program, split_dir, tmp_path / "c", seed=8, augment=augment)
        assert any(not np.array_equal(first[1][n], other[1][n]) for n in first[1])
        assert other[0]["test_loss"] != first[0]["test_loss"]
    if augment:  # the learned table is used: the same seed with CTA's defaults trains otherwise
        default = _cli_run(program, split_dir, tmp_path / "d", seed=7, augment={"type": "cta"})
        assert any(not np.array_equal(first[1][n], default[1][n]) for n in first[1])


@_DETERMINISM_CASES
def test_deterministic_run_resumed_from_a_checkpoint_ends_like_an_uninterrupted_one(
        tmp_path, split_dir, program, augment):
    """Killed between its last two checkpoints and rerun, a deterministic run replays the input
    batches of the restored steps and ends with the uninterrupted run's weights and metrics."""
    import shutil

    whole = _cli_run(program, split_dir, tmp_path / "whole", seed=7, augment=augment)
    steps = whole[0]["steps"]
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(tmp_path / "whole", resumed_dir)
    # What a kill between the two checkpoints leaves: only the first one, nothing published.
    for path in resumed_dir.glob(f"checkpoint-{steps}.*"):
        path.unlink()
    (resumed_dir / "metrics.json").unlink()
    first = sorted(int(p.name.split("-")[1].split(".")[0])
                   for p in resumed_dir.glob("checkpoint-*.index"))[-1]
    assert 0 < first < steps
    _keep_only_checkpoint(resumed_dir, first)
    lines = []
    resumed = _cli_run(program, split_dir, resumed_dir, seed=7, log=lines, augment=augment)
    assert any(f"(step {first})" in line for line in lines if line.startswith("restored"))
    assert any(f"replaying the {first} input batches" in line for line in lines), lines
    assert resumed[0]["steps"] == steps and resumed[0]["steps_this_run"] == steps - first
    assert resumed[2] == whole[2][-len(resumed[2]):]  # the resumed blocks' losses
    for key in ("test_loss", "top1", "online_top1"):
        assert resumed[0][key] == whole[0][key], key
    assert resumed[1].keys() == whole[1].keys()
    for name in whole[1]:
        np.testing.assert_array_equal(resumed[1][name], whole[1][name], err_msg=name)


def test_cta_rates_follow_the_update_rule_and_resume_from_the_checkpoint(tmp_path, split_dir,
                                                                         monkeypatch):
    """One real FixMatch step with CTAugment: the checkpointed rates are exactly the update
    rule applied to that step's probes; resuming from checkpoint-1 continues from its rates."""
    import tensorflow as tf

    from fixmatch.augment import ctaugment
    from fixmatch.train import cta_hooks

    recorded = {}
    real = cta_hooks.probe_update

    def recording(batch, *, probe_model, state):
        proximity = cta_hooks.probe_proximity(probe_model, batch["probe_image"], batch["label"])
        for key, value in (("ops", batch["probe_op_indices"]), ("levels", batch["probe_op_args"]),
                           ("proximity", proximity)):
            if key not in recorded:  # static shapes (fixed batch): liftable initial values
                recorded[key] = tf.Variable(tf.zeros(value.shape, value.dtype), trainable=False)
            recorded[key].assign(value)
        return real(batch, probe_model=probe_model, state=state)

    monkeypatch.setattr(cta_hooks, "probe_update", recording)
    model_dir = tmp_path / "m"
    kw = dict(data=split_dir, model_dir=str(model_dir), preset="smoke", steps_per_run=1,
              hparams='"augment": {"type": "cta"}, "run": {"max_steps": 2}')

    def rates(step):
        return tf.train.load_checkpoint(str(model_dir / f"checkpoint-{step}")).get_tensor(
            "cta/rates/.ATTRIBUTES/VARIABLE_VALUE")

    def expected(before):
        return ctaugment.update_rates(before, recorded["ops"], recorded["levels"],
                                      recorded["proximity"], decay=0.99, num_levels=15).numpy()

    train_fixmatch.run(**kw)
    after_2 = rates(2)
    np.testing.assert_allclose(after_2, expected(rates(1)), rtol=1e-6)  # step 2's probes
    assert (after_2 != rates(1)).sum() >= 1 and (after_2 == rates(1)).sum() > 200
    # Forget step 2; the rerun restores checkpoint-1 and trains step 2 again, from its rates.
    for path in model_dir.glob("checkpoint-2.*"):
        path.unlink()
    _keep_only_checkpoint(model_dir, 1)
    lines = []
    train_fixmatch.run(log=lines.append, **kw)
    assert any(line.startswith("restored") and "(step 1)" in line for line in lines), lines
    np.testing.assert_allclose(rates(2), expected(rates(1)), rtol=1e-6)
