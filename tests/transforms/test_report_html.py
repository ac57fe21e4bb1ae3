"""report.html from real runs' outputs, checked as HTML (tests/pipelines/test_report_browser.py opens it in
a browser): every section, every filter with escaped examples, nothing fetched, the same bytes for the
same run, a run with nothing to show, and the page a failure leaves."""

import json
import os
import re
import shutil

import pyarrow.dataset as ds
import pytest

from hybridmix.pipelines.cli import main
from hybridmix.transforms.report_data import EXAMPLES, TEXT_CHARS, read_report_data
from hybridmix.transforms.report_html import REPORT, build_report, report_or_fallback
from tests.builders import report_corpus, words, write_config, write_parquet

CHARTS = ("funnel", "mixture", "lengths", "filters", "duplicates", "collapse", "scores")
SECTIONS = ("summary", "funnel", "mixture", "lengths", "filters", "duplicates", "collapse", "scores", "files")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(output folder, manifest, report.html as the run wrote it) of the report corpus."""
    root = tmp_path_factory.mktemp("report")
    out = str(root / "out")
    assert main(["run", report_corpus(root), "--output", out]) == 0
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    with open(os.path.join(out, REPORT), encoding="utf-8") as fh:
        page = fh.read()
    return out, manifest, page


def _svg_labels(page: str) -> set[str]:
    return set(re.findall(r'<svg role="img" aria-label="([a-z]+)"', page))


def test_the_run_writes_every_section_and_chart(run):
    _, manifest, page = run
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in page, anchor
        assert f'href="#{anchor}"' in page, anchor
    assert _svg_labels(page) == set(CHARTS)
    # The funnel table holds the manifest's counts.
    totals = manifest["totals"]
    funnel = page[page.index('<section id="funnel">'):page.index('<section id="mixture">')]
    total_row = re.search(r'<tr class=total>(.*?)</tr>', funnel).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", total_row)
    assert cells[2:9] == [f"{totals[f]:,}" for f in ("read", "rejected", "filtered", "exact_duplicates",
                                                       "near_duplicates", "not_selected", "selected")]
    assert "Every input row is accounted for" in page


def test_every_filter_is_listed_with_escaped_examples(run):
    out, manifest, page = run
    filters = manifest["quality"]["filters"]
    assert {"refusal_v8", "too_short_v3", "duplicate_lines_v1"} <= set(filters)
    for label in filters:
        assert f"<summary><code>{label}</code>" in page, label
    filtered = ds.dataset(os.path.join(out, "filtered")).to_table(columns=["doc_id", "filter"]).to_pylist()
    for row in filtered:
        if row["filter"] in ("refusal_v8", "too_short_v3"):
            assert f"<code>{row['doc_id']}</code>" in page, row
    # The refusal's markup is shown as text; its controls are visible, not active.
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "\u202e" not in page and "\x1b" not in page
    assert "\\u202e" in page and "\\u001b" in page
    # Each example takes its direction from its own first letter (Arabic and Hebrew read right to left).
    assert page.count('<pre class="sample" dir="auto">') == page.count("<pre class=\"sample\"") > 0
    # Rejected rows: per reason, with the row.
    assert "<summary><code>ingest_empty_text</code></summary>" in page and "<code>s-empty</code>" in page
    # The cluster that mixes origins is shown with the synthetic copy and the human text kept.
    assert "s-copies-human (synthetic, chat)" in page and "h5 (human, wiki)" in page


def test_examples_are_few_and_cut(run):
    out, manifest, page = run
    data = read_report_data(out, manifest)
    loops = data.filter_examples["duplicate_lines_v1"]
    assert manifest["quality"]["filters"]["duplicate_lines_v1"]["dropped"]["total"] == 5
    assert len(loops) == EXAMPLES
    assert all(len(x.text) == TEXT_CHARS and x.chars > TEXT_CHARS for x in loops)
    assert f"... {loops[0].chars - TEXT_CHARS:,} more characters" in page
    assert all(len(v) <= EXAMPLES for v in data.filter_examples.values())


def test_figures_agree_with_the_output_files(run):
    out, manifest, _ = run
    data = read_report_data(out, manifest)
    rows = ds.dataset(os.path.join(out, "data")).to_table(columns=["origin", "tokens"]).to_pylist()
    for origin in ("human", "synthetic"):
        mine = [r["tokens"] for r in rows if r["origin"] == origin]
        assert int(data.lengths["tokens"][origin].sum()) == len(mine)
        assert data.by_origin[origin].rows == len(mine) and data.by_origin[origin].tokens == sum(mine)
        assert (data.by_origin[origin].tokens_min, data.by_origin[origin].tokens_max) == (min(mine), max(mine))
    removed = ds.dataset(os.path.join(out, "duplicates")).to_table().num_rows
    assert sum((size - 1) * n for size, n in data.cluster_sizes.items()) == removed
    assert sum(data.duplicate_rows.values()) == removed
    assert [x["doc_id"] for x in data.cross_origin_examples] == ["s-copies-human"]


def test_the_same_run_gives_the_same_bytes(run):
    out, manifest, page = run
    assert report_or_fallback(out, manifest) == page
    assert build_report(out, manifest) == page


def test_the_page_fetches_nothing(run):
    _, _, page = run
    assert "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';" in page
    for tag in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import", "@font-face", "url(http"):
        assert tag not in page.lower(), tag
    targets = re.findall(r'\b(?:src|href|xlink:href|action)="([^"]*)"', page)
    assert targets and all(t.startswith("#") for t in targets), [t for t in targets if not t.startswith("#")]
    assert re.findall(r"url\(([^)]*)\)", page) and all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", page))


def test_a_run_with_nothing_filtered_no_duplicates_and_no_scores_still_renders(tmp_path):
    write_parquet(tmp_path / "in" / "h.parquet", [{"id": f"h{i}", "text": words(i, 40)} for i in range(20)])
    write_parquet(tmp_path / "in" / "s.parquet", [{"id": f"s{i}", "text": words(500 + i, 40)} for i in range(20)])
    config = write_config(tmp_path / "in" / "c.yaml", {
        "corpora": [{"name": "h", "origin": "human", "paths": ["h.parquet"], "id_column": "id"},
                    {"name": "s", "origin": "synthetic", "paths": ["s.parquet"], "id_column": "id"}],
        "mixture": {"targets": {"human": 0.5, "synthetic": 0.5}},
        "quality": {"enabled": False},
        "dedup": {"exact": False, "near": {"enabled": False}},
        "indicators": {"enabled": False},
    })
    out = tmp_path / "out"
    assert main(["run", config, "--output", str(out)]) == 0
    page = (out / REPORT).read_text(encoding="utf-8")
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in page, anchor
    assert "No document failed a quality filter." in page
    assert "No duplicates were removed." in page
    assert "No scorer ran in this run." in page
    assert "Not computed for this run" in page
    assert "No input row was rejected." in page
    assert _svg_labels(page) == {"funnel", "mixture", "lengths"}
    assert "could not be built" not in page


def test_a_report_that_cannot_be_built_leaves_a_page_that_says_why(run, tmp_path):
    out, manifest, _ = run
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    first = manifest["outputs"]["data"][0]["path"]
    (broken / first).write_bytes(b"PAR1 not really parquet")
    page = report_or_fallback(str(broken), manifest)
    assert "The report could not be built" in page and "hybridmix report OUT" in page
    assert manifest["run_id"] in page
    with pytest.raises(Exception):
        build_report(str(broken), manifest)


def test_decontamination_is_shown_with_its_matches(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / "out"
    assert main(["run", os.path.join(root, "examples", "decontaminate.yaml"), "--output", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    page = (out / REPORT).read_text(encoding="utf-8")
    matched = manifest["decontamination"]["sets"]["alpaca_eval"]["documents"]["total"]
    section = page[page.index("<h3>Decontamination"):page.index("<h3>Rejected rows")]
    assert f"<td class=n>{matched:,}</td>" in section
    assert "<summary><code>decontaminate</code>" in section
    assert section.count('<div class="example">') == 3 and "of evaluation set &#x27;alpaca_eval&#x27;" in section
