"""Hyperparameters: the reference defaults, named presets, JSON overrides, validation.

Everything a run can be configured with lives here, so a bad value fails in one
place, before any data is read or any model is built, with the dotted key named.

Resolution order: defaults of the program -> preset -> overrides. For example::

    python -m stages.train_supervised --preset demo --hparams '"learning_rate": {"base_lr": 0.2}'

`DEFAULT_COMMON_HPARAMS` and `DEFAULT_FIXMATCH_HPARAMS` have the reference's names,
nesting and values. `PROJECT_HPARAMS` adds what the reference passed as flags or
hard-coded (model, image size, batch sizes, cadence), so presets can set them too.
"""

import copy
import difflib
import json
import math

from fixmatch import jsonio

PROGRAMS = ("supervised", "fixmatch")
AUGMENT_TYPES = ("noop", "none", "horizontal_flip", "randaugment", "cta")
MODEL_NAMES = ("resnet50", "resnet18", "resnet_tiny")
THRESHOLDS = ("fixed", "freematch", "softmatch")  # fixmatch/train/thresholds.py, same names
DIST_ALIGN = ("none", "uniform", "labeled")

DEFAULT_COMMON_HPARAMS = {
    "bfloat16": True,
    "num_epochs": 300,
    "use_ema": True,
    "ema_decay": 0.999,
    "weight_decay": 0.0003,
    "input": {
        "saturate_uint8": True,
        "scale_and_center": True,
        "use_default_augment": True,
    },
    "learning_rate": {
        "base_lr": 0.1,
        "use_warmup": True,
        "warmup_epochs": 5,
        "decay_rate": 0.1,
        "decay_epochs": 50,
    },
    "augment": {
        "type": "noop",
        "use_ema_probe_image": True,
        "randaugment_num_layers": 2,
        "randaugment_magnitude": None,
        "randaugment_prob_to_apply": 0.5,
        "cta_num_layers": 2,
        "cta_confidence_threshold": 0.85,
        "cta_decay": 0.99,
        "cta_epsilon": 0.001,
        "cta_prob_to_apply": 0.5,
        "cta_num_levels": 15,
    },
}

DEFAULT_FIXMATCH_HPARAMS = {
    "uratio": 5,
    "fixmatch": {
        "wu": 10.0,
        "confidence": 0.7,
    },
}
# FixMatch's own project keys. strong_labeled: the reference trains labeled images on the
# weak view only; true gives them the strong augmentation, as the supervised baseline has.
# threshold / dist_align: which unlabeled predictions count and how much (fixmatch/train/
# thresholds.py; docs/scarce-labels.md says when to use which). The constants are the papers'
# defaults: EMA momentum 0.999 (FreeMatch's lambda, SoftMatch's m, SoftMatch's alignment EMA),
# SoftMatch's lambda_max 1; FreeMatch's fairness weight w_f is off unless set.
PROJECT_FIXMATCH_HPARAMS = {"fixmatch": {
    "strong_labeled": False,
    "threshold": "fixed",  # fixed (the reference: max p >= confidence) | freematch | softmatch
    "threshold_momentum": 0.999,
    "softmatch_lambda_max": 1.0,
    "fairness_weight": 0.0,
    "dist_align": "none",  # none | uniform | labeled (the labeled set's class prior)
    "dist_align_momentum": 0.999,
    # The smallest crop of the unlabeled images' weak view (and so of the strong view made from
    # it) as a fraction of the image; null = input.crop_min_area, as the reference. A gentler
    # weak view gives pseudo-labels the model can read more reliably (FixMatch's CIFAR weak
    # view is flip and translate only, no crop).
    "unlabeled_crop_min_area": None,
    # Which model reads the weak view: online (the reference) | ema (the EMA model in inference
    # mode, a steadier teacher while the learning rate is high; steps.make_fixmatch_objective).
    "pseudo_label_model": "online",
}}

