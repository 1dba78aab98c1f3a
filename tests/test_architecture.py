"""The engine's layout rules (../shared/design/architecture.md), checked on the source:

- engine/core/ imports no topic package;
- no import circle between engine modules (imports inside functions count too);
- a topic reaches another topic only through that topic's package (`from engine.B import module`
  or `from ..B import module`), never by reaching into `engine.B.module` directly;
- the topic packages import each other without a circle;
- nothing under engine/ imports gradio, tabs or app;
- no module under engine/ or tabs/, nor app.py, touches the process environment (os.environ,
  os.getenv, ...) except engine/core/config.py: the operator's settings are read there once into
  AppConfig and handed down as engine.config.

The checker is run on the real tree, and on small made-up trees that break each rule, so a
checker that finds nothing cannot pass.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

FORBIDDEN_TOP = {"gradio", "tabs", "app"}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(root: Path) -> dict[str, list[tuple[str, str, int]]]:
    """module -> [(imported module, the module named in the statement, line)] for every import
    of the engine or a forbidden package, anywhere in the file."""
    modules = {module_name(root, p): p for p in (root / "engine").rglob("*.py")}
    out: dict[str, list[tuple[str, str, int]]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        found = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append((alias.name, alias.name, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                stated = _resolve(name, is_pkg, node)
                for alias in node.names:
                    sub = f"{stated}.{alias.name}"
                    found.append((sub if sub in modules else stated, stated, node.lineno))
        out[name] = [f for f in found if f[0].split(".")[0] in FORBIDDEN_TOP | {"engine"}]
    return out


def topic_of(module: str) -> str | None:
    """'engine.decoding.plots' -> 'decoding'; the engine's own __init__ and core have no topic."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] == "core":
        return None
    return parts[1] if len(parts) > 2 or parts[1] != "" else None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, or a node importing itself."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def violations(root: Path) -> list[str]:
    found = imports_of(root)
    problems = []
    graph: dict[str, set[str]] = {m: set() for m in found}
    topics: dict[str, set[str]] = {}
    for mod, imports in found.items():
        mine = topic_of(mod)
        for target, stated, line in imports:
            where = f"{mod} (line {line})"
            if target.split(".")[0] in FORBIDDEN_TOP:
                problems.append(f"{where} imports {target}: the engine knows nothing of the UI")
                continue
            if target in found and target != mod:
                graph[mod].add(target)
            theirs = topic_of(target)
            if mod.startswith("engine.core") and theirs:
                problems.append(f"{where} imports the topic {target}: the core imports no topic")
            if mine and theirs and mine != theirs:
                topics.setdefault(mine, set()).add(theirs)
                if stated != f"engine.{theirs}":
                    problems.append(f"{where} reaches into {stated}: import it through the package "
                                    f"face (from engine.{theirs} import ...)")
    for comp in _cycles(graph):
        problems.append("import circle between engine modules: " + " -> ".join(comp))
    for comp in _cycles(topics):
        problems.append("import circle between topic packages: " + " -> ".join(comp))
    return problems


def test_the_engine_keeps_its_layout_rules():
    assert violations(ROOT) == []


