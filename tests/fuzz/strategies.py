"""Hypothesis strategies for fuzzing what users write: claim strings, expectations, measures,
sentences and whole hypothesis files, valid and broken.

Valid pieces are mixed with the inputs that broke earlier versions: dates and explicit tags in
YAML, numbers with thousands of digits, deep nesting, control characters, lone surrogates,
regexes that backtrack or repeat past any limit, mathtext. Pure: no model, no files.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

HEADS = ["L1H1", "L2H9", "L3H*", "L*H2", "L*H*", "L0H1", "l2h3", "L2H3,L1H1", "L2H",
         "L99999999H1", "L" + "9" * 5000 + "H1", "L1H" + "1" * 30, "L²H1", "L٣H1", "LxH1", ""]
SOURCES = ["token", "mask", "cls", "sep", "word:the|a", "span:adv", "TOKEN", "tok", "next"]
TARGETS = ["next", "previous", "self", "offset:+2", "offset:-3", "offset:2", "cls", "sep",
           "mask", "punct", "same-word", "word:(a+)+b", "span:verb", "offset:" + "9" * 5000,
           "offset:+", "offset:²", "nxt", "token"]
REGEXES = ["the|a", "(a+)+b", "a{4294967296}", "a{1,99999}", "(" * 1000 + "a" + ")" * 1000,
           "(?<=a)b", r"(a)\1", "[", "\\", "$\\frac$", "é+", r"\w+", "a" * 2000, ".*",
           "(?i)x", "\x00", "\ud800"]
NASTY_TEXT = ["2001-02-30", "2001-13-45", "2024-02-30", "!!int zz", "!foo bar",
              "!!python/name:os.system", "1" * 5000, "9" * 4301, "0x" + "f" * 3000, ".nan",
              "-.inf", "1e999", "~", "null", "yes", "no", "<<", "=", "&a x", "*a", "|", ">",
              "'unclosed", '"\\ud800"', '"\\x00"', '"\\u0085"', "\x00", "\x85", "\x7f",
              "\u200b\u200b", "\ufeff", "$\\frac$", "[MASK]", "[x]{y}", "[", "]", "{", "}",
              "\\", "€ 😀 漢字", "a" * 3000, "%", "80%", ">= 0.8", "between 0.2 and 0.5",
              ">= 1" + "0" * 3000, "0." + "0" * 3000 + "1", "topk:²", "topk:" + "9" * 5000]


def _pick(values: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


#: Any text at all, surrogates and control characters included.
any_text = st.text(st.characters(codec=None, categories=None), max_size=60)
pieces = st.one_of(_pick(NASTY_TEXT), any_text, _pick(SOURCES + TARGETS + HEADS))


@st.composite
def claim_texts(draw) -> str:
    """``HEADS: SOURCE -> TARGET`` from valid and broken parts, or any text."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(any_text)
    if choice <= 3:  # valid parts only
        heads = draw(_pick(["L1H1", "L2H*", "L*H1", "L*H*", "L1H1,L2H2"]))
        source = draw(_pick(["token", "mask", "cls", "sep", "word:the|a", "word:(a+)+b",
                             "span:adv", "all"]))
        target = draw(_pick(["next", "previous", "self", "offset:+2", "offset:-3", "cls",
                             "sep", "mask", "punct", "same-word", "word:.*s", "span:verb"]))
        if draw(st.booleans()) and choice == 3:  # no target: measure entropy
            return f"{heads}: {source}"
        return f"{heads}: {source} -> {target}"
    heads = draw(st.one_of(_pick(HEADS), any_text))
    source = draw(st.one_of(_pick(SOURCES), _pick(["word:" + r for r in REGEXES]), pieces))
    target = draw(st.one_of(_pick(TARGETS), _pick(["word:" + r for r in REGEXES]), pieces))
    colon = draw(st.sampled_from([":", ": ", " ", "::", ""]))
    arrow = draw(st.sampled_from([" -> ", "->", " => ", " - > ", ""]))
    return f"{heads}{colon}{source}{arrow}{target}"


expectations = st.one_of(pieces, st.integers(), st.floats(), st.booleans(), st.none())
measures = st.one_of(_pick(["argmax", "mass", "topk:3", "topk:0", "topk:²", "topk:" + "9" * 5000,
                            "top3", "MASS", "entropy", "Entropy ", "entropy:2"]), pieces)
sentences = st.one_of(any_text, pieces, st.lists(pieces, max_size=4).map(" ".join),
                      _pick(["The [cat]{animal} sat.", "A [[MASK]]{obj} fell.", "\u200b",
                             "\x00", "x\ud800y", "[MASK]{obj}", "\\[a\\]"]))


