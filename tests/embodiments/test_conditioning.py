"""Task descriptors (morphology + objective), nearest training tasks, and split task sets."""

import numpy as np
import pytest

from embodiments import DESCRIPTOR_DIM, load_split, split_names
from embodiments.conditioning import (
    OBJECTIVE_DIM,
    TASK_DESCRIPTOR_DIM,
    conditioning_descriptors,
    nearest_tasks,
    objective_descriptor,
    objective_of,
    objective_words,
    task_descriptor,
)
from envs import load_task_set


def test_objective_words_come_from_the_name_after_the_body():
    assert objective_of("walker-run-backwards") == ("run", "backwards")
    assert objective_of("mw-pick-place") == ("pick", "place")
    assert objective_of("cartpole-swingup@length=1.3") == ("swingup",)
    vec = objective_descriptor("walker-run-backwards")
    words = objective_words()
    assert vec.shape == (OBJECTIVE_DIM,) and vec.sum() == 2
    assert vec[words.index("run")] == 1 and vec[words.index("backwards")] == 1
    other = objective_descriptor("walker-moonwalk")  # a word the vocabulary lacks: the last slot
    assert other[-1] == 1 and other.sum() == 1


def test_a_variant_moves_the_morphology_part_and_keeps_the_objective():
    base, longer = task_descriptor("cartpole-swingup"), task_descriptor("cartpole-swingup@length=1.5")
    assert base.shape == (TASK_DESCRIPTOR_DIM,) == (DESCRIPTOR_DIM + OBJECTIVE_DIM,)
    assert not np.allclose(base[:DESCRIPTOR_DIM], longer[:DESCRIPTOR_DIM])
    np.testing.assert_array_equal(base[DESCRIPTOR_DIM:], longer[DESCRIPTOR_DIM:])
    balance = task_descriptor("cartpole-balance")  # same body, another objective
    np.testing.assert_array_equal(base[:DESCRIPTOR_DIM], balance[:DESCRIPTOR_DIM])
    assert not np.array_equal(base[DESCRIPTOR_DIM:], balance[DESCRIPTOR_DIM:])


def test_nearest_training_task_follows_the_varied_length():
    split = load_split("cartpole-length")
    ref = conditioning_descriptors(split.train)
    near = [split.train[i] for i in nearest_tasks(ref, conditioning_descriptors(split.held_out))]
    assert near == ["cartpole-swingup@length=1.2", "cartpole-swingup@length=0.7", "cartpole-swingup@length=1.4"]
    with pytest.raises(ValueError, match="at least one reference"):
        nearest_tasks(ref[:0], ref)


@pytest.mark.parametrize("name", ["cartpole-length", "mt30-hopper-out"])
def test_a_split_task_set_holds_its_training_tasks_only(name):
    split = load_split(name)
    ts = load_task_set(f"split:{name}")
    assert ts.names == split.train
    assert not set(ts.names) & set(split.held_out)
    assert name in split_names()
