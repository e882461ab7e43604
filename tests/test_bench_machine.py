"""bench/machine.py: the benches' header names the CPU, its AVX-512 / VNNI / BF16 / AMX flags and
oneDNN's state as TensorFlow decides it (the environment variable first, else the CPU rule)."""

import pytest
import tensorflow as tf  # noqa: F401  (imported: machine_info then asks TensorFlow itself)
from tensorflow.python.util import _pywrap_util_port

from bench import machine

_CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
model name\t: {model}
flags\t\t: {flags}

processor\t: 1
model name\t: second processor, ignored
flags\t\t: fpu
"""


def _cpuinfo(tmp_path, model, flags, vendor="AuthenticAMD"):
    path = tmp_path / "cpuinfo"
    path.write_text(_CPUINFO.format(vendor=vendor, model=model, flags=flags))
    return str(path)


def test_reads_model_and_flags_of_the_first_processor(tmp_path):
    model, flags = machine.read_cpuinfo(_cpuinfo(tmp_path, "AMD EPYC 7B13", "fpu avx2 fma"))
    assert model == "AMD EPYC 7B13" and flags == {"fpu", "avx2", "fma"}


@pytest.mark.parametrize("flags,default_on", [
    ("avx2 fma", False),                       # e.g. an AVX2-only EPYC: oneDNN off by default
    ("avx2 avx512f avx512bw", False),          # AVX-512 alone is not enough
    ("avx2 avx512f avx512_vnni", True),
    ("avx2 avx512f avx512_bf16", True),
    ("avx2 avx_vnni", True),
    ("avx2 avx512f amx_tile amx_bf16", True)])
def test_onednn_default_follows_tensorflows_cpu_rule(flags, default_on):
    flag_set = set(flags.split())
    assert machine.onednn_state(flag_set, {}, "x86_64") == (
        default_on, "TensorFlow's default for this CPU")
    assert machine.onednn_state(flag_set, {"TF_ENABLE_ONEDNN_OPTS": "1"}, "x86_64")[0] is True
    assert machine.onednn_state(flag_set, {"TF_ENABLE_ONEDNN_OPTS": "false"}, "x86_64")[0] is False
    on, why = machine.onednn_state(flag_set, {"TF_ENABLE_ONEDNN_OPTS": "maybe"}, "x86_64")
    assert on is default_on and "'maybe' is not a boolean" in why
    assert machine.onednn_state(flag_set, {}, "aarch64")[0] is None


def test_header_names_cpu_flags_and_onednn(tmp_path):
    path = _cpuinfo(tmp_path, "AMD EPYC 7B13", "fpu avx2 fma")
    info = machine.machine_info(path, environ={})
    assert info["cpu"] == "AMD EPYC 7B13" and info["avx512"] is False
    line = machine.header(info)
    assert line.startswith("machine: AMD EPYC 7B13; avx512f no, avx512_vnni no, avx512_bf16 no, "
                           "avx_vnni no, amx no; oneDNN ")
    path = _cpuinfo(tmp_path, "Intel Xeon", "avx2 avx512f avx512_vnni avx512_bf16 amx_tile",
                    vendor="GenuineIntel")
    line = machine.header(machine.machine_info(path, environ={"TF_ENABLE_ONEDNN_OPTS": "0"}))
    assert "Intel Xeon; avx512f yes, avx512_vnni yes, avx512_bf16 yes, avx_vnni no, amx yes" \
        in line


def test_this_process_reports_what_tensorflow_runs():
    # TensorFlow is imported here, so its own answer is the one reported.
    info = machine.machine_info()
    assert info["onednn"] is bool(_pywrap_util_port.IsMklEnabled())
    assert machine.header().endswith(")") and info["cpu"] in machine.header()
