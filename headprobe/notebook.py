"""What headprobe's objects show in a notebook and in a terminal (SPEC §16): self-contained HTML
(inline CSS, no script, no link, nothing fetched) and plain text, built from plain data.

Every object a user gets back in Python (a loaded model, a `Run`, a claim's `Measured`, a
`Profile`, a `ProfileDiff`) has ``_repr_mimebundle_`` giving ``text/plain`` and ``text/html``
and a one-line ``repr``. Each gathers its own numbers and builds its display from the pieces
here: `page` (a titled block with its stylesheet), `facts` (a two-column table), `table`,
`tokens`, and `grid` (layers x heads, one `Cell` per head, named from 1 as in claims). This
module takes strings and numbers only and imports nothing but the standard library, so that the
objects of every layer may use it (a leaf, docs/architecture.md). Every text passes through
`html.escape`; the stylesheet is scoped to the ``headprobe-display`` block, so that it restyles
nothing else in a notebook.
"""

from __future__ import annotations

import html
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass

#: The most tokens `tokens` lists (a long text's display stays small).
MAX_TOKENS = 256
#: The most cells a `grid` draws (more: a line says the grid is left out).
MAX_CELLS = 4096

_CSS = """
.headprobe-display{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1b1b1b;font-size:13px;line-height:1.35;max-width:100%;overflow-x:auto}
.headprobe-display .hp-title{font-weight:bold;margin:0 0 .3em}
.headprobe-display .hp-note{color:#555;margin:.2em 0}
.headprobe-display table{border-collapse:collapse;margin:.3em 0}
.headprobe-display th,.headprobe-display td{border:1px solid #ccc;padding:.15em .45em;
 text-align:left;vertical-align:top}
.headprobe-display th{background:#f0f0f0}
.headprobe-display table.hp-facts th{background:#f7f7f7;font-weight:normal;color:#444}
.headprobe-display td.hp-num{text-align:right;font-variant-numeric:tabular-nums;
 white-space:nowrap}
.headprobe-display .hp-passed{color:#1a7f37;font-weight:bold}
.headprobe-display .hp-failed{color:#c62828;font-weight:bold}
.headprobe-display table.hp-heads{font-size:11px}
.headprobe-display table.hp-heads th,.headprobe-display table.hp-heads td{padding:.1em .25em;
 text-align:center;min-width:3.2em}
.headprobe-display table.hp-heads td.passed{background:#dcf3e2}
.headprobe-display table.hp-heads td.failed{background:#f9d6d5}
.headprobe-display table.hp-heads td.measured{background:#e8eef6}
.headprobe-display table.hp-heads td.none{background:#fff}
.headprobe-display table.hp-heads td.hp-outlined{outline:2px solid #1b1b1b;outline-offset:-2px;
 font-weight:bold}
.headprobe-display table.hp-heads small{display:block;font-size:10px}
.headprobe-display .hp-tokens span{display:inline-block;border:1px solid #ccc;border-radius:3px;
 padding:0 .3em;margin:.1em;background:#fafafa;white-space:pre}
.headprobe-display .hp-tokens span.hp-special{background:#eee;color:#555}
"""

#: Hue of each palette (HSL): blue for a plain value, red for a change.
_HUES = {"blue": 212, "red": 0}


@dataclass(frozen=True)
class Cell:
    """One head's cell in a `grid`.

    Attributes:
      value: the main figure under the head's name (``0.910``).
      note: a second, smaller line (``previous``).
      shade: 0 to 1: how strongly the cell is coloured (None: not coloured by value).
      status: ``passed``, ``failed`` or ``measured`` colour the cell as the HTML report does.
      title: the tooltip.
      outlined: framed and in bold (a head beyond a tolerance).
    """

    value: str = ""
    note: str = ""
    shade: float | None = None
    status: str = ""
    title: str = ""
    outlined: bool = False


def e(value: object) -> str:
    """``value`` as HTML text: ``&``, ``<``, ``>`` and both quotes escaped."""
    return html.escape(str(value), quote=True)


def page(title: str, *parts: str) -> str:
    """A display: its stylesheet, a bold title and the parts (HTML already built here)."""
    body = "".join(part for part in parts if part)
    return (f'<div class="headprobe-display"><style>{_CSS}</style>'
            f'<p class="hp-title">{e(title)}</p>{body}</div>')


def note(text: str) -> str:
    return f'<p class="hp-note">{e(text)}</p>'


