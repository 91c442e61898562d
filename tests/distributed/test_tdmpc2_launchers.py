"""The launchers run from an imported TD-MPC2 run directory: launch/diagnose.py plans with it and
writes its report; the transfer experiment (launch/transfer.py) measures zero-shot and few-shot
transfer of the mt80 model to a body outside mt80, finetuning only the task embedding."""

import json
import math

import pytest
import torch

import envs
from agents.testing.tdmpc2_checkpoints import current_layout, dims
from distributed.config import PlannerOverrides
from distributed.tdmpc2_checkpoint import import_tdmpc2_checkpoint
from distributed.transfer import TransferConfig, TransferExperiment

torch.set_num_threads(1)
SMALL_PLANNER = dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    mt80 = envs.load_task_set("mt80")
    state = current_layout(dims("mt80", 1), [t.action_dim for t in mt80.tasks], seed=5)
    return import_tdmpc2_checkpoint(
        state, "mt80", 1, tmp_path_factory.mktemp("imported") / "mt80-1", planner=SMALL_PLANNER
    )


def test_diagnose_plans_with_the_imported_model(run_dir, tmp_path):
    from launch.diagnose import main

    out = tmp_path / "report"
    main(
        [
            f"checkpoint={run_dir}",
            f"out={out}",
            "tasks=reacher-easy",
            "episodes=1",
            "max_steps=12",
            "samples=8",
            "audit_states=1",
            "settings=h3-i2-n32-fp32",
            "budget_ms=1000",
        ]
    )
    res = json.loads((out / "diagnostics.json").read_text())
    assert list(res["tasks"]) == ["reacher-easy"]
    assert all(math.isfinite(r["effective_rank"]) for r in res["tasks"].values())
    rows = res["latency_table"]["rows"]
    assert {r["task"] for r in rows} == {"reacher-easy"}
    assert res["checkpoint"]["task_set"] == "mt80"


def test_transfer_to_a_body_outside_mt80(run_dir, tmp_path):
    held_out = "cartpole-swingup@length=1.7"
    cfg = TransferConfig(
        checkpoint=str(run_dir),
        split="cartpole-length",
        out_dir=str(tmp_path / "transfer"),
        held_out=(held_out,),
        episodes=1,
        eval_max_steps=10,
        finetune_steps=20,
        finetune_inits=("nearest",),
        finetune_params=("task_embedding",),
        scratch=False,
        planner=PlannerOverrides(**SMALL_PLANNER),
        wandb_mode="disabled",
        progress=False,
    )
    exp = TransferExperiment(cfg)
    assert exp.zero_shot_inits == ["nearest", "mean"]  # a TD-MPC2 model has a task table, no descriptor map
    assert exp.trained[:2] == ["walker-stand", "walker-walk"] and len(exp.trained) == 80
    assert exp.trained[exp.nearest[0]].startswith("cartpole")  # the nearest mt80 body is a cartpole
    (row,) = exp.run()
    assert row["task"] == held_out
    for key in ("zero_shot_nearest", "zero_shot_mean", "finetune_nearest_K", "in_distribution_return"):
        assert math.isfinite(row[key]), key
    assert (tmp_path / "transfer" / "transfer.md").read_text().count(held_out) >= 1
    with pytest.raises(ValueError, match="were training tasks"):  # hopper is in mt80: not a transfer test
        TransferExperiment(
            TransferConfig(
                checkpoint=str(run_dir),
                split="mt30-hopper-out",
                out_dir=str(tmp_path),
                finetune_steps=0,
                finetune_inits=("nearest",),
            )
        )
