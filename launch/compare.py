"""Compare run directories (ours and RLlib baselines): one Markdown + CSV table and one plot of
eval return against env steps and against wall-clock seconds.

    python launch/compare.py runs=[runs/cartpole-swingup/tiny/s1,runs/baselines/sac/cartpole-swingup/s1] out=runs/compare
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from distributed.baselines.compare import compare_runs  # noqa: E402


@hydra.main(config_path="../configs", config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    values = OmegaConf.to_container(cfg, resolve=True)
    unknown = sorted(set(values) - {"runs", "labels", "out", "title", "hydra"})
    if unknown:
        sys.exit(f"error: unknown compare options {unknown} (known: runs, labels, out, title)")
    try:
        result = compare_runs(values["runs"], values["out"], values["labels"], values["title"])
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    print(result["files"]["md"].read_text())
    print("wrote", *(str(p) for p in result["files"].values()))


if __name__ == "__main__":
    main()
