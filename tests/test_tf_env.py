"""fixmatch.tf_env: defaults set only where the user set nothing, and early enough."""

import os
import platform
import subprocess
import sys

from fixmatch import tf_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_never_override_the_user():
    env = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    tf_env.apply_defaults(env)
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env = {}
    tf_env.apply_defaults(env)
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert env.get("TF_ENABLE_ONEDNN_OPTS") == (
        "1" if platform.machine().lower() in ("x86_64", "amd64") else None)


def test_programs_and_pipeline_set_them_before_tensorflow_starts():
    code = ("import os, {m}; import tensorflow as tf; "
            "from tensorflow.python.util import _pywrap_util_port as p; "
            "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), p.IsMklEnabled())")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    for module in ("stages", "pipeline"):
        out = subprocess.run([sys.executable, "-c", code.format(m=module)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        if platform.machine().lower() in ("x86_64", "amd64"):
            assert out.stdout.split() == ["1", "True"], (module, out.stdout)
