"""A child process measured as a whole: wall time, CPU time and peak memory of its process tree.

Shared by the benches that time a program rather than a function (bench/prepare_splits.py,
bench/scale.py). CPU time is user + system of the child and every descendant it waited for
(RUSAGE_CHILDREN); peak RSS is sampled from /proc every 50 ms over the live process tree, so a
peak shorter than that can be missed.
"""

import os
import resource
import subprocess
import threading
import time


def process_tree(pid):
    """`pid` and every live descendant, `pid` first (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_kb(pid):
    """Resident memory of one process in KiB (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd, *, cwd=None, env=None, stdout=subprocess.DEVNULL):
    """Runs `cmd`; returns {returncode, wall, cpu, rss_main, rss_other, rss_tree, stderr}
    (seconds; MiB: the peak of the child itself, of its largest descendant, of the sum)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = {"main": 0, "other": 0, "tree": 0}
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample():
        while not done.is_set():
            sizes = [rss_kb(p) for p in process_tree(child.pid)]
            peak["main"] = max(peak["main"], sizes[0])
            peak["other"] = max(peak["other"], max(sizes[1:], default=0))
            peak["tree"] = max(peak["tree"], sum(sizes))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"returncode": child.returncode, "wall": wall, "cpu": cpu,
            "rss_main": peak["main"] / 1024, "rss_other": peak["other"] / 1024,
            "rss_tree": peak["tree"] / 1024, "stdout": out.decode() if out else "",
            "stderr": err.decode(errors="replace")}
