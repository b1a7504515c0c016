"""The README's verdicts quote the notebooks: every number in its "Does the thesis hold?"
section and its figure table is printed by a findings cell of a published executed notebook
(its verdicts at 15 and 100 seeds, at xi below 0.02, with rewind and on fresh seeds included; as printed, or
rounded to the digits the README gives), apart from the protocol's own constants (P, seeds,
cells, caps, confidence levels, figure numbers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "notebooks" / "executed"
# design constants the README states, not results: P, seeds, cells per figure, the episode cap,
# power and confidence levels, alpha, the margins' shares, the kappa threshold, the raw 0.9,
# figure and list numbers
CONSTANTS = {
    "0.2",
    "0.4",
    "0.6",
    "0.8",
    "10",
    "48",
    "500",
    "80",
    "95",
    "5",
    "0.05",
    "0.9",
    "1",
    "2",
    "3",
    "4",
    "3.3",
    "3.4",
    "3.5",
    "3.6",
    "3.7",
    "3.8",
    "12",
    "30",
    "60",
}
FINDINGS = (
    "## Findings",
    "## Verdicts at 15 seeds",
    "## Verdicts at 100 seeds",
    "## Verdicts at ξ below",
    "## Verdicts with rewind",
    "## Confirmation on fresh seeds",
)
NUMBER = re.compile(r"(?<![\w.\d])[+\-−]?\d+(?:\.\d+)?|(?<=\d)[-–](\d+(?:\.\d+)?)")


def _numbers(text: str) -> list[str]:
    """The numbers of `text` as written (unicode minus as '-'); in '224-300' both ends, unsigned."""
    found = []
    for match in NUMBER.finditer(text):
        found.append(match.group(1) if match.group(1) is not None else match.group(0))
    return [n.replace("−", "-").lstrip("+") for n in found]


def _findings_text() -> str:
    """What the code cells after a '## Findings' heading, or another of `FINDINGS` (notebooks
    02-04's at 15 seeds, 02-03's at 100, 04's at xi below 0.02 and with rewind, 06's on fresh seeds), print (not the tables they
    display), up to the next heading."""
    text = []
    for path in sorted(EXECUTED.glob("*.ipynb")):
        inside = False
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"]).lstrip()
            if cell["cell_type"] == "markdown":
                inside = source.startswith(FINDINGS) or (inside and not source.startswith("#"))
            elif inside:
                text += ["".join(o["text"]) for o in cell.get("outputs", []) if o["output_type"] == "stream"]
    return "\n".join(text)


def _readme_claims() -> str:
    """The 'Does the thesis hold?' section and the figure table's "what the data show" column."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Does the thesis hold?", 1)[1].split("\n## ", 1)[0]
    figures = readme.split("\n## Figures", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[2] for line in figures.splitlines() if line.startswith("| ![")]
    return section + "\n" + "\n".join(rows)


def _quoted(number: str, printed: set[str]) -> bool:
    """`number` is printed, or is a printed number rounded to its digits."""
    if number in printed:
        return True
    digits = len(number.split(".")[1]) if "." in number else 0
    value = float(number)
    return any(abs(round(float(p), digits) - value) < 1e-9 for p in printed)


def test_every_number_of_the_readme_verdicts_is_a_findings_cells():
    printed = set(_numbers(_findings_text()))
    claims = _readme_claims()
    unquoted = sorted({n for n in _numbers(claims) if n not in CONSTANTS and not _quoted(n, printed)}, key=float)
    assert printed and "Holm" in claims
    assert not unquoted, f"README numbers no findings cell prints: {unquoted}"


def test_the_check_catches_a_number_no_cell_prints():
    printed = set(_numbers("difference +109.3 (95% paired CI -52.9 to +271.5); episodes 224-300"))
    assert _quoted("109", printed) and _quoted("-53", printed) and _quoted("300", printed)
    assert not _quoted("110", printed) and not _quoted("-52.8", printed) and not _quoted("301", printed)
