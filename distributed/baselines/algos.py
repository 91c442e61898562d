"""Which RLlib algorithms run as baselines, what "multitask" means for each, their RLlib configs
(new API stack, torch) and the deterministic policy our evaluator calls.

Multitask support (a task set of more than one task):
- sac, ppo: yes. Every episode is one task of the set (drawn at random); the policy sees the
  padded observation with the task id one-hot appended and acts in the padded action space
  (padded dims are dropped before the simulator). One network for all tasks, no per-task
  normalisation or replay balancing: the plain multitask baseline.
- dreamerv3: single task only. RLlib's DreamerV3 has no task conditioning and no per-task
  replay or return normalisation; a mixed-task stream is not something it was built or tested
  for, so a task set is refused with an error instead of producing numbers nobody validated.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np


class BaselineError(ValueError):
    """A baseline that cannot run as asked (unknown algorithm, a task set it cannot take)."""


@dataclass(frozen=True)
class AlgoSpec:
    rllib_name: str  # the name in ray.rllib.algorithms.registry
    multitask: bool
    recurrent: bool  # the policy keeps a state between steps (DreamerV3's RSSM)
    defaults: dict  # our defaults for AlgorithmConfig.training(...)
    model: dict  # our defaults for the RLModule's model_config


SUPPORTED: dict[str, AlgoSpec] = {
    # SAC as in its paper / TD-MPC2's comparisons: one update of 256 per env step (RLlib's
    # rollout_fragment_length "auto" = 1), uniform replay, 2 x 256 MLPs, lr 3e-4 everywhere.
    "sac": AlgoSpec(
        "SAC",
        multitask=True,
        recurrent=False,
        defaults={
            "actor_lr": 3e-4,
            "critic_lr": 3e-4,
            "alpha_lr": 3e-4,
            "train_batch_size_per_learner": 256,
            "num_steps_sampled_before_learning_starts": 1000,
            "replay_buffer_config": {"type": "EpisodeReplayBuffer", "capacity": 1_000_000},
        },
        model={"fcnet_hiddens": [256], "head_fcnet_hiddens": [256]},
    ),
    "ppo": AlgoSpec(
        "PPO",
        multitask=True,
        recurrent=False,
        defaults={
            "lr": 3e-4,
            "train_batch_size_per_learner": 4000,
            "minibatch_size": 128,
            "num_epochs": 10,
            "gamma": 0.99,
            "lambda_": 0.95,
        },
        model={"fcnet_hiddens": [64, 64], "vf_share_layers": False},
    ),
    "dreamerv3": AlgoSpec(
        "DreamerV3", multitask=False, recurrent=True, defaults={"model_size": "XS", "training_ratio": 512}, model={}
    ),
}


def rllib_algorithm_names() -> list[str]:
    from ray.rllib.algorithms.registry import ALGORITHMS

    return sorted(ALGORITHMS)


def check_algorithm(name: str) -> str:
    """The key of a supported algorithm (case-insensitive), or a BaselineError saying whether
    RLlib lacks it altogether or has it but we do not run it, with the closest names."""
    key = str(name).strip().lower()
    if key in SUPPORTED:
        return key
    rllib = rllib_algorithm_names()
    supported = ", ".join(SUPPORTED)
    match = next((r for r in rllib if r.lower() == key), None)
    if match is not None:
        raise BaselineError(
            f"algo={name!r}: RLlib has {match}, but it is not one of the baselines run here "
            f"(supported: {supported}); it needs its own policy adapter for our evaluator"
        )
    names = list(dict.fromkeys(list(SUPPORTED) + [r.lower() for r in rllib]))
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise BaselineError(
        f"algo={name!r}: RLlib {_ray_version()} has no algorithm of that name "
        f"(supported here: {supported}; RLlib has: {', '.join(rllib)}){hint}"
    )


def check_task_set(algo: str, task_set) -> None:
    """A BaselineError when `algo` cannot take `task_set` (a multitask set for a single-task algorithm)."""
    spec = SUPPORTED[check_algorithm(algo)]
    if len(task_set) > 1 and not spec.multitask:
        shown = ", ".join(task_set.names[:4]) + (", ..." if len(task_set) > 4 else "")
        multi = ", ".join(k for k, s in SUPPORTED.items() if s.multitask)
        raise BaselineError(
            f"algo={algo} trains on one task, but task={task_set.name!r} is a set of {len(task_set)} "
            f"tasks ({shown}): RLlib's {spec.rllib_name} has no task conditioning. Run one task "
            f"per job (e.g. task={task_set.names[0]}), or use {multi}, which take a task set "
            f"(padded observations + task one-hot)"
        )


def _ray_version() -> str:
    import ray

    return ray.__version__


def build_algo_config(
    algo: str,
    env_name: str,
    env_config: dict,
    *,
    seed: int,
    training: dict | None = None,
    model: dict | None = None,
    num_env_runners: int = 0,
    num_envs_per_env_runner: int = 1,
    num_learners: int = 0,
):
    """The RLlib AlgorithmConfig (new API stack, torch) of `algo` on a registered env; `training`
    and `model` override our defaults (any key RLlib's `.training()` / model_config accepts)."""
    from ray.rllib.algorithms.registry import ALGORITHMS

    spec = SUPPORTED[check_algorithm(algo)]
    _, config = ALGORITHMS[spec.rllib_name]()  # (Algorithm class, its default config)
    config = (
        config.environment(env_name, env_config=env_config)
        .framework("torch")
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=num_envs_per_env_runner)
        .learners(num_learners=num_learners)
        .debugging(seed=seed)
    )
    config = config.training(**{**spec.defaults, **(training or {})})
    model_config = {**spec.model, **(model or {})}
    if model_config:
        config = config.rl_module(model_config=model_config)
    return config