# Values the reference took from flags or fixed in code; defaults equal the reference's.
PROJECT_HPARAMS = {
    "model": {"name": "resnet50"},
    # crop_min_area: the smallest training crop as a fraction of the image (the reference's
    # Inception crop area range starts at 0.08); data sets with small objects want more.
    "input": {"image_size": 224, "crop_min_area": 0.08},
    # staircase: the reference's decay_rate every decay_epochs (or at a list of epochs);
    # cosine: base x cos(7 pi e / (16 E)) over the run's E = num_epochs (the FixMatch paper's
    # schedule for its small data sets, section 4 / appendix); the warm-up applies to both.
    "learning_rate": {"schedule": "staircase"},
    "run": {
        "per_worker_batch_size": 128,
        "per_worker_eval_batch_size": 128,
        "steps_per_run": 1000,
        "max_steps": None,  # optional cap on total_steps (smoke runs, quick experiments)
        # optional cap on the validation images of the evaluation after every block (about
        # this many: each input pipeline takes its share); None = all, as the reference. The
        # Evaluate stage always scores all of them.
        "eval_examples": None,
        # optional floor on total_steps: small splits get longer epochs, not fewer steps
        "min_steps": None,
        "use_xla": False,
        "keep_checkpoints": 3,
        "seed": None,  # int: seeds model initialisation, every augmentation and shuffle
        "deterministic": False,  # true (needs seed): identical runs on CPU, slower
    },
}

# Presets are partial overrides applied on top of the program's defaults.
_DEMO = {
    # Why (measurements in docs/results.md): RandAugment, because with flips only 300 labels
    # overfit whatever the lr, epochs, weight decay or image size; crop_min_area 0.35, because
    # the reference's Inception crop (area from 0.08) often cuts the small demo object away;
    # at least 4500 steps (the demo split's 480 epochs stretched, decay at 3/4), because both
    # programs still gain up to there (a shorter run left the baseline well short).
    "bfloat16": False,
    "num_epochs": 480,
    "ema_decay": 0.99,  # 0.999 averages over ~1000 steps: half a demo run
    "model": {"name": "resnet_tiny"},
    "input": {"image_size": 32, "crop_min_area": 0.35},
    "augment": {"type": "randaugment"},
    "learning_rate": {"base_lr": 0.8, "warmup_epochs": 5, "decay_epochs": 360},
    "run": {"per_worker_batch_size": 64, "per_worker_eval_batch_size": 256,
            "steps_per_run": 125, "min_steps": 4500},
}
_SMOKE = {
    "bfloat16": False,
    "num_epochs": 1,
    "ema_decay": 0.9,
    "model": {"name": "resnet_tiny"},
    "input": {"image_size": 16},
    "learning_rate": {"base_lr": 0.4, "warmup_epochs": 0, "use_warmup": False},
    "run": {"per_worker_batch_size": 8, "per_worker_eval_batch_size": 32,
            "steps_per_run": 2, "max_steps": 4, "keep_checkpoints": 2},
}
# FixMatch on the demo: the baseline's schedule and augmented labeled images, plus the
# unlabeled term. uratio 1 keeps a run under 15 minutes on 2 cores; wu 1 with threshold 0.8:
# the reference's ImageNet wu 10 and 0.7 make the small demo model confident in one class
# early, and it never recovers.
_DEMO_FIXMATCH = _DEMO | {"uratio": 1, "fixmatch": {"wu": 1.0, "confidence": 0.8,
                                                     "strong_labeled": True}}
# few_labels: the demo's FixMatch for a handful of labels per class (docs/scarce-labels.md has
# the seeded runs). With a handful of labels per class the online model's confident predictions
# are often wrong while the learning rate is high, so: pseudo-labels from the EMA model, kept
# at 0.95, and aligned to the labeled set's class frequencies so no class takes them all.
_FEW_LABELS_FIXMATCH = _DEMO_FIXMATCH | {"fixmatch": _DEMO_FIXMATCH["fixmatch"] | {
    "confidence": 0.95, "pseudo_label_model": "ema", "dist_align": "labeled"}}
