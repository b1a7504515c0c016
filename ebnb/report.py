"""A static HTML report of the reproduced thesis figures, readable offline.

`build` writes into `destination` (and nowhere else):

    index.html                       first the README's "Does the thesis hold?" section (read
                                     from README.md at build time, its links as plain text:
                                     they point into the repository, not the site); then
                                     figures 3.3-3.8 in thesis order: each figure, what the data
                                     show (the findings its executed notebook printed), what the
                                     thesis reported, links to the notebooks; then the figures
                                     beyond the thesis (`BEYOND_THESIS`), by notebook; then the
                                     provenance of the run (commit, date, machine, wall time)
    figures/<figure>.png             the published figures, copied
    notebooks/<notebook>-<env>.html  each executed notebook that made a figure, rendered by
                                     nbconvert with its images embedded

A profile published beside the full one (a folder of figures and one of executed notebooks of
the same name, e.g. `full_sparse`) adds a section per notebook after the full profile's, with the
thesis figures it remade and those beyond the thesis, its figures in `figures/<profile>/` and
its notebooks as `notebooks/<notebook>-<env>-<profile>.html`. Sections go by profile (the full
one first), then by notebook.

Every link is relative and the pages load nothing from the network. Inputs are checked
before anything is written: a missing figure, notebook, run record or README raises
FileNotFoundError naming the file, a malformed one (a README without the section included)
ValueError, so a site is complete or not built at all. Files already in `destination` are overwritten; others are left alone.
"""

from __future__ import annotations

import html
import shutil
import struct
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter

from ebnb import ownership
from ebnb.envs import ENV_ALIASES
from ebnb.report_inputs import (
    THESIS_FIGURES,
    Figure,
    beyond_thesis_figures,
    findings,
    profile_figures,
    published_figures,
    read_notebook,
    read_run_record,
    thesis_verdict,
)

WIDE = 1.6  # figures at least this wide for their height get the page's full width
STEP_COLUMNS = ("env", "step", "units", "agent_steps", "core_s", "shard_wall_s")


NOTEBOOK_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}{{ super() }}
<p style="margin: 1em; font-family: var(--jp-content-font-family)"><a href="../index.html">&larr; Back to the report</a></p>
{%- endblock body_header -%}
"""

CSS = """
body { font-family: system-ui, sans-serif; line-height: 1.5; color: #222; max-width: 1100px;
       margin: 0 auto; padding: 1em 2em 4em; }
