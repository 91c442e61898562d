"""EnvRunner: a group of environments stepped together, planned for with ONE batched
planner call per step. A plain class; `distributed/actors.py` wraps it as a Ray actor and
the single-process trainer uses it directly."""

from __future__ import annotations

import time

import numpy as np
import torch

from agents.policy import PlanningPolicy
from distributed.episodes import EpisodeBuilder


def resumed_seed(seed: int, stored_episodes: int) -> int:
    """The seed of a runner whose store already holds `stored_episodes` episodes (a restarted runner,
    a resumed job): not the first run's, or it would collect the very same episodes again (same env
    seeds, same random actions). Env seeds (seed * 100_003 + ...) stay below 2**32."""
    return seed if not stored_episodes else (seed * 7919 + stored_episodes) % 40_000


class EnvRunner:
    def __init__(
        self,
        policy: PlanningPolicy,
        task_set,
        tasks: list[str],
        *,
        envs_per_task: int = 1,
        seed: int = 0,
        runner_id: int = 0,
        max_episode_steps: int | None = None,
    ):
        """`policy` plans for every env (a world model + planner; in one process it shares the
        learner's model). `max_episode_steps` truncates episodes early (smoke runs); None keeps
        each task's own length."""
        from envs import make_padded_env  # envs is imported lazily so agents-only users never pay for MuJoCo

        self.policy, self.runner_id, self.max_episode_steps = policy, runner_id, max_episode_steps
        names = [t for t in tasks for _ in range(envs_per_task)]
        env_seeds = [seed * 100_003 + runner_id * 1009 + i for i in range(len(names))]
        self.envs = [make_padded_env(task_set, name, seed=s) for name, s in zip(names, env_seeds, strict=False)]
        self.task_ids = [task_set.index(name) for name in names]
        n = len(self.envs)
        # each env's random stream is named by (runner, slot) so it is the same whatever the batch
        self.plan_state = policy.new_planner_state(n, seed=seed, row_ids=[runner_id * 10_000 + i for i in range(n)])
        self.rng = np.random.default_rng([seed, runner_id])
        self.masks = task_set.action_masks()[self.task_ids]  # [n, A]
        self.task_tensor = torch.as_tensor(self.task_ids, dtype=torch.long)
        self.builders = [EpisodeBuilder(t, task_set.max_obs_dim, task_set.max_action_dim) for t in self.task_ids]
        self.obs = np.zeros((n, task_set.max_obs_dim), np.float32)
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=env_seeds[i])
            self.obs[i] = obs
            self.builders[i].start(obs)
        self.env_steps = 0
        # constrained runs: each env's last executed action, to count limit violations (must stay 0)
        self.last_action = np.zeros((n, task_set.max_action_dim), np.float32)
        self.has_last = np.zeros(n, bool)
        self.episode_violations = np.zeros(n, np.int64)
        self.violations = 0
        self.timing: dict[str, float] = {"plan_s": 0.0, "sim_s": 0.0, "wall_s": 0.0, "steps": 0}  # step() adds

    def __len__(self) -> int:
        return len(self.envs)

    def step(self, random_actions: bool = False, random_tasks=()) -> list[dict]:
        """One agent step for every env; envs of `random_tasks` (task ids), or all if
        `random_actions`, act uniformly at random (seeding). Returns the episodes that finished
        (see EpisodeBuilder.finish; each also carries the weights version that finished it)."""
        t0 = time.perf_counter()
        random = self.rng.uniform(-1, 1, self.masks.shape).astype(np.float32) * self.masks
        constraints = self.policy.constraints
        constrained = constraints is not None
        if constrained:  # seeding actions obey the limits too
            random = self.policy.feasible(torch.from_numpy(random), self.task_tensor, self.plan_state).numpy()
        rows = np.isin(self.task_ids, list(random_tasks)) if len(random_tasks) else np.zeros(len(self.envs), bool)
        if random_actions or rows.all():
            actions = random
        else:
            act, _ = self.policy.act(torch.from_numpy(self.obs), self.task_tensor, self.plan_state)
            actions = act.numpy()
            actions[rows] = random[rows]
        if constraints is not None:
            self.policy.record_actions(torch.from_numpy(actions), self.plan_state)
            bad = constraints.violations(
                self.task_tensor,
                torch.from_numpy(actions),
                torch.from_numpy(self.last_action),
                torch.from_numpy(self.has_last),
            )
            self.episode_violations += bad.cpu().numpy()
            self.violations += int(bad.sum())
            self.last_action[:], self.has_last[:] = actions, True
        t1 = time.perf_counter()
        finished, reset_rows = [], []
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, info = env.step(actions[i])
            if self.max_episode_steps is not None and self.builders[i].length + 1 >= self.max_episode_steps:
                truncated = True
            self.builders[i].add(actions[i], obs, reward, terminated, truncated, info.get("success", 0.0))
            if terminated or truncated:
                finished.append(
                    {
                        **self.builders[i].finish(),
                        "weights_version": self.policy.weights_version,
                        **({"constraint_violations": int(self.episode_violations[i])} if constrained else {}),
                    }
                )
                self.episode_violations[i], self.has_last[i] = 0, False
                obs, _ = env.reset()
                self.builders[i].start(obs)
                reset_rows.append(i)
            self.obs[i] = obs
        if reset_rows:
            self.plan_state.reset(reset_rows)
        t2 = time.perf_counter()
        self.env_steps += len(self.envs)
        for key, add in (("plan_s", t1 - t0), ("sim_s", t2 - t1), ("wall_s", t2 - t0), ("steps", 1)):
            self.timing[key] += add
        return finished

    def collect(
        self, num_steps: int, random_actions: bool = False, random_tasks=(), piece_horizon: int | None = None
    ) -> tuple[list[dict], dict]:
        """`num_steps` steps of every env (see `step`); returns (episodes to store, stats): stats
        count this call's env steps ("collected") and list the episodes that ended ("episodes":
        (task, return, success, length, weights version) each), what the driver counts.

        With `piece_horizon`, the running episodes' new windows are handed over too, as pieces
        ("final": False), so a long episode is sampleable long before it ends; finished episodes
        (or their last pieces) have "final": True."""
        episodes = []
        start = time.perf_counter()
        for _ in range(num_steps):
            episodes.extend(self.step(random_actions, random_tasks))
        if piece_horizon is not None:
            episodes.extend(
                {**p, "weights_version": self.policy.weights_version}
                for p in (b.piece(piece_horizon) for b in self.builders)
                if p is not None
            )
        return episodes, {
            "env_steps": self.env_steps,
            "collected": num_steps * len(self.envs),
            "episodes": [
                (e["task"], e["return"], e["success"], e["length"], e["weights_version"])
                for e in episodes
                if e["final"]
            ],
            "collect_s": time.perf_counter() - start,
            "runner_id": self.runner_id,
            **self.timing,
            **({"constraint_violations": self.violations} if self.policy.constraints is not None else {}),
        }

    def close(self) -> None:
        for env in self.envs:
            env.close()
