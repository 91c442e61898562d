"""Where imports may run. Tests import the project and its testing helpers (distributed/testing/,
agents/testing/), never another test module or a benchmark: a helper that tests share lives where bench/
can import it too, and a test file stays a leaf (conftest.py fixtures are pytest's own mechanism and need
no import). The main code path never imports a testing helper, a test or a benchmark."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
MAIN = ("agents", "distributed", "embodiments", "envs", "launch")
TESTING = ("agents/testing", "distributed/testing")


def forbidden_imports(path: Path, forbidden: tuple[str, ...], relative: bool = False) -> list[str]:
    """'file:line: imports NAME' for every import in `path` of a module named by `forbidden` (a package,
    'tests', or a dotted prefix, 'distributed.testing'); with `relative`, every relative import too."""
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):  # `from distributed import testing` names distributed.testing
            module = "." * node.level + (node.module or "")
            names = [module, *(f"{module.rstrip('.')}.{a.name}" for a in node.names)]
        else:
            continue
        hit = [
            n
            for n in names
            if (relative and n.startswith(".")) or any(n == f or n.startswith(f + ".") for f in forbidden)
        ]
        if hit:
            found.append(f"{where}:{node.lineno}: imports {hit[0]}")
    return found


def test_no_test_file_imports_a_test_module_or_a_benchmark():
    found = [line for path in sorted(TESTS.rglob("*.py")) for line in forbidden_imports(path, ("tests", "bench"), True)]
    assert not found, "move what tests share to distributed/testing/ or agents/testing/:\n" + "\n".join(found)


def test_the_main_code_path_imports_no_testing_helper():
    paths = [
        p
        for package in MAIN
        for p in sorted((REPO / package).rglob("*.py"))
        if not any(p.is_relative_to(REPO / t) for t in TESTING)
    ]
    forbidden = ("tests", "bench", "agents.testing", "distributed.testing")
    found = [line for path in paths for line in forbidden_imports(path, forbidden)]
    assert not found, "only tests and bench/ import the testing helpers:\n" + "\n".join(found)


def test_the_check_names_the_file_and_line(tmp_path):
    bad = tmp_path / "test_bad.py"
    bad.write_text("import os\nfrom tests.distributed.test_cluster import REPO\n\ndef f():\n    import bench.faults\n")
    assert forbidden_imports(bad, ("tests", "bench")) == [
        f"{bad}:2: imports tests.distributed.test_cluster",
        f"{bad}:5: imports bench.faults",
    ]
    good = tmp_path / "test_good.py"
    good.write_text(
        "from distributed.testing.faults import snapshot\nimport testsuite\nfrom distributed import testing\n"
    )
    assert forbidden_imports(good, ("tests", "bench")) == []
    assert forbidden_imports(good, ("distributed.testing",)) == [
        f"{good}:1: imports distributed.testing.faults",
        f"{good}:3: imports distributed.testing",
    ]
