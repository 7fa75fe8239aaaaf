"""Book infrastructure: the Pages workflow parses and does what README says; one public address."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_workflow_runs_make_test_and_publishes_pages():
    wf = yaml.safe_load((ROOT / ".github/workflows/book.yml").read_text())
    on = wf.get("on", wf.get(True))  # PyYAML reads the bare key `on` as True
    assert "push" in on and "pull_request" in on
    assert {"pages": "write", "id-token": "write"}.items() <= wf["permissions"].items()
    test, deploy = wf["jobs"]["test"], wf["jobs"]["deploy"]
    runs = [s.get("run", "") for s in test["steps"]]
    uses = [s.get("uses", "") for s in test["steps"]]
    assert "make test" in runs
    assert any("apt-get install -y chromium" in r for r in runs)
    upload = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    assert uses.index(upload["uses"]) > runs.index("make test")
    assert deploy["needs"] == "test" and deploy["environment"]["name"] == "github-pages"
    assert [s["uses"] for s in deploy["steps"]] == ["actions/deploy-pages@v4"]


def test_readme_addresses_derive_from_config():
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    readme = (ROOT / "README.md").read_text()
    r = subprocess.run([sys.executable, "scripts/sync_readme.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f'pip install "git+{url}@' in readme
    # every GitHub address in the README and the book's pages is the configured one
    texts = [readme] + [p.read_text() for p in (ROOT / "book").glob("*.md")]
    for text in texts:
        for found in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text):
            assert found == url, f"{found} is not _config.yml's repository.url {url}"


def test_sync_readme_check_detects_drift(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import sync_readme
    finally:
        sys.path.pop(0)
    a = sync_readme.block("https://github.com/someone/fork", "dev")
    assert 'pip install "git+https://github.com/someone/fork@dev"' in a
    assert "https://someone.github.io/fork/" in a
    assert a != sync_readme.block(*sync_readme.repository())
