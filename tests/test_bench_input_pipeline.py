"""Smoke test of the input-pipeline benchmarks: both scripts run end to end on tiny settings
and print their tables (no timing is asserted; the numbers are only meaningful at full size)."""

from bench import input_pipeline, op_costs
from fixmatch.augment import registry

CASES = ("(a) baseline", "(b) labeled", "(c0) unlabeled", "(c) unlabeled + RandAugment",
         "(d) unlabeled + CTAugment", "(cf) (c), float32 out", "(c-) (c), no layer",
         "(d-) (d), no layer")


def test_input_pipeline_bench_prints_the_ratio_table(tmp_path, capsys):
    # The op table it appends is bench/op_costs.py's, run by the next test.
    # One warm-up round: a first round also times the tracing of every op (ratio ~0.00 then).
    results = input_pipeline.main(["--images", "6", "--rounds", "1", "--warmup_rounds", "1",
                                   "--batches", "1", "--batch_size", "2", "--image_size", "16",
                                   "--skip_op_table", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    base_wall, _, base_cpu, _ = results["a"]
    for case in CASES:
        key = case[1:case.index(")")]
        wall, wall_ratio, cpu, cpu_ratio = results[key]
        # Rates are timing (anything positive at this size); each ratio is its rate over the
        # baseline's (a slow case on a loaded machine may print 0.00), and the row prints them.
        assert wall > 0 and cpu > 0, case
        assert wall_ratio == wall / base_wall and cpu_ratio == cpu / base_cpu, case
        line = next(line for line in out.splitlines() if line.startswith(case))
        assert line.split()[-4:] == [f"{wall:.1f}", f"{wall_ratio:.2f}", f"{cpu:.1f}",
                                     f"{cpu_ratio:.2f}"], line
    assert "target (c), (d) >= 0.75" in out
    assert out.startswith("machine: ") and " oneDNN " in out.splitlines()[0]


def test_op_costs_script_prints_every_op(capsys):
    op_costs.main(["--image_size", "16", "--repeats", "2", "--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("machine: ") and " oneDNN " in lines[0]
    assert lines[1].startswith("CPU cost per 16x16 uint8 image")
    names = {line.split()[0] for line in lines[3:] if line.strip()}
    assert set(registry.REGISTRY) <= names
    assert any(line.startswith("RandAugment (2 layers") for line in lines)
    assert any(line.startswith("CTAugment strong (2 layers") for line in lines)
