"""Where a bench ran: CPU model, AVX-512 and the instructions that decide oneDNN, oneDNN on/off.

Why: TensorFlow's oneDNN kernels change CPU costs several-fold, and TensorFlow turns them on by
default only on x86 CPUs with AVX-512 VNNI, AVX-512 BF16, AVX-VNNI or AMX; numbers measured on
one kind of CPU say little about another unless the header names both. Shared by the benches.
"""

import os
import platform
import sys

# TensorFlow's default on Linux x86 (DefaultOneDnnPolicy, tensorflow/core/util/port.cc): any one
# of these turns oneDNN on.
ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16",
                        "amx_int8")
_NAMED_FLAGS = ("avx2", "avx512f") + ONEDNN_DEFAULT_FLAGS
_TRUE, _FALSE = ("1", "true"), ("0", "false")


def read_cpuinfo(path="/proc/cpuinfo"):
    """(model name, set of flags) of the first processor listed; empty where unreadable."""
    model, flags = "", set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown CPU", flags


def onednn_state(flags, environ=None, machine=None):
    """(on, why): oneDNN as TensorFlow will decide it, from the environment and the CPU flags.

    TF_ENABLE_ONEDNN_OPTS wins when it parses as a boolean; otherwise TensorFlow's default
    applies: on for x86 CPUs with any of ONEDNN_DEFAULT_FLAGS. Elsewhere (e.g. ARM, where some
    cores default to on) the rule is not modelled: `on` is None unless TensorFlow is asked.
    """
    environ = os.environ if environ is None else environ
    machine = (machine or platform.machine()).lower()
    value = environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is not None and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE, f"TF_ENABLE_ONEDNN_OPTS={value}"
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return None, f"TensorFlow's default on {machine}, not modelled"
    on = any(flag in flags for flag in ONEDNN_DEFAULT_FLAGS)
    why = "TensorFlow's default for this CPU"
    if value is not None:
        why += f"; TF_ENABLE_ONEDNN_OPTS={value!r} is not a boolean"
    return on, why


def _tensorflow_says():
    """TensorFlow's own answer if it is already imported (never imports it), else None."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def machine_info(cpuinfo_path="/proc/cpuinfo", environ=None):
    """dict: cpu, avx512 (bool), flags (the named ones present), onednn (bool or None when
    unknown), onednn_why. TensorFlow's own answer overrides the rule when it is imported."""
    model, flags = read_cpuinfo(cpuinfo_path)
    on, why = onednn_state(flags, environ)
    reported = _tensorflow_says()
    if reported is not None:
        if reported == on:
            why += ", as TensorFlow reports"
        else:
            why += f"; TensorFlow itself reports {'on' if reported else 'off'}"
        on = reported
    return {"cpu": model, "avx512": "avx512f" in flags,
            "flags": [flag for flag in _NAMED_FLAGS if flag in flags], "onednn": on,
            "onednn_why": why}


def header(info=None):
    """One line naming the CPU, AVX-512 / VNNI / BF16 / AVX-VNNI / AMX support, oneDNN's state."""
    info = machine_info() if info is None else info
    present = set(info["flags"])
    amx = any(flag.startswith("amx") for flag in present)
    features = ", ".join(f"{name} {'yes' if have else 'no'}" for name, have in (
        ("avx512f", info["avx512"]), ("avx512_vnni", "avx512_vnni" in present),
        ("avx512_bf16", "avx512_bf16" in present), ("avx_vnni", "avx_vnni" in present),
        ("amx", amx)))
    onednn = {True: "on", False: "off", None: "unknown"}[info["onednn"]]
    return f"machine: {info['cpu']}; {features}; oneDNN {onednn} ({info['onednn_why']})"
