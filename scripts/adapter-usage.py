#!/usr/bin/env python3
"""Which public items of the adapters have a user outside tests.

    scripts/adapter-usage.py            report: used/total per crate, then the unused items
    scripts/adapter-usage.py --verbose  also the evidence (file:line) for every used item
    scripts/adapter-usage.py --check    exit 1 when any item is unused (the report exits 0)

The items come from the public API listings (api/rustkernel-tokio.txt, api/rustkernel-embassy.txt,
written by scripts/public-api.sh). One item is one of:
  - a type (struct, enum, union, type alias), trait, const, static or free function, by its path;
    a type listed at several paths (`resilience::CircuitBreaker` is `breaker::CircuitBreaker`)
    is one item;
  - an inherent method or associated function (`CircuitBreaker::call`), and a method of one of
    the crate's own traits (`HealthCheck::check`);
  - a re-export of another crate's item (`pub use rustkernel_tokio::resilience::ErrorKind`), one
    item per name however many modules re-export it.
Modules, fields, enum variants and implementations of traits (`Debug`, `Clone`, `From`, `Layer`,
`Service`, ...) are not counted on their own: they come with their type.

The users are the code that is neither a test nor a benchmark: host/src (the `rustkernel`
service and the GPU worker), host/examples, firmware-examples/src and adapters/*/examples.
`tests/` folders and items under `#[cfg(test)]` are left out, as are comments (doc links
included) and the contents of string literals.

How an item counts as used (a name match in a path or type context, not type checking):
  - a path in the user's code resolves to the item through the file's `use` declarations
    (`use rustkernel_tokio::clock; clock::now()`, renames, groups and globs) or spells it out
    (`rustkernel_tokio::clock::now()`); `T::f` also uses `T`;
  - a method `T::m` is called as `.m(` on a receiver declared with type `T` anywhere in the
    package (`probe: Arc<HealthProbe>` in one file, `state.probe.record(..)` in another; a
    field, binding, parameter, static, or a function returning it); or in a file that knows
    `T` (the file names `T`, or a function or method it uses returns `T` or hands one to a
    closure, transitively), unless the receiver is one of the file's statics or consts (whose
    type is known: only a static of type `T` counts for `T`), or what a method of the crate
    returned (`T::builder(..).name(..)` is a call on the builder, not on `T`);
  - a trait method is called as `.m(` in a file that names the trait (a trait must be in scope
    for its methods), or defined in that file's `impl Trait for ..` block;
  - a type is also used when an item that is used returns it, gives it to a closure, or names it
    as an associated type of one of its trait implementations (`Layer::Service`, `Future`).
The match can err both ways (a `.state(` on another type with a method of that name in a file
that knows `T`; a value that crosses files without its type being named): `--verbose` shows
the line that made each item count, to check by eye.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CRATES = {
    "rustkernel-tokio": ("rustkernel_tokio", "api/rustkernel-tokio.txt"),
    "rustkernel-embassy": ("rustkernel_embassy", "api/rustkernel-embassy.txt"),
}

# User code: (folder, glob). Folders named `tests` anywhere under these are skipped.
USER_DIRS = [
    ("host/src", "**/*.rs"),
    ("host/examples", "**/*.rs"),
    ("firmware-examples/src", "**/*.rs"),
    ("adapters/tokio/examples", "**/*.rs"),
    ("adapters/embassy/examples", "**/*.rs"),
]

TYPE_KINDS = {"struct", "enum", "union", "trait", "type", "const", "static", "fn"}
ITEM_LINE = re.compile(
    r"pub (?:(?:const|async|unsafe|extern \"C\") )*"
    r"(struct|enum|union|trait|type|const|static|fn|use|mod) (.*)$"
)


# ---------------------------------------------------------------------------------------------
# The listings


def split_top(text: str, sep: str) -> list[str]:
    """Splits `text` on `sep` outside <>, (), [] (a `->` is not a closing bracket)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        c = text[i]
        if c in "<([":
            depth += 1
        elif c in ")]" or (c == ">" and text[i - 1 : i] != "-"):
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def strip_generics(segment: str) -> str:
    return segment.split("<", 1)[0].strip()


