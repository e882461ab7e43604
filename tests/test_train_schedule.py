"""Learning-rate schedule: values at chosen steps equal the spec-7 formula."""

import math

import pytest

from fixmatch.train import schedule


def lr_at(fn, step):
    return float(fn(step))


def make(**kw):
    args = dict(base_lr=0.1, global_batch_size=1024, steps_per_epoch=125.1,
                use_warmup=True, warmup_epochs=50, decay_rate=0.1, decay_epochs=500)
    args.update(kw)
    return schedule.create_learning_rate_fn(**args)


def test_reference_example_arithmetic():
    # Spec 8: B = 1024 on a 10% fold -> lr 0.4, 125.1 steps/epoch, 375,340 steps.
    spe = schedule.steps_per_epoch(num_labeled=128116, global_batch_size=1024)
    assert spe == pytest.approx(125.11328125)
    assert schedule.total_steps(steps_per_epoch=spe, num_epochs=3000) == 375340
    assert schedule.scaled_base_lr(base_lr=0.1, global_batch_size=1024) == pytest.approx(0.4)
    assert schedule.total_steps(steps_per_epoch=spe, num_epochs=3000, max_steps=7) == 7


@pytest.mark.parametrize("step", [0, 1, 100, 3127, 6254])
def test_warmup_is_linear_in_fractional_epochs(step):
    fn = make(steps_per_epoch=125.1)
    epoch = step / 125.1
    assert lr_at(fn, step) == pytest.approx(0.4 * epoch / 50, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("epoch,decays", [(50.5, 0), (499.9, 0), (500.0, 1), (1234.0, 2),
                                          (2999.0, 5)])
def test_staircase_counts_from_epoch_zero(epoch, decays):
    fn = make(steps_per_epoch=100.0)
    step = int(round(epoch * 100))
    assert lr_at(fn, step) == pytest.approx(0.4 * 0.1 ** decays, rel=1e-5)


def test_staircase_without_warmup_starts_at_base():
    fn = make(use_warmup=False, steps_per_epoch=10.0, decay_epochs=3, decay_rate=0.5)
    assert lr_at(fn, 0) == pytest.approx(0.4)
    assert lr_at(fn, 29) == pytest.approx(0.4)
    assert lr_at(fn, 30) == pytest.approx(0.2)
    assert lr_at(fn, 61) == pytest.approx(0.1)


def test_list_of_boundaries_is_piecewise_constant():
    fn = make(use_warmup=True, warmup_epochs=1, steps_per_epoch=10.0,
              decay_epochs=[3, 7], decay_rate=0.1, base_lr=0.256, global_batch_size=256)
    assert lr_at(fn, 5) == pytest.approx(0.256 * 0.5)   # warm-up, epoch 0.5
    assert lr_at(fn, 10) == pytest.approx(0.256)
    # PiecewiseConstantDecay: at a boundary (epoch 3 = step 30) the old rate, then decayed.
    assert lr_at(fn, 30) == pytest.approx(0.256)
    assert lr_at(fn, 31) == pytest.approx(0.0256)
    assert lr_at(fn, 70) == pytest.approx(0.0256)
    assert lr_at(fn, 71) == pytest.approx(0.00256)


def test_lr_scales_with_global_labeled_batch():
    small = make(global_batch_size=256, use_warmup=False)
    big = make(global_batch_size=2048, use_warmup=False)
    assert lr_at(big, 10) == pytest.approx(8 * lr_at(small, 10))


def test_schedule_from_hparams_uses_reference_keys():
    hp = {"learning_rate": {"base_lr": 0.1, "use_warmup": True, "warmup_epochs": 5,
                            "decay_rate": 0.1, "decay_epochs": 50}}
    sched = schedule.schedule_from_hparams(hp, global_batch_size=512, steps_per_epoch=20.0)
    assert float(sched(20 * 60)) == pytest.approx(0.2 * 0.1)
    assert float(sched(20 * 2.5)) == pytest.approx(0.2 * 0.5)


def test_bad_counts_are_rejected_with_the_value():
    with pytest.raises(ValueError, match="num_labeled.*0"):
        schedule.steps_per_epoch(num_labeled=0, global_batch_size=8)
    with pytest.raises(ValueError, match="global_batch_size.*-1"):
        schedule.steps_per_epoch(num_labeled=10, global_batch_size=-1)
    assert math.isclose(schedule.steps_per_epoch(num_labeled=10, global_batch_size=4), 2.5)


def test_min_steps_stretches_the_epoch_not_the_epoch_count():
    # 30 labels at batch 64: 240 epochs are 113 steps; a floor of 1000 makes each epoch longer,
    # so warm-up and decays stay at the same fraction of training.
    spe = schedule.steps_per_epoch(num_labeled=30, global_batch_size=64)
    stretched = schedule.stretch_for_min_steps(spe, num_epochs=240, min_steps=1000)
    assert stretched == pytest.approx(1000 / 240)
    assert schedule.total_steps(steps_per_epoch=stretched, num_epochs=240) == 1000
    fn = make(steps_per_epoch=stretched, warmup_epochs=5, decay_epochs=180, base_lr=0.8,
              global_batch_size=64)
    assert lr_at(fn, 749) == pytest.approx(0.2, rel=1e-5)  # before epoch 180 = step 750
    assert lr_at(fn, 750) == pytest.approx(0.02, rel=1e-5)


def test_min_steps_leaves_long_enough_schedules_alone():
    spe = schedule.steps_per_epoch(num_labeled=300, global_batch_size=64)
    assert schedule.stretch_for_min_steps(spe, num_epochs=240, min_steps=1000) == spe
    assert schedule.stretch_for_min_steps(spe, num_epochs=240, min_steps=None) == spe


def test_cosine_is_the_fixmatch_papers_decay_after_the_warmup():
    # 10 steps per epoch, 100 epochs, warm-up 5 epochs; lr = 0.4 cos(7 pi e / 1600) after it.
    fn = make(base_lr=0.1, global_batch_size=1024, steps_per_epoch=10.0, warmup_epochs=5,
              schedule="cosine", total_epochs=100)
    assert lr_at(fn, 25) == pytest.approx(0.4 * 2.5 / 5)  # warm-up as with the staircase
    for step in (50, 333, 500, 999, 1000):
        want = 0.4 * math.cos(7 * math.pi * (step / 10) / (16 * 100))
        assert lr_at(fn, step) == pytest.approx(want, rel=1e-5), step
    assert lr_at(fn, 1000) == pytest.approx(0.4 * 0.19509, rel=1e-4)
    assert lr_at(fn, 5000) == pytest.approx(lr_at(fn, 1000))  # held after the end
    # Strictly falling every step: no staircase left in it.
    values = [lr_at(fn, s) for s in range(50, 1000, 7)]
    assert all(a > b for a, b in zip(values, values[1:]))
    with pytest.raises(ValueError, match="total_epochs"):
        make(schedule="cosine")
    with pytest.raises(ValueError, match="schedule"):
        make(schedule="linear")


def test_schedule_from_hparams_reads_the_cosine_and_num_epochs():
    hp = {"num_epochs": 100,
          "learning_rate": {"base_lr": 0.1, "use_warmup": False, "warmup_epochs": 5,
                            "decay_rate": 0.1, "decay_epochs": 50, "schedule": "cosine"}}
    sched = schedule.schedule_from_hparams(hp, global_batch_size=512, steps_per_epoch=20.0)
    assert float(sched(20 * 60)) == pytest.approx(0.2 * math.cos(7 * math.pi * 60 / 1600))
