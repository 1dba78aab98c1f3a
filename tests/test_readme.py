"""The README's API example runs as written against the app."""
import re

from tests.conftest import ROOT


def test_readme_python_example_runs(app_url, capsys):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python example"
    code = blocks[0].replace('"http://127.0.0.1:7860/"', repr(app_url))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["scores"]["labels"][0] == "sports"
    assert "pipeline(" in scope["code"]
    assert "cl100k" in scope["html"]


def test_readme_has_exactly_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", setup, re.S)
    assert [c.strip() for c in commands] == [
        "bash scripts/install.sh && .venv/bin/python app.py",
        "bash scripts/install.sh --test && .venv/bin/python -m pytest -q -n 2 --dist loadfile",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/install.sh --test && .venv/bin/python -m pytest -q -n 2 --dist loadfile" in ci


def test_every_image_the_readme_shows_exists():
    text = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 20
    missing = [p for p in images if not (ROOT / p).is_file()]
    assert not missing, missing
