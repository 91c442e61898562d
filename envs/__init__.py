"""Environments: one Gymnasium interface over dm_control, Meta-World v3 and Gymnasium MuJoCo;
task names, task sets (mt30, mt80, ...) and the multitask padding wrapper. Every task is a
Gymnasium id too: `gymnasium.make("latentfleet/walker-walk")` (envs/registration.py).

Importing this package is cheap: it registers the ids, and simulator packages are imported
(and models built) only when a task is built.
"""

import os

# dm_control picks its GL backend at import; quadruped-escape needs a context even for state obs
os.environ.setdefault("MUJOCO_GL", "egl")

from envs.catalog import task_names, task_spec  # noqa: E402
from envs.errors import MissingPackageError, UnknownNameError  # noqa: E402
from envs.make import make_env  # noqa: E402
from envs.padded import PaddedEnv, make_padded_env  # noqa: E402
from envs.registration import NAMESPACE, env_id, register_tasks  # noqa: E402
from envs.spec import TaskSpec  # noqa: E402
from envs.task_set import TaskSet, load_task_set, task_set_names  # noqa: E402

register_tasks()

__all__ = [
    "NAMESPACE",
    "MissingPackageError",
    "PaddedEnv",
    "TaskSet",
    "TaskSpec",
    "UnknownNameError",
    "env_id",
    "load_task_set",
    "make_env",
    "make_padded_env",
    "task_names",
    "task_set_names",
    "task_spec",
]
