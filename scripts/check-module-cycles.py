#!/usr/bin/env python3
"""Fails when a module of a workspace crate uses another that uses it back.

For every crate root (crates/*/src/lib.rs, main.rs, bin/*.rs) it walks the
module tree (`mod x;` files and inline `mod x { .. }` blocks), collects each
module's paths into the crate (`crate::a::b`, `super::..`, `self::..`, and
paths through its own child modules), resolves each to the deepest module it
names and reports every strongly connected component of more than one module.
Two kinds of path are not edges: a module's use of its own ancestors below
the crate root (a parent's items are its children's context, as Rust's
privacy rules treat them), and a crate root's `pub use` re-exports (its table
of contents); a path through a re-export is followed to the module that
defines the item. A use of the crate root's own items counts, so the root can
only be a loop's member by defining something its modules need.

Usage: scripts/check-module-cycles.py [REPO_ROOT]
"""

import re
import sys
from pathlib import Path

TOKEN = re.compile(
    r"//[^\n]*|/\*.*?\*/|r(#*)\".*?\"\1|b?\"(?:\\.|[^\"\\])*\"|b?'(?:\\.|[^'\\])'"
    r"|\bmod\s+([A-Za-z_]\w*)\s*([;{])"
    r"|(?<![\w:])((?:[A-Za-z_]\w*\s*::\s*)+)"
    r"|([{}])",
    re.S,
)
PATH_SEG = re.compile(r"[A-Za-z_]\w*")


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of names from the crate root
        self.file = file
        self.children = {}
        self.refs = []  # raw paths (lists of segments) seen in this module


def parse_file(mod, file, modules):
    text = file.read_text()
    # Stack of (module, brace depth at which it opened).
    stack = [(mod, 0)]
    spans = [[0, len(text), mod]]  # where each module's text is, for the pass below
    depth = 0
    # `use a::{b::c, d}` groups: expand the prefix onto each member.
    group_prefix = []  # stack of (prefix segments, depth) for use-groups
    for m in TOKEN.finditer(text):
        cur = stack[-1][0]
        if m.group(2):  # mod declaration
            name, end = m.group(2), m.group(3)
            if end == ";":
                child = load_child(cur, file, name, modules)
                if child:
                    cur.children[name] = child
            else:
                child = Module(cur.path + (name,), file)
                modules[child.path] = child
                cur.children[name] = child
                depth += 1
                stack.append((child, depth))
                spans.append([m.end(), len(text), child])
            continue
        if m.group(4):  # a path `a::b::` (the last segment follows)
            segs = PATH_SEG.findall(m.group(4))
            rest = text[m.end():]
            tail = re.match(r"\s*([A-Za-z_]\w*|\{|\*)", rest)
            if tail and tail.group(1) not in ("{", "*"):
                segs.append(tail.group(1))
            if tail and tail.group(1) == "{":
                group_prefix.append((segs, depth + 1))
                continue  # the members name what is used
            prefix = []
            for p, d in group_prefix:
                if d <= depth and p is not segs:
                    prefix = p
            if prefix and segs[0] not in ("crate", "super", "self"):
                full = prefix + segs
                if full[0] in ("crate", "super", "self") or full[0] in cur.children:
                    cur.refs.append(full)
                    continue
            cur.refs.append(segs)
            continue
        if m.group(5) == "{":
            depth += 1
        elif m.group(5) == "}":
            while group_prefix and group_prefix[-1][1] >= depth:
                group_prefix.pop()
            if len(stack) > 1 and stack[-1][1] == depth:
                done = stack.pop()[0]
                for span in spans:
                    if span[2] is done:
                        span[1] = m.start()
            depth -= 1
    # Bare names inside a use-group (`use crate::{a, b}`): collected above only
    # when followed by `::`; add single-name members.
    for g in re.finditer(r"\buse\s+((?:crate|super|self)(?:::\w+)*)::\{([^{}]*)\}", text):
        base = g.group(1).split("::")
        owner = [sp[2] for sp in spans if sp[0] <= g.start() < sp[1]][-1]
        for member in g.group(2).split(","):
            member = member.strip().split(" as ")[0].strip()
            if re.fullmatch(r"\w+", member) and member != "self":
                owner.refs.append(base + [member])
            elif member == "self":
                owner.refs.append(base)
    return mod


def load_child(parent, file, name, modules):
    if file.name in ("lib.rs", "main.rs", "mod.rs"):
        base = file.parent
    else:
        base = file.parent / file.stem
    for cand in (base / f"{name}.rs", base / name / "mod.rs"):
        if cand.exists():
            child = Module(parent.path + (name,), cand)
            modules[child.path] = child
            return parse_file(child, cand, modules)
    return None


def reexports(root):
    """Names the crate root re-exports (`pub use a::b::{C, D}`): name -> path."""
    out = {}
    text = root.read_text()
    for m in re.finditer(r"^pub use ([\w:]+?)(?:::\{([^}]*)\}|::(\w+));", text, re.M):
        base = m.group(1).split("::")
        for name in (m.group(2) or m.group(3)).split(","):
            name = name.strip()
            if name:
                out[name] = base
    return out


def resolve(mod, segs, modules, exported):
    """The deepest module `segs` names, seen from `mod`, or None."""
    if segs[0] == "crate" and len(segs) > 1 and segs[1] in exported:
        segs = ["crate"] + exported[segs[1]] + segs[2:]
    if segs[0] == "crate":
        path, rest = (), segs[1:]
    elif segs[0] in ("super", "self"):
        path = mod.path
        rest = list(segs)
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                path = path[:-1]
            rest = rest[1:]
    elif segs[0] in mod.children:
        path, rest = mod.path, segs
    else:
        return None
    for s in rest:
        if path + (s,) in modules:
            path = path + (s,)
        else:
            break
    return path


def cycles(graph):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in list(graph):
        if v not in index:
            strong(v)
    return out


def show(path):
    return "::".join(("crate",) + path)


def check_root(root):
    modules = {}
    top = Module((), root)
    modules[()] = top
    parse_file(top, root, modules)
    exported = reexports(root)
    # The root's own re-exports are not its uses.
    top.refs = [r for r in top.refs if r[:-1] not in exported.values() or r[-1] not in exported]
    graph = {}
    why = {}
    for path, mod in modules.items():
        for segs in mod.refs:
            target = resolve(mod, segs, modules, exported)
            if target is None or target == path:
                continue
            if target and path[: len(target)] == target:
                continue  # an ancestor below the root
            graph.setdefault(path, set()).add(target)
            why.setdefault((path, target), "::".join(segs))
    found = []
    for comp in cycles(graph):
        members = set(comp)
        edges = sorted(
            f"  {show(a)} -> {show(b)} ({why[(a, b)]})"
            for a in members
            for b in graph.get(a, ())
            if b in members
        )
        found.append(f"{root}: cycle between {', '.join(sorted(map(show, comp)))}\n" + "\n".join(edges))
    return len(modules), found


def main():
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    roots = []
    for src in sorted(repo.glob("crates/*/src")):
        roots += [p for p in (src / "lib.rs", src / "main.rs") if p.exists()]
        roots += sorted((src / "bin").glob("*.rs"))
    problems, total = [], 0
    for root in roots:
        n, found = check_root(root)
        total += n
        problems += found
    for p in problems:
        print(p)
    if problems:
        print(f"error: {len(problems)} module cycle(s)")
        return 1
    print(f"module cycles: none ({total} modules in {len(roots)} crate roots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
