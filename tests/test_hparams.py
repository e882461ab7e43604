"""Configuration contract: reference defaults, presets, overrides, validation, round trip."""

import json

import pytest

from fixmatch import hparams

# Spec section 8, one row per line: dotted key -> reference default.
REFERENCE_TABLE = {
    "bfloat16": True,
    "num_epochs": 300,
    "use_ema": True,
    "ema_decay": 0.999,
    "weight_decay": 0.0003,
    "input.saturate_uint8": True,
    "input.scale_and_center": True,
    "input.use_default_augment": True,
    "learning_rate.base_lr": 0.1,
    "learning_rate.use_warmup": True,
    "learning_rate.warmup_epochs": 5,
    "learning_rate.decay_rate": 0.1,
    "learning_rate.decay_epochs": 50,
    "augment.type": "noop",
    "augment.use_ema_probe_image": True,
    "augment.randaugment_num_layers": 2,
    "augment.randaugment_magnitude": None,
    "augment.randaugment_prob_to_apply": 0.5,
    "augment.cta_num_layers": 2,
    "augment.cta_confidence_threshold": 0.85,
    "augment.cta_decay": 0.99,
    "augment.cta_epsilon": 0.001,
    "augment.cta_prob_to_apply": 0.5,
    "augment.cta_num_levels": 15,
}
FIXMATCH_TABLE = {"uratio": 5, "fixmatch.wu": 10.0, "fixmatch.confidence": 0.7}


def _get(hp, dotted):
    for part in dotted.split("."):
        hp = hp[part]
    return hp


def _flat_keys(d, prefix=""):
    out = set()
    for k, v in d.items():
        out |= _flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


def test_reference_dicts_have_exactly_the_reference_keys_and_values():
    assert _flat_keys(hparams.DEFAULT_COMMON_HPARAMS) == set(REFERENCE_TABLE)
    assert _flat_keys(hparams.DEFAULT_FIXMATCH_HPARAMS) == set(FIXMATCH_TABLE)
    for key, value in REFERENCE_TABLE.items():
        assert _get(hparams.DEFAULT_COMMON_HPARAMS, key) == value, key
    for key, value in FIXMATCH_TABLE.items():
        assert _get(hparams.DEFAULT_FIXMATCH_HPARAMS, key) == value, key


@pytest.mark.parametrize("program", hparams.PROGRAMS)
def test_imagenet_preset_is_the_reference(program):
    hp = hparams.resolve(program=program, preset="imagenet")
    table = REFERENCE_TABLE | (FIXMATCH_TABLE if program == "fixmatch" else {})
    for key, value in table.items():
        assert _get(hp, key) == value, key
    assert hp["model"]["name"] == "resnet50"
    assert hp["input"]["image_size"] == 224
    assert hp["run"]["per_worker_batch_size"] == 128
    assert hp["run"]["steps_per_run"] == 1000
    assert ("uratio" in hp) == (program == "fixmatch")


def test_every_key_has_a_validation_rule():
    for program in hparams.PROGRAMS:
        assert _flat_keys(hparams.defaults(program)) <= set(hparams._RULES)


@pytest.mark.parametrize("preset", sorted(hparams.PRESETS))
@pytest.mark.parametrize("program", hparams.PROGRAMS)
def test_every_preset_resolves_and_validates(program, preset):
    hp = hparams.resolve(program=program, preset=preset)
    assert hparams.validate(hp) is hp


def test_few_labels_is_the_demo_with_the_scarce_label_options():
    """What docs/scarce-labels.md measured: the demo preset plus three pseudo-label choices."""
    demo, few = (hparams.resolve(program="fixmatch", preset=p) for p in ("demo", "few_labels"))
    assert few["fixmatch"] == dict(demo["fixmatch"], confidence=0.95, pseudo_label_model="ema",
                                   dist_align="labeled")
    assert dict(few, fixmatch=None) == dict(demo, fixmatch=None)
    assert (hparams.resolve(program="supervised", preset="few_labels")
            == hparams.resolve(program="supervised", preset="demo"))


def test_demo_and_smoke_presets_are_small():
    for preset in ("demo", "few_labels", "smoke"):
        hp = hparams.resolve(program="fixmatch", preset=preset)
        assert hp["model"]["name"] == "resnet_tiny"
        assert hp["input"]["image_size"] <= 64
        assert hp["bfloat16"] is False
    assert hparams.resolve(preset="smoke")["run"]["max_steps"] <= 10


def test_overrides_braced_and_unbraced_forms_are_equivalent():
    braced = hparams.resolve(overrides='{"num_epochs": 10, "learning_rate": {"base_lr": 0.2}}')
    unbraced = hparams.resolve(overrides='"num_epochs": 10, "learning_rate": {"base_lr": 0.2}')
    assert braced == unbraced
    assert braced["num_epochs"] == 10
    assert braced["learning_rate"]["base_lr"] == 0.2
    # deep merge keeps siblings
    assert braced["learning_rate"]["decay_rate"] == 0.1


def test_overrides_apply_after_preset():
    hp = hparams.resolve(preset="demo", overrides={"model": {"name": "resnet18"}})
    assert hp["model"]["name"] == "resnet18"
    assert hp["input"]["image_size"] == 32


