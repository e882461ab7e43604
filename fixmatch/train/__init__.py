"""The training engine shared by the supervised baseline and FixMatch.

    experiment.train_and_evaluate(program=, hp=, split=, model_dir=, tpu=) -> metrics
        (what the training programs call: it wires everything below)
    strategy.select_strategy(tpu=, devices=, environ=)  -> tf.distribute.Strategy
    schedule.create_learning_rate_fn(...), schedule_from_hparams(hp, ...)
    loop.train_and_evaluate(strategy=, config=LoopConfig(...), model_fn=, learning_rate=,
                            train_data=, eval_data=, objective=, cta=) -> metrics
    steps.supervised_objective, steps.make_fixmatch_objective(wu=, confidence=)
    cta_hooks.make_cta_hooks(state=, policy=, use_ema_probe=)

Small modules: pure per-replica step functions (steps.py), one explicit outer
loop (loop.py), and the pieces it calls (ema, checkpoint, summaries, metrics).
"""
