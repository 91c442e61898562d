"""TD-MPC2's own offline multitask trainer on a small data set, for bench/parity_offline.py (run there, in a
process of its own, with TD-MPC2's packages on PYTHONPATH and the run directory as working directory):

    python bench/tdmpc2_offline.py <tdmpc2 package dir> task=mt30 data_dir=... steps=... [TD-MPC2 overrides]

TD-MPC2's `OfflineTrainer` is used as it is (its update loop, its evaluation schedule, its agent, its buffer),
with two changes that only fit it to a data set of a few tasks, named in the results:
- the buffer holds the data set's transitions, not mt30's 345.69M (~50 GB, which its `_load_dataset`
  reserves whatever the data);
- each evaluation covers the tasks of `LATENTFLEET_EVAL_TASKS` (comma-separated names of the task set), not
  all 30, and its per-task returns are appended to `eval.jsonl` in the working directory.
"""

from __future__ import annotations

import json
import os
import sys
from copy import deepcopy
from glob import glob
from pathlib import Path

EVAL_TASKS_ENV = "LATENTFLEET_EVAL_TASKS"


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    pkg = str(Path(sys.argv[1]).resolve())
    sys.argv = [sys.argv[0], *sys.argv[2:]]  # what is left is Hydra's
    sys.path.insert(0, pkg)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("LAZY_LEGACY_OP", "0")

    import hydra
    import numpy as np
    import torch
    from common.buffer import Buffer  # TD-MPC2's modules, from its checkout
    from common.logger import Logger
    from common.parser import parse_cfg
    from common.seed import set_seed
    from tdmpc2 import TDMPC2
    from tensordict.tensordict import TensorDict
    from trainer.offline_trainer import OfflineTrainer

    from envs import make_env

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    class SmallDataOffline(OfflineTrainer):
        def _load_dataset(self):
            files = sorted(glob(os.path.join(self.cfg.data_dir, "*.pt")))
            if not files:
                raise SystemExit(f"no *.pt files in {self.cfg.data_dir}")
            chunks = []
            for f in files:
                d = torch.load(f, weights_only=True)
                chunks.append(TensorDict(d, batch_size=list(d["reward"].shape[:2])))
            rows = {c.shape[1] for c in chunks}
            if len(rows) != 1:
                raise SystemExit(f"episodes of different lengths {sorted(rows)} in {self.cfg.data_dir}")
            cfg = deepcopy(self.cfg)
            cfg.episode_length = rows.pop()
            cfg.buffer_size = sum(c.shape[0] for c in chunks) * cfg.episode_length  # the data, not mt30's 345.69M
            cfg.steps = cfg.buffer_size
            self.buffer = Buffer(cfg)
            for c in chunks:
                self.buffer.load(c)
            print(f"loaded {self.buffer.num_eps} episodes of {cfg.episode_length} rows from {len(files)} files")

        def eval(self):
            names = [t.strip() for t in os.environ.get(EVAL_TASKS_ENV, "").split(",") if t.strip()]
            unknown = [t for t in names if t not in self.cfg.tasks]
            if not names or unknown:
                raise SystemExit(f"{EVAL_TASKS_ENV}={names}: give names of the task set ({unknown} are not)")
            results, row = {}, {"iteration": self._iteration, "returns": {}, "successes": {}}
            for name in names:
                task_idx = self.cfg.tasks.index(name)
                rewards, successes = [], []
                for _ in range(self.cfg.eval_episodes):
                    obs, done, ep_reward, t = self.env.reset(task_idx), False, 0.0, 0
                    while not done:
                        action = self.agent.act(obs, t0=t == 0, eval_mode=True, task=task_idx)
                        obs, reward, done, info = self.env.step(action)
                        ep_reward += float(reward)
                        t += 1
                    rewards.append(ep_reward)
                    successes.append(float(info["success"]))
                results[f"episode_reward+{name}"] = float(np.nanmean(rewards))
                results[f"episode_success+{name}"] = float(np.nanmean(successes))
                row["returns"][name] = float(np.nanmean(rewards))
                row["successes"][name] = float(np.nanmean(successes))
            with open("eval.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            self._iteration += self.cfg.eval_freq  # evaluations come at 0, eval_freq, 2 eval_freq, ...
            return results

    @hydra.main(config_name="config", config_path=pkg, version_base=None)
    def train(cfg):
        cfg = parse_cfg(cfg)
        set_seed(cfg.seed)
        trainer = SmallDataOffline(
            cfg=cfg, env=make_env(cfg), agent=TDMPC2(cfg), buffer=Buffer(cfg), logger=Logger(cfg)
        )
        trainer._iteration = 0
        trainer.train()
        print("training completed")

    train()


if __name__ == "__main__":
    main()
