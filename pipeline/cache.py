"""Fingerprint cache under every Luigi task: outputs at ROOT/<stage>/<fingerprint>/.

Luigi alone only asks "does the output exist?", so a changed parameter or input file would
silently reuse a stale output. Here the output directory is named by a fingerprint:
sha256 of canonical JSON of {stage name, format version, significant parameters (not `root`),
upstream fingerprints, external input fingerprint}. Change any of those and the task points at
a new, empty directory, so it (and everything downstream) reruns; change nothing and every task
is already complete.

Layout of ROOT/<stage>/:
    <fp>/                   published output; complete() <=> <fp>/manifest.json exists
    <fp>/params.json        every resolved Luigi parameter of the run that produced it
    .tmp-<fp>-<random>/     a run in progress, or the debris of a dead one (never read)
    <fp>.lock               flock held while a run of <fp> is in progress (local roots)
    <fp>.work/              scratch kept across failed runs (checkpoints of resumable stages),
                            removed once <fp>/ is published (a second copy of nothing needed)

Publishing on a local root is one os.rename of the finished tmp dir (manifest.json written
last inside it), under an fcntl.flock on <fp>.lock. The kernel drops the lock when its process
dies, even by SIGKILL, so a second run waits for the first, then finds the output complete and
does nothing; debris of dead runs is removed by the next holder of the lock.

Remote roots (any URL, e.g. gs://; tests use TensorFlow's ram://) go through tf.io.gfile,
imported only then. GCS has no atomic directory rename, so publishing copies the tmp dir into
<fp>/ and writes manifest.json last: on GCS, completeness IS manifest presence, and a <fp>/
without manifest.json is a partial copy that the next run replaces. The lock file then lives on
local disk, so it only excludes runs on the same machine; runs on several machines must share
a Luigi central scheduler (luigid), which never runs one task in two workers at once.

Fingerprints are computed once per task object. Luigi reuses task objects with equal
parameters within a process, so a long-lived process that changes input files and builds again
must call `refresh_fingerprints()` first (a fresh `luigi` command always sees current files).
"""

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time

import luigi
from luigi.task_register import Register

import fixmatch
from fixmatch import fs
from pipeline import errors

logger = logging.getLogger("luigi-interface.pipeline.cache")

MANIFEST = "manifest.json"
PARAMS = "params.json"


def canonical_json(obj) -> str:
    """The one JSON spelling of `obj` that fingerprints hash (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def sha256_json(obj) -> str:
    return hashlib.sha256(canonical_json(obj).encode("ascii")).hexdigest()


def refresh_fingerprints():
    """Forget Luigi's cached task objects (and with them their fingerprints), so the next
    build in this process re-lists external inputs. Only long-lived processes need this."""
    Register.clear_instance_cache()


# ----------------------------------------------------------------------------- file systems

# The one file-system layer lives in the library (fixmatch.fs); these names are the cache's
# vocabulary for it.
is_remote, gfile, join, exists = fs.is_remote, fs.gfile, fs.join, fs.exists
makedirs, listdir, rmtree, write_text, read_text = (fs.makedirs, fs.listdir, fs.rmtree,
                                                    fs.write_text, fs.read_text)


def read_manifest(out_dir: str) -> dict:
    """The cache's envelope of a published stage output (`<out_dir>/manifest.json`).

    The one reader of manifests: a stage's own facts are in its own files (split.json,
    metrics.json, ...) and in the envelope's "result"; readers of an upstream output go
    through here or through the library reader of that output.
    """
    path = join(out_dir, MANIFEST)
    try:
        manifest = json.loads(read_text(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist: {out_dir} is not a published stage "
                                "output (run its task first)") from None
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete {out_dir} to rebuild it") from None
    if not isinstance(manifest, dict) or "result" not in manifest:
        raise ValueError(f"{path} is not a stage manifest (no 'result'); delete {out_dir} to "
                         "rebuild it")
    return manifest


def _log_once():
    """Stop Luigi's lines from printing twice once a library (Beam, on import) has given the
    root logger a handler: Luigi's console handler sits on "luigi-interface", which also
    propagates to root. Only when Luigi configured that handler itself (default logging)."""
    luigi_logger = logging.getLogger("luigi-interface")
    if luigi_logger.handlers:
        luigi_logger.propagate = False


@contextlib.contextmanager
def _flock(path: str, what: str):
    """Hold an exclusive flock on `path`; log once if another process holds it and we wait."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("%s: waiting for another run that holds %s", what, path)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def root_parameter():
    """The `root` parameter of every task (also for wrappers such as FullRun that pass it on):
    `--root` on the command line, else luigi.cfg [pipeline] root, else ./runs."""
    return luigi.Parameter(
        default="./runs", config_path={"section": "pipeline", "name": "root"},
        significant=False, positional=False,
        description="Directory (or gs:// URL) holding ROOT/<stage>/<fingerprint>/ outputs; "
                    "default from luigi.cfg [pipeline] root, else ./runs.")


