#!/usr/bin/env python3
"""The folders of a Swift target are layers: a folder may use only the folders below it.

Each target's folders are listed bottom to top in LAYERS. A file uses a folder when it names
something declared at the top level of that folder (a type, function, constant, or a member of an
extension of a type from outside the target). A use of a folder higher up, or the same name in a
folder not listed, fails the check with the file and the name. Targets without folders are modules
of their own (Package.swift), whose layering the compiler already checks.

Run by `make test` (check-header); `scripts/check-layers.py --graph` prints the folder graph.
"""
import os
import re
import sys
from collections import defaultdict

LAYERS = {
    # A module of its own: the compiler keeps it from reaching up into PrismCore.
    "Sources/PrismHost": [
        "Config",         # config.yaml read into settings values
        "Observability",  # logs, metrics, prices, request statistics, secret redaction
        "Governance",     # budgets and spend
        "Plugins",        # the C ABI's host side: loading, host services, provider instances
    ],
    # Above PrismHost (which it imports): the request's path.
    "Sources/PrismCore": [
        "Pipeline",       # the middleware chain
        "Routing",        # candidates, the strategy plugin, health, the attempt scheduler
        "Relay",          # a stream's translation: upstream bytes to the client's
        "Telemetry",      # OpenTelemetry traces
        "Generation",     # one configuration generation: everything built from one config
        "Control",        # the running gateway: reloads, the admin store, organizations
        "Server",         # HTTP: the request's path, the operator and admin routes
    ],
}

DECLARATION = re.compile(
    r"^(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|internal|package|private|fileprivate|final|static|"
    r"nonisolated|indirect|mutating|override|convenience|required|lazy|weak)\s+)*"
    r"(?:struct|class|enum|protocol|actor|typealias|func|let|var)\s+([A-Za-z_][A-Za-z0-9_]*)")
EXTENSION = re.compile(r"^(?:public |internal |package )?extension\s+([A-Za-z_][A-Za-z0-9_.]*)")
IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def strip(source):
    """Source without comments and string literals (their words are not uses)."""
    source = re.sub(r"/\*.*?\*/", " ", source, flags=re.S)
    source = re.sub(r'"""(?:.|\n)*?"""', '""', source)
    source = re.sub(r'#?"(?:\\.|[^"\\\n])*"#?', '""', source)
    return re.sub(r"//[^\n]*", "", source)


def declarations(source, own_types, everywhere):
    """Names a file declares for others: top-level ones (not private), and the members of extensions of types
    the target does not declare (String, ByteBuffer, ...), which read like free functions, when
    nothing else in the target declares a member of that name."""
    names = set()
    depth = 0
    extending_outside = False
    for line in source.split("\n"):
        stripped = line.strip()
        if depth == 0:
            match = DECLARATION.match(stripped)
            if match and not stripped.startswith(("private", "fileprivate")):
                names.add(match.group(1))
            extension = EXTENSION.match(stripped)
            extending_outside = bool(extension) and extension.group(1).split(".")[0] not in own_types
        elif depth == 1 and extending_outside:
            match = DECLARATION.match(stripped)
            if match and not stripped.startswith(("private", "fileprivate")) and everywhere[match.group(1)] == 1:
                names.add(match.group(1))
        depth += line.count("{") - line.count("}")
    return names


def check(root, order):
    files = []
    for directory, _, names in os.walk(root):
        for name in sorted(names):
            if name.endswith(".swift"):
                path = os.path.join(directory, name)
                relative = os.path.relpath(path, root)
                folder = relative.split(os.sep)[0] if os.sep in relative else None
                files.append((path, folder, strip(open(path, encoding="utf-8").read())))
    problems = [f"{path}: top-level files are not in a layer; put it in a folder" for path, folder, _ in files
                if folder is None and not path.endswith("Modules.swift")]
    problems += [f"{root}/{folder}: not listed in scripts/check-layers.py" for folder in
                 sorted({folder for _, folder, _ in files if folder} - set(order))]
    own_types = set()
    for _, _, source in files:
        own_types.update(m.group(1) for m in re.finditer(r"^\s*(?:public |internal |final |package )*"
                                                         r"(?:struct|class|enum|protocol|actor)\s+(\w+)", source, re.M))
    everywhere = defaultdict(int)
    for _, _, source in files:
        for line in source.split("\n"):
            match = DECLARATION.match(line.strip())
            if match:
                everywhere[match.group(1)] += 1
    owners = defaultdict(set)
    for _, folder, source in files:
        if folder:
            for name in declarations(source, own_types, everywhere):
                owners[name].add(folder)
    edges = defaultdict(lambda: defaultdict(set))
    for path, folder, source in files:
        if folder not in order:
            continue
        for word in set(IDENTIFIER.findall(source)):
            found = owners.get(word, set())
            if len(found) != 1 or folder in found:
                continue  # not ours, ours, or declared in two folders (ambiguous: not counted)
            (other,) = found
            edges[folder][other].add(f"{os.path.basename(path)}: {word}")
            if other in order and order.index(other) > order.index(folder):
                problems.append(f"{path}: {folder}/ uses {word} from {other}/, a layer above it")
    return problems, edges


def main():
    graph = "--graph" in sys.argv
    problems = []
    for root, order in LAYERS.items():
        found, edges = check(root, order)
        problems += found
        if graph:
            for folder in order:
                uses = sorted(edges[folder])
                print(f"{root}/{folder} -> {', '.join(uses) if uses else '(nothing)'}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check-layers: {len(problems)} problem(s); the order is LAYERS in scripts/check-layers.py", file=sys.stderr)
        return 1
    print("check-layers: every folder uses only folders below it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
