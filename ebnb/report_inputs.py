"""What the report shows and where it reads it from: the thesis figures and the figures
beyond the thesis (by file name), the executed notebooks' findings, the run record and the
README's verdict section. `ebnb.report` builds the site from these."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import mistune
import nbformat

from ebnb.envs import ENV_ALIASES

FIGURE_NAME = re.compile(r"fig(\d+)_(\d+)_(.+)_([^_]+)\.png")
RUN_RECORD_FIELDS = ("commit", "cpu", "cores", "start", "end", "wall_s")
VERDICT_HEADING = "## Does the thesis hold?"  # the README section the report opens with


class ThesisFigure(NamedTuple):
    """A figure of the thesis: the notebook that makes it and what the thesis reported."""

    notebook: str
    title: str
    reported: str


THESIS_FIGURES = {
    "3.3": ThesisFigure(
        "01_mask_similarity",
        "Experiment 1: do pruning masks settle early?",
        "Masks drawn every 2 episodes of a 500-episode run (10 runs per environment, P = 0.2 to "
        "0.8) grew more alike as training went on, most clearly in CartPole: which weights matter "
        "most is learnt in the first episodes and then changes little. Early and late masks "
        "differed most at P = 0.6. In CartPole a faint block of mutually similar masks around "
        "episodes 10-90 (the exploration phase) stands apart from later masks; Acrobot does not "
        "show it.",
    ),
    "3.4": ThesisFigure(
        "02_retrain",
        "Experiment 2: tickets pruned at different episodes, retrained",
        "In CartPole, networks pruned at about episodes 25-100 and retrained from their initial "
        "weights matched the unpruned network in test return and training length for every P; "
        "outside that window only P = 0.2 and 0.4 did. In Acrobot only P = 0.2 did (less so when "
        "pruned during exploration, e.g. episode 5); at P = 0.8 the networks tested poorly and "
        "never reached early stopping. With the winning-ticket comparison (figures 3.5, 3.6) the "
        "thesis concluded that Early-Bird tickets exist for every P in CartPole and for P = 0.2 "
        "in Acrobot.",
    ),
    "3.5": ThesisFigure(
        "03_finetune",
        "Experiment 3, CartPole: retrained vs finetuned tickets vs winning tickets",
        "Retrained tickets followed the winning tickets closely in return and length for P = 0.2 "
        "to 0.6, and at P = 0.8 when pruned between episodes 40 and 100. Finetuned tickets pruned "
        "before episode 200 needed far fewer episodes than unpruned networks, winning tickets and "
        "retrained tickets, with similar test return (higher at P = 0.6), though more volatile "
        "when pruned in the first 50 episodes.",
    ),
    "3.6": ThesisFigure(
        "03_finetune",
        "Experiment 3, Acrobot: retrained vs finetuned tickets vs winning tickets",
        "Retrained tickets matched the winning tickets only at P = 0.2. Finetuning shortened "
        "training in every panel except P = 0.8, which never reached early stopping. At P = 0.2 "
        "and 0.4 finetuned tickets trained as fast as or faster than winning tickets: pruning "
        "early at those P and finetuning gives Early-Bird tickets, pruning more does not.",
    ),
    "3.7": ThesisFigure(
        "03_finetune",
        "Experiment 3: finetuned tickets against the unpruned network",
        "In CartPole, finetuned tickets kept a test return close to the unpruned network's for "
        "every P while training for much less time. In Acrobot, P = 0.2 and 0.4 gave a similar "
        "return at every pruning episode with similar or shorter training; as with retraining, "
        "the effect weakened as P grew.",
    ),
    "3.8": ThesisFigure(
        "04_eb_exploit",
        "Experiment 4: EB Exploit",
        "EB Exploit with ξ = 0.1, 10 runs per P: in CartPole the test return was mostly "
        "acceptable and training much shorter than the unpruned network's, even at P = 0.6; "
        "P = 0.8 mostly lowered the return. In Acrobot the return stayed fairly high except at "
        "P = 0.8, but training was often longer than unpruned; tickets were found for P = 0.2, "
        "and the thesis suggests a lower ξ (pruning later) may give better tickets.",
    ),
}


class ExtraFigure(NamedTuple):
    """A published figure beyond the thesis': the notebook that makes it, and its title."""

    notebook: str
    title: str


