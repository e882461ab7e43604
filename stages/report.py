"""Compare the supervised baseline with FixMatch: report.md, report.json and a plot.

    python -m stages.report --supervised runs/train_supervised/<fp> \\
        --fixmatch runs/train_fixmatch/<fp> --supervised_eval runs/evaluate/<fp1> \\
        --fixmatch_eval runs/evaluate/<fp2> --out /tmp/report

Each --<program> is a training output (metrics.json, hparams.json, history.jsonl); each
--<program>_eval the evaluate stage's output of it (evaluation.json). Writes report.json (every
number of the tables), report.md (the comparison, then each run's name, fingerprint and key
hparams) and top1.png (validation top-1 over training, both runs, from the history the engine
wrote as it trained), and the per-class comparison: report.md counts the classes FixMatch
does better and worse on and lists the largest gains and losses (every class up to
PER_CLASS_ALL classes), report.json holds both runs' accuracy of every class, per_class.png plots
one against the other (one point per class: readable at ImageNet's 1,000, where a confusion
matrix is not). Prints the tables. The pipeline names each run as TensorBoard does
(`fixmatch-frac10.seed1-demo-3f2a9c1b`: program, split, preset, short fingerprint); run alone,
a run is named by its directory.
"""

import sys

from absl import flags

from fixmatch import fs, jsonio, plots
from fixmatch.train import history as history_lib
from stages import cli

PROGRAMS = ("supervised", "fixmatch")
PROGRAM = cli.Program("report", __doc__, required=PROGRAMS + tuple(f"{p}_eval" for p in PROGRAMS)
                      + ("out",))
for _name in PROGRAMS:
    flags.DEFINE_string(_name, None, f"Training output of the {_name} program.",
                        flag_values=PROGRAM.flags)
    flags.DEFINE_string(f"{_name}_eval", None, f"Evaluate output of the {_name} run.",
                        flag_values=PROGRAM.flags)
flags.DEFINE_string("out", None, "Output directory (absent or empty).", flag_values=PROGRAM.flags)

REPORT_JSON, REPORT_MD, PLOT = "report.json", "report.md", "top1.png"
PER_CLASS_PLOT = "per_class.png"
PER_CLASS_ALL, PER_CLASS_SHOWN = 20, 10  # all classes in report.md up to 20, else top/bottom 10
COLUMNS = (("top-1", "top1", "pct"), ("top-5", "top5", "pct"), ("labeled", "num_labeled", "int"),
           ("unlabeled", "num_unlabeled", "int"), ("steps", "steps", "int"),
           ("epochs", "epochs", "f1"), ("wall time", "wall_time_s", "time"),
           ("img/s", "images_per_sec", "f0"), ("mask rate", "mask_rate", "pct"),
           ("pseudo-label acc.", "pseudo_label_accuracy", "pct"))
#: The hparams a reader compares first: (column title, dotted key in hparams.json).
KEY_HPARAMS = (("model", "model.name"), ("image px", "input.image_size"),
               ("batch/replica", "run.per_worker_batch_size"), ("epochs", "num_epochs"),
               ("base lr", "learning_rate.base_lr"), ("weight decay", "weight_decay"),
               ("EMA decay", "ema_decay"), ("augment", "augment.type"), ("uratio", "uratio"),
               ("threshold", "fixmatch.confidence"), ("wu", "fixmatch.wu"), ("seed", "run.seed"))


def _read(path, what):
    if not fs.exists(path):
        raise cli.StageError(f"{path} does not exist: is its directory a finished {what}?")
    return jsonio.read_json(path)


def key_hparams(hp: dict) -> dict:
    """{dotted key: value} of KEY_HPARAMS (None where the program has no such key)."""
    out = {}
    for _, dotted in KEY_HPARAMS:
        value = hp
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        out[dotted] = value
    return out


