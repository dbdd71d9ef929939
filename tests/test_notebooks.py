"""The notebooks run top to bottom on sample_pcaps/ (their own asserts check the counts
against the manifest and the incident's finding), and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
OURS = ["01-quickstart.ipynb", "02-investigate-an-incident.ipynb"]


def execute(name: str) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    # The "python3" kernel of the environment running the tests (ipykernel in the venv).
    client = NotebookClient(
        book,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return book


def _outputs(book: nbformat.NotebookNode, kind: str) -> int:
    return sum(
        1
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if kind in out.get("data", {})
    )


@pytest.mark.parametrize("name", OURS)
def test_committed_without_outputs(name: str) -> None:
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)


def test_quickstart_runs_and_matches_the_manifest() -> None:
    book = execute("01-quickstart.ipynb")
    assert _outputs(book, "image/png") == 5  # the five figures of the notebook
    errors = [
        out
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert errors == []


def test_incident_notebook_finds_the_misconfigured_server() -> None:
    if not list((ROOT / "sample_pcaps").glob("*incident*.pcap*")):
        pytest.skip("no incident capture in sample_pcaps/")
    book = execute("02-investigate-an-incident.ipynb")
    text = "".join(
        out.get("text", "")
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream"
    )
    assert "finding: ('api.example.com', 'certificate_expired')" in text
    assert _outputs(book, "image/png") == 3
