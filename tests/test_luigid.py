"""FullRun through a real central scheduler: `luigid` on a free loopback port, its log, state
and pidfile in a temporary directory, the `luigi` command pointed at it, every task DONE in
the scheduler's own API (what the web visualizer shows), then luigid stopped by its pid.

The luigid command is the one docs/running.md gives a user (there with fixed paths).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = '{"image_size": 32, "train_per_class": 8, "val_per_class": 3, "num_classes": 3}'
BIN = os.path.dirname(sys.executable)  # the venv's luigid and luigi console scripts
FAMILIES = ["DemoData", "EvaluateFixMatch", "EvaluateSupervised", "ExportFixMatch", "FullRun",
            "PrepareSplits", "Report", "TrainFixMatch", "TrainSupervised"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port, method, **data):
    query = urllib.parse.urlencode({"data": json.dumps(data)})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/{method}?{query}",
                                timeout=10) as r:
        return json.loads(r.read())["response"]


def wait(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def luigid(tmp_path):
    """luigid --background on 127.0.0.1:<free port>; yields the port; stopped by its pid."""
    state = tmp_path / "luigid"
    (state / "log").mkdir(parents=True)  # luigid does not create --logdir
    pidfile = state / "luigid.pid"
    port = free_port()
    subprocess.run([os.path.join(BIN, "luigid"), "--background", "--address", "127.0.0.1",
                    "--port", str(port), "--logdir", str(state / "log"),
                    "--state-path", str(state / "state.pickle"), "--pidfile", str(pidfile)],
                   check=True, timeout=60, cwd=tmp_path)
    wait(lambda: pidfile.exists() and pidfile.read_text().strip(), "the pidfile")
    pid = int(pidfile.read_text().strip())
    try:
        wait(lambda: api(port, "task_list") == {}, "luigid to answer")
        yield port
    finally:
        os.kill(pid, signal.SIGTERM)
        wait(lambda: not os.path.exists(f"/proc/{pid}"), "luigid to stop", timeout=30)
    assert (state / "log" / "luigi-server.log").exists()


@pytest.mark.slow
def test_full_run_against_a_real_luigid(tmp_path, luigid):
    port = luigid
    proc = subprocess.run([os.path.join(BIN, "luigi"), "--module", "pipeline", "FullRun",
                           "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port),
                           "--root", str(tmp_path / "runs"), "--preset", "smoke",
                           "--demo", DEMO, "--split", "frac50.seed1"],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| fixmatch |" in proc.stdout
    tasks = api(port, "task_list")
    assert sorted(t["name"] for t in tasks.values()) == FAMILIES, tasks
    assert {t["name"]: t["status"] for t in tasks.values()} == dict.fromkeys(FAMILIES, "DONE")
    assert tasks == api(port, "task_list", status="DONE")
