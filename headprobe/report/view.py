"""The interactive view of where heads look (SPEC §16): one self-contained HTML document.

Pure: a `ViewData` in, a string out; no model, no numpy, no network. The document carries its
numbers as JSON inside ``<script type="application/json">`` and a small hand-written script and
style sheet inline; a Content-Security-Policy forbids every fetch (no scripts, styles, fonts or
images from anywhere), so it works the same from disk, in a report's ``<iframe>`` and in a
notebook's sandboxed ``srcdoc`` frame.

What a reader sees: the sentence's positions twice, the attending ones (queries) on the left
and the attended ones (keys) on the right. Hovering, clicking (pins) or focusing a query shades
each key by the weight it gets, prints the weight beside it (4 decimals), draws lines whose
opacity is the weight and outlines the most-attended key (ties: the first). A head picker, the
token/word level and the weighting (attention, or SPEC §14.1's norm weights) switch what is
shown. For a head of a local layer (SPEC §7c) keys outside the query's window are hatched.
Keyboard: the queries are one tab stop; arrows, Home and End move, Enter or Space pins,
Escape unpins.

Every text from a sentence, a model name or a claim is escaped: headers through `html.escape`,
tokens set by the script as ``textContent``, and the JSON with ``<``, ``>`` and ``&`` written as
``\\u003c`` ... so no ``</script>`` can end it. Several views in one page do not clash: nothing
has an id, and the script works inside each ``.hp-view`` container it finds.

``#pin=N`` in the page's address opens it with position N (counted from 1) pinned;
``#selftest`` makes the script exercise itself after it loads (hover each
query, pin, move by keyboard, switch head, level and weighting) and write what was highlighted
into the container's ``data-hp-selftest`` attribute: the browser tests read it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from headprobe.errors import UsageError

SCALE = 10_000
"""Weights are stored as integers in units of 1/SCALE: rounded to 4 decimals."""

MAX_NUMBERS = 144 * 128 * 128
"""The most weights one view holds, over all its heads, levels and weightings: every head of a
12 x 12 model on a 128-token sentence at one level and one weighting (about 7 MB of HTML)."""

LEVEL_NAMES = ("token", "word")


@dataclass(frozen=True)
class ViewLevel:
    """The positions of the sentence at one level.

    Attributes:
      labels: what each position is called (the wordpiece, or the word's text).
      spans: per position, its first and last token position (for local windows).
      special: per position, whether it is ``[CLS]``, ``[SEP]`` or another special token.
      expected: per position, the positions a claim expects it to attend to (outlined), or
        None when the view shows no claim at this level.
    """

    labels: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    special: tuple[bool, ...]
    expected: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True)
class ViewData:
    """What a view shows.

    Attributes:
      model: the model's name.
      text: the sentence.
      heads: head names (``L2H9``), in the picker's order; the first is shown first.
      halves: per head, how many tokens each side a head of a local layer reaches, or None.
      levels: ``token`` and/or ``word`` -> `ViewLevel`.
      weights: weighting (``attention``, ``norm``) -> level -> per head the ``[query, key]``
        matrix flattened row by row, as integers in units of 1/`SCALE`.
      level, weighting: what is shown first.
      title: a first line (a claim, its value); the view names head, level and model itself.
      notes: more lines under the title.
      pinned: a position (at ``level``) shown pinned when the page opens, or None.
    """

    model: str
    text: str
    heads: tuple[str, ...]
    halves: tuple[int | None, ...]
    levels: Mapping[str, ViewLevel]
    weights: Mapping[str, Mapping[str, Sequence[Sequence[int]]]]
    level: str = "token"
    weighting: str = "attention"
    title: str = ""
    notes: tuple[str, ...] = field(default=())
    pinned: int | None = None

    def __post_init__(self) -> None:
        if not self.heads or len(self.halves) != len(self.heads):
            raise ValueError("a view needs at least one head and one half-window per head")
        if self.level not in self.levels or self.weighting not in self.weights:
            raise ValueError(f"the first level {self.level!r} and weighting {self.weighting!r} "
                             f"must be among the view's")
        if self.pinned is not None and not 0 <= self.pinned < len(self.levels[self.level].labels):
            raise ValueError(f"pinned position {self.pinned} is outside the sentence")
        for weighting, by_level in self.weights.items():
            for level, matrices in by_level.items():
                size = len(self.levels[level].labels)
                if len(matrices) != len(self.heads) or any(len(m) != size * size
                                                           for m in matrices):
                    raise ValueError(f"{weighting}/{level}: expected {len(self.heads)} "
                                     f"matrices of {size} x {size} weights")

    @property
    def numbers(self) -> int:
        """How many weights the view holds."""
        return sum(len(m) for by_level in self.weights.values() for matrices in by_level.values()
                   for m in matrices)


def count_numbers(heads: int, sizes: Sequence[int], weightings: int) -> int:
    """How many weights a view of ``heads`` heads holds, at levels of ``sizes`` positions, in
    ``weightings`` weightings."""
    return heads * weightings * sum(size * size for size in sizes)


def check_size(heads: int, sizes: Sequence[int], weightings: int, *,
               heads_option: str = "heads") -> None:
    """A `UsageError` when such a view would hold more than `MAX_NUMBERS` weights, saying how
    many and what to do; ``heads_option`` names how the caller picks heads."""
    numbers = count_numbers(heads, sizes, weightings)
    if numbers <= MAX_NUMBERS:
        return
    shape = " + ".join(f"{size}²" for size in sizes)
    raise UsageError(
        f"this view would hold {numbers:,} weights ({heads} head{'s' * (heads != 1)} x "
        f"({shape}) positions at {'token and word' if len(sizes) > 1 else 'one'} level"
        f"{'s' * (len(sizes) > 1)} x {weightings} weighting{'s' * (weightings != 1)}); a view "
        f"holds at most {MAX_NUMBERS:,} (144 heads of a 128-token sentence): pick fewer heads "
        f"with {heads_option} (such as 'L2H9' or 'L2H*') or a shorter sentence")


# --------------------------------------------------------------------------------------------
# The document.

def render_view(data: ViewData) -> str:
    """The whole HTML document of ``data``."""
    title = f"headprobe view: {data.heads[0] if len(data.heads) == 1 else 'heads'} — {data.text}"
    if len(title) > 120:
        title = title[:119] + "…"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_POLICY)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title></head>",
        '<body style="margin:0">',
        render_fragment(data),
        "</body></html>",
    ]) + "\n"


def render_fragment(data: ViewData) -> str:
    """The view as one ``<div class="hp-view">`` with its own style and script: several may
    stand in one page."""
    return "\n".join([
        '<div class="hp-view">',
        f"<style>{_CSS}</style>",
        _header(data),
        _controls(data),
        '<p class="hp-readout" aria-live="polite">Hover, click or focus a token on the left '
        "to see where it looks.</p>",
        '<div class="hp-cols"><div class="hp-side"><p class="hp-heading">looks (queries)</p>'
        '<div class="hp-queries" role="group" aria-label="attending tokens (queries): arrows '
        'move, Enter or Space pins"></div></div>'
        '<svg class="hp-lines" aria-hidden="true" width="120" height="0"></svg>'
        '<div class="hp-side"><p class="hp-heading">is looked at (keys)</p>'
        '<div class="hp-keys" role="group" aria-label="attended tokens (keys)"></div></div>'
        "</div>",
        _legend(data),
        '<noscript><p class="hp-note">This view needs JavaScript; its numbers are in the JSON '
        "inside the page.</p></noscript>",
        f'<script type="application/json" class="hp-view-data">{_json(data)}</script>',
        f"<script>{_JS}</script>",
        "</div>",
    ])


def frame_height(data: ViewData) -> int:
    """A fitting height in pixels for an ``<iframe>`` showing ``data`` (its longest level, at
    most 640: the view scrolls inside)."""
    rows = max(len(level.labels) for level in data.levels.values())
    return min(200 + 24 * rows + 24 * len(data.notes), 640)


def iframe(document: str, *, height: int, title: str) -> str:
    """``document`` in a sandboxed ``<iframe srcdoc>`` (scripts run, nothing else is allowed):
    how a notebook shows a view without trusting it."""
    return (f'<iframe srcdoc="{_e(document)}" sandbox="allow-scripts" title="{_e(title)}" '
            f'style="width:100%;height:{int(height)}px;border:1px solid #ddd"></iframe>')


def _header(data: ViewData) -> str:
    lines = []
    if data.title:
        lines.append(f'<p class="hp-title">{_e(data.title)}</p>')
    lines.append(f'<p class="hp-sentence"><q>{_e(data.text)}</q></p>')
    lines.append(f'<p class="hp-note">model {_e(data.model)}</p>')
    lines.extend(f'<p class="hp-note">{_e(note)}</p>' for note in data.notes)
    return '<div class="hp-header">' + "".join(lines) + "</div>"


def _controls(data: ViewData) -> str:
    heads = "".join(
        f'<option value="{i}">{_e(name)}'
        + (f" (local: ±{half} tokens)" if half is not None else "") + "</option>"
        for i, (name, half) in enumerate(zip(data.heads, data.halves)))
    levels = "".join(f'<option value="{_e(level)}"'
                     f'{" selected" if level == data.level else ""}>{_e(level)}</option>'
                     for level in LEVEL_NAMES if level in data.levels)
    weightings = "".join(f'<option value="{_e(name)}"'
                         f'{" selected" if name == data.weighting else ""}>{_e(name)}</option>'
                         for name in data.weights)
    return ('<div class="hp-controls">'
            f'<label>head <select class="hp-head">{heads}</select></label> '
            f'<label>level <select class="hp-level">{levels}</select></label> '
            f'<label>weighting <select class="hp-weighting">{weightings}</select></label>'
            "</div>")


def _legend(data: ViewData) -> str:
    parts = ["keys shaded by weight, the weight beside each",
             "lines as opaque as the weight",
             '<span class="hp-swatch hp-top">boxed</span>: the most-attended key']
    if any(level.expected is not None for level in data.levels.values()):
        parts.append('<span class="hp-swatch hp-expected">dashed</span>: the claim\'s targets')
    if any(half is not None for half in data.halves):
        parts.append('<span class="hp-swatch hp-outside">hatched</span>: outside a local '
                     "head's window (attention 0 by construction)")
    return ('<p class="hp-note hp-legend">' + "; ".join(parts)
            + ". Positions are counted from 1.</p>")


def _json(data: ViewData) -> str:
    """The numbers as JSON that cannot end its ``<script>``: ``<``, ``>`` and ``&`` escaped."""
    payload = {
        "scale": SCALE,
        "heads": list(data.heads),
        "halves": list(data.halves),
        "levels": {name: {"labels": list(level.labels),
                          "spans": [list(span) for span in level.spans],
                          "special": [bool(s) for s in level.special],
                          "expected": None if level.expected is None
                          else [list(e) for e in level.expected]}
                   for name, level in data.levels.items()},
        "weights": {weighting: {level: [list(m) for m in matrices]
                                for level, matrices in by_level.items()}
                    for weighting, by_level in data.weights.items()},
        "level": data.level,
        "weighting": data.weighting,
        "pinned": data.pinned,
    }
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
           "base-uri 'none'; form-action 'none'")

_CSS = """
.hp-view{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
  padding:.6em .8em;font-size:14px;line-height:1.3}
.hp-view p{margin:.2em 0}
.hp-view .hp-title{font-weight:600}
.hp-view .hp-sentence q{font-style:italic}
.hp-view .hp-note{color:#555;font-size:.9em}
.hp-view .hp-controls{margin:.5em 0;display:flex;flex-wrap:wrap;gap:.4em 1em}
.hp-view select{font:inherit}
.hp-view .hp-readout{min-height:2.6em;background:#f4f6f8;border-left:3px solid #2171b5;
  padding:.25em .5em;font-variant-numeric:tabular-nums}
.hp-view .hp-cols{position:relative;display:flex;align-items:flex-start;margin-top:.4em}
.hp-view .hp-queries,.hp-view .hp-keys{display:flex;flex-direction:column}
.hp-view .hp-heading{font-size:.85em;color:#555;height:1.6em;margin:0}
.hp-view .hp-side:first-child .hp-heading{text-align:right}
.hp-view .hp-tok{height:24px;line-height:20px;margin-bottom:2px;padding:1px .4em;
  white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:16em;border-radius:3px;
  box-sizing:border-box;border:1px solid transparent}
.hp-view .hp-q{text-align:right;cursor:pointer}
.hp-view .hp-q:hover{background:#eef3f8}
.hp-view .hp-q:focus{outline:2px solid #2171b5;outline-offset:-1px}
.hp-view .hp-q.hp-active{background:#dbe7f3;font-weight:600}
.hp-view .hp-q.hp-pinned{border-color:#2171b5;background:#c6dbef}
.hp-view .hp-special{color:#777;font-style:italic}
.hp-view .hp-k{display:flex;gap:.6em;min-width:12em;max-width:20em}
.hp-view .hp-k .hp-label{overflow:hidden;text-overflow:ellipsis}
.hp-view .hp-k .hp-num{margin-left:auto;font-variant-numeric:tabular-nums;font-size:.85em}
.hp-view .hp-k.hp-dark{color:#fff}
.hp-view .hp-k.hp-top{border:2px solid #d95f02}
.hp-view .hp-k.hp-expected{outline:2px dashed #1b7837;outline-offset:-3px}
.hp-view .hp-k.hp-outside{color:#999;background-image:repeating-linear-gradient(45deg,
  transparent 0 4px,#e0e0e0 4px 6px)}
.hp-view .hp-lines{flex:none;margin:0 .3em}
.hp-view .hp-lines line{stroke:#2171b5}
.hp-view .hp-swatch{padding:0 .3em;border:1px solid transparent}
.hp-view .hp-swatch.hp-top{border:2px solid #d95f02}
.hp-view .hp-swatch.hp-expected{outline:2px dashed #1b7837}
.hp-view .hp-swatch.hp-outside{background-image:repeating-linear-gradient(45deg,
  transparent 0 4px,#e0e0e0 4px 6px)}
"""

_JS = r"""
(function(){
'use strict';
if(!window.__hpViewErrors){
  window.__hpViewErrors=true;
  window.addEventListener('error',function(e){
    var root=document.documentElement;
    root.setAttribute('data-hp-errors',(root.getAttribute('data-hp-errors')||'')+
      String(e.message)+';');
  });
}
function make(tag,cls,text){
  var e=document.createElement(tag);
  if(cls) e.className=cls;
  if(text!==undefined) e.textContent=text;
  return e;
}
function init(root){
  if(root.getAttribute('data-hp-ready')) return;
  root.setAttribute('data-hp-ready','1');
  var data=JSON.parse(root.querySelector('script.hp-view-data').textContent);
  var S=data.scale;
  var headSel=root.querySelector('select.hp-head');
  var levelSel=root.querySelector('select.hp-level');
  var weightSel=root.querySelector('select.hp-weighting');
  var qcol=root.querySelector('.hp-queries'), kcol=root.querySelector('.hp-keys');
  var svg=root.querySelector('svg.hp-lines'), readout=root.querySelector('.hp-readout');
  var hint=readout.textContent;
  var st={head:0,level:data.level,weighting:data.weighting,hover:null,pinned:null,focus:0,
          focused:false,key:null};
  var qs=[], ks=[];
  function lv(){return data.levels[st.level];}
  function row(q){
    var m=data.weights[st.weighting][st.level][st.head], n=lv().labels.length;
    return m.slice(q*n,(q+1)*n);
  }
  function fmt(v){return (v/S).toFixed(4);}
  function name(i){return '"'+lv().labels[i]+'" (#'+(i+1)+')';}
  function outside(q,k){
    var h=data.halves[st.head];
    if(h===null) return false;
    var a=lv().spans[q], b=lv().spans[k];
    return Math.max(a[0],b[0])-Math.min(a[1],b[1])>h;
  }
  function build(){
    qcol.textContent=''; kcol.textContent=''; qs=[]; ks=[];
    var level=lv();
    level.labels.forEach(function(label,i){
      var q=make('div','hp-tok hp-q',label);
      q.setAttribute('data-pos',i); q.setAttribute('role','button');
      q.setAttribute('aria-pressed','false'); q.title=label;
      var k=make('div','hp-tok hp-k');
      k.setAttribute('data-pos',i);
      k.appendChild(make('span','hp-label',label));
      k.appendChild(make('span','hp-num',''));
      if(level.special[i]){q.classList.add('hp-special'); k.classList.add('hp-special');}
      qcol.appendChild(q); kcol.appendChild(k); qs.push(q); ks.push(k);
    });
    if(st.focus>=qs.length) st.focus=qs.length-1;
    qs.forEach(function(q,i){q.tabIndex=i===st.focus?0:-1;});
  }
  function shown(){
    if(st.hover!==null) return st.hover;
    if(st.pinned!==null) return st.pinned;
    return st.focused?st.focus:null;
  }
  function render(){
    var q=shown(), level=lv(), n=level.labels.length;
    qs.forEach(function(e,i){
      e.classList.toggle('hp-active',i===q);
      e.classList.toggle('hp-pinned',i===st.pinned);
      e.setAttribute('aria-pressed',i===st.pinned?'true':'false');
    });
    while(svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute('height',Math.max(0,Math.ceil(qcol.getBoundingClientRect().bottom-
      svg.getBoundingClientRect().top)));
    root.setAttribute('data-hp-head',data.heads[st.head]);
    root.setAttribute('data-hp-level',st.level);
    root.setAttribute('data-hp-weighting',st.weighting);
    if(q===null){
      ks.forEach(function(k){
        k.classList.remove('hp-top','hp-expected','hp-outside','hp-dark');
        k.style.backgroundColor=''; k.removeAttribute('data-w');
        k.lastChild.textContent=''; k.title=k.firstChild.textContent;
      });
      readout.textContent=hint;
      root.setAttribute('data-hp-shown',''); root.setAttribute('data-hp-top','');
      return;
    }
    var w=row(q), top=0;
    for(var i=1;i<n;i++) if(w[i]>w[top]) top=i;
    var expected=level.expected?level.expected[q]:[];
    var base=svg.getBoundingClientRect().top;
    function middle(e){var r=e.getBoundingClientRect(); return r.top+r.height/2-base;}
    var y0=middle(qs[q]), ys=ks.map(middle);  // read the layout once, before any write
    ks.forEach(function(k,i){
      var v=w[i]/S, out=outside(q,i);
      k.classList.toggle('hp-top',i===top);
      k.classList.toggle('hp-expected',expected.indexOf(i)>=0);
      k.classList.toggle('hp-outside',out);
      k.classList.toggle('hp-dark',v>0.45);
      k.style.backgroundColor=v>0?'rgba(33,113,181,'+v.toFixed(4)+')':'';
      k.setAttribute('data-w',w[i]);
      k.lastChild.textContent=fmt(w[i]);
      k.title=level.labels[q]+' \u2192 '+level.labels[i]+': '+fmt(w[i])+
        (out?' (outside the window of '+data.heads[st.head]+')':'')+
        (expected.indexOf(i)>=0?' (a target of the claim)':'');
      if(v>=0.01&&!out){
        var line=document.createElementNS(svg.namespaceURI,'line');
        line.setAttribute('x1',0); line.setAttribute('y1',y0);
        line.setAttribute('x2',120);
        line.setAttribute('y2',ys[i]);
        line.setAttribute('stroke-opacity',v.toFixed(3));
        line.setAttribute('stroke-width',(1+3*v).toFixed(2));
        svg.appendChild(line);
      }
    });
    var text=data.heads[st.head]+' \u00b7 '+name(q)+' looks most at '+name(top)+': '+
      fmt(w[top]);
    if(st.key!==null&&st.key<n) text+=' \u00b7 on '+name(st.key)+': '+fmt(w[st.key]);
    if(st.pinned!==null) text+=' \u00b7 pinned (Escape or click unpins)';
    readout.textContent=text;
    root.setAttribute('data-hp-shown',q); root.setAttribute('data-hp-top',top);
  }
  function pos(e,cls){
    var t=e.target;
    while(t&&t!==root&&!(t.classList&&t.classList.contains(cls))) t=t.parentNode;
    return t&&t!==root?parseInt(t.getAttribute('data-pos'),10):null;
  }
  function moveTo(i,focus){
    i=Math.max(0,Math.min(qs.length-1,i));
    qs[st.focus].tabIndex=-1; st.focus=i; qs[i].tabIndex=0;
    if(focus){st.focused=true; qs[i].focus();}
  }
  function togglePin(i){st.pinned=st.pinned===i?null:i;}
  qcol.addEventListener('mouseover',function(e){
    var i=pos(e,'hp-q'); if(i===null) return; st.hover=i; render();});
  qcol.addEventListener('mouseleave',function(){st.hover=null; render();});
  qcol.addEventListener('click',function(e){
    var i=pos(e,'hp-q'); if(i===null) return;
    togglePin(i); moveTo(i,true); render();});
  qcol.addEventListener('focusin',function(e){
    var i=pos(e,'hp-q'); if(i===null) return;
    if(i!==st.focus) moveTo(i,false);
    st.focused=true; render();});
  qcol.addEventListener('focusout',function(e){
    if(e.relatedTarget&&qcol.contains(e.relatedTarget)) return;
    st.focused=false; render();});
  qcol.addEventListener('keydown',function(e){
    var i=pos(e,'hp-q'); if(i===null) return;
    var moves={ArrowDown:1,ArrowRight:1,ArrowUp:-1,ArrowLeft:-1};
    if(e.key in moves) moveTo(i+moves[e.key],true);
    else if(e.key==='Home') moveTo(0,true);
    else if(e.key==='End') moveTo(qs.length-1,true);
    else if(e.key==='Enter'||e.key===' '||e.key==='Spacebar') togglePin(i);
    else if(e.key==='Escape') st.pinned=null;
    else return;
    e.preventDefault(); render();});
  kcol.addEventListener('mouseover',function(e){
    var i=pos(e,'hp-k'); if(i===null) return; st.key=i; render();});
  kcol.addEventListener('mouseleave',function(){st.key=null; render();});
  headSel.addEventListener('change',function(){st.head=parseInt(headSel.value,10); render();});
  weightSel.addEventListener('change',function(){st.weighting=weightSel.value; render();});
  levelSel.addEventListener('change',function(){
    var old=lv(), next=data.levels[levelSel.value];
    function map(i){
      if(i===null) return null;
      var token=old.spans[i][0];
      for(var j=0;j<next.spans.length;j++)
        if(next.spans[j][0]<=token&&token<=next.spans[j][1]) return j;
      return 0;
    }
    st.hover=null; st.key=null;
    st.pinned=map(st.pinned); var focus=map(st.focus);
    st.level=levelSel.value; st.focus=focus; build(); render();});
  headSel.disabled=data.heads.length<2;
  levelSel.disabled=Object.keys(data.levels).length<2;
  weightSel.disabled=Object.keys(data.weights).length<2;
  build();
  var pin=/^#pin=(\d+)$/.exec(location.hash);
  var first=pin?+pin[1]-1:data.pinned;  // #pin=N counts from 1, as the page does
  if(first!==null&&first>=0&&first<qs.length){st.pinned=first; moveTo(first,false);}
  render();
  if(location.hash==='#selftest') selftest();
  function hover(i){
    qs[i].dispatchEvent(new MouseEvent('mouseover',{bubbles:true}));
    var most=null, best=-1;
    ks.forEach(function(k,j){var v=+k.getAttribute('data-w'); if(v>best){best=v; most=j;}});
    function marked(cls){
      return ks.map(function(k,j){return k.classList.contains(cls)?j:-1;})
        .filter(function(j){return j>=0;});
    }
    return {most:most, boxed:marked('hp-top'), expected:marked('hp-expected'),
            outside:marked('hp-outside'),
            weights:ks.map(function(k){return k.getAttribute('data-w');}).join(',')};
  }
  function key(i,name){
    qs[i].dispatchEvent(new KeyboardEvent('keydown',{key:name,bubbles:true,cancelable:true}));
    var active=document.activeElement;
    return active&&active.classList.contains('hp-q')?+active.getAttribute('data-pos'):null;
  }
  function selftest(){
    var out={heads:data.heads.slice(),level:st.level,weighting:st.weighting,n:qs.length,
             most:[],boxed:[],expected:[],outside:[],changed:[],labels:lv().labels.slice(),
             initialPinned:st.pinned,initialShown:root.getAttribute('data-hp-shown')};
    st.pinned=null; render();
    var before=null;
    for(var i=0;i<qs.length;i++){
      var seen=hover(i);
      out.most.push(seen.most); out.boxed.push(seen.boxed);
      out.expected.push(seen.expected); out.outside.push(seen.outside);
      out.changed.push(before!==null&&seen.weights!==before);
      before=seen.weights;
    }
    qcol.dispatchEvent(new MouseEvent('mouseleave'));
    out.afterLeave=root.getAttribute('data-hp-shown');
    var a=Math.min(2,qs.length-1), b=Math.min(3,qs.length-1);
    qs[a].dispatchEvent(new MouseEvent('click',{bubbles:true}));
    out.pinnedAfterClick=st.pinned;
    hover(b); qcol.dispatchEvent(new MouseEvent('mouseleave'));
    out.shownAfterPinAndLeave=root.getAttribute('data-hp-shown');
    out.focusAfterArrow=key(a,'ArrowDown');
    out.focusState=st.focus;
    key(st.focus,'Enter'); out.pinnedAfterEnter=st.pinned;
    key(st.focus,'End'); out.focusAfterEnd=st.focus;
    key(st.focus,'Home'); out.focusAfterHome=st.focus;
    key(st.focus,'Escape'); out.pinnedAfterEscape=st.pinned;
    out.keyTitle=ks[0].title;
    if(data.heads.length>1){
      headSel.value='1'; headSel.dispatchEvent(new Event('change'));
      out.secondHead=root.getAttribute('data-hp-head');
      headSel.value='0'; headSel.dispatchEvent(new Event('change'));
    }
    var levels=Object.keys(data.levels);
    out.sizes={};
    levels.forEach(function(name){
      levelSel.value=name; levelSel.dispatchEvent(new Event('change'));
      out.sizes[name]=qs.length;
      out.sizes[name+'Labels']=qs.map(function(q){return q.textContent;});
    });
    levelSel.value=data.level; levelSel.dispatchEvent(new Event('change'));
    out.weightings={};
    Object.keys(data.weights).forEach(function(name){
      weightSel.value=name; weightSel.dispatchEvent(new Event('change'));
      out.weightings[name]=qs.map(function(q,i){return hover(i).weights;}).join(';');
    });
    weightSel.value=data.weighting; weightSel.dispatchEvent(new Event('change'));
    hover(0); out.lines=svg.childNodes.length;
    qcol.dispatchEvent(new MouseEvent('mouseleave'));
    out.resources=(performance.getEntriesByType?
      performance.getEntriesByType('resource').length:-1);
    root.setAttribute('data-hp-selftest',JSON.stringify(out));
  }
}
Array.prototype.forEach.call(document.querySelectorAll('.hp-view'),function(root){
  try{init(root);}catch(err){
    root.setAttribute('data-hp-failed',String(err));
    throw err;
  }
});
})();
"""
