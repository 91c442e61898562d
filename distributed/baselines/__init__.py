"""RLlib baselines (SAC, PPO, DreamerV3 on the new API stack, torch) on our tasks and task sets,
trained by RLlib and scored by our evaluator into the same run-directory layout as our runs.

- `env`: our tasks as RLlib environments (`latentfleet/<task or set>`), built by `envs`.
- `algos`: which algorithms, what "multitask" means for each, and their RLlib configs.
- `run`: train with RLlib, evaluate with `distributed.evaluator.evaluate_policy`, log.
- `compare`: one table and one plot over several run directories, ours and baselines'.
"""
