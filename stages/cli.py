"""The one command-line pattern of every stage program.

Each program declares its absl flags on its own `Program` (a private FlagValues, because all
stages are importable in one process: the Luigi pipeline imports them side by side) and ends
with `sys.exit(PROGRAM.main(body))`. `main` parses, calls `body(flags, args)`, prints the
JSON result on stdout and returns 0; bad input (a flag error, a StageError or one of the
library errors the program names) becomes one line `<program>: error: ...` on stderr and
exit code 2, before any work where the checks allow.
"""

import json
import sys

from absl import flags

from fixmatch import fs


class StageError(ValueError):
    """Bad input to a stage (a path, a directory holding something else, a flag combination)."""


class Program:
    """A stage's flags and its main().

    `unknown_flags=True` hands flags this program does not define to the body (Beam pipeline
    options); `positional=True` accepts positional arguments (file names). Otherwise either is
    an error. `required_unless` names a boolean flag that lifts `required` when set (a
    training program's --plan needs neither --data nor --model_dir).
    """

    def __init__(self, name: str, doc: str, *, required=(), unknown_flags=False,
                 positional=False, required_unless=None):
        self.name = name
        self.doc = doc
        self.flags = flags.FlagValues()
        self.required = tuple(required)
        self.required_unless = required_unless
        self.unknown_flags = unknown_flags
        self.positional = positional

    def parse(self, argv):
        """argv (with the program name first) -> (flag values, remaining arguments)."""
        self.flags.unparse_flags()  # back to defaults: main() may run more than once
        rest = self.flags(list(argv), known_only=self.unknown_flags)[1:]
        lifted = self.required_unless and self.flags[self.required_unless].value
        missing = [name for name in self.required
                   if not lifted and self.flags[name].value in (None, "")]
        if missing:
            raise flags.IllegalFlagValueError(
                f"missing required flag(s): --{', --'.join(missing)} (see --help)")
        if not (self.positional or self.unknown_flags):  # a Beam option's value may stand alone
            stray = [a for a in rest if not a.startswith("-")]
            if stray:
                raise flags.IllegalFlagValueError(f"unexpected arguments: {' '.join(stray)}")
        return self.flags, rest

    def help_text(self) -> str:
        return f"{self.doc.strip()}\n\nflags:\n{self.flags.get_help()}"

    def error(self, message) -> int:
        """One line on stderr; exit code 2 (bad input) unless the error names its own."""
        print(f"{self.name}: error: {message}", file=sys.stderr, flush=True)
        return getattr(message, "exit_code", 2)

    def main(self, body, argv=None, *, errors=()) -> int:
        """Runs `body(flags, rest) -> JSON-able result or None`; returns the exit code.

        `errors`: the library's bad-input exception types, or a function returning them (so
        naming them need not import TensorFlow before --help or a flag error)."""
        argv = sys.argv if argv is None else argv
        if any(a in ("-h", "--help", "--helpfull", "-?") for a in argv[1:]):
            print(self.help_text())
            return 0
        try:
            values, rest = self.parse(argv)
            result = body(values, rest)
        except Exception as e:
            known = (flags.Error, StageError, *(errors() if callable(errors) else errors))
            if isinstance(e, known):
                return self.error(e)
            if fs.is_disk_full(e):  # anywhere: outputs are written atomically, none is partial
                self.error(f"no space left on device ({str(e).strip().splitlines()[-1][:300]}); "
                           "free some space and rerun: finished outputs are kept")
                return 1
            raise
        if result is not None:
            print(json.dumps(result, indent=2, sort_keys=True))
        return 0


def check_new_dir(path: str, *, flag="--out") -> None:
    """`path` is absent or an empty directory: a stage never writes over earlier results."""
    if fs.exists(path) and (not fs.isdir(path) or fs.listdir(path)):
        raise StageError(f"{flag} {path!r} exists and is not an empty directory; give a new "
                         "one (results are never overwritten)")
    fs.require_writable(path, what=flag, error=StageError)


def progress(program: str, message: str) -> None:
    """One progress line of a stage on stderr (stdout carries only the JSON result)."""
    print(f"{program}: {message}", file=sys.stderr, flush=True)