BEYOND_THESIS = {  # by the file name before _<env>.png, in report order
    "eb_criteria_retrain": ExtraFigure(
        "02_retrain",
        "Retrained tickets: the four criteria by non-inferiority, in three "
        "states (shown non-inferior / not shown either way / shown worse)",
    ),
    "eb_criteria_finetune": ExtraFigure(
        "03_finetune",
        "Finetuned tickets: the four criteria by non-inferiority, in three "
        "states (shown non-inferior / not shown either way / shown worse)",
    ),
    "controls_retrain": ExtraFigure("05_controls", "Retrained tickets against their controls"),
    "controls_finetune": ExtraFigure("05_controls", "Finetuned tickets against their controls"),
    "input_survival": ExtraFigure("05_controls", "Which inputs the mask keeps"),
    "eb_exploit_sweep": ExtraFigure("06_eb_exploit_sweep", "EB Exploit swept: cost in env steps"),
    "eb_exploit_sweep_updates": ExtraFigure("06_eb_exploit_sweep", "EB Exploit swept: cost in gradient updates"),
}


class Figure(NamedTuple):
    """A published figure file: thesis number (e.g. "3.4"; beyond the thesis its key in
    `BEYOND_THESIS`, e.g. "input_survival"), path, environment and profile ("" for the full
    profile, else the name of the folder it was published in, e.g. "full_sparse")."""

    number: str
    path: Path
    env: str
    profile: str = ""

    @property
    def short_env(self) -> str:
        """The environment as the executed notebooks name it: cartpole-v0 -> cartpole."""
        return self.env.split("-")[0]

    @property
    def notebook(self) -> str:
        """Stem of the executed notebook that made this figure, e.g. 02_retrain-cartpole."""
        return f"{(THESIS_FIGURES.get(self.number) or BEYOND_THESIS[self.number]).notebook}-{self.short_env}"

    @property
    def page(self) -> str:
        """Name of the notebook's page in the site: its stem, then the profile if not the full one."""
        return f"{self.notebook}-{self.profile}" if self.profile else self.notebook

    @property
    def site_path(self) -> str:
        """Where the site keeps this figure, relative to index.html."""
        return "/".join(["figures", *([self.profile] if self.profile else []), self.path.name])


def published_figures(figures: Path) -> list[Figure]:
    """The thesis figures in `figures`, in thesis order (CartPole before Acrobot); every
    thesis figure must be there and every `fig*.png` must be one."""
    found = [parse_figure_name(path) for path in figures.glob("fig*.png")]
    for number, figure in THESIS_FIGURES.items():
        if not any(f.number == number for f in found):
            raise FileNotFoundError(
                f"report: no figure {number} ({figure.notebook}) in {figures}: "
                f"expected fig{number.replace('.', '_')}_<what>_<env>.png"
            )
    return sorted(found, key=thesis_order)


def beyond_thesis_figures(figures: Path, profile: str = "") -> list[Figure]:
    """The published figures beyond the thesis' (every `*.png` in `figures` not named `fig*`) of
    `profile`, in `BEYOND_THESIS` order; ValueError naming a file that is none of them."""
    found = []
    for path in figures.glob("*.png"):
        if path.name.startswith("fig"):
            continue
        what, _, env = path.stem.rpartition("_")
        if what not in BEYOND_THESIS:
            raise ValueError(
                f"report: {path} is no figure this report knows: expected <what>_<env>.png with <what> "
                f"one of {', '.join(BEYOND_THESIS)}"
            )
        found.append(Figure(what, path, env, profile))
    order = list(BEYOND_THESIS)
    return sorted(found, key=lambda f: (order.index(f.number), _env_rank(f), f.env))