def _scalar(value: object) -> str:
    """``value`` as a YAML scalar: plain when it is a string (raw, unescaped: anything may
    happen), JSON-quoted otherwise."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


VALID_SENTENCES = ["The cat sat on the mat.", "A [dog]{noun} ran [quickly]{adv}.",
                   "Then I picked up a [MASK] from the table.", "It's 3.5% - \"odd\", (yes)!"]
VALID_CLAIMS = ["L1H1: token -> next", "L2H*: token -> cls", "L*H*: word:the|a -> same-word",
                "L1H2,L2H1: span:adv -> span:noun", "L2H3: mask -> offset:-2", "L1H1: cls -> sep",
                "L1H1: token -> punct", "L1H1: all", "L*H*: all -> sep", "L2H2: word:the"]
VALID_EXPECTATIONS = [">= 0.5", "< 0.2", "80%", "between 0.1 and 0.9"]


@st.composite
def valid_hypothesis_files(draw) -> str:
    """A hypothesis file made of valid parts only (it may still be inconsistent)."""
    lines = ["level: " + draw(st.sampled_from(["token", "word"])), "sentences:", "  s:"]
    lines += [f'    - "{t}"' if '"' not in t else f"    - '{t}'" for t in
              draw(st.lists(st.sampled_from(VALID_SENTENCES), min_size=1, max_size=4))]
    lines += ["  t:", '    template: "The [{animal}]{noun} ran [{how}]{adv}."',
              "    slots: {animal: [cat, dog, big horse], how: [fast, slowly]}"]
    if draw(st.booleans()):
        lines.append(f"    generate: {draw(st.integers(1, 20))}")
    lines.append("hypotheses:")
    for index in range(draw(st.integers(1, 4))):
        lines += [f"  - id: c{index}", f'    claim: "{draw(st.sampled_from(VALID_CLAIMS))}"',
                  f"    over: {draw(st.sampled_from(['s', 't', '[s, t]']))}",
                  f'    expect: "{draw(st.sampled_from(VALID_EXPECTATIONS))}"']
        for field, values in draw(st.lists(st.sampled_from([
                ("measure", ["argmax", "mass", "topk:3", "entropy"]),
                ("quantifier", ["each", "any", "none"]), ("average", ["pool", "sentence", "x"]),
                ("per", ["pool", "sentence"]), ("confidence", ["0.9", "0.95"]),
                ("baseline", ["offset"]), ("why", ["because"]), ("xfail", ["known"])]),
                max_size=3, unique_by=lambda pair: pair[0])):
            lines.append(f"    {field}: {draw(st.sampled_from(values))}")
    return "\n".join(lines) + "\n"


@st.composite
def hypothesis_files(draw) -> str:
    """A YAML hypothesis file, built line by line so that nothing is escaped for us; a third of
    them from valid parts only, the rest mixing in broken ones."""
    if draw(st.integers(0, 2)) == 0:
        return draw(valid_hypothesis_files())
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append(f"model: {draw(pieces)}")
    if draw(st.booleans()):
        lines.append(f"level: {draw(st.one_of(_pick(['token', 'word', 'words']), pieces))}")
    lines.append("sentences:")
    for name in draw(st.lists(st.sampled_from(["s", "t", "2001-02-30", "bad name", "u"]),
                              min_size=0, max_size=3, unique=True)):
        lines.append(f"  {name}:")
        kind = draw(st.integers(0, 3))
        if kind == 0:
            for sentence in draw(st.lists(sentences, min_size=0, max_size=4)):
                quote = draw(st.sampled_from(["", '"', "'"]))
                lines.append(f"    - {quote}{sentence}{quote}")
        elif kind == 1:
            lines.append(f"    template: \"The {{a}} sat {draw(pieces)}.\"")
            lines.append(f"    slots: {{a: [{draw(pieces)}, cat]}}")
            lines.append(f"    generate: {_scalar(draw(st.one_of(st.integers(), pieces)))}")
        elif kind == 2:
            path = draw(st.one_of(_pick(["data.txt", "/dev/zero", "/dev/null", "a\x00b", ".",
                                         "/proc/self/mem", "x" * 5000]), pieces))
            lines[-1] = f"  {name}: {path}"
        else:
            lines.append(f"    {draw(pieces)}: {draw(pieces)}")
    lines.append("hypotheses:")
    for _ in range(draw(st.integers(0, 3))):
        lines.append(f"  - id: {draw(st.one_of(_pick(['a', 'b', '2024-02-30', 'x y']), pieces))}")
        if draw(st.booleans()):
            lines.append(f"    claim: \"{draw(claim_texts())}\"")
        else:
            lines.append(f"    claim: {draw(claim_texts())}")
        lines.append(f"    over: {draw(st.one_of(_pick(['s', 't', '[s, t]', '[]']), pieces))}")
        lines.append(f"    expect: {_scalar(draw(expectations))}")
        for field in draw(st.lists(st.sampled_from(
                ["measure", "why", "skip", "xfail", "confidence", "margin", "baseline",
                 "quantifier", "per", "level", "unknown"]), max_size=3, unique=True)):
            value = draw(measures) if field == "measure" else draw(expectations)
            lines.append(f"    {field}: {_scalar(value)}")
    text = "\n".join(lines) + "\n"
    mutation = draw(st.integers(0, 5))
    if mutation == 0:  # nesting far deeper than any file needs
        depth = draw(st.sampled_from([40, 1200, 5000]))
        text += "extra: " + "[" * depth + "]" * depth + "\n"
    elif mutation == 1:  # a character inserted anywhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.one_of(_pick(["\x00", "\x85", "\x9f", "\ud800", "\t", ":",
                                                 "- ", "&a ", "*a", "!!int ", "\n  "]),
                                          any_text)) + text[at:]
    elif mutation == 2:  # merge keys that refer to themselves or explode
        text = "base: &b {<<: *b}\n" + text if draw(st.booleans()) else (
            "a: &a {x: 1, y: 2}\n" + "".join(
                f"a{i}: &a{i} {{<<: [*a{i - 1 if i > 1 else ''}, *a{i - 1 if i > 1 else ''}]}}\n"
                for i in range(1, 40)) + text)
    return text
