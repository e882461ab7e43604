"""The FixMatch threshold rules and distribution alignment in real training runs (smoke
preset, CPU): every option with RandAugment and CTAugment, the state in the checkpoint, a
SIGKILLed deterministic run that resumes bit-exact, two replicas against one, and the
TrainFixMatch fingerprint.

Tiny split of tests/fixtures/split_dirs.py (3 classes, 20 px) with an unlabeled set.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fixtures.split_dirs import write_split
from stages import train_fixmatch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    return write_split(tmp_path_factory.mktemp("split") / "tiny", unlabeled_per_class=8)


def labeler_state(checkpoint_prefix):
    """name -> value of every pseudo-label state variable in a checkpoint."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(checkpoint_prefix)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(
        checkpoint_prefix) if name.startswith("pseudo_labeler/")}


@pytest.mark.parametrize("threshold,align,augment,extra", [
    ("freematch", "none", "randaugment", ', "threshold_momentum": 0.5'),
    ("freematch", "labeled", "cta", ', "fairness_weight": 0.01'),
    ("softmatch", "none", "cta", ""),
    ("softmatch", "uniform", "randaugment", ""),
    ("fixed", "uniform", "cta", ', "confidence": 0.34'),  # 3 classes: nearly all pass
    ("fixed", "labeled", "randaugment", ', "confidence": 0.34'),
])
def test_each_option_trains_and_checkpoints_its_state(tmp_path, split_dir, threshold, align,
                                                      augment, extra):
    lines = []
    result = train_fixmatch.run(
        data=split_dir, model_dir=str(tmp_path), preset="smoke", log=lines.append,
        hparams=(f'"augment": {{"type": "{augment}"}}, "fixmatch": {{"threshold": '
                 f'"{threshold}", "dist_align": "{align}"{extra}}}'))
    assert result["steps"] == 3 and np.isfinite(result["top1"])
    assert f"threshold {threshold}, dist_align {align}" in lines[0]
    assert 0.0 < result["threshold"] <= 1.0 and 0.0 <= result["mask_rate"] <= 1.0
    assert 1 / 3 <= result["pseudo_top_class_share"] <= 1.0  # 3 classes: at least a third
    progress = [line for line in lines if line.startswith("step ")]
    assert progress and all(" thr " in line and " top " in line for line in progress)
    history = [json.loads(line) for line in open(tmp_path / "history.jsonl")]
    assert {"threshold", "threshold_min", "threshold_max",
            "pseudo_top_class_share"} <= set(history[-1]["train"])
    if "fairness" in extra:
        assert np.isfinite(history[-1]["train"]["fair"])
    state = labeler_state(str(tmp_path / f"checkpoint-{result['steps']}"))
    if threshold == "fixed" and align == "none":
        assert not state
        return
    names = " ".join(state)
    assert ("rule/" in names) == (threshold != "fixed")
    assert ("align/" in names) == (align != "none")
    uniform = 1.0 / 3
    # Three updates (momentum 0.999 or 0.5) move every statistic off its start.
    moved = [not np.allclose(v, 1.0 if "variance" in k else uniform, atol=1e-7)
             for k, v in state.items() if "histogram" not in k]
    assert moved and all(moved), state
    if "threshold_momentum" in extra:
        levels = [line.split(" thr ")[1].split(" top ")[0] for line in progress]
        assert all("[" in level for level in levels), levels  # class-wise: min-max shown


def test_labeled_alignment_needs_the_class_counts_of_the_split(tmp_path):
    from fixmatch.data import split_dir as split_lib
    split = write_split(tmp_path / "old", unlabeled_per_class=2)
    facts = json.load(open(os.path.join(split, split_lib.SPLIT_FILE)))
    del facts["counts_per_class"]  # a split written before prepare_splits counted per class
    json.dump(facts, open(os.path.join(split, split_lib.SPLIT_FILE), "w"))
    with pytest.raises(split_lib.SplitDirError, match="'labeled'.*counts_per_class.*uniform"):
        train_fixmatch.run(data=split, model_dir=str(tmp_path / "m"), preset="smoke",
                           hparams='"fixmatch": {"dist_align": "labeled"}')
    assert not (tmp_path / "m" / "checkpoint").exists()


def _train_cmd(split_dir, model_dir, max_steps):
    return [sys.executable, "-m", "stages.train_fixmatch", "--data", split_dir,
            "--model_dir", str(model_dir), "--preset", "smoke", "--steps_per_run", "1",
            "--hparams", json.dumps({"run": {"max_steps": max_steps, "seed": 3,
                                             "deterministic": True},
                                     "num_epochs": 200, "fixmatch": {
                                         "threshold": "freematch", "dist_align": "uniform"}})]