PRESETS = {
    "imagenet": {"supervised": {}, "fixmatch": {}},
    "demo": {"supervised": _DEMO, "fixmatch": _DEMO_FIXMATCH},
    "few_labels": {"supervised": _DEMO, "fixmatch": _FEW_LABELS_FIXMATCH},
    "smoke": {"supervised": _SMOKE,
              "fixmatch": _SMOKE | {"uratio": 2, "augment": {"type": "randaugment"}}},
}


class HParamsError(ValueError):
    """A configuration value is unknown, of the wrong type, or out of range."""


# ----------------------------------------------------------------------------
# Validation rules: dotted key -> (expected kind, check). Every key must be here.
# ----------------------------------------------------------------------------

def _between(lo, hi, *, lo_open=False, hi_open=False):
    def check(v):
        if (v < lo or (lo_open and v == lo)) or (v > hi or (hi_open and v == hi)):
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            return f"must be in {left}{lo}, {hi}{right}"
        return None
    return check


def _at_least(lo, *, strict=False):
    def check(v):
        if v < lo or (strict and v == lo):
            return f"must be {'>' if strict else '>='} {lo}"
        return None
    return check


def _one_of(options):
    def check(v):
        return None if v in options else f"must be one of {list(options)}"
    return check


def _decay_epochs(v):
    values = v if isinstance(v, list) else [v]
    if not values or any(isinstance(x, bool) or not isinstance(x, (int, float))
                         for x in values):
        return "must be a positive number or a non-empty list of increasing numbers"
    if any(x <= 0 for x in values) or any(b <= a for a, b in zip(values, values[1:])):
        return "must be a positive number or a non-empty list of increasing numbers"
    return None


_RULES = {
    "bfloat16": ("bool", None),
    "num_epochs": ("number", _at_least(0, strict=True)),
    "use_ema": ("bool", None),
    "ema_decay": ("number", _between(0, 1, hi_open=True)),
    "weight_decay": ("number", _at_least(0)),
    "input.saturate_uint8": ("bool", None),
    "input.scale_and_center": ("bool", None),
    "input.use_default_augment": ("bool", None),
    "input.image_size": ("int", _at_least(8)),
    "input.crop_min_area": ("number", _between(0, 1, lo_open=True)),
    "learning_rate.base_lr": ("number", _at_least(0, strict=True)),
    "learning_rate.use_warmup": ("bool", None),
    "learning_rate.warmup_epochs": ("number", _at_least(0)),
    "learning_rate.decay_rate": ("number", _between(0, 1, lo_open=True)),
    "learning_rate.decay_epochs": ("any", _decay_epochs),
    "learning_rate.schedule": ("str", _one_of(("staircase", "cosine"))),
    "augment.type": ("str", _one_of(AUGMENT_TYPES)),
    "augment.use_ema_probe_image": ("bool", None),
    "augment.randaugment_num_layers": ("int", _at_least(0)),
    "augment.randaugment_magnitude": ("number?", _between(0, 1)),
    "augment.randaugment_prob_to_apply": ("number", _between(0, 1)),
    "augment.cta_num_layers": ("int", _at_least(0)),
    "augment.cta_confidence_threshold": ("number", _between(0, 1, lo_open=True)),
    "augment.cta_decay": ("number", _between(0, 1, hi_open=True)),
    "augment.cta_epsilon": ("number", _between(0, 1, lo_open=True)),
    "augment.cta_prob_to_apply": ("number", _between(0, 1)),
    "augment.cta_num_levels": ("int", _at_least(1)),
    "uratio": ("int", _at_least(1)),
    "fixmatch.wu": ("number", _at_least(0)),
    "fixmatch.confidence": ("number", _between(0, 1, lo_open=True)),
    "fixmatch.strong_labeled": ("bool", None),
    "fixmatch.threshold": ("str", _one_of(THRESHOLDS)),
    "fixmatch.threshold_momentum": ("number", _between(0, 1, hi_open=True)),
    "fixmatch.softmatch_lambda_max": ("number", _between(0, 1, lo_open=True)),
    "fixmatch.fairness_weight": ("number", _at_least(0)),
    "fixmatch.dist_align": ("str", _one_of(DIST_ALIGN)),
    "fixmatch.dist_align_momentum": ("number", _between(0, 1, hi_open=True)),
    "fixmatch.unlabeled_crop_min_area": ("number?", _between(0, 1, lo_open=True)),
    "fixmatch.pseudo_label_model": ("str", _one_of(("online", "ema"))),
    "model.name": ("str", _one_of(MODEL_NAMES)),
    "run.per_worker_batch_size": ("int", _at_least(1)),
    "run.per_worker_eval_batch_size": ("int", _at_least(1)),
    "run.steps_per_run": ("int", _at_least(1)),
    "run.max_steps": ("int?", _at_least(1)),
    "run.eval_examples": ("int?", _at_least(1)),
    "run.min_steps": ("int?", _at_least(1)),
    "run.use_xla": ("bool", None),
    "run.keep_checkpoints": ("int", _at_least(1)),
    "run.seed": ("int?", _between(0, 2**31 - 1)),
    "run.deterministic": ("bool", None),
}

