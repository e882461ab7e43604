"""Toy CachedTasks for the cache tests, importable by a `luigi --module` subprocess too.

Each run_stage appends one line to the `counter` file, so a test can count real invocations.
Control knobs (`started`, `wait_for`, `fail`) are insignificant parameters: they shape how a run
behaves, not what it produces, so they leave the fingerprint alone.
"""

import os
import time

import luigi

from fixmatch import fs
from pipeline import cache, data_tasks

WAIT_TIMEOUT_S = 120


def count(counter, line):
    if counter:
        with open(counter, "a") as f:
            f.write(line + "\n")


def read_count(counter):
    if not os.path.exists(counter):
        return []
    with open(counter) as f:
        return f.read().splitlines()


class Toy(cache.CachedTask):
    """Writes value.txt = 2 * value; can pause (wait_for) or raise (fail) after a partial write."""

    stage_name = "toy"

    value = luigi.IntParameter(default=1)
    counter = luigi.Parameter(default="", significant=False)
    started = luigi.Parameter(default="", significant=False,
                              description="file created once the partial output is written")
    wait_for = luigi.Parameter(default="", significant=False,
                               description="file to wait for before finishing")
    fail = luigi.BoolParameter(default=False, significant=False)
    pad_bytes = luigi.IntParameter(default=0, description="size of an extra pad.bin output")

    def run_stage(self, tmp_dir):
        count(self.counter, f"toy {self.value} pid={os.getpid()}")
        cache.write_text(cache.join(tmp_dir, "partial.txt"), "half done\n")
        if self.pad_bytes:
            fs.write_bytes(cache.join(tmp_dir, "pad.bin"), os.urandom(self.pad_bytes))
        if self.started:
            with open(self.started, "w") as f:
                f.write(str(os.getpid()))
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        while self.wait_for and not os.path.exists(self.wait_for):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.wait_for} did not appear")
            time.sleep(0.05)
        if self.fail:
            raise RuntimeError("toy stage failed midway")
        cache.write_text(cache.join(tmp_dir, "value.txt"), str(2 * self.value))
        return {"doubled": 2 * self.value}


class ToyChild(cache.CachedTask):
    """Reads Toy's value.txt and writes it + 1: checks upstream fingerprints and input_dir()."""

    stage_name = "toy_child"

    value = luigi.IntParameter(default=1)
    counter = luigi.Parameter(default="", significant=False)

    def requires(self):
        return self.upstream(Toy, value=self.value, counter=self.counter)

    def run_stage(self, tmp_dir):
        count(self.counter, f"toy_child {self.value}")
        upstream = int(cache.read_text(cache.join(self.input_dir(), "value.txt")))
        cache.write_text(cache.join(tmp_dir, "plus_one.txt"), str(upstream + 1))
        return {"plus_one": upstream + 1}


class ToyCount(cache.CachedTask):
    """Counts the training files of its data source (DemoData or ImageFolder)."""

    stage_name = "toy_count"

    data_dir = luigi.Parameter(default="")
    counter = luigi.Parameter(default="", significant=False)

    def requires(self):
        return data_tasks.data_source(self, self.data_dir, image_size=16, train_per_class=2,
                                      val_per_class=1, num_classes=2)

    def run_stage(self, tmp_dir):
        count(self.counter, f"toy_count {self.data_dir}")
        train = cache.join(self.input_dir(), "train")
        n = sum(len(files) for _, _, files in os.walk(train))
        cache.write_text(cache.join(tmp_dir, "count.txt"), str(n))
        return {"train_files": n}
