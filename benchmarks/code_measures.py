"""Issue 35's measures of the code itself, on any checkout: rule names written as strings (in b2m/ outside the
job table, and in the workflow's .smk files), the longest functions of b2m/, and the files that name a config key.

    python benchmarks/code_measures.py [ROOT] [--key roi_k] [--names-from CHECKOUT]   # ROOT default: this one

Run on two checkouts (e.g. a `git worktree` of the commit before a change) to compare them.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections import Counter
from pathlib import Path


def rule_names(root: Path) -> set[str]:
    """The rules the workflow defines whose names are written with an underscore (``rule name:``, the GPU twins,
    the job table's): the one-word names (``decode``, ``features``, ``simulate``) are also stage names and config
    sections, so a quoted one says nothing about a rule."""
    names = set()
    for smk in [root / "Snakefile", *sorted((root / "workflow/rules").glob("*.smk"))]:
        text = smk.read_text()
        names |= set(re.findall(r"^(?:rule|checkpoint) (\w+):", text, re.M))
        names |= set(re.findall(r'"(\w+_gpu)"', text)) | set(re.findall(r'twin_of\("(\w+)"', text))
    jobs = root / "b2m/jobs.py"
    names |= set(re.findall(r'Job\("(\w+)"', jobs.read_text())) if jobs.exists() else set()
    return {name for name in names if "_" in name}


def rule_literals(root: Path, files, names: set[str]) -> Counter:
    """File → how many quoted strings in it are one of the rule ``names``."""
    pattern = re.compile(r"[\"'](" + "|".join(sorted(names)) + r")[\"']")
    return Counter({str(path.relative_to(root)): n for path in files if (n := len(pattern.findall(path.read_text())))})


def longest_functions(root: Path, n: int = 5) -> list[tuple[int, str]]:
    lengths = []
    for path in sorted((root / "b2m").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(root)}:{node.name}"))
    return sorted(lengths, reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--key", default="roi_k", help="a config key's last part, whose naming files are listed")
    parser.add_argument("--names-from", type=Path, help="the checkout whose rules are counted (default: ROOT; give "
                        "one checkout for both sides of a comparison)")
    args = parser.parse_args()
    root = args.root.resolve()
    names = rule_names((args.names_from or root).resolve())
    python = [p for p in (root / "b2m").rglob("*.py") if p.name != "jobs.py"]
    smk = [root / "Snakefile", *(root / "workflow/rules").glob("*.smk")]
    for what, files in (("b2m/ outside the job table", python), ("the workflow's .smk files", smk)):
        counts = rule_literals(root, files, names)
        print(f"rule names as strings in {what}: {sum(counts.values())} {dict(sorted(counts.items()))}")
    print("longest functions of b2m/:", longest_functions(root))
    code = [*(root / "b2m").rglob("*.py"), *smk, *(root / "workflow/schemas").glob("*.yaml")]
    print(f"code files naming {args.key}:", sorted(str(p.relative_to(root)) for p in code if args.key in p.read_text()))


if __name__ == "__main__":
    main()