def policy_fn(module, algo: str, task_set, one_hot: bool, num_rows: int):
    """`act_fn` for `distributed.evaluator.evaluate_policy` from a trained RLlib module: its
    deterministic action (`deterministic_action`: SAC tanh of the mean; PPO the mean, clipped to [-1, 1];
    DreamerV3: the actor's mode after the RSSM's posterior step, with one RSSM state per episode)."""
    import torch

    from distributed.baselines.env import policy_obs

    spec = SUPPORTED[check_algorithm(algo)]  # (the module keeps its mode: it may be the one RLlib samples with)
    if spec.recurrent:
        init = module.get_initial_state()
        state = {k: v.float().unsqueeze(0).repeat(num_rows, *([1] * v.dim())) for k, v in init.items()}
        first = np.ones(num_rows, np.float32)

        def act_recurrent(obs, task_ids, rows):
            # [B, T=1, obs]: the RSSM's posterior folds a time rank, as in RLlib's own env runner
            x = torch.from_numpy(policy_obs(obs, task_ids, len(task_set), one_hot)).unsqueeze(1)
            with torch.no_grad():
                actions, new = module.dreamer_model.forward_inference(
                    observations=x,
                    previous_states={k: v[rows] for k, v in state.items()},
                    is_first=torch.from_numpy(first[rows]),
                )
            for k, v in new.items():
                state[k][rows] = v
            first[rows] = 0.0
            return np.clip(actions.numpy(), -1.0, 1.0)

        return act_recurrent

    from ray.rllib.core.columns import Columns

    dist_cls = module.get_inference_action_dist_cls()

    def act(obs, task_ids, rows):
        x = torch.from_numpy(policy_obs(obs, task_ids, len(task_set), one_hot))
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: x})
            actions = deterministic_action(dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS]))
        return np.clip(actions.numpy(), -1.0, 1.0)

    return act


def deterministic_action(dist):
    """The mode of an RLlib action distribution. A squashed Gaussian (SAC) gives its squashed mean
    tanh(mu), rescaled to [low, high]: RLlib 2.60's `to_deterministic()` returns the pre-tanh mean
    mu there, which is not the policy's action (clipping it to [-1, 1] acts differently)."""
    import torch
    from ray.rllib.core.distribution.torch.torch_distribution import TorchSquashedGaussian

    if isinstance(dist, TorchSquashedGaussian):
        return dist.low + (torch.tanh(torch.as_tensor(dist.loc)) + 1.0) / 2.0 * (dist.high - dist.low)
    return dist.to_deterministic().sample()
