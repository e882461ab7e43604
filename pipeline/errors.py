"""One error line per broken or failed task, after Luigi's traceback: `pipeline: error: ...`.

Bad parameters (an unknown hparams key, a split name, a missing --data-dir) surface while Luigi
checks `complete()`, before any task runs; Luigi reports them as a long traceback under "error
in complete() method" and passes the exception to no event handler. So `CachedTask.complete`
hands it to `remember`, and the DEPENDENCY_MISSING event Luigi fires next prints the library's
own message on one line, naming the task.

Luigi's exit code is 0 even when a task failed, unless the `[retcode]` section of its
configuration says otherwise; a script or scheduler would take the failure for a success.
Importing the pipeline (`luigi --module pipeline ...` does, from any directory) fills in
RETCODES for every key the user's configuration leaves unset.
"""

import configparser
import sys

import luigi
import luigi.configuration

#: Exit codes of a `luigi --module pipeline ...` run (luigi.retcodes names; the highest applies).
RETCODES = {"already_running": 10, "missing_data": 20, "not_run": 25, "task_failed": 30,
            "scheduling_error": 35, "unhandled_exception": 40}


def apply_retcode_defaults(config=None) -> None:
    """Set each `[retcode]` key of RETCODES the Luigi configuration does not set; a value the
    user configured (luigi.cfg, LUIGI_CONFIG_PATH, /etc/luigi) is kept."""
    config = config or luigi.configuration.get_config()
    for key, code in RETCODES.items():
        if config.has_option("retcode", key):
            continue
        try:
            config.set("retcode", key, str(code))
        except configparser.NoSectionError:  # .cfg parser (the TOML one creates sections)
            config.add_section("retcode")
            config.set("retcode", key, str(code))


def error_line(task, exception) -> str:
    name = task.get_task_family() if hasattr(task, "get_task_family") else type(task).__name__
    message = str(exception).strip() or type(exception).__name__
    if isinstance(exception, (KeyError, TypeError, AttributeError, AssertionError)):
        message = f"{type(exception).__name__}: {message}"  # a bug, not bad input: say which
    return f"pipeline: error: {name}: {message.splitlines()[0]}"


_remembered = []


def remember(task, exception) -> None:
    """Called by a task whose complete() is about to raise `exception`."""
    _remembered.append((task, exception))


@luigi.Task.event_handler(luigi.Event.DEPENDENCY_MISSING)
def _complete_failed(task):
    while _remembered:
        print(error_line(*_remembered.pop(0)), file=sys.stderr, flush=True)


@luigi.Task.event_handler(luigi.Event.BROKEN_TASK)
@luigi.Task.event_handler(luigi.Event.FAILURE)
def _failed(task, exception):
    print(error_line(task, exception), file=sys.stderr, flush=True)
