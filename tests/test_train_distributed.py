"""The engine under tf.distribute: MirroredStrategy on two logical CPUs matches
one device, and two local processes train together under
MultiWorkerMirroredStrategy.

Logical devices and TF_CONFIG must be in place before TensorFlow initialises,
so every run is a fresh subprocess executing this file as a script.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SIZE, CLASSES, GLOBAL_BATCH = 16, 3, 16


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _launch(mode, model_dir, out, env):
    return subprocess.Popen([sys.executable, __file__, mode, str(model_dir), str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc, timeout=300):
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output[-3000:]
    return output


def test_two_replicas_match_one_device(tmp_path):
    results = {}
    for mode in ("one", "two"):
        out = tmp_path / f"{mode}.json"
        _finish(_launch(f"mirrored-{mode}", tmp_path / mode, out, _env()))
        results[mode] = json.loads(out.read_text())
    one, two = results["one"], results["two"]
    assert one["num_replicas"] == 1 and two["num_replicas"] == 2
    np.testing.assert_allclose(two["block_losses"], one["block_losses"], rtol=1e-4)
    np.testing.assert_allclose(two["weights_digest"], one["weights_digest"], rtol=1e-4)
    # Second phase on two replicas: a BN model with CTAugment probes. BN moving statistics,
    # EMA weights and CTA rates must be identical on both replicas, and the rates must move.
    assert two["replicas_in_sync"] is True
    assert two["cta_rates_min"] < 1.0


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _launch_workers(mode, tmp_path, workers):
    """One process per worker of `workers` (host:port), all training into tmp_path/model."""
    return [_launch(mode, tmp_path / "model", tmp_path / f"w{index}.json",
                    _env(TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                               "task": {"type": "worker", "index": index}})))
            for index in range(len(workers))]


def _finish_all(procs, finish=_finish):
    """finish(proc) for each; any process still running afterwards is killed."""
    try:
        return [finish(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_two_workers_train_together(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    outputs = _finish_all(_launch_workers("multiworker", tmp_path, workers))
    chief = json.loads((tmp_path / "w0.json").read_text())
    other = json.loads((tmp_path / "w1.json").read_text())
    assert chief["num_replicas"] == 2 and other["num_replicas"] == 2, outputs
    assert chief["steps"] == 4 and other["steps"] == 4
    assert chief["eval_examples"] == 40  # the whole validation set, across both workers
    assert (tmp_path / "model" / "metrics.json").exists()
    assert sorted(p.name for p in (tmp_path / "model").glob("checkpoint-*.index")) == [
        "checkpoint-2.index", "checkpoint-4.index"]
    assert not list((tmp_path / "model").glob(".tmp-worker-*"))
    np.testing.assert_allclose(chief["weights_digest"], other["weights_digest"], rtol=1e-6)


def test_sigterm_to_one_worker_stops_every_worker_at_the_same_step_then_both_resume(tmp_path):
    """A preemption notice reaches one worker: both stop after the same step, save it together
    (a collective), exit 75; rerun, both restore that step and finish."""
    import signal
    import time

    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = _launch_workers("multiworker-long", tmp_path, workers)

    def stop_one_worker(proc):
        if proc is procs[0]:
            deadline = time.monotonic() + 240
            while not (tmp_path / "model" / "checkpoint-2.index").exists():
                assert time.monotonic() < deadline and procs[1].poll() is None, "no checkpoint-2"
                time.sleep(0.05)
            procs[1].send_signal(signal.SIGTERM)  # the non-chief only
        return proc.communicate(timeout=120)[0]

    outputs = _finish_all(procs, finish=stop_one_worker)
    assert [p.returncode for p in procs] == [75, 75], outputs
    chief, other = (json.loads((tmp_path / f"w{i}.json").read_text())["interrupted"]
                    for i in range(2))
    step = int(other.split(" at step ")[1].split(":")[0])
    assert other.startswith(f"stopped by SIGTERM at step {step}: saved ")
    assert chief.startswith(f"stopped by a signal to another worker at step {step}: saved ")
    assert 2 <= step < 40 and (tmp_path / "model" / f"checkpoint-{step}.index").exists()
    assert not (tmp_path / "model" / "metrics.json").exists()

    outputs = _finish_all(_launch_workers("multiworker-long", tmp_path, workers))
    for i in range(2):
        result = json.loads((tmp_path / f"w{i}.json").read_text())
        assert result["steps"] == 40 and result["steps_this_run"] == 40 - step, outputs
        assert f"restored {tmp_path / 'model' / f'checkpoint-{step}'} (step {step})" in \
            result["lines"]


# ---------------------------------------------------------------------------
# Subprocess side


def _main(mode, model_dir, out):
    import tensorflow as tf

    if mode == "mirrored-two":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from fixmatch.models import build_model
    from fixmatch.train import faults, loop, schedule
    from fixmatch.train.strategy import select_strategy

    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, 64).astype("int64")
    images = rng.normal(size=(64, SIZE, SIZE, 3)).astype("float32")
    images[..., 0] += (labels - 1.0)[:, None, None]

    def train_fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
        ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id).repeat()
        return ds.batch(ctx.get_per_replica_batch_size(GLOBAL_BATCH), drop_remainder=True)

    def eval_fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices({"image": images[:40], "label": labels[:40]})
        ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return ds.batch(ctx.get_per_replica_batch_size(GLOBAL_BATCH))

    if mode.startswith("mirrored"):
        devices = ["/cpu:0", "/cpu:1"] if mode == "mirrored-two" else None
        strategy = select_strategy(devices=devices, environ={})

        def model_fn():  # no BatchNorm: per-replica batch statistics would differ
            keras.utils.set_random_seed(0)
            reg = keras.regularizers.L2(3e-4)
            inputs = keras.Input((SIZE, SIZE, 3))
            x = keras.layers.Conv2D(8, 3, strides=2, activation="relu",
                                    kernel_regularizer=reg)(inputs)
            x = keras.layers.GlobalAveragePooling2D()(x)
            return keras.Model(inputs, keras.layers.Dense(CLASSES, kernel_regularizer=reg)(x))
        total, per_run = 3, 1
    else:
        strategy = select_strategy()

        def model_fn():
            keras.utils.set_random_seed(0)
            return build_model("resnet_tiny", num_classes=CLASSES, image_size=SIZE)
        total, per_run = (40, 2) if mode == "multiworker-long" else (4, 2)

    spe = schedule.steps_per_epoch(num_labeled=64, global_batch_size=GLOBAL_BATCH)
    config = loop.LoopConfig(model_dir=model_dir, total_steps=total, steps_per_run=per_run,
                             steps_per_epoch=spe, global_batch_size=GLOBAL_BATCH,
                             ema_decay=0.5, keep_checkpoints=2, summaries_with_epoch=False)
    lr = schedule.EpochSchedule(schedule.create_learning_rate_fn(
        base_lr=1.6, global_batch_size=GLOBAL_BATCH, steps_per_epoch=spe, use_warmup=False,
        warmup_epochs=0, decay_rate=0.1, decay_epochs=100))
    models = []

    def recording_model_fn():
        models.append(model_fn())
        return models[-1]

    lines = []
    try:
        result = loop.train_and_evaluate(strategy=strategy, config=config,
                                         model_fn=recording_model_fn, learning_rate=lr,
                                         train_data=strategy.distribute_datasets_from_function(
                                             train_fn),
                                         eval_data=strategy.distribute_datasets_from_function(
                                             eval_fn),
                                         log=lines.append)
    except faults.TrainingInterrupted as e:
        with open(out, "w") as f:
            json.dump({"interrupted": str(e), "lines": lines}, f)
        sys.exit(faults.TrainingInterrupted.exit_code)
    result["lines"] = lines
    result["block_losses"] = [float(line.split(" loss ")[1].split()[0])
                              for line in lines if line.startswith("step")]
    result["weights_digest"] = [float(np.abs(v.numpy()).sum()) for v in models[0].weights]
    if mode == "mirrored-two":
        result.update(_bn_and_cta_phase(strategy, model_dir + "-cta", train_fn, eval_fn))
    with open(out, "w") as f:
        json.dump(result, f)


def _bn_and_cta_phase(strategy, model_dir, train_fn, eval_fn):
    """resnet_tiny + CTA hooks on two replicas; reports whether replicas agree."""
    import tensorflow as tf

    from fixmatch.augment.ctaugment import CTAPolicy, CTAState
    from fixmatch.models import build_model
    from fixmatch.train import cta_hooks, loop, schedule

    def with_probes(ctx):
        def add(batch):
            n = tf.shape(batch["label"])[0]
            return dict(batch, probe_image=batch["image"][:, ::-1],
                        probe_op_indices=tf.random.uniform([n, 2], maxval=19, dtype=tf.int32),
                        probe_op_args=tf.random.uniform([n, 2]))
        return train_fn(ctx).map(add)

    with strategy.scope():
        state = CTAState()
    hooks = cta_hooks.make_cta_hooks(state=state, policy=CTAPolicy())
    models = []

    def model_fn():
        models.append(build_model("resnet_tiny", num_classes=CLASSES, image_size=SIZE))
        return models[-1]

    config = loop.LoopConfig(model_dir=model_dir, total_steps=2, steps_per_run=2,
                             steps_per_epoch=4.0, global_batch_size=GLOBAL_BATCH, ema_decay=0.5)
    lr = schedule.EpochSchedule(lambda step: tf.constant(0.1))
    loop.train_and_evaluate(strategy=strategy, config=config, model_fn=model_fn,
                            learning_rate=lr,
                            train_data=strategy.distribute_datasets_from_function(with_probes),
                            eval_data=strategy.distribute_datasets_from_function(eval_fn),
                            cta=hooks, log=lambda line: None)

    def agree(variable):
        local = [np.asarray(v) for v in strategy.experimental_local_results(variable)]
        return len(local) == 2 and all(np.allclose(local[0], x) for x in local[1:])

    online, ema_model = models
    checked = list(online.non_trainable_variables) + list(ema_model.variables)
    in_sync = all(agree(v.value) for v in checked) and agree(state.rates)
    return {"replicas_in_sync": bool(in_sync),
            "cta_rates_min": float(np.asarray(state.rates.values[0]).min())}


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    _main(*sys.argv[1:4])
