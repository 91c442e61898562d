"""MkDocs hook (mkdocs.yml `hooks:`): serves files kept outside docs/ as part of the site, so pages link them
with ordinary relative links that `mkdocs build --strict` checks.

- every file under bench/results/ at the same path in the site (`bench/results/parity_cartpole-swingup.md`,
  its figures and CSVs): the benchmark results stay where the benchmarks write them, and the site renders them;
- distributed/replay/README.md as the page `replay.md`: the replay store's format and commit protocol, kept
  beside the code it documents (the tests cite it there).
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parents[1]
SERVED_DIRS = ("bench/results",)
PAGES = {"replay.md": "distributed/replay/README.md"}


def on_files(files: Files, config) -> Files:
    for top in SERVED_DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith("."):
                files.append(
                    File.generated(
                        config,
                        path.relative_to(ROOT).as_posix(),
                        abs_src_path=str(path),
                        inclusion=InclusionLevel.NOT_IN_NAV,
                    )
                )
    for page, source in PAGES.items():
        files.append(File.generated(config, page, abs_src_path=str(ROOT / source)))
    return files
