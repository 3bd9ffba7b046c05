"""The documentation in docs/ stays true: every ```python block runs, and the reference tables name
every public layer, break, policy and supported Caffe type.

Each docs file is executed on its own: its ```python blocks run in order in one namespace, in a fresh
temporary working directory (the examples write files there). Blocks marked otherwise (```text,
```bash, ```python-skip, ...) are illustrations and are not run. A failing block is reported with its
file and line: the code is compiled with the line numbers it has in the Markdown file.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
from pathlib import Path

import pytest

import mocha_triton as mt

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOC_FILES = ("guide.md", "caffe.md", "kernels.md")

FENCE = re.compile(r"^```(\S*)\s*$")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of every block fenced with exactly ```python, in order.

    Raises ValueError for a fence that is never closed (a Markdown mistake that would hide code).
    """
    blocks: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening or not opening.group(1):
            i += 1
            continue
        start = i + 1
        end = next((j for j in range(start, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"the ```{opening.group(1)} fence at line {i + 1} is never closed")
        if opening.group(1) == "python":
            blocks.append((start + 1, "\n".join(lines[start:end])))
        i = end + 1
    return blocks


def run_blocks(path: Path, blocks: list[tuple[int, str]]) -> str:
    """Execute ``blocks`` in order in one namespace; return what they printed.

    The namespace is a registered module (dataclasses defined in the docs look their module up), and
    the code is compiled without this file's ``from __future__`` flags, as a reader's script would be.
    """
    module = types.ModuleType(f"docs_{path.stem}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            for line, code in blocks:
                # Pad with blank lines so tracebacks show the line numbers of the Markdown file.
                code_object = compile("\n" * (line - 1) + code, str(path), "exec", dont_inherit=True)
                exec(code_object, module.__dict__)  # noqa: S102
    finally:
        del sys.modules[module.__name__]
    return printed.getvalue()


# --- the extractor itself --------------------------------------------------------------------------


def test_python_blocks_takes_only_python_fences():
    text = "intro\n```python\na = 1\n```\n```python-skip\nb = 2\n```\n```text\nc\n```\n\n```python\nd = a\n```\n"
    assert python_blocks(text) == [(3, "a = 1"), (13, "d = a")]


def test_in_code_matches_whole_names_in_backticks_only():
    assert in_code("LRPolicy.Step", "use `LRPolicy.Step(0.1, 0.5, 10)` here")
    assert in_code("Snapshot", "| `mt.Snapshot(directory)` |")
    assert not in_code("Snapshot", "a Snapshot break, `SnapshotError`")
    assert not in_code("Snapshot", "`a` Snapshot `b`")


def test_python_blocks_rejects_an_unclosed_fence():
    with pytest.raises(ValueError, match="never closed"):
        python_blocks("```python\nx = 1\n")


def test_a_failing_block_reports_its_markdown_line(tmp_path):
    blocks = python_blocks("# t\n\n```python\nx = 1\nraise RuntimeError('boom')\n```\n")
    with pytest.raises(RuntimeError) as info:
        run_blocks(tmp_path / "t.md", blocks)
    assert info.traceback[-1].lineno + 1 == 5  # pytest's line numbers are 0-based


# --- the docs ----------------------------------------------------------------------------------------


def in_code(name: str, text: str) -> bool:
    """``name`` appears as a whole word in an inline code span (`...`) of the Markdown ``text``."""
    word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
    return any(word.search(span) for span in re.findall(r"`([^`\n]+)`", text))


@pytest.mark.parametrize("name", DOC_FILES)
def test_docs_python_blocks_run(name, tmp_path, monkeypatch):
    path = DOCS / name
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    assert len(blocks) >= 3, f"{name}: expected runnable examples, found {len(blocks)} ```python blocks"
    monkeypatch.chdir(tmp_path)
    run_blocks(path, blocks)


def test_guide_names_every_public_layer_break_and_policy():
    guide = (DOCS / "guide.md").read_text(encoding="utf-8")
    layers = [n for n in mt.__all__ if isinstance(getattr(mt, n), type) and issubclass(getattr(mt, n), mt.Layer)
              and getattr(mt, n) is not mt.Layer]
    breaks = [n for n in mt.__all__ if isinstance(getattr(mt, n), type) and issubclass(getattr(mt, n), mt.Coffee)
              and getattr(mt, n) is not mt.Coffee]
    policies = [f"{ns.__name__}.{n}" for ns in (mt.LRPolicy, mt.MomPolicy) for n in vars(ns)
                if isinstance(getattr(ns, n), type)]
    neurons = [n for n in vars(mt.neurons) if n[0].isupper() and n != "Neuron"]
    assert len(layers) >= 13 and len(breaks) >= 3 and len(policies) >= 10 and len(neurons) == 6
    missing = [n for n in layers + breaks + policies + neurons if not in_code(n, guide)]
    assert not missing, f"docs/guide.md does not document {missing}"


def test_caffe_doc_names_every_supported_type():
    caffe_doc = (DOCS / "caffe.md").read_text(encoding="utf-8")
    missing = [t for t in mt.caffe.SUPPORTED_TYPES if not in_code(t, caffe_doc)]
    assert not missing, f"docs/caffe.md does not list the supported Caffe types {missing}"


def test_kernels_doc_names_every_op_family():
    kernels_doc = (DOCS / "kernels.md").read_text(encoding="utf-8")
    missing = [f for f in mt.FAMILIES if not in_code(f, kernels_doc)]
    assert not missing, f"docs/kernels.md does not list the op families {missing}"