def _row(run_dir, eval_dir):
    metrics = _read(fs.join(run_dir, "metrics.json"), "training output")
    hp = _read(fs.join(run_dir, "hparams.json"), "training output")
    evaluation = _read(fs.join(eval_dir, "evaluation.json"), "evaluate output")
    history_path = fs.join(run_dir, history_lib.HISTORY_FILE)
    history = history_lib.read_history(history_path) if fs.exists(history_path) else []
    key = "ema_accuracy" if evaluation["weights"] == "ema" else "accuracy"
    row = {name: metrics.get(name) for _, name, _ in COLUMNS}
    row.update(top1=evaluation["top1"], top5=evaluation["top5"], weights=evaluation["weights"],
               model=metrics.get("program"), run=run_dir, evaluation=eval_dir,
               hparams=key_hparams(hp))
    curve = [(h["epoch"], h["test"][key]) for h in history if h["test"].get(key) is not None]
    return row, curve, evaluation


def per_class(supervised_eval: dict, fixmatch_eval: dict) -> dict:
    """Both runs' validation accuracy of every class, with the class's number of images and the
    count of classes FixMatch does better, worse and equally on."""
    if supervised_eval["classes"] != fixmatch_eval["classes"]:
        raise cli.StageError("the two evaluations are of different class lists "
                             f"({len(supervised_eval['classes'])} and "
                             f"{len(fixmatch_eval['classes'])} classes): evaluate both runs on "
                             "the same split")
    sup, fm = supervised_eval["per_class_accuracy"], fixmatch_eval["per_class_accuracy"]
    images = [int(sum(row)) for row in fixmatch_eval["confusion"]]
    return {"classes": list(fixmatch_eval["classes"]), "images": images, "supervised": sup,
            "fixmatch": fm, "better": sum(f > s for s, f in zip(sup, fm)),
            "worse": sum(f < s for s, f in zip(sup, fm)),
            "same": sum(f == s for s, f in zip(sup, fm))}


def format_per_class(table: dict) -> str:
    """report.md's per-class section: the counts, then every class (few classes) or the largest
    gains and losses (many), so that it stays a page long at 1,000 classes."""
    n = len(table["classes"])
    rows = [(table["fixmatch"][i] - table["supervised"][i], table["classes"][i],
             table["images"][i], table["supervised"][i], table["fixmatch"][i]) for i in range(n)]
    head = ["| class | images | supervised | fixmatch | change |", "|---|---|---|---|---|"]

    def lines(chosen):
        return head + [f"| {c} | {k:,} | {100 * s:.1f}% | {100 * f:.1f}% | {100 * d:+.1f} |"
                       for d, c, k, s, f in chosen]

    out = [f"FixMatch is better on {table['better']:,} of {n:,} classes, worse on "
           f"{table['worse']:,}, equal on {table['same']:,} (validation top-1 of each class; "
           f"every class in `{REPORT_JSON}` under `per_class`).", ""]
    if n <= PER_CLASS_ALL:
        return "\n".join(out + lines(rows))
    k = PER_CLASS_SHOWN
    gains = sorted((r for r in rows if r[0] > 0), key=lambda r: (-r[0], r[1]))[:k]
    losses = sorted((r for r in rows if r[0] < 0), key=lambda r: (r[0], r[1]))[:k]
    for title, chosen in (("gains", gains), ("losses", losses)):
        out += [f"Largest {title} ({len(chosen)} classes):", ""]
        out += (lines(chosen) if chosen else ["none"]) + [""]
    return "\n".join(out).rstrip()


def _cell(value, kind):
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "time":
        return f"{value / 60:.1f} min"
    return f"{value:.{kind[1]}f}"


