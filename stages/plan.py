"""Plan both trainings of a FullRun before starting it: schedules and this machine's wall time.

    python -m stages.plan --dataset fixmatch_10pct.1 --preset imagenet \\
        --fixmatch_hparams '"augment": {"type": "randaugment"}, "num_epochs": 3000,
                            "learning_rate": {"warmup_epochs": 50, "decay_epochs": 500}'
    python -m stages.plan --data runs/prepare_splits/<fp> --preset demo

The same as `--plan` of train_supervised and train_fixmatch (stages/training.py), for the pair
FullRun trains, with FullRun's hparams flags: --hparams for both, --supervised_hparams and
--fixmatch_hparams on top of it for one. Prints each plan and the sum of the two estimates,
then exits; writes nothing. --data is a prepared split; without it, --dataset names an ImageNet
split whose size the shipped lists give.
"""

import sys

from absl import flags

from fixmatch import hparams as hparams_lib
from fixmatch.train import planning
from stages import cli, training

PROGRAM = cli.Program("plan", __doc__)
_F = PROGRAM.flags
flags.DEFINE_string("data", None, "Split directory written by prepare_splits.", flag_values=_F)
flags.DEFINE_string("dataset", "", "A named ImageNet split to plan for without data "
                    "(fixmatch_10pct.K, simclr_1pct, simclr_10pct, full); with --data, the "
                    "split it must hold.", flag_values=_F)
flags.DEFINE_enum("preset", "demo", list(hparams_lib.PRESETS), "hparams preset of both "
                  "trainings (FullRun's default: demo).", flag_values=_F)
flags.DEFINE_string("hparams", "", "JSON overrides of both trainings.", flag_values=_F)
flags.DEFINE_string("supervised_hparams", "", "Overrides of the supervised training only.",
                    flag_values=_F)
flags.DEFINE_string("fixmatch_hparams", "", "Overrides of the FixMatch training only.",
                    flag_values=_F)
flags.DEFINE_integer("plan_steps", 3, "Steps timed per training after one warm-up step; 0 = "
                     "the schedules only.", flag_values=_F)


def run(*, data=None, dataset=None, preset="demo", hparams="", supervised_hparams="",
        fixmatch_hparams="", plan_steps=3) -> dict:
    """{program: plan} of both trainings (training.plan); both are validated before either
    is timed, so a bad override fails at once."""
    overrides = {"supervised": (supervised_hparams, "--supervised_hparams"),
                 "fixmatch": (fixmatch_hparams, "--fixmatch_hparams")}
    merged = {program: hparams_lib.merge_overrides(
        hparams_lib.parse_overrides(hparams), hparams_lib.parse_overrides(text, flag=flag))
        for program, (text, flag) in overrides.items()}
    for program, hp in merged.items():
        training.resolve_hparams(program, preset=preset, hparams=hp)
    return {program: training.plan(program, data=data, dataset=dataset or None, preset=preset,
                                   hparams=hp, plan_steps=plan_steps)
            for program, hp in merged.items()}


def main(argv=None):
    def body(values, _):
        plans = run(data=values.data, dataset=values.dataset, preset=values.preset,
                    hparams=values.hparams, supervised_hparams=values.supervised_hparams,
                    fixmatch_hparams=values.fixmatch_hparams, plan_steps=values.plan_steps)
        print("\n\n".join(planning.format_plan(info) for info in plans.values()))
        if all("estimated_seconds" in info for info in plans.values()):
            total = sum(info["estimated_seconds"] for info in plans.values())
            print(f"\nboth trainings, one after the other: {planning.duration(total)} of "
                  "training steps on this machine (FullRun --workers 2 runs them side by "
                  "side, sharing its cores)")
        return None

    return PROGRAM.main(body, argv, errors=training.ERRORS)


if __name__ == "__main__":
    sys.exit(main())
