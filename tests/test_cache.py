"""The fingerprint cache (pipeline/cache.py) under the real Luigi scheduler, on temporary roots."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import luigi
import pytest
from luigi.execution_summary import LuigiStatusCode

import fixmatch
from pipeline import cache
from tests.cache_fixture_tasks import Toy, ToyChild, read_count
from fixtures.full_disk import preexec, small_disk

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBPROCESS_TIMEOUT_S = 120


def build(*tasks):
    return luigi.build(list(tasks), local_scheduler=True, detailed_summary=True,
                       log_level="WARNING")


def assert_ok(result):
    assert result.scheduling_succeeded, result.summary_text
    assert result.status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY), \
        result.summary_text


def published(root, stage):
    """Names in ROOT/<stage>/ that look complete, and the tmp debris."""
    stage_dir = os.path.join(root, stage)
    names = os.listdir(stage_dir) if os.path.isdir(stage_dir) else []
    done = sorted(n for n in names if os.path.exists(os.path.join(stage_dir, n, "manifest.json")))
    tmp = sorted(n for n in names if n.startswith(".tmp-"))
    return done, tmp


def luigi_cli(*args, **popen_kwargs):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.Popen([sys.executable, "-m", "luigi", *args], cwd=REPO, env=env,
                            **popen_kwargs)


def wait_for(predicate, what, proc=None):
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"subprocess exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_fingerprint_is_sha256_of_documented_inputs(tmp_path):
    task = Toy(value=7, root=str(tmp_path))
    expected = cache.sha256_json({"stage": "toy", "format_version": 1,
                                  "params": {"pad_bytes": 0, "value": 7},
                                  "upstream": [], "external_input": None})
    assert task.fingerprint == expected
    assert cache.canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    child = ToyChild(value=7, root=str(tmp_path))
    assert child.fingerprint_inputs()["upstream"] == task.fingerprint
    assert child.out_dir == os.path.join(str(tmp_path), "toy_child", child.fingerprint)
    assert child.work_dir == child.out_dir + ".work"


def test_second_run_does_no_work_and_manifest_is_complete(tmp_path):
    root, counter = str(tmp_path / "runs"), str(tmp_path / "count.txt")
    child = ToyChild(value=3, counter=counter, root=root)
    assert not child.complete()
    assert_ok(build(child))
    assert [line.split()[0] for line in read_count(counter)] == ["toy", "toy_child"]

    with open(os.path.join(child.out_dir, "plus_one.txt")) as f:
        assert f.read() == "7"
    manifest = child.manifest()
    assert manifest["stage"] == "toy_child"
    assert manifest["fingerprint"] == child.fingerprint == os.path.basename(child.out_dir)
    assert manifest["params"] == {"value": 3}
    assert manifest["upstream"] == Toy(value=3, root=root).fingerprint
    assert manifest["fixmatch_version"] == fixmatch.__version__
    assert manifest["result"] == {"plus_one": 7}
    assert manifest["wall_seconds"] >= 0 and manifest["created"].endswith("+00:00")
    with open(os.path.join(child.out_dir, "params.json")) as f:
        params = json.load(f)
    assert params["params"] == {"value": 3, "counter": counter, "root": root}
    assert params["insignificant"] == ["counter", "root"]

    start = time.perf_counter()
    assert_ok(build(ToyChild(value=3, counter=counter, root=root)))
    rerun_s = time.perf_counter() - start
    print(f"\nno-change rerun of a 2-task chain, in-process luigi.build: {rerun_s * 1000:.0f} ms")
    assert len(read_count(counter)) == 2, "a second run of a complete chain must do no work"


def test_changed_significant_param_reruns_under_new_fingerprint(tmp_path):
    root, counter = str(tmp_path), str(tmp_path / "count.txt")
    first, second = ToyChild(value=3, root=root), ToyChild(value=4, root=root)
    assert first.fingerprint != second.fingerprint
    assert_ok(build(ToyChild(value=3, counter=counter, root=root)))
    assert_ok(build(ToyChild(value=4, counter=counter, root=root)))
    assert len(read_count(counter)) == 4  # both stages reran for value=4
    assert published(root, "toy")[0] == sorted([Toy(value=3, root=root).fingerprint,
                                                Toy(value=4, root=root).fingerprint])
    with open(os.path.join(second.out_dir, "plus_one.txt")) as f:
        assert f.read() == "9"


def test_insignificant_params_and_root_keep_the_fingerprint(tmp_path):
    a = Toy(value=2, counter="a.txt", started="s", root=str(tmp_path / "x"))
    b = Toy(value=2, counter="b.txt", fail=True, root=str(tmp_path / "y"))
    assert a.fingerprint == b.fingerprint
    root, counter_a, counter_b = str(tmp_path), str(tmp_path / "a"), str(tmp_path / "b")
    assert_ok(build(Toy(value=2, counter=counter_a, root=root)))
    assert_ok(build(Toy(value=2, counter=counter_b, root=root)))
    assert len(read_count(counter_a)) == 1 and read_count(counter_b) == []


def test_stage_raising_midway_leaves_nothing_complete_then_next_run_succeeds(tmp_path):
    root, counter = str(tmp_path), str(tmp_path / "count.txt")
    result = build(Toy(value=5, counter=counter, fail=True, root=root))
    assert result.status == LuigiStatusCode.FAILED, result.summary_text
    assert published(root, "toy") == ([], [])  # no manifest, no published dir, no tmp dir
    task = Toy(value=5, root=root)
    assert not task.complete() and not os.path.exists(task.out_dir)

    assert_ok(build(Toy(value=5, counter=counter, root=root)))
    assert len(read_count(counter)) == 2
    assert published(root, "toy") == ([task.fingerprint], [])
    assert task.manifest()["result"] == {"doubled": 10}


def _contents(directory):
    """{file name: bytes} of a flat directory."""
    contents = {}
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as f:
            contents[name] = f.read()
    return contents


def test_full_disk_while_publishing_keeps_earlier_outputs_and_says_so(tmp_path):
    """A stage that fills the disk fails with one clear line; what was published before stays
    byte for byte, its tmp dir is removed, and the freed space serves the next stage."""
    with small_disk(tmp_path / "disk", "1m", fallback_limit=300_000) as (disk, limit):
        root = str(disk / "runs")

        def toy(value, pad_bytes):
            return subprocess.run(
                [sys.executable, "-m", "luigi", "--module", "tests.cache_fixture_tasks", "Toy",
                 "--local-scheduler", "--root", root, "--value", str(value), "--pad-bytes",
                 str(pad_bytes)], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
                preexec_fn=preexec(limit))

        assert toy(1, 200_000).returncode == 0
        first = Toy(value=1, pad_bytes=200_000, root=root)
        before = _contents(first.out_dir)
        proc = toy(2, 3_000_000)
        assert proc.returncode != 0
        failed = Toy(value=2, pad_bytes=3_000_000, root=root)
        line = [x for x in proc.stderr.splitlines() if x.startswith("pipeline: error: ")]
        assert line == [f"pipeline: error: Toy: no space left on device while writing "
                        f"{failed.out_dir}: nothing of it was published and the outputs "
                        f"published before are intact; free some space under {root} and "
                        f"rerun"], proc.stderr[-2000:]
        assert published(root, "toy") == ([first.fingerprint], [])  # no tmp debris
        assert _contents(first.out_dir) == before
        assert toy(3, 200_000).returncode == 0
        assert len(published(root, "toy")[0]) == 2


def test_sigkill_midway_leaves_nothing_complete_then_next_run_succeeds(tmp_path):
    root, counter, started = str(tmp_path / "runs"), str(tmp_path / "n"), str(tmp_path / "s")
    proc = luigi_cli("--module", "tests.cache_fixture_tasks", "Toy", "--local-scheduler",
                     "--root", root, "--value", "6", "--counter", counter, "--started", started,
                     "--wait-for", str(tmp_path / "never"),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(started), "the stage to start", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(SUBPROCESS_TIMEOUT_S)
    task = Toy(value=6, root=root)
    done, tmp = published(root, "toy")
    assert done == [] and len(tmp) == 1 and tmp[0].startswith(f".tmp-{task.fingerprint}-")
    assert os.path.exists(os.path.join(root, "toy", tmp[0], "partial.txt"))  # killed midway
    assert not task.complete()

    assert_ok(build(Toy(value=6, counter=counter, root=root)))
    assert len(read_count(counter)) == 2
    assert published(root, "toy") == ([task.fingerprint], [])  # debris cleaned under the lock
    with open(os.path.join(task.out_dir, "value.txt")) as f:
        assert f.read() == "12"


def test_two_concurrent_runs_publish_once_and_run_the_stage_once(tmp_path):
    root, counter = str(tmp_path / "runs"), str(tmp_path / "n")
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    args = ["--module", "tests.cache_fixture_tasks", "Toy", "--local-scheduler",
            "--root", root, "--value", "8", "--counter", counter]
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    with open(log_a, "w") as err_a, open(log_b, "w") as err_b:
        first = luigi_cli(*args, "--started", started, "--wait-for", release,
                          stdout=subprocess.DEVNULL, stderr=err_a)
        second = None
        try:
            wait_for(lambda: os.path.exists(started), "the first run to start", first)
            second = luigi_cli(*args, stdout=subprocess.DEVNULL, stderr=err_b)
            wait_for(lambda: "waiting for another run" in log_b.read_text(),
                     "the second run to wait for the lock", second)
            open(release, "w").close()
            assert first.wait(SUBPROCESS_TIMEOUT_S) == 0, log_a.read_text()
            assert second.wait(SUBPROCESS_TIMEOUT_S) == 0, log_b.read_text()
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert len(read_count(counter)) == 1, read_count(counter)
    task = Toy(value=8, root=root)
    assert published(root, "toy") == ([task.fingerprint], [])
    assert "was published by another run" in log_b.read_text()
    with open(os.path.join(task.out_dir, "value.txt")) as f:
        assert f.read() == "16"
    assert task.manifest()["result"] == {"doubled": 16}


def test_local_roots_do_not_import_tensorflow(tmp_path):
    code = ("import sys, luigi; from tests.cache_fixture_tasks import ToyChild; "
            f"ok = luigi.build([ToyChild(value=1, root={str(tmp_path)!r})], local_scheduler=True); "
            "print(ok, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=SUBPROCESS_TIMEOUT_S, env=dict(os.environ,
                                                                           PYTHONPATH=REPO))
    assert out.stdout.split() == ["True", "False"], out.stderr[-2000:]


def test_remote_root_publishes_by_copy_with_manifest_last(tmp_path):
    """TensorFlow's in-memory ram:// file system drives the same tf.io.gfile code as gs://."""
    gfile = pytest.importorskip("tensorflow").io.gfile
    root, counter = f"ram://cache-test-{os.getpid()}/runs", str(tmp_path / "n")
    task = ToyChild(value=2, counter=counter, root=root)
    assert task.out_dir == f"{root}/toy_child/{task.fingerprint}"
    # A partial copy left by a dead run (no manifest) must neither count nor survive.
    gfile.makedirs(task.out_dir)
    cache.write_text(f"{task.out_dir}/stale.txt", "stale")
    assert not task.complete()

    assert_ok(build(task))
    assert task.complete() and len(read_count(counter)) == 2
    assert cache.read_text(f"{task.out_dir}/plus_one.txt") == "5"
    assert not gfile.exists(f"{task.out_dir}/stale.txt")
    assert sorted(gfile.listdir(f"{root}/toy_child")) == [task.fingerprint]
    assert json.loads(cache.read_text(f"{task.out_dir}/params.json"))["params"]["value"] == 2
    assert task.manifest()["result"] == {"plus_one": 5}

    assert_ok(build(ToyChild(value=2, counter=counter, root=root)))
    assert len(read_count(counter)) == 2


def test_cli_root_flag_and_config_default(tmp_path):
    root = str(tmp_path / "cli-root")
    proc = luigi_cli("--module", "tests.cache_fixture_tasks", "ToyChild", "--local-scheduler",
                     "--root", root, "--value", "4", stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    assert proc.returncode == 0, out[-3000:]
    assert ToyChild(value=4, root=root).complete()
    assert glob.glob(os.path.join(root, "toy", "*", "manifest.json"))
    # Without --root the task reads luigi.cfg [pipeline] root (./runs in the repo's luigi.cfg).
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(f"[pipeline]\nroot = {tmp_path / 'from-cfg'}\n")
    code = ("from tests.cache_fixture_tasks import Toy; print(Toy().root)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=SUBPROCESS_TIMEOUT_S,
                         env=dict(os.environ, PYTHONPATH=REPO, LUIGI_CONFIG_PATH=str(cfg)))
    assert out.stdout.strip() == str(tmp_path / "from-cfg"), out.stderr[-2000:]
