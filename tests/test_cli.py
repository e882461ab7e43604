"""stages.cli: the one command-line pattern (exit code 2 with one error line, JSON on stdout)."""

import json

import pytest
from absl import flags

from stages import cli


class LibraryError(ValueError):
    pass


def program(**kw):
    p = cli.Program("toy", "toy: a test program.\n\n    python -m toy --name N", **kw)
    flags.DEFINE_string("name", None, "A name.", flag_values=p.flags)
    flags.DEFINE_integer("count", 1, "A count.", flag_values=p.flags)
    return p


def body(values, rest):
    if values.name == "bad":
        raise cli.StageError("--name 'bad' is refused; pick another")
    if values.name == "lib":
        raise LibraryError("library says no")
    return {"name": values.name, "count": values.count, "rest": rest}


def test_result_is_json_on_stdout(capsys):
    p = program(required=("name",))
    assert p.main(body, ["toy", "--name=a", "--count", "3"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {"name": "a", "count": 3, "rest": []}
    assert out.err == ""
    # Parsing again starts from the defaults (no leak between calls in one process).
    assert p.main(body, ["toy", "--name=b"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 1


@pytest.mark.parametrize("argv,needle", [
    (["toy"], "missing required flag(s): --name"),
    (["toy", "--name=a", "--colour=red"], "colour"),
    (["toy", "--name=a", "stray.jpg"], "unexpected arguments: stray.jpg"),
    (["toy", "--name=a", "--count=many"], "count"),
    (["toy", "--name=bad"], "--name 'bad' is refused; pick another"),
    (["toy", "--name=lib"], "library says no"),
])
def test_bad_input_is_one_error_line_and_exit_code_2(capsys, argv, needle):
    p = program(required=("name",))
    assert p.main(body, argv, errors=(LibraryError,)) == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("toy: error: ") and needle in lines[0]


def test_unlisted_errors_are_not_swallowed():
    with pytest.raises(LibraryError):
        program().main(body, ["toy", "--name=lib"])


def test_unknown_flags_and_positionals_when_allowed(capsys):
    assert program(unknown_flags=True).main(body, ["toy", "--name=a", "--runner=X", "--y", "Z"]) == 0
    assert json.loads(capsys.readouterr().out)["rest"] == ["--runner=X", "--y", "Z"]
    assert program(positional=True).main(body, ["toy", "--name=a", "x.jpg", "y.png"]) == 0
    assert json.loads(capsys.readouterr().out)["rest"] == ["x.jpg", "y.png"]


def test_help_shows_the_docstring_and_every_flag(capsys):
    assert program(required=("name",)).main(body, ["toy", "--help"]) == 0
    out = capsys.readouterr().out
    assert "python -m toy --name N" in out and "--name" in out and "--count" in out