#: Constraints between keys, per program: (program or None for both, check(hp) -> problem).
_PROGRAM_RULES = (
    ("fixmatch", lambda hp: None if hp["augment"]["type"] in ("randaugment", "cta") else (
        f"hparam 'augment.type' is {hp['augment']['type']!r}, but FixMatch needs a strong "
        "augmentation for its unlabeled images: set it to 'randaugment' (the reference's "
        "ImageNet recipe) or 'cta', e.g. --hparams '\"augment\": {\"type\": \"randaugment\"}'")),
    ("fixmatch", lambda hp: None if not hp["fixmatch"]["fairness_weight"]
     or hp["fixmatch"]["threshold"] == "freematch" else (
        f"hparam 'fixmatch.fairness_weight' is {hp['fixmatch']['fairness_weight']!r}, but the "
        f"fairness term belongs to FreeMatch and 'fixmatch.threshold' is "
        f"{hp['fixmatch']['threshold']!r}: set 'fixmatch.threshold' to 'freematch' or the "
        "weight to 0")),
    ("fixmatch", lambda hp: None if hp["use_ema"] or hp["fixmatch"]["pseudo_label_model"]
     != "ema" else ("hparam 'fixmatch.pseudo_label_model' is 'ema', but 'use_ema' is false: "
                    "there is no EMA model to read the weak view; set 'use_ema' to true or "
                    "'fixmatch.pseudo_label_model' to 'online'")),
    (None, lambda hp: None if not hp["run"]["deterministic"] or hp["run"]["seed"] is not None
     else "hparam 'run.deterministic' is true but 'run.seed' is null: a deterministic run "
          "needs a seed, e.g. --hparams '\"run\": {\"seed\": 0, \"deterministic\": true}'"),
)


def _type_error(kind, value):
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if value is None:
        return None if optional else f"must not be null (expected {base})"
    if base == "bool":
        ok = isinstance(value, bool)
    elif base == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base == "number":
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value))
    elif base == "str":
        ok = isinstance(value, str)
    else:
        ok = True
    return None if ok else f"must be {base}{' or null' if optional else ''}, got {type(value).__name__}"


# ----------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------