def test_every_topic_is_a_package_with_its_plots_beside_its_logic():
    engine = ROOT / "engine"
    assert (engine / "core" / "__init__.py").exists()
    assert not list(engine.glob("plots_*.py")), "plots live in engine/<topic>/plots.py"
    loose = sorted(p.name for p in engine.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules outside a package: {loose}"
    for topic in ("tokens", "embeddings", "decoding", "pipelines", "diffusion", "evaluation", "training"):
        assert (engine / topic / "__init__.py").exists(), topic
        assert (engine / topic / "plots.py").exists(), f"engine/{topic}/plots.py"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {"engine/__init__.py": "", "engine/core/__init__.py": "", **files}.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize("files, expected", [
    ({"engine/core/cache.py": "from ..decoding import plots\n", "engine/decoding/__init__.py": "",
      "engine/decoding/plots.py": ""}, "the core imports no topic"),
    ({"engine/core/registry.py": "def f():\n    from engine.tokens.loading import Tok\n",
      "engine/tokens/__init__.py": "", "engine/tokens/loading.py": ""}, "the core imports no topic"),
    ({"engine/pipelines/__init__.py": "", "engine/pipelines/tasks.py": "from .fallbacks import x\n",
      "engine/pipelines/fallbacks.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                       "    from .tasks import Prepared\n"}, "import circle between engine modules"),
    ({"engine/decoding/__init__.py": "", "engine/decoding/plots.py": "import gradio as gr\n"}, "knows nothing of the UI"),
    ({"engine/evaluation/__init__.py": "", "engine/evaluation/metrics.py": "from ..decoding.generation import x\n",
      "engine/decoding/__init__.py": "", "engine/decoding/generation.py": ""}, "through the package face"),
    ({"engine/a/__init__.py": "", "engine/a/x.py": "from engine.b import y\n",
      "engine/b/__init__.py": "", "engine/b/y.py": "from ..a import x\n"}, "import circle between topic packages"),
])
def test_the_checker_finds_each_kind_of_violation(tmp_path, files, expected):
    problems = violations(_tree(tmp_path, files))
    assert any(expected in p for p in problems), problems


def test_the_checker_accepts_a_clean_tree(tmp_path):
    root = _tree(tmp_path, {
        "engine/core/errors.py": "", "engine/core/cache.py": "from .errors import X\n",
        "engine/embeddings/__init__.py": "", "engine/embeddings/vectors.py": "from ..core.errors import X\n",
        "engine/retrieval/__init__.py": "", "engine/retrieval/index.py": "from ..embeddings import vectors\n",
    })
    assert violations(root) == []


ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
ENV_READER = "engine/core/config.py"
# Until engine/training/runner.py takes the training time cap from engine.config.train_minutes:
ENV_STILL_READ: set[str] = set()


def environment_uses(root: Path) -> list[str]:
    """'path:line name' for each mention of os.environ / os.getenv / ... (as an attribute, a bare
    name or an import) in app.py and the modules under engine/ and tabs/, but config.py's."""
    paths = [root / "app.py", *(root / "engine").rglob("*.py"), *(root / "tabs").rglob("*.py")]
    found = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        if not path.exists() or rel == ENV_READER or rel in ENV_STILL_READ:
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            names = []
            if isinstance(node, ast.Attribute):
                names = [node.attr]
            elif isinstance(node, ast.Name):
                names = [node.id]
            elif isinstance(node, ast.ImportFrom) and node.module == "os":
                names = [a.name for a in node.names]
            found += [f"{rel}:{node.lineno} {n}" for n in names if n in ENV_NAMES]
    return found


def test_only_the_config_module_reads_the_environment():
    assert environment_uses(ROOT) == [], "read settings from engine.config (engine/core/config.py)"


@pytest.mark.parametrize("text", ["import os\nx = os.environ.get('A')\n", "import os\nos.getenv('A')\n",
                                  "from os import environ\n", "from os import getenv as g\n",
                                  "import os\nos.environ['A'] = '1'\n"])
def test_the_environment_checker_finds_each_way_in(tmp_path, text):
    root = _tree(tmp_path, {"engine/decoding/__init__.py": "", "engine/decoding/x.py": text, "app.py": "",
                            ENV_READER: "import os\nos.environ.get('A')\n"})
    assert [u.split()[0] for u in environment_uses(root)] == [f"engine/decoding/x.py:{text.count(chr(10))}"]


def test_the_environment_checker_leaves_words_alone(tmp_path):
    root = _tree(tmp_path, {"tabs/x.py": "environment = 'in a forest'\n# os.environ in a comment\n",
                            "app.py": "s = 'os.environ'\n"})
    assert environment_uses(root) == []


def test_readme_layout_lists_the_engine_tree():
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    listed = {}
    for line in block.splitlines()[1:]:
        name, _, rest = line.strip().partition("/ ")
        if line.strip().endswith(".py") or "/" not in line:
            continue
        listed[name] = sorted(m.strip() for m in rest.strip().split(","))
    engine = ROOT / "engine"
    actual = {d.name: sorted(p.stem for p in d.glob("*.py") if p.name != "__init__.py")
              for d in engine.iterdir() if (d / "__init__.py").exists()}
    assert listed == actual


HEAVY_LIBRARIES = ("torch", "transformers", "diffusers", "trl", "qdrant_client", "peft")
START_CHECK = """\
import sys
import app
from engine import Engine
from engine.core.config import AppConfig

engine = Engine(config=AppConfig(offline=True))
app.build_demo(engine)
heavy = set(sys.argv[1:])
print("start:", sorted({m.split(".")[0] for m in sys.modules} & heavy))
engine.device.describe()
print("device: torch imported", "torch" in sys.modules)
"""


def test_the_app_starts_without_torch_or_a_model_library():
    """import app, Engine(config=...) and build_demo import none of the heavy libraries (torch alone
    costs a second of the start): each loads on first use; the device is picked on first use."""
    out = subprocess.run([sys.executable, "-c", START_CHECK, *HEAVY_LIBRARIES], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith(("start:", "device:"))]
    assert lines == ["start: []", "device: torch imported True"], out.stdout[-2000:]
