"""Strategy selection from the environment (no cluster is started here)."""

import json

import pytest
import tensorflow as tf

from fixmatch.train import strategy


def test_tf_config_parsing_and_worker_count():
    assert strategy.parse_tf_config({}) == {}
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"], "ps": ["d:1"]},
              "task": {"type": "worker", "index": 0}}
    assert strategy.num_workers(strategy.parse_tf_config({"TF_CONFIG": json.dumps(config)})) == 3
    with pytest.raises(strategy.StrategyError, match="not valid JSON.*cluster"):
        strategy.parse_tf_config({"TF_CONFIG": "{cluster"})
    with pytest.raises(strategy.StrategyError, match="JSON object"):
        strategy.parse_tf_config({"TF_CONFIG": "[1]"})


def test_several_workers_without_a_task_is_an_error():
    env = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]}})}
    with pytest.raises(strategy.StrategyError, match="task.type/task.index"):
        strategy.select_strategy(environ=env)


def test_single_machine_defaults_to_the_default_strategy():
    env = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1"]},
                                    "task": {"type": "worker", "index": 0}})}
    chosen = strategy.select_strategy(environ=env)  # one worker: not multi-worker
    assert chosen is tf.distribute.get_strategy()
    assert strategy.worker_role(chosen) == (True, 0)