def test_sigkilled_run_resumes_with_its_state_bit_exact(tmp_path, split_dir):
    import tensorflow as tf
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    steps = 8
    whole = tmp_path / "whole"
    subprocess.run(_train_cmd(split_dir, whole, steps), cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(split_dir, killed, steps), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not list(killed.glob("checkpoint-2.index")) and time.time() < deadline:
            assert proc.poll() is None, "training exited before its second checkpoint"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    latest = tf.train.latest_checkpoint(str(killed))
    killed_at = int(latest.rsplit("-", 1)[1])
    assert 2 <= killed_at < steps, latest
    mid = labeler_state(latest)  # the restart prunes it (smoke keeps 2 checkpoints)
    restart = subprocess.run(_train_cmd(split_dir, killed, steps), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert restart.returncode == 0, restart.stderr[-3000:]
    assert f"restored {latest} (step {killed_at})" in restart.stderr
    # The state the restart began from is the killed run's, and it ends where the whole
    # run ended: bit for bit, model and pseudo-label state alike.
    a = tf.train.load_checkpoint(str(whole / f"checkpoint-{steps}"))
    b = tf.train.load_checkpoint(str(killed / f"checkpoint-{steps}"))
    names = [n for n, _ in tf.train.list_variables(str(whole / f"checkpoint-{steps}"))
             if n.startswith(("pseudo_labeler/", "model/")) and "OPTIMIZER" not in n]
    assert sum(n.startswith("pseudo_labeler/") for n in names) == 4  # tau, p, hist, align
    for name in names:
        np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name), err_msg=name)
    assert all(not np.array_equal(mid[k], a.get_tensor(k)) for k in mid)


def test_two_replicas_hold_the_state_of_one_replica_on_the_global_batch(tmp_path):
    out = tmp_path / "states.json"
    proc = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=ROOT,
                                                TF_CPP_MIN_LOG_LEVEL="2",
                                                CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2
    for kind, (two, one, start) in result["states"].items():
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-7, err_msg=kind)
        assert not np.allclose(two, start), kind  # the state moved


def _two_replica_main(out):
    """Subprocess: the objective on MirroredStrategy over two logical CPUs, against the same
    objective (same weights, its own state) on one device with the whole global batch."""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from fixmatch.train import steps, thresholds
    classes, rng = 5, np.random.default_rng(0)
    batch = {"image": rng.normal(size=(8, 6)).astype("float32"),
             "label": rng.integers(0, classes, 8),
             "unsup_image": rng.normal(size=(16, 6)).astype("float32") * 3,
             "unsup_aug_image": rng.normal(size=(16, 6)).astype("float32"),
             "unsup_label": rng.integers(0, classes, 16)}

    def build():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6,))
        model = keras.Model(inputs, keras.layers.Dense(classes)(inputs))
        labelers = {
            "freematch+labeled": thresholds.PseudoLabeler(
                thresholds.FreeMatchThreshold(classes, momentum=0.6),
                thresholds.DistributionAlignment([1, 2, 3, 4, 5], momentum=0.6),
                fairness_weight=0.01),
            "softmatch+uniform": thresholds.PseudoLabeler(
                thresholds.SoftMatchWeights(classes, momentum=0.6),
                thresholds.DistributionAlignment([1] * classes, momentum=0.6))}
        return model, labelers

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model2, labelers2 = build()
    model1, labelers1 = build()
    start = {k: [v.numpy().tolist() for v in lab.variables] for k, lab in labelers1.items()}

    def replica_share(ctx):  # replica i: its half of every part of the global batch
        i, n = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
        return {k: tf.constant(v[i * len(v) // n:(i + 1) * len(v) // n]) for k, v in batch.items()}

    shares = strategy.experimental_distribute_values_from_function(replica_share)
    states = {}
    for kind in labelers1:
        objective2 = steps.make_fixmatch_objective(wu=1.0, labeler=labelers2[kind],
                                                   num_classes=classes)
        objective1 = steps.make_fixmatch_objective(wu=1.0, labeler=labelers1[kind],
                                                   num_classes=classes)

        @tf.function
        def two_steps():
            for _ in range(3):
                strategy.run(lambda b: objective2(model2, b)[0], args=(shares,))

        two_steps()
        for _ in range(3):
            objective1(model1, {k: tf.constant(v) for k, v in batch.items()})
        states[kind] = ([np.asarray(strategy.experimental_local_results(v)[1]).tolist()
                         for v in labelers2[kind].variables],
                        [v.numpy().tolist() for v in labelers1[kind].variables], start[kind])
    flat = {k: tuple(np.concatenate([np.ravel(x) for x in part]).tolist() for part in v)
            for k, v in states.items()}
    with open(out, "w") as f:
        json.dump({"replicas": strategy.num_replicas_in_sync, "states": flat}, f)


def test_train_fixmatch_fingerprint_changes_with_each_new_hparam(tmp_path):
    from pipeline import train_tasks
    demo = {"image_size": 32, "train_per_class": 8, "val_per_class": 3, "num_classes": 3}

    def fingerprint(fixmatch, **other):
        return train_tasks.TrainFixMatch(
            root=str(tmp_path), demo=demo, split="frac50.seed1", preset="smoke",
            hparams=json.dumps({"fixmatch": fixmatch, **other})).fingerprint

    changes = [{}, {"threshold": "freematch"}, {"threshold": "softmatch"},
               {"threshold_momentum": 0.99}, {"softmatch_lambda_max": 0.5},
               {"threshold": "freematch", "fairness_weight": 0.01}, {"dist_align": "uniform"},
               {"dist_align": "labeled"}, {"dist_align_momentum": 0.99},
               {"unlabeled_crop_min_area": 0.9}, {"pseudo_label_model": "ema"}]
    prints = [fingerprint(change) for change in changes]
    prints.append(fingerprint({}, learning_rate={"schedule": "cosine"}))
    assert len(set(prints)) == len(changes) + 1
    assert fingerprint({"threshold": "fixed", "dist_align": "none"}) == prints[0]


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    _two_replica_main(sys.argv[1])
