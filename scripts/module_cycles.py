#!/usr/bin/env python3
"""Import cycles between the top-level modules of a Rust crate.

    python3 scripts/module_cycles.py gateway/src     exit 1 and name every cycle, else 0
    python3 scripts/module_cycles.py --edges gateway/src   also print every edge
    python3 scripts/module_cycles.py --self-test     run on the fixtures in
                                                     scripts/fixtures/module_cycles/

A top-level module is a file `src/<name>.rs` or a directory `src/<name>/`
(the crate roots lib.rs and main.rs are not modules). Module `a` names module
`b` when a file of `a` has a path `crate::b...` (also inside `use crate::{...}`
groups) or a `super::` chain that climbs to the crate root and then names `b`.
Comments, string and char literals are skipped, and so are `#[cfg(test)]`
items and the files of `#[cfg(test)] mod x;` (unless --with-tests): a test may
reach across layers, the code that ships may not. The modules of a cycle form
a strongly connected component of that graph; each is reported with one cycle
through all of it and every edge inside it, with the file and line that makes
the edge.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
from pathlib import Path

ROOT_FILES = {"lib.rs", "main.rs"}

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<raw_string>b?r(?P<hashes>\#*)")
  | (?P<string>b?"(?:\\.|[^"\\])*")
  | (?P<char>b?'(?:\\.|[^'\\\n])')
  | (?P<lifetime>'[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>\$?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<path_sep>::)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def tokens(text: str):
    """(kind, value, line) for identifiers, `::` and punctuation; no comments or literals."""
    pos, line = 0, 1
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m is None:  # cannot happen: `punct` matches any character
            pos += 1
            continue
        kind = m.lastgroup
        if kind == "hashes":
            kind = "raw_string"
        end = m.end()
        if kind == "block_comment":  # nested, as Rust's are
            depth, end = 1, m.end()
            while depth and end < len(text):
                if text.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif text.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
        elif kind == "raw_string":
            closing = '"' + m.group("hashes")
            found = text.find(closing, m.end())
            end = len(text) if found < 0 else found + len(closing)
        if kind in ("ident", "path_sep", "punct"):
            yield kind, m.group(0), line
        line += text.count("\n", pos, end)
        pos = end


def module_of(rel: Path) -> list[str]:
    """The module path of a file under src/: quota/memory.rs -> [quota, memory]."""
    parts = list(rel.parts)
    last = parts.pop()
    if parts and parts[0] == "bin":
        return []  # src/bin/*: crates of their own
    if last != "mod.rs" and not (not parts and last in ROOT_FILES):
        parts.append(last[:-3])
    return parts


CFG_TEST = [("punct", "#"), ("punct", "["), ("ident", "cfg"), ("punct", "("), ("ident", "test"), ("punct", ")"), ("punct", "]")]
OPEN, CLOSE = "([{", ")]}"


def item_end(toks, j: int) -> int:
    """The index after the item starting at toks[j]: its `;` or its closing brace."""
    depth = 0
    while j < len(toks):
        val = toks[j][1]
        if val in OPEN:
            depth += 1
        elif val in CLOSE:
            depth -= 1
            if depth == 0 and val == "}":
                return j + 1
        elif val == ";" and depth == 0:
            return j + 1
        j += 1
    return j


def without_tests(toks):
    """The tokens minus `#[cfg(test)]` items, and the names of `#[cfg(test)] mod x;` files."""
    out, test_files, i = [], [], 0
    while i < len(toks):
        if [(k, v) for k, v, _ in toks[i : i + len(CFG_TEST)]] == CFG_TEST:
            j = i + len(CFG_TEST)
            while j + 1 < len(toks) and toks[j][1] == "#" and toks[j + 1][1] == "[":  # more attributes
                j = item_end(toks, j + 1)
            end = item_end(toks, j)
            words = [v for _, v, _ in toks[j:end]]
            if len(words) >= 3 and words[-1] == ";" and words[-3] == "mod":
                test_files.append(words[-2])
            i = end
            continue
        out.append(toks[i])
        i += 1
    return out, test_files


def references(toks, file_module: list[str]):
    """(top-level module named, line, path text) for every crate-rooted path in a file."""
    stack: list[tuple[str, int]] = []  # inline `mod name {` blocks: (name, brace depth inside)
    depth = 0
    i = 0
    while i < len(toks):
        kind, val, line = toks[i]
        if kind == "punct" and val == "{":
            depth += 1
        elif kind == "punct" and val == "}":
            if stack and stack[-1][1] == depth:
                stack.pop()
            depth -= 1
        elif kind == "ident" and val == "mod" and i + 2 < len(toks) and toks[i + 1][0] == "ident" and toks[i + 2][1] == "{":
            stack.append((toks[i + 1][1], depth + 1))
        here = file_module + [name for name, _ in stack]
        prev = toks[i - 1] if i else ("", "", 0)
        starts_path = not (prev[0] == "path_sep")  # `a::crate` is no crate path
        if kind == "ident" and starts_path and val in ("crate", "super") and i + 1 < len(toks) and toks[i + 1][0] == "path_sep":
            j, base = i, None
            if val == "crate":
                base, j = [], i + 2
            else:
                ups = 0
                while j + 1 < len(toks) and toks[j][1] == "super" and toks[j + 1][0] == "path_sep":
                    ups, j = ups + 1, j + 2
                if ups <= len(here):
                    base = here[: len(here) - ups]
            if base is not None and not base:  # the path continues at the crate root
                text = path_text(toks, i)
                for name in names_after(toks, j):
                    yield name, line, text.replace("{...}", f"{{{name}, ...}}")
            i = j if j > i else i + 1
            continue
        i += 1


def names_after(toks, j: int):
    """The first segment(s) of a path at toks[j]: `x` or the items of a `{x, y::z}` group."""
    if j >= len(toks):
        return
    kind, val, _ = toks[j]
    if kind == "ident" and val not in ("self", "super", "crate"):
        yield val
        return
    if val != "{":
        return
    depth, expect = 0, False
    for kind, val, _ in toks[j:]:
        if val == "{":
            depth += 1
            expect = depth == 1
        elif val == "}":
            depth -= 1
            if depth == 0:
                return
        elif depth == 1 and val == ",":
            expect = True
        elif depth == 1:
            if expect and kind == "ident" and val not in ("self", "super", "crate"):
                yield val
            expect = False


def path_text(toks, i: int) -> str:
    """The path at toks[i] as written, up to its first group: `crate::a::{...}`."""
    out = []
    for kind, val, _ in toks[i : i + 16]:
        if kind == "ident" or kind == "path_sep":
            out.append(val)
        elif val == "{":
            out.append("{...}")
            break
        else:
            break
    return "".join(out)


def graph(src: Path, with_tests: bool = False):
    """{module: {other: [(file, line, path), ...]}} over the crate's top-level modules."""
    modules = sorted({
        p.stem if p.is_file() else p.name
        for p in src.iterdir()
        if (p.is_file() and p.suffix == ".rs" and p.name not in ROOT_FILES)
        or (p.is_dir() and p.name != "bin" and any(p.rglob("*.rs")))
    })  # `x.rs` next to `x/` (the 2018 layout) is one module
    edges: dict[str, dict[str, list]] = {m: {} for m in modules}
    files = {}
    test_only: set[tuple[str, ...]] = set()
    for f in sorted(src.rglob("*.rs")):
        path = module_of(f.relative_to(src))
        toks = list(tokens(f.read_text(encoding="utf-8", errors="replace")))
        if not with_tests:
            toks, test_files = without_tests(toks)
            test_only.update(tuple(path + [name]) for name in test_files)
        files[f] = (path, toks)
    for f, (path, toks) in files.items():
        if not path or path[0] not in edges:
            continue  # a crate root, or src/bin
        if any(tuple(path[:n]) in test_only for n in range(1, len(path) + 1)):
            continue  # a file of a #[cfg(test)] module
        owner = path[0]
        for name, line, text in references(toks, path):
            if name in edges and name != owner:
                edges[owner].setdefault(name, []).append((str(f.relative_to(src)), line, text))
    return modules, edges


