"""Choosing the tf.distribute strategy from the environment (spec section 10).

In order of precedence:
  1. `tpu` given (name, grpc address or "local"): TPUStrategy via
     TPUClusterResolver -- works for single TPU hosts and pods;
  2. explicit `devices` (e.g. two logical CPUs in tests): MirroredStrategy;
  3. TF_CONFIG describing more than one worker: MultiWorkerMirroredStrategy;
  4. several local GPUs: MirroredStrategy;
  5. otherwise TensorFlow's default strategy (one GPU or the CPU).
"""

import json
import os

import tensorflow as tf


class StrategyError(ValueError):
    """The environment asks for a distribution setup that cannot be built."""


def parse_tf_config(environ=None) -> dict:
    """TF_CONFIG as a dict ({} when unset); a malformed value is a clear error."""
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({e.msg}): {text!r}") from None
    if not isinstance(config, dict):
        raise StrategyError(f"TF_CONFIG must be a JSON object, got {text!r}")
    return config


def num_workers(tf_config: dict) -> int:
    cluster = tf_config.get("cluster", {}) or {}
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def select_strategy(*, tpu=None, devices=None, environ=None):
    """Builds the strategy; see the module docstring for the precedence."""
    if tpu:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if devices:
        return tf.distribute.MirroredStrategy(list(devices))
    tf_config = parse_tf_config(environ)
    if num_workers(tf_config) > 1:
        task = tf_config.get("task") or {}
        if "type" not in task or "index" not in task:
            raise StrategyError(
                f"TF_CONFIG describes {num_workers(tf_config)} workers but has no "
                f"task.type/task.index for this process: {tf_config!r}")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def worker_role(strategy):
    """(is_chief, worker_id): only the chief writes summaries, metrics and checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True, 0
    task_type, task_id = resolver.task_type, resolver.task_id or 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if task_type is None or task_type == "chief":
        return True, task_id
    return (task_type == "worker" and task_id == 0 and not has_chief), task_id