def _suggest(dotted: str) -> str:
    """A "did you mean" hint: same leaf name in another section, else the closest key."""
    leaf = dotted.rsplit(".", 1)[-1]
    same_leaf = [k for k in _RULES if k.rsplit(".", 1)[-1] == leaf]
    close = same_leaf or difflib.get_close_matches(dotted, list(_RULES), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _merge(base, override, prefix=""):
    """Deep-merge override into a copy of base; unknown keys are errors."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in out:
            raise HParamsError(f"unknown hparam {dotted!r}{_suggest(dotted)}")
        if isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise HParamsError(
                    f"hparam {dotted!r} is a section and must be a JSON object, got {value!r}")
            out[key] = _merge(out[key], value, prefix=f"{dotted}.")
        else:
            if isinstance(value, dict):
                raise HParamsError(f"hparam {dotted!r} is a value, not a section; got {value!r}")
            out[key] = copy.deepcopy(value)
    return out


def defaults(program: str) -> dict:
    """The reference defaults of a program plus the project's own keys."""
    if program not in PROGRAMS:
        raise HParamsError(f"unknown program {program!r}; expected one of {list(PROGRAMS)}")
    hp = copy.deepcopy(DEFAULT_COMMON_HPARAMS)
    if program == "fixmatch":
        hp.update(copy.deepcopy(DEFAULT_FIXMATCH_HPARAMS))
    project = PROJECT_HPARAMS | (PROJECT_FIXMATCH_HPARAMS if program == "fixmatch" else {})
    for section, values in project.items():
        hp.setdefault(section, {}).update(copy.deepcopy(values))
    return hp


def parse_overrides(text, *, flag="--hparams") -> dict:
    """Parse `--hparams` (errors name `flag`): a JSON object, with or without its outer braces."""
    if text is None:
        return {}
    if isinstance(text, dict):
        return text
    stripped = text.strip()
    if not stripped:
        return {}
    if not stripped.startswith(("{", "[")):
        stripped = "{" + stripped + "}"
    try:
        parsed = json.loads(stripped)
    except json.JSONDecodeError as e:
        raise HParamsError(
            f"{flag} is not valid JSON ({e.msg} at char {e.pos}): {text!r}; "
            "example: '\"num_epochs\": 10, \"learning_rate\": {\"base_lr\": 0.2}'") from None
    if not isinstance(parsed, dict):
        raise HParamsError(f"{flag} must be a JSON object, got {text!r}")
    return parsed


def merge_overrides(*overrides) -> dict:
    """Several --hparams overrides (JSON text or dicts) as one: later ones win, key by key."""
    def merge(base, extra):
        out = dict(base)
        for key, value in extra.items():
            out[key] = (merge(out[key], value) if isinstance(value, dict)
                        and isinstance(out.get(key), dict) else value)
        return out

    merged = {}
    for text in overrides:
        merged = merge(merged, parse_overrides(text))
    return merged


def flatten(hp, prefix=""):
    for key, value in hp.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from flatten(value, prefix=f"{dotted}.")
        else:
            yield dotted, value


def validate(hp: dict) -> dict:
    """Check every value's type and range; raise HParamsError naming the first bad key."""
    for dotted, value in flatten(hp):
        if dotted not in _RULES:
            raise HParamsError(f"unknown hparam {dotted!r}{_suggest(dotted)}")
        kind, check = _RULES[dotted]
        problem = _type_error(kind, value)
        if problem is None and value is not None and check is not None:
            problem = check(value)
        if problem:
            raise HParamsError(f"hparam {dotted!r} {problem} (got {value!r})")
    return hp


def check_program(program: str, hp: dict) -> dict:
    """The constraints between keys that a training run of `program` needs (_PROGRAM_RULES).

    Separate from `validate` because the reference's own defaults (augment.type noop) are a
    valid configuration that FixMatch cannot train with."""
    for only, check in _PROGRAM_RULES:
        problem = check(hp) if only in (None, program) else None
        if problem:
            raise HParamsError(problem)
    return hp


def resolve(*, program: str = "supervised", preset: str = "imagenet", overrides=None) -> dict:
    """Defaults -> preset -> overrides, validated. Returns a plain nested dict."""
    hp = defaults(program)
    if preset not in PRESETS:
        close = difflib.get_close_matches(str(preset), list(PRESETS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise HParamsError(f"unknown preset {preset!r}{hint} (known: {list(PRESETS)})")
    hp = _merge(hp, PRESETS[preset][program])
    hp = _merge(hp, parse_overrides(overrides))
    return validate(hp)


def to_json(hp: dict) -> str:
    """Canonical JSON (sorted keys), the form saved beside every output."""
    return json.dumps(hp, indent=2, sort_keys=True)


def save(hp: dict, path: str) -> None:
    """Write hp as canonical JSON, atomically."""
    jsonio.write_json_atomic(path, hp)


def load(path: str) -> dict:
    """Read and validate a saved hparams.json."""
    return validate(jsonio.read_json(path))
