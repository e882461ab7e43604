"""How a training run ends when it cannot finish: TF-free, so programs can name these early.

Each error carries the exit code its program returns (`stages.cli.Program.error`).
"""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the weights of that step were not saved."""

    exit_code = 1


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; rerunning resumes.

    Exit code 75 (EX_TEMPFAIL): a temporary failure, rerun the same command."""

    exit_code = 75


class CheckpointError(RuntimeError):
    """model_dir holds checkpoints but none of them can be restored."""

    exit_code = 1


class DiskFull(RuntimeError):
    """A checkpoint could not be written for lack of space; the previous one is intact."""

    exit_code = 1