def facts(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table: what, and its value."""
    lines = "".join(f"<tr><th>{e(name)}</th><td>{e(value)}</td></tr>" for name, value in rows)
    return f'<table class="hp-facts">{lines}</table>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
          numeric: Container[int] = (), classes: Mapping[int, Sequence[str]] | None = None
          ) -> str:
    """A table: ``numeric`` columns right-aligned; ``classes[column][row]``: a cell's class
    (``hp-passed``, ``hp-failed``)."""
    head = "".join(f"<th>{e(name)}</th>" for name in header)
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, text in enumerate(row):
            names = ["hp-num"] if c in numeric else []
            if classes is not None and c in classes and classes[c][r]:
                names.append(classes[c][r])
            attribute = f' class="{e(" ".join(names))}"' if names else ""
            cells.append(f"<td{attribute}>{e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def tokens(labels: Sequence[str], special: Sequence[bool] = (), *,
           limit: int = MAX_TOKENS) -> str:
    """The tokens in order, each in a box (special tokens greyed); at most ``limit``."""
    shown = []
    for index, label in enumerate(labels[:limit]):
        kind = ' class="hp-special"' if index < len(special) and special[index] else ""
        shown.append(f'<span{kind} title="token {index}">{e(label)}</span>')
    more = (f' <span class="hp-more">... {len(labels) - limit:,} more tokens</span>'
            if len(labels) > limit else "")
    return f'<div class="hp-tokens">{"".join(shown)}{more}</div>'


def grid(cells: Sequence[Sequence[Cell | None]], *, caption: str = "",
         palette: str = "blue") -> str:
    """A layers x heads table: ``cells[layer][head]`` (0-based; None: no cell), each labelled
    ``L{layer}H{head}`` counted from 1. A grid of more than `MAX_CELLS` cells is left out (a
    line says so)."""
    layers = len(cells)
    heads = max((len(row) for row in cells), default=0)
    if layers * heads > MAX_CELLS:
        return note(f"{caption} (not drawn: {layers} layers x {heads} heads is more than "
                    f"{MAX_CELLS:,} cells)")
    header = "<tr><th></th>" + "".join(f"<th>H{h}</th>" for h in range(1, heads + 1)) + "</tr>"
    rows = [header]
    for layer, row in enumerate(cells, start=1):
        drawn = [f"<th>L{layer}</th>"]
        for head in range(1, heads + 1):
            cell = row[head - 1] if head <= len(row) else None
            drawn.append(_cell(f"L{layer}H{head}", cell, palette))
        rows.append("<tr>" + "".join(drawn) + "</tr>")
    shown = f'<p class="hp-note">{e(caption)}</p>' if caption else ""
    return f'{shown}<table class="hp-heads">{"".join(rows)}</table>'


def _cell(name: str, cell: Cell | None, palette: str) -> str:
    if cell is None:
        return '<td class="none"></td>'
    names = [cell.status] if cell.status else []
    if cell.outlined:
        names.append("hp-outlined")
    attribute = f' class="{e(" ".join(names))}"' if names else ""
    style = f' style="{background(cell.shade, palette)}"' if cell.shade is not None else ""
    title = f' title="{e(cell.title)}"' if cell.title else ""
    lines = e(name) + "".join(f"<small>{e(text)}</small>" for text in (cell.value, cell.note)
                              if text)
    return f"<td{attribute}{style}{title}>{lines}</td>"


def background(shade: float, palette: str = "blue") -> str:
    """An inline CSS background from white (0) to a dark ``palette`` colour (1), with white
    text on the darkest."""
    amount = min(max(float(shade), 0.0), 1.0) if shade == shade else 0.0  # NaN: white
    lightness = round(100 - 58 * amount)
    colour = "#fff" if amount > 0.6 else "#1b1b1b"
    return f"background:hsl({_HUES[palette]},70%,{lightness}%);color:{colour}"


def described(title: str, rows: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """A display that is a title and a list of facts: ``(text, HTML)``."""
    width = max((len(name) for name, _ in rows), default=0)
    text = "\n".join([title, *(f"  {name:<{width}}  {value}" for name, value in rows)])
    return text, page(title, facts(rows))


def model_rows(*, family: str, kind: str, layers: int, heads: int, fingerprint: str,
               max_length: int, mlm_head: bool | None,
               windows: Sequence[int | None] = ()) -> list[tuple[str, str]]:
    """The facts a loaded model shows (the same for a model and its handle)."""
    rows = [("family", family if kind == "checkpoint" else f"{family}, {kind}"),
            ("heads", f"{layers} layers x {heads} heads"),
            ("fingerprint", short_fingerprint(fingerprint)),
            ("max length", f"{max_length:,} tokens"),
            ("masked-LM head", "not known before loading" if mlm_head is None
             else "yes" if mlm_head else "no")]
    local = windows_text(windows)
    if local:
        rows.append(("local layers", local))
    return rows


def bundle(text: str, markup: str, include: Container[str] | None = None,
           exclude: Container[str] | None = None) -> dict[str, str]:
    """IPython's mime bundle: ``text/plain`` and ``text/html``, filtered as asked."""
    found = {"text/plain": text, "text/html": markup}
    return {kind: value for kind, value in found.items()
            if (include is None or kind in include) and (exclude is None or kind not in exclude)}


def short_fingerprint(fingerprint: str, digits: int = 12) -> str:
    """``sha256:0123456789ab...``: enough of it to tell two models apart."""
    kind, _, digest = fingerprint.partition(":")
    if not digest:  # no fingerprint yet: what the model says instead
        return fingerprint
    return f"{kind}:{digest[:digits]}" + ("..." if len(digest) > digits else "")


def one_line(text: str, limit: int = 60) -> str:
    """``text`` on one line (runs of white space as one space), at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def windows_text(windows: Sequence[int | None]) -> str:
    """Which layers are local and how far they reach (``layers 1, 4: 64 tokens each side``);
    empty when every layer sees the whole sentence."""
    reach: dict[int, list[int]] = {}
    for layer, window in enumerate(windows, start=1):
        if window is not None:
            reach.setdefault(window, []).append(layer)
    return "; ".join(f"layer{'s' if len(layers) > 1 else ''} "
                     f"{', '.join(map(str, layers))}: {window} tokens each side"
                     for window, layers in reach.items())


class Display:
    """A display of its own (text and HTML), for what is not an object: ``profile.grid(...)``."""

    def __init__(self, text: str, markup: str) -> None:
        self.text = text
        self.markup = markup

    def __repr__(self) -> str:
        return one_line(self.text.splitlines()[0] if self.text else "", 120)

    def _repr_mimebundle_(self, include: Container[str] | None = None,
                          exclude: Container[str] | None = None) -> dict[str, str]:
        return bundle(self.text, self.markup, include, exclude)