def format_table(report: dict) -> str:
    """The comparison as a Markdown table (what FullRun prints)."""
    head = "| run | " + " | ".join(title for title, _, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name in PROGRAMS:
        row = report["runs"][name]
        lines.append(f"| {name} | " + " | ".join(_cell(row[key], kind)
                                                 for _, key, kind in COLUMNS) + " |")
    gain = report["fixmatch_minus_supervised_top1"]
    return "\n".join(lines) + f"\n\nFixMatch - supervised: {100 * gain:+.2f} points top-1 " \
        f"(validation, {report['runs']['fixmatch']['weights']} weights)."


def format_runs(report: dict) -> str:
    """Which runs were compared: name, fingerprint and key hparams, as a Markdown table."""
    lines = ["| run | name | fingerprint | " + " | ".join(t for t, _ in KEY_HPARAMS) + " |",
             "|" + "---|" * (len(KEY_HPARAMS) + 3)]
    for program in PROGRAMS:
        row = report["runs"][program]
        hp = row.get("hparams", {})
        fp = f"`{row['fingerprint']}`" if row.get("fingerprint") else "-"
        lines.append(f"| {program} | {row.get('name', '-')} | {fp} | " + " | ".join(
            "-" if hp.get(key) is None else str(hp[key]) for _, key in KEY_HPARAMS) + " |")
    return "\n".join(lines)


def run(*, supervised, fixmatch, supervised_eval, fixmatch_eval, out, runs=None) -> dict:
    """Writes the comparison into `out`; returns report.json's content. `runs`, optional:
    {program: {"name": ..., "fingerprint": ...}} of the two trainings (the pipeline's names)."""
    cli.check_new_dir(out)
    rows, curves, evaluations = {}, {}, {}
    for program, run_dir, eval_dir in (("supervised", supervised, supervised_eval),
                                       ("fixmatch", fixmatch, fixmatch_eval)):
        row, curve, evaluations[program] = _row(run_dir, eval_dir)
        label = dict((runs or {}).get(program) or {})
        row.update(name=label.get("name") or fs.normalize(run_dir).rsplit("/", 1)[-1],
                   fingerprint=label.get("fingerprint"))
        legend = row["name"] if row["name"].startswith(program) else f"{program}: {row['name']}"
        rows[program], curves[legend] = row, curve
    classes = per_class(evaluations["supervised"], evaluations["fixmatch"])
    report = {"runs": rows, "plot": PLOT, "per_class_plot": PER_CLASS_PLOT, "per_class": classes,
              "fixmatch_minus_supervised_top1": rows["fixmatch"]["top1"] - rows["supervised"]["top1"]}
    fs.makedirs(out)
    table = format_table(report)
    fs.write_bytes(fs.join(out, PLOT), plots.curves_png(
        curves, title="validation top-1 over training"))
    fs.write_bytes(fs.join(out, PER_CLASS_PLOT), plots.per_class_png(
        classes["supervised"], classes["fixmatch"], xlabel=rows["supervised"]["name"],
        ylabel=rows["fixmatch"]["name"]))
    fs.write_text(fs.join(out, REPORT_MD), f"# Supervised baseline vs FixMatch\n\n{table}\n\n"
                  f"## Runs\n\n{format_runs(report)}\n\n"
                  f"![validation top-1 over training]({PLOT})\n\n"
                  f"## Per class\n\n{format_per_class(classes)}\n\n"
                  f"![per-class top-1, FixMatch against supervised]({PER_CLASS_PLOT})\n")
    jsonio.write_json_atomic(fs.join(out, REPORT_JSON), report)
    return report


def print_report(report_dir: str, *, export_dir=None, stream=None) -> None:
    """Prints the table of a finished report directory (FullRun's last words)."""
    report = jsonio.read_json(fs.join(report_dir, REPORT_JSON))
    names = "\n".join(f"{p}: {report['runs'][p].get('name', '-')}" for p in PROGRAMS)
    lines = [f"\n{format_table(report)}\n", names, f"report: {fs.join(report_dir, REPORT_MD)}",
             f"plot:   {fs.join(report_dir, PLOT)}"]
    if export_dir:
        lines.append(f"model:  {export_dir} (python -m stages.predict --model {export_dir} "
                     "IMAGE ...)")
    print("\n".join(lines), file=stream or sys.stdout, flush=True)


def main(argv=None):
    def body(f, _):
        report = run(supervised=f.supervised, fixmatch=f.fixmatch,
                     supervised_eval=f.supervised_eval, fixmatch_eval=f.fixmatch_eval, out=f.out)
        print(format_table(report), file=sys.stderr)
        return report

    return PROGRAM.main(body, argv)


if __name__ == "__main__":
    sys.exit(main())
