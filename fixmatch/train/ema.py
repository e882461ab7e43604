"""Exponential moving average of ALL model variables (spec section 7).

The EMA model is a second instance of the same architecture. After every
optimizer update, every variable -- trainable weights *and* BatchNorm moving
statistics -- moves towards the online value:

    ema <- ema - (1 - decay) * (ema - w)

Averaging the BN statistics too keeps the EMA model self-consistent: its
normalisation matches the averaged weights it is evaluated with.
"""


def check_compatible(ema_model, model) -> None:
    """Both models must list the same variables in the same order and shapes."""
    ema_vars, online_vars = ema_model.variables, model.variables
    if len(ema_vars) != len(online_vars):
        raise ValueError(f"EMA model has {len(ema_vars)} variables, online model "
                         f"{len(online_vars)}; build both with the same model_fn")
    for e, w in zip(ema_vars, online_vars):
        if tuple(e.shape) != tuple(w.shape):
            raise ValueError(f"EMA variable {e.path!r} has shape {tuple(e.shape)} but "
                             f"online {w.path!r} has {tuple(w.shape)}")


def copy_weights(*, source, target) -> None:
    """Initialises the EMA model as an exact copy (also used by tests)."""
    check_compatible(target, source)
    for t, s in zip(target.variables, source.variables):
        t.assign(s.value)


def ema_update(ema_variables, variables, *, decay) -> None:
    """In-place EMA step; call in cross-replica context after the update."""
    rate = 1.0 - decay
    for e, w in zip(ema_variables, variables):
        e.assign_sub(rate * (e.value - w.value))