def path_head(text: str) -> str:
    """The item path at the start of `text`: up to the parameter list, a `: type`, ` = `, or a
    space outside brackets."""
    depth, i = 0, 0
    while i < len(text):
        c = text[i]
        if c in "<[":
            depth += 1
        elif c == "]" or (c == ">" and text[i - 1 : i] != "-"):
            depth -= 1
        elif depth == 0 and c in "( ":
            break
        elif depth == 0 and c == ":" and ":" not in (text[i + 1 : i + 2], text[i - 1 : i]):
            break
        i += 1
    return text[:i]


def crate_paths(text: str, crate: str) -> set[str]:
    """Every `crate::a::B` path spelled in `text`, without generics."""
    return set(re.findall(rf"\b{crate}(?:::[A-Za-z_][A-Za-z0-9_]*)+", text))


@dataclass
class Item:
    crate: str
    kind: str  # struct, enum, trait, type, const, static, fn, method, trait-method, re-export
    name: str
    paths: set[str]  # every path the item is reachable at (no generics)
    owner: str | None = None  # a method's type or trait, canonical path
    signature: str = ""
    assoc: set[str] = field(default_factory=set)  # paths named by its trait impls' assoc types
    key: str = ""  # the canonical path
    evidence: list[str] = field(default_factory=list)

    @property
    def display(self) -> str:
        return self.key


def parse_listing(crate_name: str, lib: str, text: str) -> list[Item]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    modules = {line.split()[-1] for line in lines if line.startswith("pub mod ")}

    defs: dict[tuple, list[str]] = {}  # (kind, name, rest) -> paths
    reexports: dict[str, set[str]] = {}
    methods: dict[tuple, tuple] = {}  # (owner path, name) -> (kind, signature)
    assoc: dict[str, set[str]] = {}  # owner path -> paths named by assoc types of its impls
    context = None  # ("inherent", owner) | ("impl", owner) | ("trait", path)

    for raw in lines:
        line = re.sub(r"^(#\[[^\]]*\]\s*)+", "", raw)
        if line.startswith("impl"):
            # impl<...> Trait for Type  |  impl<...> Type
            rest = line[4:]
            if rest.startswith("<"):
                depth = 0
                for i, c in enumerate(rest):
                    if c == "<":
                        depth += 1
                    elif c == ">" and rest[i - 1] != "-":
                        depth -= 1
                        if depth == 0:
                            rest = rest[i + 1 :]
                            break
            rest = split_top(rest.strip(), " where ")[0]
            parts = split_top(rest, " for ")
            if len(parts) == 2:
                owner = "::".join(strip_generics(s) for s in split_top(parts[1].strip(), "::"))
                context = ("impl", owner)
            else:
                owner = "::".join(strip_generics(s) for s in split_top(parts[0].strip(), "::"))
                context = ("inherent", owner)
            continue
        m = ITEM_LINE.match(line)
        if not m:
            continue  # a field or an enum variant
        kind, rest = m.group(1), m.group(2)
        if kind == "mod":
            context = None
            continue
        if kind == "use":
            path = rest.strip()
            reexports.setdefault(path.rsplit("::", 1)[-1], set()).add(path)
            continue
        if kind == "static" and rest.startswith("mut "):
            rest = rest[4:]
        head = path_head(rest)
        segments = [strip_generics(s) for s in split_top(head, "::")]
        path = "::".join(segments)
        parent = "::".join(segments[:-1])
        if not path.startswith(lib):
            # `&'static T::m`, `F::check`: implementations for types that are not the crate's
            continue
        if parent in modules or parent == lib:
            context = ("trait", path) if kind == "trait" else None
            defs.setdefault((kind, segments[-1], rest[len(head) :]), []).append(path)
            continue
        # a member of a type or trait
        if kind == "type":
            # associated type: `type Service = X` in a trait impl names a type the user gets
            if context and context[0] == "impl" and " = " in rest:
                assoc.setdefault(parent, set()).update(crate_paths(rest.split(" = ", 1)[1], lib))
            continue
        if kind not in ("fn", "const"):
            continue
        if context and context[0] == "trait" and parent == context[1]:
            methods[(parent, segments[-1])] = ("trait-method", rest)
        elif context and context[0] == "inherent" and context[1] == parent:
            methods[(parent, segments[-1])] = ("method", rest)
        # else: a method of a trait implementation, counted with its type

    # One item per definition listed at several paths; the canonical path is the one the
    # listing spells most often (rustdoc writes signatures and owners with it).
    # On a tie, the module that defines things of its own rather than one that gathers
    # re-exports (`breaker::CircuitBreaker`, not `resilience::CircuitBreaker`).
    own: dict[str, int] = {}
    for paths in defs.values():
        if len(paths) == 1:
            module = paths[0].rsplit("::", 1)[0]
            own[module] = own.get(module, 0) + 1
    items: list[Item] = []
    canonical: dict[str, str] = {}
    for (kind, name, rest), paths in defs.items():
        best = max(
            paths,
            key=lambda p: (
                len(re.findall(re.escape(p) + r"\b", text)),
                own.get(p.rsplit("::", 1)[0], 0),
                p.count("::"),
                p,
            ),
        )
        for p in paths:
            canonical[p] = best
        items.append(Item(crate_name, kind, name, set(paths), signature=rest, key=best))
    for name, paths in reexports.items():
        key = min(paths, key=lambda p: (p.count("::"), p))
        items.append(Item(crate_name, "re-export", name, set(paths), key=key))
    by_canonical = {}
    for item in items:
        for p in item.paths:
            by_canonical[p] = item
    merged = {}
    for (owner, name), value in methods.items():
        merged.setdefault((canonical.get(owner, owner), name), value)
    for (owner, name), (kind, signature) in merged.items():
        owner_item = by_canonical.get(owner)
        owner_paths = owner_item.paths if owner_item else {owner}
        items.append(
            Item(
                crate_name,
                kind,
                name,
                {f"{p}::{name}" for p in owner_paths},
                owner=owner,
                signature=signature,
                key=f"{owner}::{name}",
            )
        )
    for owner, named in assoc.items():
        owner = canonical.get(owner, owner)
        if owner in by_canonical:
            by_canonical[owner].assoc |= {canonical.get(p, p) for p in named}
    return items


