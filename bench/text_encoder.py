"""Text encoder cost: load time and CPU milliseconds per task description (one text per call, as a
run embeds them), over every description of the catalogue.

    .venv/bin/python bench/text_encoder.py              # 1 torch thread, every catalogue task
    .venv/bin/python bench/text_encoder.py --threads 2

Prints the machine line (bench/common.py), the encoder and its versions, the load time, and the
median / p90 ms per description (each text encoded fresh: the in-process cache is bypassed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
# run as a script, this file's folder comes first on sys.path and its name would shadow the envs package
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3, help="times each description is encoded")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from bench.common import machine_line, matmul_gflops
    from embodiments import text_encoder
    from envs import task_names
    from envs.describe import task_description

    print(machine_line(matmul_gflops()))
    texts = [task_description(t) for t in task_names()]
    start = time.perf_counter()
    model = text_encoder._model("cpu")
    load_s = time.perf_counter() - start
    model.encode(["warm-up"], show_progress_bar=False)
    ms = []
    for _ in range(args.reps):
        for text in texts:
            t0 = time.perf_counter()
            model.encode([text], convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
            ms.append(1000 * (time.perf_counter() - t0))
    words = [len(t.split()) for t in texts]
    print(f"encoder {text_encoder.encoder_name()}, {args.threads} torch thread(s)")
    print(
        f"load {load_s:.1f} s; {len(texts)} descriptions ({min(words)}-{max(words)} words), {args.reps} reps: "
        f"median {np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms per description"
    )


if __name__ == "__main__":
    main()