def _env_rank(figure: Figure) -> int:
    """The known environments in their order (CartPole before Acrobot), then the others."""
    known = list(ENV_ALIASES)
    return known.index(figure.short_env) if figure.short_env in known else len(known)


def thesis_order(figure: Figure) -> tuple:
    """Sort key: figure number, then the known environments in their order, then the others."""
    return tuple(map(int, figure.number.split("."))), _env_rank(figure), figure.env


def parse_figure_name(path: Path) -> Figure:
    """`fig3_4_retrain_cartpole-v0.png` -> Figure("3.4", path, "cartpole-v0")."""
    match = FIGURE_NAME.fullmatch(path.name)
    if match is None:
        raise ValueError(f"report: {path} is not named fig<chapter>_<number>_<what>_<env>.png")
    chapter, number, _, env = match.groups()
    if f"{chapter}.{number}" not in THESIS_FIGURES:
        raise ValueError(
            f"report: {path} is figure {chapter}.{number}, not one of the thesis figures {', '.join(THESIS_FIGURES)}"
        )
    return Figure(f"{chapter}.{number}", path, env)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """An executed notebook, which must exist and print findings."""
    if not path.is_file():
        raise FileNotFoundError(f"report: executed notebook {path} is missing (run pipeline.py all)")
    notebook = nbformat.read(path, as_version=4)
    if not findings(notebook):
        raise ValueError(f"report: {path} prints no findings in its last section; was it executed?")
    return notebook


def findings(notebook: nbformat.NotebookNode) -> str:
    """What the notebook's findings section (the code cells after its "## Findings" heading,
    else after its last markdown cell, up to the next markdown cell) printed to stdout, without
    the lines that quote the thesis."""
    markdown = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"]
    headed = [i for i in markdown if notebook.cells[i].source.lstrip().startswith("## Findings")]
    start = headed[0] if headed else max(markdown, default=-1)
    end = min((i for i in markdown if i > start), default=len(notebook.cells))
    printed = "".join(
        output.text
        for cell in notebook.cells[start + 1 : end]
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream" and output.name == "stdout"
    )
    lines = [line for line in printed.splitlines() if not line.strip().lower().startswith(("thesis:", "(thesis:"))]
    return "\n".join(lines).strip()


def read_run_record(path: Path) -> dict:
    """The run record JSON, which must carry the provenance fields."""
    if not path.is_file():
        raise FileNotFoundError(f"report: run record {path} is missing (pipeline.py all writes it)")
    record = json.loads(path.read_text(encoding="utf-8"))
    missing = [field for field in RUN_RECORD_FIELDS if field not in record]
    if missing:
        raise ValueError(f"report: run record {path} lacks {', '.join(missing)}")
    return record


class _TextLinks(mistune.HTMLRenderer):
    """Markdown to HTML with every link shown as its text (README links point into the
    repository, which the site does not hold)."""

    def link(self, text, url, title=None):
        return text


def thesis_verdict(readme: Path) -> str:
    """The README's `VERDICT_HEADING` section (up to the next heading of its level or above)
    as HTML, without its heading: markdown by mistune, raw HTML escaped, links as their text.
    FileNotFoundError without the README, ValueError naming it without the section."""
    if not readme.is_file():
        raise FileNotFoundError(f"report: {readme} is missing (the report opens with its section {VERDICT_HEADING!r})")
    lines = readme.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == VERDICT_HEADING]
    if not starts:
        raise ValueError(f"report: {readme} has no section {VERDICT_HEADING!r}, which the report opens with")
    body = lines[starts[0] + 1 :]
    end = next((i for i, line in enumerate(body) if re.match(r"#{1,2} ", line)), len(body))
    markdown = mistune.create_markdown(escape=True, renderer=_TextLinks(escape=True), plugins=["table"])
    return markdown("\n".join(body[:end]))
