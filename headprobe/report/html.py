"""index.html: the report.json of a run as one self-contained page (SPEC §5).

The page needs no network: CSS and JavaScript are inline, figures are referenced by their paths
relative to the page (the same paths report.json holds). Every text that comes from a report —
sentences, ids, claims, labels, file names, models — passes through `html.escape`; figure paths are
also URL-quoted, and a path that is absolute or has a scheme is not linked at all.

The page leads with the outcomes counted as pytest counts them and a layers x heads grid per
model (each head's outcome and value; a click filters the table to that head). The table (with
each claim's expectation as written, and under a failure's outcome why it failed when the value
does not say, such as ``2 of 12 sentences below 0.8 (worst 0.610)``) fits
the page (1,400 px and up: no horizontal scrolling), can be sorted by clicking a header (numbers
as numbers), filtered by a text box and by outcome. Failures are listed after the table with
their why, reproduce command, baseline, every head of an any/none claim, counterexamples and
figures inline, each figure's interactive view (SPEC §16, a self-contained page of its own in
``figures/``) in a sandboxed ``<iframe>`` beside it. When the page has loaded, a small script
counts the figures that loaded and marks those that did not.
"""

from __future__ import annotations

import html
import math
import re
import urllib.parse
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

COLUMNS = ("file", "id", "claim", "head", "measure", "value", "interval", "expected", "n",
           "left out", "result", "baseline")


def render_index_html(report: Mapping[str, Any]) -> str:
    """The whole page for a report.json dict."""
    results = list(report.get("results") or [])
    title = "headprobe report"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _summary(report, results),
        _grids(results),
        _controls(),
        _table(results),
        _details(results),
        f"<script>{_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------
# Pieces of the page.

OUTCOME_KEYS = ("passed", "failed", "xfailed", "xpassed", "skipped", "errors")