h1 { font-size: 1.7em; } h2 { margin-top: 2.5em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.1em; margin-bottom: 0.3em; } h4 { font-size: 0.95em; margin: 0.8em 0 0.2em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
.side-by-side { display: flex; flex-wrap: wrap; gap: 1em; }
.side-by-side figure { flex: 1 1 400px; margin: 0; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; border-left: 3px solid #4a7; padding: 0.6em 1em; overflow-x: auto;
      white-space: pre-wrap; font-size: 0.88em; }
blockquote { margin: 0; border-left: 3px solid #47a; padding: 0.2em 1em; background: #f4f7fb; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
"""


def build(destination: Path, figures: Path, executed: Path, run_record: Path, readme: Path) -> Path:
    """Write the report site into `destination` from the published figures (`fig*.png` in
    `figures`), the executed notebooks (`<notebook>-<env>.ipynb` in `executed`: those of the
    thesis figures must be there; every one is rendered and listed), the other profiles'
    (subfolders of both), the run record JSON and the README (its `VERDICT_HEADING` section,
    `thesis_verdict`); return the path of index.html. An existing
    `destination` is replaced only if it is a report folder the package made and filled
    (`ebnb.ownership.remove`; else ValueError naming a file of it), after the inputs are read."""
    destination, figures, executed = Path(destination), Path(figures), Path(executed)
    found, extra = published_figures(figures), beyond_thesis_figures(figures)
    for profile in sorted(p.name for p in figures.iterdir() if p.is_dir() and any(p.glob("*.png"))):
        extra += profile_figures(figures / profile, profile)
    notebooks = {f.page: read_notebook(executed / f.profile / f"{f.notebook}.ipynb") for f in found + extra}
    pages = {p.stem: p for p in executed.glob("*.ipynb")} | {
        f"{p.stem}-{p.parent.name}": p for p in executed.glob("*/*.ipynb")
    }
    notebooks.update({stem: read_notebook(pages[stem]) for stem in sorted(pages) if stem not in notebooks})
    record = read_run_record(Path(run_record))
    verdict = thesis_verdict(Path(readme))
    ownership.remove({"report": (destination, "report")})
    for figure in found + extra:
        shutil.copyfile(figure.path, ownership.new_file(destination / figure.site_path, "report"))
    for stem, notebook in notebooks.items():
        page = ownership.new_file(destination / "notebooks" / f"{stem}.html", "report")
        page.write_text(render_notebook(notebook, stem), encoding="utf-8")
    index = ownership.new_file(destination / "index.html", "report")
    index.write_text(index_page(found, extra, notebooks, record, verdict), encoding="utf-8")
    return index


def render_notebook(notebook: nbformat.NotebookNode, title: str) -> str:
    """The notebook as a self-contained HTML page (images embedded, no scripts) linking back to
    the index."""
    exporter = HTMLExporter(
        extra_loaders=[DictLoader({"offline.html.j2": NOTEBOOK_TEMPLATE})],
        template_file="offline.html.j2",
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title}})
    return body


def index_page(found: list[Figure], extra: list[Figure], notebooks: dict, record: dict, verdict: str) -> str:
    """index.html: contents, the README's verdict (`thesis_verdict`), one section per thesis
    figure, one per notebook of the figures beyond the thesis, notebooks, provenance."""
    numbers = list(dict.fromkeys(f.number for f in found))
    contents = "".join(
        f'<li><a href="#figure-{anchor(n)}">Figure {n}</a>: {html.escape(THESIS_FIGURES[n].title)}</li>'
        for n in numbers
    )
    beyond = [(stem, profile) for profile, stem in sorted({(f.profile, f.maker) for f in extra})]  # full ("") first
    contents += "".join(
        f'<li><a href="#{beyond_id(stem, profile)}">Beyond the thesis, {beyond_title(stem, profile)}</a></li>'
        for stem, profile in beyond
    )
    sections = "".join(figure_section(n, [f for f in found if f.number == n], notebooks) for n in numbers)
    sections += "".join(
        beyond_section(
            stem,
            profile,
            [f for f in extra if (f.maker, f.profile) == (stem, profile)],
            found,
            notebooks,
        )
        for stem, profile in beyond
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Early-Bird tickets in reinforcement learning: the reproduced figures</title>
<style>{CSS}</style></head>
<body>
<h1>Early-Bird tickets in reinforcement learning: the reproduced figures</h1>
<p>Figures 3.3 to 3.8 of the thesis <em>On the existence of Early-Bird tickets in reinforcement
learning and how to find them</em>, recomputed by this package. Each figure comes with what the
data show (the findings printed by the notebook that made it) and what the thesis reported.
P is the fraction of weights pruned.</p>
<ul><li><a href="#thesis-verdict">Does the thesis hold?</a></li>{contents}
<li><a href="#notebooks">Executed notebooks</a></li><li><a href="#provenance">Provenance</a></li></ul>
<section id="thesis-verdict">
<h2>Does the thesis hold?</h2>
<p><em>From the README.</em></p>
{verdict}
</section>
{sections}
{notebooks_section(notebooks, record)}
{provenance_section(record)}
</body>
</html>
"""


def anchor(number: str) -> str:
    """HTML id fragment for a figure number: 3.4 -> 3-4."""
    return number.replace(".", "-")


def figure_section(number: str, files: list[Figure], notebooks: dict) -> str:
    """One thesis figure: its images, the notebooks' findings, the thesis' report."""
    thesis = THESIS_FIGURES[number]
    return f"""<section id="figure-{anchor(number)}">
<h2>Figure {number}. {html.escape(thesis.title)}</h2>
{images(files, f"Figure {number}")}
<h3>What the data show</h3>
{findings_html(files, notebooks)}
<h3>What the thesis reported</h3>
<blockquote>{html.escape(thesis.reported)}</blockquote>
</section>
"""


def beyond_id(notebook: str, profile: str) -> str:
    """HTML id of a notebook's section of figures beyond the thesis, for a profile."""
    return f"beyond-{notebook}" + (f"-{profile}" if profile else "")


def beyond_title(notebook: str, profile: str) -> str:
    """How the contents and the heading name that section."""
    return f"notebook {notebook}" + (f", profile {profile}" if profile else "")


def beyond_section(notebook: str, profile: str, files: list[Figure], thesis: list[Figure], notebooks: dict) -> str:
    """The figures one notebook makes beyond the full profile's thesis figures, at one profile
    (a profile beside the full one remakes thesis figures too): each with its images, then what
    the data show (the notebook's findings, or where they stand if it makes a full-profile
    thesis figure)."""
    titles = {f.number: f.title for f in files}
    parts = "".join(
        f"<h3>{html.escape(title)}</h3>" + images([f for f in files if f.number == key], title)
        for key, title in titles.items()
    )
    shown = sorted({f.number for f in thesis if f.maker == notebook and not profile})
    if shown:
        links = ", ".join(f'<a href="#figure-{anchor(n)}">Figure {n}</a>' for n in shown)
        data = f"<p>Its findings are under {links}.</p>"
    else:
        data = findings_html(list({f.page: f for f in files}.values()), notebooks)
    return f"""<section id="{beyond_id(notebook, profile)}">
<h2>Beyond the thesis: {html.escape(beyond_title(notebook, profile))}</h2>
{parts}
<h3>What the data show</h3>
{data}
</section>
"""


def images(files: list[Figure], label: str) -> str:
    """The figure files side by side (stacked if wide), each linked to itself and captioned."""
    layout = "side-by-side" if all(png_aspect(f.path) < WIDE for f in files) else "stacked"
    shown = "".join(
        f'<figure><a href="{f.site_path}"><img src="{f.site_path}" '
        f'alt="{html.escape(label)}, {html.escape(env_name(f))}"></a>'
        f"<figcaption>{html.escape(env_name(f))}: {f.site_path[len('figures/') :]}</figcaption></figure>"
        for f in files
    )
    return f'<div class="{layout}">{shown}</div>'


def findings_html(files: list[Figure], notebooks: dict) -> str:
    """Per figure file, what the notebook that made it printed under its findings."""
    return "".join(
        f'<h4>{html.escape(env_name(f))}, from <a href="notebooks/{f.page}.html">{f.page}</a></h4>'
        f"<pre>{html.escape(findings(notebooks[f.page]))}</pre>"
        for f in files
    )


def png_aspect(path: Path) -> float:
    """Width over height of a PNG image, read from its header."""
    with path.open("rb") as file:
        width, height = struct.unpack(">II", file.read(24)[16:24])
    return width / height


def env_name(figure: Figure) -> str:
    """The gymnasium id of a figure's environment (CartPole-v0), or its name as in the file."""
    return ENV_ALIASES.get(figure.short_env, figure.env)


def notebooks_section(notebooks: dict, record: dict) -> str:
    """Links to the rendered notebooks, with their execution times when the record has them."""
    seconds = {f"{n['notebook']}-{n['env']}": n["wall_s"] for n in record.get("notebooks", [])}
    items = "".join(
        f'<li><a href="notebooks/{stem}.html">{stem}</a>'
        + (f" (executed in {seconds[stem]} s)" if stem in seconds else "")
        + "</li>"
        for stem in sorted(notebooks)
    )
    return f'<section id="notebooks"><h2>Executed notebooks</h2><ul>{items}</ul></section>'


def provenance_section(record: dict) -> str:
    """Commit, date, machine and wall time of the run, then its per-step table."""
    facts = {
        "Commit": record["commit"] + (" (uncommitted changes in the checkout)" if "-dirty" in record["commit"] else ""),
        "Date": f"{record['start'].replace('T', ' ')} to {record['end'].replace('T', ' ')}",
        "Machine": f"{record['cpu']}, {record['cores']} cores",
        "Profile": record.get("profile", "not recorded"),
        "Wall time, computing": duration(record["wall_s"]),
    }
    if "all_wall_s" in record:
        facts["Wall time, computing and notebooks"] = duration(record["all_wall_s"])
    rows = "".join(f"<tr><th>{name}</th><td>{html.escape(str(value))}</td></tr>" for name, value in facts.items())
    return f"""<section id="provenance"><h2>Provenance</h2>
<p>From the run record written by <code>python pipeline.py {html.escape(str(record.get("command", "all")))}</code>.</p>
<table>{rows}</table>
{steps_table(record.get("steps", []))}
</section>"""


def steps_table(steps: list[dict]) -> str:
    """The run record's per-step work and cost as a table (empty if the record has none)."""
    if not steps:
        return ""
    head = "".join(f"<th>{column.replace('_', ' ')}</th>" for column in STEP_COLUMNS)
    body = "".join(
        "<tr>" + "".join(step_cell(step.get(column, "")) for column in STEP_COLUMNS) + "</tr>" for step in steps
    )
    return f"<h3>Work per step</h3><table><tr>{head}</tr>{body}</table>"


def step_cell(value) -> str:
    """A table cell: numbers right-aligned with thousands separators."""
    if isinstance(value, (int, float)):
        return f'<td class="number">{value:,}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def duration(seconds: float) -> str:
    """2962.4 -> '49 min 22 s (2962.4 s)'."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s ({seconds} s)"