def components(modules, edges):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def one_cycle(comp, edges):
    """A shortest cycle through the component's first module (breadth-first)."""
    inside = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(edges[node]):
            if nxt not in inside:
                continue
            if nxt == start:
                path = [node]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    return [start]


def report(src: Path, show_edges: bool, out=sys.stdout, with_tests: bool = False) -> int:
    modules, edges = graph(src, with_tests)
    comps = components(modules, edges)
    if show_edges:
        for a in modules:
            for b, where in sorted(edges[a].items()):
                f, line, text = where[0]
                print(f"{a} -> {b}   ({f}:{line}: {text}{f' (+{len(where) - 1} more)' if len(where) > 1 else ''})", file=out)
    if not comps:
        print(f"{src}: {len(modules)} top-level modules, no cycle", file=out)
        return 0
    for comp in comps:
        print(f"cycle of {len(comp)} modules: {', '.join(comp)}", file=out)
        print(f"  for instance {' -> '.join(one_cycle(comp, edges))}", file=out)
        for a in comp:
            for b in sorted(edges[a]):
                if b in comp:
                    f, line, text = edges[a][b][0]
                    more = len(edges[a][b]) - 1
                    print(f"  {a} -> {b}   ({f}:{line}: {text}{f' (+{more} more)' if more else ''})", file=out)
    return 1