def _summary(report: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> str:
    summary = report.get("summary") or {}
    counts = " · ".join(
        f'<span class="{_e(key)}">{_e(summary.get(key, 0))} {_e(key)}</span>'
        for key in OUTCOME_KEYS if key in ("passed", "failed") or summary.get(key))
    models = sorted({str(r.get("model")) for r in results if r.get("model")})
    items = summary.get("items")
    relation = ""
    if isinstance(items, int):
        relation = (f" · {len(results)} results for {items} tests (a YAML claim is one test "
                    f"per head, or one for any/none over all its heads; a Python test may "
                    f"decide several claims)")
    lines = [
        f'<p class="summary">{counts}</p>',
        f'<p class="meta">started {_e(report.get("started", "?"))} · headprobe '
        f'{_e(report.get("headprobe_version", "?"))}{_e(relation)}'
        + (f' · model {", ".join(_e(m) for m in models)}' if models else "") + "</p>",
    ]
    return "\n".join(lines)


_HEAD = re.compile(r"L(\d+)H(\d+)\Z")
_WORST_FIRST = ("error", "failed", "xpassed", "xfailed", "skipped", "passed")


def _grids(results: Sequence[Mapping[str, Any]]) -> str:
    """A layers x heads grid per model: each head's outcome (the worst of its results) and
    value; heads named 1-based, as in claims."""
    by_model: dict[str, dict[tuple[int, int], list[Mapping[str, Any]]]] = defaultdict(
        lambda: defaultdict(list))
    for result in results:
        for name in _heads_of(result):
            match = _HEAD.match(name)
            if match:
                by_model[str(result.get("model", ""))][(int(match[1]), int(match[2]))].append(
                    result)
    parts = []
    for model, cells in by_model.items():
        layers = max(layer for layer, _ in cells)
        heads = max(head for _, head in cells)
        rows = ["<tr><th></th>" + "".join(f"<th>H{h}</th>" for h in range(1, heads + 1))
                + "</tr>"]
        for layer in range(1, layers + 1):
            row = [f"<th>L{layer}</th>"]
            for head in range(1, heads + 1):
                row.append(_grid_cell(f"L{layer}H{head}", cells.get((layer, head), [])))
            rows.append("<tr>" + "".join(row) + "</tr>")
        parts.append(f'<figure class="grid"><figcaption>{_e(model)}: layers x heads — '
                     f'click a head to list its results</figcaption>'
                     f'<table class="heads">{"".join(rows)}</table></figure>')
    return '<div class="grids">' + "".join(parts) + "</div>" if parts else ""


def _heads_of(result: Mapping[str, Any]) -> list[str]:
    listed = [str(h.get("head")) for h in result.get("heads") or [] if isinstance(h, Mapping)]
    return listed or [str(result.get("head", ""))]


def _grid_cell(name: str, results: list[Mapping[str, Any]]) -> str:
    """A head's cell: coloured by the worst outcome of the results that name it as their head
    (an any/none claim lists its other heads without deciding on them: those only add to the
    tooltip); its value when one result names it, else how many results there are."""
    if not results:
        return '<td class="none"></td>'
    own = [r for r in results if r.get("head") == name]
    status = min((outcome(r) for r in own),
                 key=lambda o: _WORST_FIRST.index(o) if o in _WORST_FIRST else 0,
                 default="listed")
    values = [r.get("value") for r in own] or [
        h.get("value") for r in results for h in r.get("heads") or []
        if isinstance(h, Mapping) and h.get("head") == name]
    shown = format_number(values[0]) if len(values) == 1 else f"{len(results)} results"
    title = "; ".join(f'{r.get("id", "")}: {r.get("claim", "")} = {format_number(r.get("value"))}'
                      f' ({outcome(r)})' for r in results)
    return (f'<td class="{_e(status)}" title="{_e(title)}"><a href="#results" '
            f'data-head="{_e(name)}">{_e(name)}<br><small>{_e(shown)}</small></a></td>')


def _controls() -> str:
    return (
        '<div class="controls">'
        '<label>Filter <input id="filter" type="search" placeholder="text in any column, or a '
        'head such as L3H10"></label> '
        '<label>Show <select id="outcome">'
        '<option value="all">all</option><option value="passed">passed</option>'
        '<option value="failed">failed</option><option value="other">other</option>'
        '</select></label> <span id="shown"></span></div>')


def _table(results: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f'<th data-col="{i}" title="click to sort">{_e(name)}</th>'
                   for i, name in enumerate(COLUMNS))
    rows = [_row(index, result) for index, result in enumerate(results)]
    if not rows:
        rows = [f'<tr class="empty"><td colspan="{len(COLUMNS)}">no results</td></tr>']
    return (f'<table id="results"><thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody></table>")


def _row(index: int, result: Mapping[str, Any]) -> str:
    status = outcome(result)
    ident = _e(result.get("id", ""))
    link = f'<a href="#result-{index}">{ident}</a>' if _has_details(result) else ident
    value, interval = result.get("value"), result.get("ci")
    cells = [
        _cell(result.get("file", "")),
        f'<td data-sort="{ident}">{link}</td>',
        _cell(result.get("claim", "")),
        _cell(result.get("head", "")),
        _cell(str(result.get("measure", ""))
              + (" (mean of sentences)" if result.get("average") == "sentence" else "")
              + (f", weighting: {result['weighting']}" if result.get("weighting") else "")),
        _cell(format_number(value), sort=_sort_number(value)),
        _cell(format_interval(interval, result.get("ci_note")),
              sort=_sort_number(interval[0] if _is_pair(interval) else None)),
        _cell(format_expected(result)),
        _cell(_int_text(result.get("n")), sort=_sort_number(result.get("n"))),
        _cell(_int_text(result.get("left_out")), sort=_sort_number(result.get("left_out"))),
        f'<td class="outcome {status}" data-sort="{status}">{_e(status)}{_reason(result)}</td>',
        _cell(format_baseline(result.get("baseline"))),
    ]
    heads = " ".join(_heads_of(result))
    return (f'<tr class="{status}" data-outcome="{status}" data-heads="{_e(heads)}">'
            + "".join(cells) + "</tr>")


def _details(results: Sequence[Mapping[str, Any]]) -> str:
    blocks = [_detail(index, result) for index, result in enumerate(results)
              if _has_details(result)]
    warned = [(index, result) for index, result in enumerate(results)
              if result.get("warnings") and not _has_details(result)]
    parts = ["<h2>Failures</h2>"]
    parts.append("\n".join(blocks) if blocks else '<p class="none">No failures.</p>')
    if warned:
        parts.append('<h2>Warnings</h2>\n<ul class="warnings">')
        parts.extend(f'<li>{_e(r.get("file", ""))} :: {_e(r.get("id", ""))}'
                     f'[{_e(r.get("head", ""))}]: {_e(w)}</li>'
                     for _, r in warned for w in r["warnings"])
        parts.append("</ul>")
    return "\n".join(parts)


def _detail(index: int, result: Mapping[str, Any]) -> str:
    name = f'{result.get("id", "")}[{result.get("head", "")}]'
    lines = [f'<section class="detail {outcome(result)}" id="result-{index}">',
             f'<h3>{_e(result.get("file", ""))} :: {_e(name)}</h3>',
             "<dl>"]
    for key, label in (("claim", "claim"), ("expect", "expected"), ("value", "value"),
                       ("ci", "95% interval"), ("failure", "why it failed"), ("model", "model"),
                       ("level", "level"), ("sentences", "sentences checked"), ("why", "why"),
                       ("reproduce", "reproduce"), ("item", "test"), ("error", "error")):
        if result.get(key) is not None or (key == "ci" and result.get("ci_note")):
            shown = result.get(key)
            if key == "value":
                shown = format_number(shown)
            elif key == "ci":
                shown = format_interval(shown, result.get("ci_note"))
            elif key == "expect":
                shown = format_expected(result)
            lines.append(f"<dt>{_e(label)}</dt><dd>{_e(shown)}</dd>")
    if result.get("baseline"):
        beaten = result.get("baseline_beaten")
        note = "" if beaten is None else (" — beaten" if beaten else " — not beaten")
        lines.append(f"<dt>baseline</dt><dd>{_e(format_baseline(result['baseline']))}"
                     f"{_e(note)}</dd>")
    for warning in result.get("warnings") or []:
        lines.append(f'<dt>warning</dt><dd class="warning">{_e(warning)}</dd>')
    lines.append("</dl>")
    heads = [h for h in result.get("heads") or [] if isinstance(h, Mapping)]
    if heads:
        lines.append(f'<h4>Every matched head ({_e(result.get("quantifier", ""))}), best first'
                     f'</h4><table class="per-head"><tr><th>head</th><th>value</th>'
                     f'<th>interval</th><th>n</th><th>left out</th><th>meets the expectation'
                     f'</th></tr>')
        lines.extend(f'<tr><td>{_e(h.get("head", ""))}</td>'
                     f'<td>{_e(format_number(h.get("value")))}</td>'
                     f'<td>{_e(format_interval(h.get("ci"), h.get("ci_note")))}</td>'
                     f'<td>{_e(_int_text(h.get("n")))}</td>'
                     f'<td>{_e(_int_text(h.get("left_out")))}</td>'
                     f'<td>{"yes" if h.get("passed") else "no"}</td></tr>' for h in heads)
        lines.append("</table>")
    counterexamples = result.get("counterexamples") or []
    if counterexamples:
        lines.append('<h4>Counterexamples</h4><ol class="counterexamples">')
        lines.extend(f"<li>{_counterexample(c)}</li>" for c in counterexamples)
        lines.append("</ol>")
    figures = result.get("figures") or []
    if figures:
        lines.append('<div class="figures">')
        lines.extend(_figure(path, name) for path in figures)
        lines.append("</div>")
    views = result.get("views") or []
    if views:
        lines.append('<h4>Interactive views</h4><p class="meta">Hover, click or focus a token '
                     'on the left to see where the head looks; switch level and weighting '
                     'above each.</p><div class="views">')
        lines.extend(_view(path, name) for path in views)
        lines.append("</div>")
    lines.append("</section>")
    return "\n".join(lines)


def _counterexample(example: Any) -> str:
    if isinstance(example, Mapping):
        text = example.get("sentence", example.get("text", ""))
        rest = ", ".join(f"{k} {format_number(v) if isinstance(v, float) else v}"
                         for k, v in example.items() if k not in ("sentence", "text"))
        return f'<q>{_e(text)}</q>' + (f' <span class="meta">({_e(rest)})</span>' if rest else "")
    return f"<q>{_e(example)}</q>"


def _figure(path: Any, name: str) -> str:
    src = _relative_src(path)
    if src is None:
        return f'<p class="broken">figure not shown (not a relative path): {_e(path)}</p>'
    text = str(path)
    return (f'<figure><a href="{_e(src)}"><img src="{_e(src)}" alt="{_e(name)}: {_e(text)}" '
            f'loading="eager"></a><figcaption>{_e(text)}</figcaption></figure>')


def _view(path: Any, name: str) -> str:
    """An interactive view in a sandboxed frame: its script runs, it reaches nothing else."""
    src = _relative_src(path)
    if src is None:
        return f'<p class="broken">view not shown (not a relative path): {_e(path)}</p>'
    text = str(path)
    return (f'<figure class="view"><iframe src="{_e(src)}" sandbox="allow-scripts" '
            f'title="{_e(name)}: interactive view {_e(text)}" loading="lazy"></iframe>'
            f'<figcaption><a href="{_e(src)}">{_e(text)}</a> (opens on its own)</figcaption>'
            f'</figure>')


def _relative_src(path: Any) -> str | None:
    """``path`` URL-quoted for ``src``/``href``, or None when it is absolute or has a scheme
    (such a path is shown, never linked)."""
    text = str(path)
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme or parsed.netloc or text.startswith(("/", "\\")):
        return None
    return urllib.parse.quote(text.replace("\\", "/"), safe="/")


# --------------------------------------------------------------------------------------------
# Formatting (pure, shared with the tests).

def outcome(result: Mapping[str, Any]) -> str:
    """``passed``, ``failed``, or another outcome (``error``, ``skipped``, ``xfailed`` ...)."""
    explicit = result.get("outcome")
    if explicit:
        return _css_word(str(explicit))
    if result.get("passed") is True:
        return "passed"
    if result.get("passed") is False:
        return "failed"
    return "error"


def format_number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (int, float)):
        return "" if isinstance(value, float) and not math.isfinite(value) else f"{value:.3f}"
    return str(value)


def format_interval(interval: Any, note: Any = None) -> str:
    """``[0.380, 0.445]``, or ``n/a (NOTE)`` without an interval but with a note saying why."""
    if not _is_pair(interval):
        if interval is None:
            return f"n/a ({note})" if note else ""
        return str(interval)
    return f"[{format_number(interval[0])}, {format_number(interval[1])}]"


def format_expected(result: Mapping[str, Any]) -> str:
    """The expectation as written (``>= 0.8``), ``unchanged ± 0.02`` with its tolerance, and
    ``in every sentence`` for ``per: sentence`` (a result that counts ``sentences``)."""
    expect = str(result.get("expect", ""))
    tolerance = result.get("tolerance")
    if expect == "unchanged" and isinstance(tolerance, (int, float)):
        expect += f" ± {tolerance:g}"
    if result.get("sentences") is not None:
        expect += " in every sentence"
    return expect


def _reason(result: Mapping[str, Any]) -> str:
    """Why a failure failed, under its outcome, when it is short enough for the table (an
    unchanged claim's, with both fingerprints, is in the details)."""
    failure = result.get("failure")
    if not failure or result.get("expect") == "unchanged" or outcome(result) == "passed":
        return ""
    return f'<br><small class="reason">{_e(failure)}</small>'


def format_baseline(baseline: Any) -> str:
    if not baseline:
        return ""
    if isinstance(baseline, Mapping):
        offset = baseline.get("offset")
        offset_text = f"{offset:+d}" if isinstance(offset, int) else str(offset)
        return f"offset {offset_text}: {format_number(baseline.get('value'))}"
    return str(baseline)


def _has_details(result: Mapping[str, Any]) -> bool:
    return (outcome(result) in ("failed", "error") or bool(result.get("figures"))
            or bool(result.get("views"))
            or bool(result.get("counterexamples")))


def _is_pair(value: Any) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, (list, tuple)) and len(value) == 2


