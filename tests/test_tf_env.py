"""fixmatch.tf_env: defaults set only where the user set nothing, and early enough."""

import os
import platform
import subprocess
import sys

import pytest

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


NO_DRIVER = (b"I0000 00:00:1796464369.274906    4296 cudart_stub.cc:31] Could not find cuda "
             b"drivers on your machine, GPU will not be used.\n",
             b"E0000 00:00:1796464377.732916    4347 cuda_platform.cc:52] failed call to cuInit: "
             b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
KEPT = (b"E0000 00:00:1796464377.732916    4347 cuda_platform.cc:52] failed call to cuInit: "
        b"INTERNAL: CUDA error: Failed call to cuInit: CUDA_ERROR_NO_DEVICE (100)\n",
        b"I0000 00:00:1796464371.408212    4296 port.cc:153] oneDNN custom operations are on.\n",
        b"train_fixmatch: error: Could not find cuda drivers (a program's own line)\n",
        b"Traceback (most recent call last):\n")


def test_filter_drops_only_the_two_no_driver_lines():
    assert tf_env.drop_no_driver_lines(list(NO_DRIVER + KEPT)) == list(KEPT)


def test_filter_process_forwards_everything_else_including_partial_lines():
    read_in, write_in = os.pipe()
    read_out, write_out = os.pipe()
    pid = os.fork()
    if pid == 0:  # the filter, as its own process
        os.close(write_in)
        os.close(read_out)
        tf_env.run_filter(read_in, write_out)
        os._exit(0)
    os.close(read_in)
    os.close(write_out)
    for piece in (KEPT[0][:20], KEPT[0][20:], *NO_DRIVER, KEPT[1], KEPT[2] + KEPT[3],
                  b"progress 50%\r"):
        os.write(write_in, piece)
    os.close(write_in)
    out = b""
    while True:
        chunk = os.read(read_out, 65536)
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    assert out == b"".join(KEPT) + b"progress 50%\r"


def test_a_smoke_run_prints_no_cuda_error_line(tmp_path):
    """The programs' own stderr on this machine: no CUDA line, the progress lines intact."""
    if tf_env.cuda_driver_loadable():
        pytest.skip("an NVIDIA driver is installed: TensorFlow's CUDA lines then mean something")
    from fixtures.split_dirs import write_split
    split = write_split(tmp_path / "split", unlabeled_per_class=8)
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", tf_env._FILTER_ENV)}
    out = subprocess.run([sys.executable, "-m", "stages.train_fixmatch", "--data", split,
                          "--model_dir", str(tmp_path / "m"), "--preset", "smoke"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "train_fixmatch: resnet_tiny on" in out.stderr and "(100.0%)" in out.stderr, out.stderr
    lowered = out.stderr.lower()
    assert "cuinit" not in lowered and "cuda driver" not in lowered, out.stderr