def test_decay_epochs_accepts_a_list_of_boundaries():
    hp = hparams.resolve(overrides='"learning_rate": {"decay_epochs": [30, 60, 90]}')
    assert hp["learning_rate"]["decay_epochs"] == [30, 60, 90]


@pytest.mark.parametrize("program,overrides,key", [
    ("supervised", '"learning_rate": {"base_lr": -0.1}', "learning_rate.base_lr"),
    ("supervised", '"learning_rate": {"base_lr": 0}', "learning_rate.base_lr"),
    ("fixmatch", '"fixmatch": {"confidence": 0}', "fixmatch.confidence"),
    ("fixmatch", '"fixmatch": {"confidence": 1.5}', "fixmatch.confidence"),
    ("fixmatch", '"uratio": 0', "uratio"),
    ("fixmatch", '"uratio": 2.5', "uratio"),
    ("supervised", '"augment": {"type": "autoaugment"}', "augment.type"),
    ("supervised", '"input": {"crop_min_area": 0}', "input.crop_min_area"),
    ("fixmatch", '"input": {"crop_min_area": 1.5}', "input.crop_min_area"),
    ("supervised", '"bfloat16": "yes"', "bfloat16"),
    ("supervised", '"num_epochs": true', "num_epochs"),
    ("supervised", '"num_epochs": "300"', "num_epochs"),
    ("supervised", '"ema_decay": 1.0', "ema_decay"),
    ("supervised", '"weight_decay": -1e-4', "weight_decay"),
    ("supervised", '"learning_rate": {"decay_epochs": [60, 30]}', "learning_rate.decay_epochs"),
    ("supervised", '"learning_rate": {"decay_epochs": 0}', "learning_rate.decay_epochs"),
    ("supervised", '"augment": {"randaugment_magnitude": 2}', "augment.randaugment_magnitude"),
    ("supervised", '"augment": {"cta_num_levels": 0}', "augment.cta_num_levels"),
    ("supervised", '"model": {"name": "vgg16"}', "model.name"),
    ("supervised", '"run": {"per_worker_batch_size": 0}', "run.per_worker_batch_size"),
    ("supervised", '"run": {"max_steps": -3}', "run.max_steps"),
    ("supervised", '"input": {"image_size": 4}', "input.image_size"),
    ("supervised", '"learning_rate": 0.1', "learning_rate"),
    ("supervised", '"num_epochs": {"a": 1}', "num_epochs"),
])
def test_bad_values_raise_naming_the_dotted_key(program, overrides, key):
    with pytest.raises(hparams.HParamsError, match=f"'{key}'"):
        hparams.resolve(program=program, overrides=overrides)


@pytest.mark.parametrize("overrides,unknown,suggestion", [
    ('"learning_rate": {"base_rl": 0.1}', "learning_rate.base_rl", "learning_rate.base_lr"),
    ('"augment": {"typ": "cta"}', "augment.typ", "augment.type"),
    ('"base_lr": 0.1', "base_lr", "learning_rate.base_lr"),
    ('"weight_decy": 0.1', "weight_decy", "weight_decay"),
])
def test_unknown_keys_raise_with_did_you_mean(overrides, unknown, suggestion):
    with pytest.raises(hparams.HParamsError) as err:
        hparams.resolve(overrides=overrides)
    assert f"'{unknown}'" in str(err.value)
    assert f"did you mean '{suggestion}'" in str(err.value)


def test_fixmatch_keys_are_unknown_to_the_supervised_program():
    with pytest.raises(hparams.HParamsError, match="'uratio'"):
        hparams.resolve(program="supervised", overrides='"uratio": 3')


def test_invalid_json_and_unknown_preset_and_program():
    with pytest.raises(hparams.HParamsError, match="not valid JSON"):
        hparams.resolve(overrides='"num_epochs": ')
    with pytest.raises(hparams.HParamsError, match="must be a JSON object"):
        hparams.parse_overrides("[1, 2]")
    with pytest.raises(hparams.HParamsError, match="did you mean 'demo'"):
        hparams.resolve(preset="dmeo")
    with pytest.raises(hparams.HParamsError, match="unknown program"):
        hparams.resolve(program="simclr")


def test_empty_overrides_are_no_change():
    assert hparams.resolve(overrides="") == hparams.resolve(overrides=None) == hparams.resolve(
        overrides="  ")


@pytest.mark.parametrize("program", hparams.PROGRAMS)
def test_resolved_config_round_trips_through_json(tmp_path, program):
    hp = hparams.resolve(program=program, preset="demo",
                         overrides='"learning_rate": {"decay_epochs": [10, 20]}')
    assert json.loads(hparams.to_json(hp)) == hp
    path = tmp_path / "hparams.json"
    hparams.save(hp, str(path))
    assert hparams.load(str(path)) == hp
    # and it is a valid override of itself (a saved config can be replayed)
    assert hparams.resolve(program=program, overrides=hparams.to_json(hp)) == hp


def test_load_rejects_a_tampered_file(tmp_path):
    hp = hparams.resolve()
    hp["learning_rate"]["base_lr"] = -1
    path = tmp_path / "hparams.json"
    path.write_text(json.dumps(hp))
    with pytest.raises(hparams.HParamsError, match="'learning_rate.base_lr'"):
        hparams.load(str(path))