# ----------------------------------------------------------------------------- targets

class RootNotWritable(RuntimeError):
    """The output root cannot be written: raised before a stage does any work."""


class StageDiskFull(OSError):
    """The disk filled up while a stage wrote its output; nothing of it was published."""


class StageOutput(luigi.Target):
    """A published stage directory; it exists when its manifest.json does."""

    def __init__(self, path: str):
        self.path = path
        self.manifest_path = join(path, MANIFEST)

    def exists(self) -> bool:
        return exists(self.manifest_path)

    def manifest(self) -> dict:
        return read_manifest(self.path)


def _jsonable(value, param=None):
    """Parameter values as plain JSON (Luigi's frozen dicts/tuples included)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if param is not None:
        return param.serialize(value)
    return str(value)


# ----------------------------------------------------------------------------- the base task

class CachedTask(luigi.Task):
    """Base of every stage task: subclasses set `stage_name` and implement `run_stage`.

    `run_stage(tmp_dir)` calls ONE stage function that writes into `tmp_dir` and returns a
    JSON-able dict, stored as manifest["result"]. The base class then writes params.json and
    manifest.json and publishes tmp_dir as `out_dir`.
    """

    stage_name: str = ""
    format_version: int = 1  # bump when a stage's output format changes

    root = root_parameter()

    # -- what decides the output (override the hooks, not `fingerprint`) --

    def significant_params(self) -> dict:
        """Significant Luigi parameters except `root`, as JSON. Override to replace a raw value
        by its resolved form (e.g. an hparams override string by the resolved config)."""
        return {name: _jsonable(getattr(self, name), param)
                for name, param in self.get_params()
                if param.significant and name != "root"}

    def external_fingerprint(self):
        """Anything outside parameters and upstream tasks that decides the output (a file
        listing, a generator's version); JSON-able, small. None for pure pipeline stages."""
        return None

    def upstream_fingerprints(self):
        """Fingerprints of requires(), in its shape (one, list or dict)."""
        return _map_tasks(self.requires(), _fingerprint_of)

    def fingerprint_inputs(self) -> dict:
        if not self.stage_name or not isinstance(self.stage_name, str):
            raise TypeError(f"{type(self).__name__}.stage_name must be a non-empty string, "
                            f"got {self.stage_name!r}")
        return {"stage": self.stage_name, "format_version": self.format_version,
                "params": self.significant_params(), "upstream": self.upstream_fingerprints(),
                "external_input": self.external_fingerprint()}

    @property
    def fingerprint(self) -> str:
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            cached = self.__dict__["_fingerprint"] = sha256_json(self.fingerprint_inputs())
        return cached

    # -- where things live --

    @property
    def root_path(self) -> str:
        """`root` made absolute once, so a stage that changes the working directory cannot
        move where its output gets published."""
        cached = self.__dict__.get("_root_path")
        if cached is None:
            root = str(self.root)
            cached = root.rstrip("/") if is_remote(root) else os.path.abspath(
                os.path.expanduser(root))
            self.__dict__["_root_path"] = cached
        return cached

    @property
    def stage_dir(self) -> str:
        return join(self.root_path, self.stage_name)

    @property
    def out_dir(self) -> str:
        return join(self.stage_dir, self.fingerprint)

    @property
    def work_dir(self) -> str:
        """Persistent scratch for this fingerprint (created by the stage if it wants one; it
        survives failed runs, is only used under this fingerprint's lock and is removed once
        the output is published)."""
        return join(self.stage_dir, self.fingerprint + ".work")

    def output(self) -> StageOutput:
        return StageOutput(self.out_dir)

    def complete(self) -> bool:
        try:
            return self.output().exists()
        except Exception as e:  # bad parameters: say so on one line (pipeline/errors.py)
            errors.remember(self, e)
            raise

    def manifest(self) -> dict:
        """The published manifest.json of this task (it must be complete)."""
        return self.output().manifest()

    # -- building on other tasks --

    def upstream(self, task_cls, **params):
        """An upstream task on the same root. Only `root` is inherited (unlike luigi's clone,
        which copies every same-named parameter, e.g. a training `seed` into DemoData)."""
        return task_cls(root=self.root, **params)

    def input_dir(self, key=None) -> str:
        """Published directory of the upstream task (of requires()[key] for list/dict)."""
        required = self.requires()
        task = required if key is None else required[key]
        if not hasattr(task, "out_dir"):
            raise TypeError(f"{self}: input_dir({key!r}) needs one upstream CachedTask, "
                            f"requires() gave {required!r}")
        return task.out_dir

    # -- running --

    def run_stage(self, tmp_dir: str) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement run_stage(tmp_dir)")

    def run(self):
        _log_once()
        fp = self.fingerprint
        fs.require_writable(self.root_path, what="root", error=RootNotWritable,
                            hint="; give a writable --root (or luigi.cfg [pipeline] root)")
        makedirs(self.stage_dir)
        with _flock(self._lock_path(), what=f"{self.stage_name}/{fp[:12]}"):
            if self.complete():
                logger.info("%s: %s was published by another run; nothing to do",
                            self.stage_name, self.out_dir)
                return
            if not is_remote(self.stage_dir):  # remote locks are per machine: not safe there
                self._remove_debris()
            tmp_dir = join(self.stage_dir, f".tmp-{fp}-{secrets.token_hex(6)}")
            makedirs(tmp_dir)
            try:
                self._run_into(tmp_dir)
            except BaseException as e:
                rmtree(tmp_dir)
                if fs.is_disk_full(e):
                    raise StageDiskFull(
                        f"no space left on device while writing {self.out_dir}: nothing of it "
                        f"was published and the outputs published before are intact; free some "
                        f"space under {self.root_path} and rerun") from e
                raise
            if exists(self.work_dir):  # only a failed run resumes from it
                rmtree(self.work_dir)

    def _run_into(self, tmp_dir: str):
        created = datetime.datetime.now(datetime.timezone.utc)
        start = time.monotonic()
        result = self.run_stage(tmp_dir)
        wall_seconds = time.monotonic() - start
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise TypeError(f"{type(self).__name__}.run_stage must return a dict, "
                            f"got {type(result).__name__}")
        inputs = self.fingerprint_inputs()
        manifest = {
            "stage": self.stage_name,
            "fingerprint": self.fingerprint,
            "format_version": self.format_version,
            "params": inputs["params"],
            "upstream": inputs["upstream"],
            "external_input": inputs["external_input"],
            "fixmatch_version": fixmatch.__version__,
            "task": str(self),
            "host": socket.gethostname(),
            "created": created.isoformat(timespec="seconds"),
            "wall_seconds": round(wall_seconds, 3),
            "result": result,
        }
        manifest_text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)
        params = {"task": type(self).__name__, "stage": self.stage_name,
                  "params": {name: _jsonable(getattr(self, name), p)
                             for name, p in self.get_params()},
                  "insignificant": sorted(n for n, p in self.get_params() if not p.significant)}
        write_text(join(tmp_dir, PARAMS), json.dumps(params, indent=2, sort_keys=True))
        self._publish(tmp_dir, manifest_text)
        logger.info("%s: published %s in %.1f s", self.stage_name, self.out_dir, wall_seconds)

    def _publish(self, tmp_dir: str, manifest_text: str):
        out_dir = self.out_dir
        if is_remote(out_dir):
            rmtree(out_dir)  # a partial copy of a dead run: no manifest, so never complete
            fs.copy_tree(tmp_dir, out_dir)
            write_text(join(out_dir, MANIFEST), manifest_text)  # the moment of completion
            rmtree(tmp_dir)
            return
        write_text(join(tmp_dir, MANIFEST), manifest_text)
        if os.path.lexists(out_dir):  # without a manifest (complete() was False): not ours
            shutil.rmtree(out_dir)
        os.rename(tmp_dir, out_dir)

    def _lock_path(self) -> str:
        if is_remote(self.stage_dir):
            key = hashlib.sha256(self.stage_dir.encode()).hexdigest()[:16]
            return os.path.join(tempfile.gettempdir(), "fixmatch-pipeline-locks", key,
                                self.fingerprint + ".lock")
        return join(self.stage_dir, self.fingerprint + ".lock")

    def _remove_debris(self):
        """Remove tmp dirs of dead runs of this fingerprint (we hold its lock, so no live run
        can own one)."""
        prefix = f".tmp-{self.fingerprint}-"
        for name in listdir(self.stage_dir):
            if name.startswith(prefix):
                logger.info("%s: removing debris of a dead run: %s", self.stage_name, name)
                rmtree(join(self.stage_dir, name))


def _fingerprint_of(task):
    if not isinstance(task, CachedTask):
        raise TypeError(f"requires() must return CachedTask objects so their outputs can be "
                        f"fingerprinted, got {task!r}")
    return task.fingerprint


def _map_tasks(required, fn):
    if required is None:
        return None
    if isinstance(required, dict):
        return {str(k): _map_tasks(v, fn) for k, v in required.items()}
    if isinstance(required, (list, tuple)):
        return [_map_tasks(v, fn) for v in required]
    return fn(required)
