"""The HTML report (ebnb.report): built from the published figures, executed notebooks and run
record of this checkout, every link resolves inside the site, the figures come in thesis
order, the provenance names the run's commit and no path of this machine leaks out; missing
inputs fail before anything is written."""

from __future__ import annotations

import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from ebnb import report, report_inputs

ROOT = Path(__file__).resolve().parents[1]
RUN_RECORD = ROOT / "results" / "run_record.json"
README = ROOT / "README.md"
EXECUTED = ROOT / "notebooks" / "executed"
THESIS_ORDER = ["3.3", "3.4", "3.5", "3.6", "3.7", "3.8"]


class Links(HTMLParser):
    """The href/src values and element ids of one HTML page."""

    def __init__(self):
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src"):
                self.targets.append(value)
            elif name == "id":
                self.ids.add(value)


def links(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The report of this checkout's published results, built once for the module."""
    destination = tmp_path_factory.mktemp("report")
    index = report.build(destination, ROOT / "figures", ROOT / "notebooks" / "executed", RUN_RECORD, README)
    assert index == destination / "index.html"
    return destination


def pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_the_site_has_the_index_every_figure_and_every_notebook(site):
    names = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file() and p.name != ".ebnb-owned"}
    recorded = {
        (m.parent / n).relative_to(site).as_posix()
        for m in site.rglob(".ebnb-owned")
        for n in m.read_text().splitlines()[1:]
    }
    assert recorded == names, "the site's folders record every file the package wrote (ebnb.ownership)"
    published = {p.relative_to(ROOT).as_posix() for p in (ROOT / "figures").rglob("*.png")}
    executed = ROOT / "notebooks" / "executed"
    notebooks = {f"notebooks/{p.stem}.html" for p in executed.glob("*.ipynb")}
    notebooks |= {f"notebooks/{p.stem}-{p.parent.name}.html" for p in executed.glob("*/*.ipynb")}
    assert any("/full_sparse/" in name for name in published)  # a profile beside the full one is shown too
    assert names == {"index.html"} | published | notebooks


def test_every_link_resolves_to_a_file_inside_the_site(site):
    for page in pages(site):
        parsed = links(page)
        for target in parsed.targets:
            if target.startswith("data:image/"):
                continue  # embedded notebook output
            url = urlsplit(target)
            assert not url.scheme and not url.netloc and not url.path.startswith("/"), (page.name, target)
            file = (page.parent / unquote(url.path)).resolve() if url.path else page
            assert file.is_file() and file.is_relative_to(site.resolve()), (page.name, target)
            if url.fragment:  # browsers match an id as written, then percent-decoded
                assert {url.fragment, unquote(url.fragment)} & links(file).ids, (page.name, target)


def test_pages_load_nothing_from_the_network(site):
    for page in pages(site):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and "@import" not in text and not re.search(r"url\(\s*['\"]?https?:", text)