def _int_text(value: Any) -> str:
    return "" if value is None else str(value)


def _sort_number(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value)) if math.isfinite(value) else None
    return None


def _cell(text: Any, sort: str | None = None) -> str:
    attribute = f' data-sort="{_e(sort)}" data-numeric="1"' if sort is not None else ""
    return f"<td{attribute}>{_e(text)}</td>"


def _css_word(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c == "-") or "other"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#1b1b1b}
h1{margin:0 0 .2em}
.summary{font-size:1.2em}.summary .passed{color:#1a7f37}.summary .failed{color:#c62828}
.meta{color:#555}
.controls{margin:1em 0}.controls input{width:20em}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
#results{width:100%;table-layout:fixed}
#results td{overflow-wrap:anywhere}
#results th:nth-child(1){width:13%}#results th:nth-child(2){width:9%}
#results th:nth-child(3){width:15%}#results th:nth-child(4){width:5%}
#results th:nth-child(5){width:6%}#results th:nth-child(6){width:6%}
#results th:nth-child(7){width:9%}#results th:nth-child(8){width:8%}
#results th:nth-child(9){width:4%}#results th:nth-child(10){width:5%}
#results th:nth-child(11){width:10%}#results th:nth-child(12){width:10%}
.grids{display:flex;flex-wrap:wrap;gap:1.5em;margin:1em 0}
.grid figcaption{font-size:.85em;color:#555;margin-bottom:.3em}
table.heads{font-size:.75em}table.heads td,table.heads th{padding:.15em .3em;text-align:center}
table.heads td a{color:inherit;text-decoration:none;display:block}
table.heads td.passed{background:#dcf3e2}table.heads td.failed{background:#f9d6d5}
table.heads td.xfailed,table.heads td.xpassed{background:#fbeccb}
table.heads td.error{background:#e9c2e9}table.heads td.skipped{background:#eee}
table.heads td.none{background:#fff}table.heads td.listed{background:#e8eef6}
table.per-head{margin:.5em 0}
th{background:#f0f0f0;cursor:pointer;user-select:none;position:sticky;top:0}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td[data-numeric]{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.outcome.passed{color:#1a7f37;font-weight:bold}td.outcome.failed{color:#c62828;font-weight:bold}
td.outcome .reason{font-weight:normal;color:#1b1b1b}
tr.hidden{display:none}
section.detail{border-top:2px solid #c62828;margin-top:1.5em;padding-top:.5em}
section.detail.passed{border-top-color:#1a7f37}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}dd{margin:0}
.figures{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}
figure img{max-width:100%;border:1px solid #ddd}
.views{display:flex;flex-wrap:wrap;gap:1em}
.views iframe{width:min(46em,95vw);height:30em;border:1px solid #ddd}
figcaption{font-size:.8em;color:#555}
.broken{color:#c62828}.warning{color:#8a5a00}
"""

_JS = """
(function(){
  var table=document.getElementById('results');
  var body=table.tBodies[0];
  var filter=document.getElementById('filter');
  var outcome=document.getElementById('outcome');
  var shown=document.getElementById('shown');
  function apply(){
    var text=filter.value.toLowerCase(), want=outcome.value, count=0, total=0;
    var head=/^l\\d+h\\d+$/.test(text.trim())?text.trim().toUpperCase():null;
    Array.prototype.forEach.call(body.rows,function(row){
      if(row.classList.contains('empty')) return;
      total++;
      var o=row.getAttribute('data-outcome');
      var okOutcome=want==='all'||o===want||(want==='other'&&o!=='passed'&&o!=='failed');
      var heads=(row.getAttribute('data-heads')||'').split(' ');
      var okText=!text||(head?heads.indexOf(head)>=0:
                         row.textContent.toLowerCase().indexOf(text)>=0);
      var show=okOutcome&&okText;
      row.classList.toggle('hidden',!show);
      if(show) count++;
    });
    shown.textContent=count+' of '+total+' shown';
  }
  function key(row,col){
    var cell=row.cells[col];
    var raw=cell.getAttribute('data-sort');
    if(cell.hasAttribute('data-numeric')) return parseFloat(raw);
    return (raw===null?cell.textContent:raw).toLowerCase();
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th){
    th.addEventListener('click',function(){
      var col=parseInt(th.getAttribute('data-col'),10);
      var asc=!th.classList.contains('asc');
      Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){
        h.classList.remove('asc','desc');});
      th.classList.add(asc?'asc':'desc');
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=key(a,col), y=key(b,col);
        var xn=typeof x==='number'&&isNaN(x), yn=typeof y==='number'&&isNaN(y);
        if(xn||yn) return xn===yn?0:(xn?1:-1);
        return (x<y?-1:x>y?1:0)*(asc?1:-1);
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll('table.heads a[data-head]'),
    function(a){a.addEventListener('click',function(){
      filter.value=a.getAttribute('data-head'); outcome.value='all'; apply();});});
  filter.addEventListener('input',apply);
  outcome.addEventListener('change',apply);
  apply();
  window.addEventListener('load',function(){
    var images=document.images, loaded=0;
    Array.prototype.forEach.call(images,function(img){
      if(img.complete&&img.naturalWidth>0){loaded++;return;}
      img.classList.add('broken');
      var note=document.createElement('p');
      note.className='broken';
      note.textContent='figure missing: '+img.getAttribute('src');
      img.parentNode.parentNode.appendChild(note);
    });
    document.body.setAttribute('data-images-loaded',loaded+'/'+images.length);
  });
})();
"""
