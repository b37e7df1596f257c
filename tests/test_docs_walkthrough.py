"""docs/studying_the_graph.md: every ```python block runs, in order, in one
namespace (in a temporary directory, where its drawings go); the printed
output of the blocks whose output is deterministic matches the ```text block
after them; the pictures it shows exist and are the ones
docs/make_graph_pictures.py makes; its links to other docs resolve."""
import contextlib
import importlib.util
import io
import re
import shutil
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
WALKTHROUGH = DOCS / "studying_the_graph.md"
BLOCK = re.compile(r"^```(python|text)\n(.*?)^```\n", re.S | re.M)
# Output that differs run to run: times, and the trace table that prints them.
VARIES = re.compile(r"µs")


def blocks():
    """[(code, expected output or None)] in document order."""
    found = BLOCK.findall(WALKTHROUGH.read_text(encoding="utf-8"))
    pairs = []
    for k, (kind, body) in enumerate(found):
        if kind == "python":
            after = found[k + 1] if k + 1 < len(found) else None
            pairs.append((body, after[1] if after and after[0] == "text" else None))
    return pairs


def test_walkthrough_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "walkthrough"}
    pairs = blocks()
    assert len(pairs) >= 10
    for number, (code, expected) in enumerate(pairs, 1):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{WALKTHROUGH.name}, python block {number}", "exec"), namespace)
        if expected is not None and not VARIES.search(expected):
            assert printed.getvalue() == expected, f"python block {number} printed something else"


def test_pictures_shown_exist_and_the_script_makes_them(tmp_path):
    text = WALKTHROUGH.read_text(encoding="utf-8")
    shown = re.findall(r"!\[[^\]]*\]\(pictures/(\w+)\.svg\)", text)
    assert shown and all((DOCS / "pictures" / f"{name}.svg").exists() for name in shown)
    spec = importlib.util.spec_from_file_location("make_graph_pictures", DOCS / "make_graph_pictures.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert sorted(script.PICTURES) == sorted(set(shown))
    if shutil.which("dot") is None:
        pytest.skip("Graphviz `dot` not installed: the pictures were not remade")
    names = list(script.PICTURES)
    script.main(names, out=tmp_path)
    for name in names:
        assert (tmp_path / f"{name}.svg").read_text().count("<svg") == 1


def test_links_to_other_docs_resolve():
    text = WALKTHROUGH.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([\w./-]+\.md)(?:#([\w-]+))?\)", text)
    assert ("bn_backward.md", "") in links
    for target, anchor in links:
        page = (DOCS / target).read_text(encoding="utf-8")
        if anchor:  # GitHub's anchors: lowercase, punctuation dropped, spaces to hyphens
            anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                       for h in re.findall(r"^#+ (.*)$", page, re.M)}
            assert anchor in anchors, (target, anchor)