def test_the_index_shows_figures_3_3_to_3_8_in_thesis_order(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<h2>Figure (\d\.\d)", index) == THESIS_ORDER
    retrain = report_inputs.findings(nbformat.read(EXECUTED / "02_retrain-cartpole.ipynb", as_version=4))
    assert html.escape(retrain) in index.split('id="figure-3-4"')[1], "a notebook's findings, under its figure"


class Text(HTMLParser):
    """The text of an HTML fragment, whitespace collapsed."""

    def __init__(self, fragment: str):
        super().__init__()
        self.parts: list[str] = []
        self.feed(fragment)
        self.text = " ".join("".join(self.parts).split())

    def handle_data(self, data):
        self.parts.append(data)


def markdown_text(markdown: str) -> str:
    """What a reader sees of simple markdown (emphasis, code, links, lists), whitespace collapsed."""
    markdown = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    markdown = re.sub(r"^\s*[-*] ", "", markdown, flags=re.MULTILINE)
    return " ".join(markdown.replace("**", "").replace("*", "").replace("`", "").split())


def test_the_report_opens_with_the_readmes_verdict_section(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    readme = README.read_text(encoding="utf-8")
    section = readme.split("\n## Does the thesis hold?\n", 1)[1].split("\n## ", 1)[0]
    shown = index.split('<section id="thesis-verdict">', 1)[1].split("</section>", 1)[0]
    assert Text(shown).text == "Does the thesis hold? From the README. " + markdown_text(section)
    assert "supported" in Text(shown).text
    assert index.index('id="thesis-verdict"') < index.index('id="figure-3-3"'), "the first section"
    assert 'href="#thesis-verdict"' in index.split("<ul>", 1)[1].split("</ul>", 1)[0], "listed in the contents"


def test_the_verdict_is_markdown_without_links_and_a_readme_without_it_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# ebnb\n\n## Does the thesis hold?\n\n**1. A claim: not supported.** See "
        "[the protocol](docs/protocol.md#statistics), <b>raw</b> HTML.\n\n### Detail\n\n- *one*: 0.29\n"
        "\n## Figures\n\nNot this.\n",
        encoding="utf-8",
    )
    shown = report_inputs.thesis_verdict(readme)
    assert "<strong>1. A claim: not supported.</strong>" in shown and "<li><em>one</em>: 0.29</li>" in shown
    assert "the protocol" in shown and "href" not in shown, "links point into the repository: text only"
    assert "&lt;b&gt;raw&lt;/b&gt;" in shown and "<h3>Detail</h3>" in shown and "Not this" not in shown
    readme.write_text("# ebnb\n\n## Does the thesis hold\n\nNo question mark: another heading.\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{re.escape(str(readme))} has no section '## Does the thesis hold\?'"):
        report_inputs.thesis_verdict(readme)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nothing.md"))):
        report_inputs.thesis_verdict(tmp_path / "nothing.md")


def test_the_figures_beyond_the_thesis_follow_by_notebook_each_shown(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<h2>Beyond the thesis: notebook ([\w, ]+)</h2>", index) == [
        "01_mask_similarity",
        "02_retrain",
        "03_finetune",
        "05_controls",
        "06_eb_exploit_sweep",
        "01_mask_similarity, profile acrobot_scaled",
        "02_retrain, profile acrobot_scaled",
        "03_finetune, profile acrobot_scaled",
        "05_controls, profile full_sparse",
        "01_mask_similarity, profile gym_terminal",
        "02_retrain, profile gym_terminal",
        "03_finetune, profile gym_terminal",
        "04_eb_exploit, profile gym_terminal",
    ]
    beyond = index.split('id="beyond-01_mask_similarity"')[1]
    for path in (ROOT / "figures").rglob("*.png"):
        shown = path.relative_to(ROOT).as_posix()
        full_profile_thesis_figure = path.parent.name == "figures" and path.name.startswith("fig")
        assert full_profile_thesis_figure or f'<img src="{shown}"' in beyond, shown
    terminal = index.split('id="beyond-02_retrain-gym_terminal"')[1].split("<section")[0]
    assert "<h3>Figure 3.4. Experiment 2: tickets pruned at different episodes, retrained</h3>" in terminal
    assert 'href="notebooks/02_retrain-cartpole-gym_terminal.html"' in terminal  # its findings
    sparse = index.split('id="beyond-05_controls-full_sparse"')[1]
    assert 'href="notebooks/05_controls-acrobot-full_sparse.html"' in sparse and "P=0.98" in sparse
    for key in {f.number for f in report_inputs.beyond_thesis_figures(ROOT / "figures")}:
        assert f"<h3>{html.escape(report_inputs.BEYOND_THESIS[key].title)}</h3>" in beyond, (
            key
        )  # each caption, from the code
    sweep = report_inputs.findings(nbformat.read(EXECUTED / "06_eb_exploit_sweep-cartpole.ipynb", as_version=4))
    assert html.escape(sweep) in beyond.split('id="beyond-06_eb_exploit_sweep"')[1]  # notebook 06's findings
    assert 'Its findings are under <a href="#figure-3-4">Figure 3.4</a>' in beyond


def test_the_provenance_shows_the_run_records_commit(site):
    record = json.loads(RUN_RECORD.read_text())
    provenance = (site / "index.html").read_text(encoding="utf-8").split('id="provenance"')[1]
    assert record["commit"] in provenance and record["cpu"] in provenance


def test_no_path_of_this_machine_appears(site):
    for page in pages(site):
        text = page.read_text(encoding="utf-8")
        for path in (str(ROOT), str(site), "/work/", "file://"):
            assert path not in text, (page.name, path)


@pytest.mark.parametrize(
    "name, number, notebook",
    [
        ("fig3_4_retrain_cartpole.png", "3.4", "02_retrain-cartpole"),
        ("fig3_4_retrain_cartpole-v0.png", "3.4", "02_retrain-cartpole"),
        ("fig3_3_mask_similarity_acrobot-v1.png", "3.3", "01_mask_similarity-acrobot"),
        ("fig3_5_retrain_vs_finetune_cartpole-v0.png", "3.5", "03_finetune-cartpole"),
        ("fig3_8_eb_exploit_acrobot.png", "3.8", "04_eb_exploit-acrobot"),
    ],
)
def test_figure_names_with_or_without_the_version_map_to_their_notebook(name, number, notebook):
    figure = report_inputs.parse_figure_name(Path(name))
    assert (figure.number, figure.notebook) == (number, notebook)


def synthetic_inputs(root: Path) -> tuple[Path, Path, Path, Path]:
    """Figures named with env ids, one-cell notebooks that print a finding, a run record, a README."""
    figures, executed = root / "figures", root / "executed"
    figures.mkdir()
    executed.mkdir()
    png = next((ROOT / "figures").glob("fig*.png"))
    names = ["3_3_mask_similarity", "3_4_retrain", "3_5_retrain_vs_finetune", "3_7_finetune", "3_8_eb_exploit"]
    for name in names:
        shutil.copyfile(png, figures / f"fig{name}_cartpole-v0.png")
    for stem in ("01_mask_similarity", "02_retrain", "03_finetune", "04_eb_exploit"):
        notebook = nbformat.v4.new_notebook()
        code = nbformat.v4.new_code_cell("print('found')")
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{stem}: a finding\n")]
        notebook.cells = [nbformat.v4.new_markdown_cell("## Findings"), code]
        nbformat.write(notebook, executed / f"{stem}-cartpole.ipynb")
    record = root / "run_record.json"
    record.write_text(
        json.dumps(
            {
                "commit": "abc123",
                "cpu": "some CPU",
                "cores": 2,
                "start": "2026-01-01T00:00:00",
                "end": "2026-01-01T01:00:00",
                "wall_s": 3600.0,
            }
        )
    )
    readme = root / "README.md"
    readme.write_text("# ebnb\n\n## Does the thesis hold?\n\nPartly.\n", encoding="utf-8")
    return figures, executed, record, readme


def test_a_missing_input_names_the_file_and_writes_nothing(tmp_path):
    figures, executed, record, readme = synthetic_inputs(tmp_path)
    destination = tmp_path / "site"
    with pytest.raises(FileNotFoundError, match=r"fig3_6_<what>_<env>\.png"):
        report.build(destination, figures, executed, record, readme)
    shutil.copyfile(next(figures.glob("*.png")), figures / "fig3_6_retrain_vs_finetune_acrobot-v1.png")
    with pytest.raises(FileNotFoundError, match=re.escape(str(executed / "03_finetune-acrobot.ipynb"))):
        report.build(destination, figures, executed, record, readme)
    assert not destination.exists()
    shutil.copyfile(executed / "03_finetune-cartpole.ipynb", executed / "03_finetune-acrobot.ipynb")
    shutil.copyfile(next(figures.glob("*.png")), figures / "mystery_plot_cartpole-v0.png")
    with pytest.raises(ValueError, match=r"mystery_plot_cartpole-v0\.png is no figure this report knows"):
        report.build(destination, figures, executed, record, readme)
    (figures / "mystery_plot_cartpole-v0.png").unlink()
    record.write_text(json.dumps({"commit": "abc123"}))
    with pytest.raises(ValueError, match=rf"{re.escape(str(record))} lacks cpu, cores, start, end, wall_s"):
        report.build(destination, figures, executed, record, readme)
    record.write_text(
        json.dumps(
            {
                "commit": "abc123",
                "cpu": "some CPU",
                "cores": 2,
                "start": "2026-01-01T00:00:00",
                "end": "2026-01-01T01:00:00",
                "wall_s": 3600.0,
            }
        )
    )
    readme.write_text("# ebnb\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{re.escape(str(readme))} has no section"):
        report.build(destination, figures, executed, record, readme)
    assert not destination.exists()


def test_a_site_from_figures_named_by_env_id(tmp_path):
    figures, executed, record, readme = synthetic_inputs(tmp_path)
    shutil.copyfile(next(figures.glob("*.png")), figures / "fig3_6_retrain_vs_finetune_acrobot-v1.png")
    shutil.copyfile(executed / "03_finetune-cartpole.ipynb", executed / "03_finetune-acrobot.ipynb")
    index = report.build(tmp_path / "site", figures, executed, record, readme).read_text(encoding="utf-8")
    assert re.findall(r"<h2>Figure (\d\.\d)", index) == THESIS_ORDER
    assert (
        "<p>Partly.</p>" in index
        and "02_retrain: a finding" in index
        and 'href="notebooks/03_finetune-acrobot.html"' in index
    )