# ---------------------------------------------------------------------------------------------
# User code: a small Rust lexer, `#[cfg(test)]` removal, `use` trees, paths


@dataclass
class Tok:
    kind: str  # ident, punct, lit, lifetime
    text: str
    line: int


IDENT = re.compile(r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*")


def lex(src: str) -> list[Tok]:
    toks, i, line, n = [], 0, 1, len(src)
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += src[i] == "\n"
                    i += 1
        elif (m := re.match(r'(?:b|c)?r(#*)"', src[i:])) is not None:
            end = src.find('"' + m.group(1), i + m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            line += src.count("\n", i, end)
            toks.append(Tok("lit", '""', line))
            i = end
        elif c == '"' or (c in "bc" and src[i + 1 : i + 2] == '"'):
            j = i + (1 if c == '"' else 2)
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            line += src.count("\n", i, j)
            toks.append(Tok("lit", '""', line))
            i = j + 1
        elif c == "'" or (c == "b" and src[i + 1 : i + 2] == "'"):
            j = i + (1 if c == "'" else 2)
            if src[j : j + 1] == "\\":
                k = src.find("'", j + 2)
                toks.append(Tok("lit", "''", line))
                i = k + 1
            elif src[j + 1 : j + 2] == "'":
                toks.append(Tok("lit", "''", line))
                i = j + 2
            else:
                m = IDENT.match(src, j)
                toks.append(Tok("lifetime", "'" + (m.group(0) if m else ""), line))
                i = m.end() if m else j
        elif c.isdigit():
            m = re.compile(r"[0-9][0-9A-Za-z_]*(?:\.[0-9][0-9A-Za-z_]*)?").match(src, i)
            toks.append(Tok("lit", m.group(0), line))
            i = m.end()
        elif (m := IDENT.match(src, i)) is not None:
            toks.append(Tok("ident", m.group(0).removeprefix("r#"), line))
            i = m.end()
        elif src.startswith("::", i):
            toks.append(Tok("punct", "::", line))
            i += 2
        else:
            toks.append(Tok("punct", c, line))
            i += 1
    return toks


def skip_group(toks: list[Tok], i: int) -> int:
    """From an opening bracket at `i`, the index after its match."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[toks[i].text]]
    i += 1
    while i < len(toks) and stack:
        t = toks[i].text
        if t in pairs:
            stack.append(pairs[t])
        elif stack and t == stack[-1]:
            stack.pop()
        i += 1
    return i


def is_test_attr(inner: list[str]) -> bool:
    """`cfg(test)`, `cfg(all(test, ..))`: the attribute keeps the item out of non-test builds."""
    if not inner or inner[0] != "cfg" or "test" not in inner:
        return False
    return "not" not in inner and "any" not in inner


def strip_test_items(toks: list[Tok]) -> list[Tok]:
    out, i = [], 0
    while i < len(toks):
        t = toks[i]
        if t.text == "#" and [x.text for x in toks[i + 1 : i + 3]] == ["!", "["]:
            end = skip_group(toks, i + 2)
            if is_test_attr([x.text for x in toks[i + 3 : end - 1]]):
                return []  # `#![cfg(test)]`: the whole file
        if t.text == "#" and i + 1 < len(toks) and toks[i + 1].text == "[":
            end = skip_group(toks, i + 1)
            if is_test_attr([x.text for x in toks[i + 2 : end - 1]]):
                j = end
                while j < len(toks) and toks[j].text == "#":  # further attributes
                    j = skip_group(toks, j + 1)
                while j < len(toks) and toks[j].text not in ("{", ";"):
                    j = skip_group(toks, j) if toks[j].text in "([" else j + 1
                i = skip_group(toks, j) if j < len(toks) and toks[j].text == "{" else j + 1
                continue
        out.append(t)
        i += 1
    return out


def parse_use_tree(
    toks: list[Tok], i: int, prefix: list[str], imports: dict, globs: list, line: int
) -> int:
    """Parses one use tree at `i` under `prefix`; returns the index after it."""
    path = list(prefix)
    while i < len(toks):
        t = toks[i].text
        if t == "{":
            i += 1
            while i < len(toks) and toks[i].text != "}":
                i = parse_use_tree(toks, i, path, imports, globs, line)
                if i < len(toks) and toks[i].text == ",":
                    i += 1
            return i + 1
        if t == "*":
            globs.append(path)
            return i + 1
        if t == "::":
            i += 1
            continue
        if toks[i].kind == "ident":
            if t == "self" and path:
                imports[path[-1]] = (path, line)
                i += 1
                if i < len(toks) and toks[i].text == "as":
                    imports[toks[i + 1].text] = (path, line)
                    i += 2
                return i
            path.append(t)
            i += 1
            if i < len(toks) and toks[i].text == "as":
                imports[toks[i + 1].text] = (path, line)
                return i + 2
            if i >= len(toks) or toks[i].text != "::":
                imports[path[-1]] = (path, line)
                return i
            continue
        return i + 1
    return i


@dataclass
class UserFile:
    path: str
    package: str  # host, firmware-examples, adapters/tokio, ...
    refs: list[tuple[str, int]]  # (resolved path, line)
    calls: list[tuple[str, str | None, int]]  # `.name(`: (name, receiver `x` or `x()`, line)
    impls: list[tuple[str, set[str]]]  # (resolved trait path, fn names defined in the block)
    typed: dict[str, set[str]]  # field, binding or fn name -> resolved paths in its declared type
    statics: set[str]  # names of the file's statics and consts, whatever their type


def receiver_name(body: list[Tok], dot: int) -> str | None:
    """The name a method call's receiver ends with: `probe` in `state.probe.record(`,
    `probe()` in `state.probe().record(`, through `?` and `.await`."""
    j = dot - 1
    while j >= 0:
        t = body[j].text
        if t == "?":
            j -= 1
        elif t == "await" and j > 0 and body[j - 1].text == ".":
            j -= 2
        elif t == ")":
            depth = 0
            while j >= 0:
                depth += {")": 1, "(": -1}.get(body[j].text, 0)
                if depth == 0:
                    break
                j -= 1
            j -= 1
            return body[j].text + "()" if j >= 0 and body[j].kind == "ident" else None
        else:
            return t if body[j].kind == "ident" else None
    return None


def type_span(body: list[Tok], i: int) -> int:
    """From the start of a type (or field value) at `i`, the index where it ends."""
    depth = 0
    while i < len(body):
        t = body[i].text
        if t in "([{<":
            if t == "{" and depth == 0:
                return i
            depth += 1
        elif t in ")]}" or (t == ">" and body[i - 1].text != "-"):
            if depth == 0:
                return i
            depth -= 1
        elif depth == 0 and t in (",", ";", "=", "|", "where"):
            return i
        i += 1
    return i


def analyse(path: Path, libs: set[str], known_paths: set[str]) -> UserFile:
    toks = strip_test_items(lex(path.read_text(encoding="utf-8")))
    imports: dict[str, tuple[list[str], int]] = {}
    globs: list[list[str]] = []
    body: list[Tok] = []
    i = 0
    while i < len(toks):
        if toks[i].text == "use" and toks[i].kind == "ident":
            j = i + 1
            if j < len(toks) and toks[j].text == "::":
                j += 1
            j = parse_use_tree(toks, j, [], imports, globs, toks[i].line)
            while j < len(toks) and toks[j].text != ";":
                j += 1
            i = j + 1
            continue
        body.append(toks[i])
        i += 1

    def resolve(segments: list[str]) -> list[str] | None:
        head = segments[0]
        if head in libs:
            return segments
        if head in imports and imports[head][0][0] in libs:
            return imports[head][0] + segments[1:]
        for g in globs:
            if g and g[0] in libs and "::".join(g + [head]) in known_paths:
                return g + segments
        return None

    refs = [("::".join(full), line) for full, line in imports.values() if full and full[0] in libs]
    at: dict[int, str] = {}  # body index -> resolved path starting there
    calls: list[tuple[str, str | None, int]] = []
    impls: list[tuple[str, set[str]]] = []
    for i, t in enumerate(body):
        prev = body[i - 1].text if i else ""
        if t.kind != "ident":
            continue
        if prev == "." and i + 1 < len(body) and body[i + 1].text in ("(", "::"):
            calls.append((t.text, receiver_name(body, i - 1), t.line))
        if prev in ("::", "."):
            continue
        segments, j = [t.text], i + 1
        while j + 1 < len(body) and body[j].text == "::":
            if body[j + 1].text == "<":  # turbofish: skip the generic arguments
                depth, k = 0, j + 1
                while k < len(body):
                    depth += {"<": 1, ">": -1}.get(body[k].text, 0)
                    k += 1
                    if depth == 0:
                        break
                j = k
                continue
            if body[j + 1].kind != "ident":
                break
            segments.append(body[j + 1].text)
            j += 2
        full = resolve(segments)
        if full:
            at[i] = "::".join(full)
            refs.append((at[i], t.line))
        if t.text == "impl":
            # impl<..> Trait<..> for Type { fn .. }
            k = i + 1
            if k < len(body) and body[k].text == "<":
                depth = 0
                while k < len(body):
                    depth += {"<": 1, ">": -1}.get(body[k].text, 0)
                    k += 1
                    if depth == 0:
                        break
            start = k
            while k < len(body) and body[k].text not in ("{", ";", "for"):
                k += 1
            if k < len(body) and body[k].text == "for":
                segs, depth = [], 0  # the trait's path: idents outside its generic arguments
                for x in body[start:k]:
                    if x.text == "<":
                        depth += 1
                    elif x.text == ">":
                        depth -= 1
                    elif depth == 0 and x.kind == "ident":
                        segs.append(x.text)
                trait = resolve(segs) if segs else None
                while k < len(body) and body[k].text != "{":
                    k += 1
                if trait and k < len(body):
                    end = skip_group(body, k)
                    fns = {body[x + 1].text for x in range(k, end - 1) if body[x].text == "fn"}
                    impls.append(("::".join(trait), fns))

    # Names declared with a type: `probe: Arc<HealthProbe>` (a field, parameter or binding) and
    # `fn probe(&self) -> &HealthProbe`; a method called on `x.probe` or `x.probe()` in another
    # file of the package is then a method of that type.
    typed: dict[str, set[str]] = {}
    statics: set[str] = set()
    for i, t in enumerate(body[:-1]):
        span = None
        if t.kind == "ident" and body[i + 1].text == ":" and (i == 0 or body[i - 1].text != ":"):
            span = (i + 2, type_span(body, i + 2))
            before = [x.text for x in body[max(i - 2, 0) : i]]
            if before[-1:] in (["static"], ["const"]) or before == ["static", "mut"]:
                statics.add(t.text)
        elif t.text == "fn" and body[i + 1].kind == "ident":
            k = i + 2
            if k < len(body) and body[k].text == "<":
                depth = 0
                while k < len(body):
                    depth += {"<": 1, ">": -1}.get(body[k].text, 0)
                    k += 1
                    if depth == 0:
                        break
            if k < len(body) and body[k].text == "(":
                k = skip_group(body, k)
                if k + 1 < len(body) and body[k].text == "-" and body[k + 1].text == ">":
                    span = (k + 2, type_span(body, k + 2))
            t = body[i + 1]
        if span:
            found = {at[x] for x in range(*span) if x in at}
            if found:
                typed.setdefault(t.text, set()).update(found)
    rel = path.relative_to(ROOT)
    package = "/".join(rel.parts[:2]) if rel.parts[0] == "adapters" else rel.parts[0]
    return UserFile(str(rel), package, refs, calls, impls, typed, statics)


def user_files() -> list[Path]:
    files = []
    for folder, pattern in USER_DIRS:
        base = ROOT / folder
        if base.is_dir():
            for p in sorted(base.glob(pattern)):
                if "tests" not in p.relative_to(ROOT).parts:
                    files.append(p)
    return files


# ---------------------------------------------------------------------------------------------
# Matching


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when any item is unused")
    parser.add_argument("--verbose", action="store_true", help="show why each used item counts")
    args = parser.parse_args()

    items: list[Item] = []
    for crate, (lib, listing) in CRATES.items():
        items += parse_listing(crate, lib, (ROOT / listing).read_text(encoding="utf-8"))
    libs = {lib for lib, _ in CRATES.values()}
    known_paths = {p for item in items for p in item.paths}
    known_paths |= {p.rsplit("::", 1)[0] for p in known_paths}  # modules and owners
    by_path: dict[str, Item] = {}
    for item in items:
        for p in item.paths:
            by_path.setdefault(p, item)
    types = {p: item for p, item in by_path.items() if item.kind in TYPE_KINDS | {"re-export"}}

    def lookup(ref: str) -> list[Item]:
        """The item a resolved path names, and its type when it names a member of one."""
        found = []
        if ref in by_path:
            found.append(by_path[ref])
        owner = ref.rsplit("::", 1)[0]
        if owner in types:
            found.append(types[owner])
        return found

    def returned_types(item: Item) -> set[str]:
        """The crate's types in `item`'s return type (`Self` is its owner)."""
        out = set()
        ret = split_top(item.signature, " -> ")
        if item.kind in ("fn", "method", "trait-method") and len(ret) > 1:
            ret_text = split_top(ret[1], " where ")[0]
            out |= crate_paths(ret_text, item.crate.replace("-", "_"))
            if re.search(r"\bSelf\b", ret_text) and item.owner:
                out.add(item.owner)
        return {types[p].key for p in out if p in types}

    def named_types(item: Item) -> set[str]:
        """Types a user gets from `item` without naming them: its return type, the arguments of
        closures it calls, its trait impls' associated types."""
        out = set(item.assoc) | returned_types(item)
        if item.kind in ("fn", "method", "trait-method"):
            for closure in re.findall(r"\bFn(?:Mut|Once)?\(([^)]*)\)", item.signature):
                out |= crate_paths(closure, item.crate.replace("-", "_"))
        return {p for p in out if p in types}

    used: dict[int, list[str]] = {}

    def mark(item: Item, why: str) -> None:
        used.setdefault(id(item), []).append(why)

    files = [analyse(p, libs, known_paths) for p in user_files()]
    members: dict[str, list[Item]] = {}
    for item in items:
        if item.owner:
            members.setdefault(item.owner, []).append(item)
    # per package: a declared name -> the crate's types in its declared type
    typed: dict[tuple[str, str], set[str]] = {}
    for f in files:
        for name, paths in f.typed.items():
            for ref in paths:
                for item in lookup(ref):
                    if item.kind in TYPE_KINDS and not item.owner:
                        typed.setdefault((f.package, name), set()).add(item.key)

    for f in files:
        here: set[int] = set()  # items this file uses
        known: set[str] = set()  # keys of the types and functions this file uses

        def note(item: Item, why: str) -> None:
            mark(item, why)
            here.add(id(item))
            if item.kind in TYPE_KINDS:
                known.add(item.key)

        for ref, line in f.refs:
            for item in lookup(ref):
                note(item, f"{f.path}:{line}")
        for trait, fns in f.impls:
            trait_item = types.get(trait)
            if trait_item:
                note(trait_item, f"{f.path} (impl)")
                for member in members.get(trait_item.key, []):
                    if member.name in fns:
                        note(member, f"{f.path} (impl {trait_item.name})")
        # a method called on a name declared, somewhere in the package, with the crate's type
        for name, receiver, line in f.calls:
            declared = receiver.removesuffix("()") if receiver else None
            for key in typed.get((f.package, declared), ()):
                for member in members.get(key, []):
                    if member.name == name and id(member) not in here:
                        note(types[key], f"{f.path}:{line} ({receiver} is a {types[key].name})")
                        note(member, f"{f.path}:{line} ({receiver}.{name}(), a {types[key].name})")
        # methods called on types the file knows, and types that used items hand over. A call
        # on one of the file's statics counts for the static's type only (above); a call on
        # what a method of a known type returned (`builder(..).name(..)`) counts for the types
        # such methods return, when they return any of the crate's.
        calls = [(n, r, line) for n, r, line in f.calls if r not in f.statics]
        changed = True
        while changed:
            changed = False
            for name, receiver, line in calls:
                targets = known
                returned = {
                    key
                    for owner in known
                    for member in members.get(owner, [])
                    if f"{member.name}()" == receiver
                    for key in returned_types(member)
                }
                if returned:
                    targets = returned & known
                for key in sorted(targets):
                    for member in members.get(key, []):
                        if member.name == name and id(member) not in here:
                            note(member, f"{f.path}:{line} (.{name}() on {types[key].name})")
                            changed = True
            for item in items:
                if id(item) not in here:
                    continue
                for q in named_types(item):
                    if types[q].key not in known:
                        note(types[q], f"{f.path} (given by {item.name})")
                        changed = True

    status = 0
    for crate in CRATES:
        own = [item for item in items if item.crate == crate]
        count = sum(1 for item in own if id(item) in used)
        print(f"{crate}: {count}/{len(own)} public items used outside tests")
    print("(users: " + ", ".join(f for f, _ in USER_DIRS) + f"; {len(files)} files)")
    for crate in CRATES:
        unused = sorted(
            (item for item in items if item.crate == crate and id(item) not in used),
            key=lambda item: item.display,
        )
        if unused:
            status = 1
            print(f"\nunused in {crate} ({len(unused)}):")
            for item in unused:
                print(f"  {item.kind:<12} {item.display}")
    if args.verbose:
        print("\nused:")
        for item in sorted((i for i in items if id(i) in used), key=lambda i: (i.crate, i.display)):
            print(f"  {item.kind:<12} {item.display}  <- {used[id(item)][0]}")
    return status if args.check else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `| head`
        sys.exit(0)
