"""A report page as index.html and as summary.md: the same facts, figures and tables."""

from __future__ import annotations

import html

import polars as pl

from analysis.report.page import Page, fmt


def _rows(frame: pl.DataFrame, max_rows: int) -> tuple[list[list[str]], int]:
    """Formatted cells; long tables keep their head and tail."""
    if frame.height > max_rows:
        half = max_rows // 2
        shown = pl.concat([frame.head(half), frame.tail(half)])
    else:
        shown = frame
    return [[fmt(v) for v in row] for row in shown.iter_rows()], frame.height - shown.height


CSS = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0;display:block;overflow-x:auto}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right;overflow-wrap:anywhere}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555} .note{color:#865}
"""


def page_html(page: Page, max_rows: int = 60) -> str:
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(page.title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{e(page.title)}</h1>",
        "<table>",
    ]
    parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in page.facts]
    parts.append("</table>")
    parts += [f"<p class='note'>{e(n)}</p>" for n in page.notes]
    for file, title, caption in page.figures:
        svg = file.removesuffix(".png") + ".svg"
        link = f" <a href='{e(svg)}'>SVG</a>" if (page.out / svg).is_file() else ""
        parts.append(
            f"<h2>{e(title)}</h2><figure><img src='{e(file)}' alt='{e(title)}'>"
            f"<figcaption>{e(caption)}{link}</figcaption></figure>"
        )
    for name, frame, title in page.tables:
        rows, hidden = _rows(frame, max_rows)
        parts.append(f"<h2>{e(title)}</h2><table><tr>")
        parts += [f"<th>{e(c)}</th>" for c in frame.columns]
        parts.append("</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
        more = f"{hidden} rows not shown; " if hidden else ""
        parts.append(
            f"<p><small>{more}<a href='tables/{e(name)}.csv'>{e(name)}.csv</a></small></p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def page_markdown(page: Page, max_rows: int = 30) -> str:
    lines = [f"# {page.title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in page.facts]
    lines += ["", *[f"> {n}" for n in page.notes]] if page.notes else []
    if page.figures:
        lines += ["", "## Figures", ""]
        lines += [f"- [{title}]({file}): {caption}" for file, title, caption in page.figures]
    for name, frame, title in page.tables:
        rows, hidden = _rows(frame, max_rows)
        lines += [
            "",
            f"## {title}",
            "",
            "| " + " | ".join(frame.columns) + " |",
            "|" + "---|" * frame.width,
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        if hidden:
            lines.append(f"\n{hidden} rows not shown: tables/{name}.csv")
    return "\n".join(lines) + "\n"