def self_test() -> int:
    """The fixtures: a planted cycle must be found (and only it), a DAG must pass."""
    import io

    base = Path(__file__).resolve().parent / "fixtures" / "module_cycles"
    failures = []

    buf = io.StringIO()
    code = report(base / "cycle" / "src", False, buf)
    text = buf.getvalue()
    if code != 1:
        failures.append(f"cycle fixture: exit {code}, expected 1\n{text}")
    expected = [
        "cycle of 3 modules: config, quota, server",
        "config -> server   (config/mod.rs:",
        "quota -> config   (quota/store.rs:",
        "server -> quota   (server.rs:",
    ]
    for want in expected:
        if want not in text:
            failures.append(f"cycle fixture: {want!r} not in the report:\n{text}")
    for not_in in ("error", "telemetry", "decoy"):
        if f"-> {not_in} " in text or f" {not_in} ->" in text:
            failures.append(f"cycle fixture: {not_in} reported in a cycle:\n{text}")

    buf = io.StringIO()
    code = report(base / "dag" / "src", False, buf)
    if code != 0 or "4 top-level modules, no cycle" not in buf.getvalue():
        failures.append(f"dag fixture: exit {code}, expected 0 and 4 modules\n{buf.getvalue()}")
    _, edges = graph(base / "dag" / "src")
    want_edges = {("app", "config"), ("app", "server"), ("server", "config"), ("config", "error"), ("server", "error")}
    got = {(a, b) for a, bs in edges.items() for b in bs}
    if got != want_edges:
        failures.append(f"dag fixture: edges {sorted(got)}, expected {sorted(want_edges)}")

    # what is skipped as test code is really there: counted with --with-tests
    _, edges = graph(base / "cycle" / "src", with_tests=True)
    if not {"config", "server"} <= set(edges["decoy"]):
        failures.append(f"cycle fixture --with-tests: decoy's test edges missing: {sorted(edges['decoy'])}")
    buf = io.StringIO()
    if report(base / "dag" / "src", False, buf, with_tests=True) != 1 or "config -> app" not in buf.getvalue():
        failures.append(f"dag fixture --with-tests: the test-only back edge config -> app not found:\n{buf.getvalue()}")

    for f in failures:
        print(f"module_cycles self-test: FAIL: {f}", file=sys.stderr)
    if not failures:
        print("module_cycles self-test: ok (planted cycle found, DAG passes)")
    return 1 if failures else 0


def main() -> int:
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends quietly
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?", help="the crate's src directory (e.g. gateway/src)")
    ap.add_argument("--edges", action="store_true", help="print every edge between top-level modules")
    ap.add_argument("--with-tests", action="store_true", help="count #[cfg(test)] code too")
    ap.add_argument("--self-test", action="store_true", help="check this script on its fixtures")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.src:
        ap.error("give the crate's src directory, or --self-test")
    src = Path(args.src)
    if not src.is_dir():
        ap.error(f"{src} is not a directory")
    return report(src, args.edges, with_tests=args.with_tests)


if __name__ == "__main__":
    sys.exit(main())
