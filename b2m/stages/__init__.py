"""The stages of the ``b2m`` command: one module per stage of the pipeline (``data``, ``features``, ``models``,
``reconstruct``, ``report``) and the cluster check (``cluster``), each registering its subcommands here with
``@stage``.

A subcommand reads its option objects from ``--options`` (the JSON document a rule hands it, see
``b2m.options``) and from flags generated from the same option objects (``--n-alphas 9``), which people use
when they call a stage by hand; a flag wins over the document, the document over the default. Its files and
wildcards are its own arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from b2m.jobs import stage_options
from b2m.options import document, field_types, read_document


@dataclass(frozen=True)
class Stage:
    """A subcommand: ``run(args, options)`` with ``options`` the option objects by class."""

    name: str
    help: str
    run: Callable
    options: tuple[type, ...]
    arguments: Callable[[argparse.ArgumentParser], None]


STAGES: dict[str, Stage] = {}


def stage(name: str, help: str, arguments=None):
    """Register the decorated function as the subcommand ``name``, reading the option classes of the jobs that run
    it (``b2m.jobs``)."""

    def register(run):
        STAGES[name] = Stage(name, help, run, stage_options(name), arguments or (lambda parser: None))
        return run

    return register


def _argument_kind(annotation) -> dict:
    """argparse keywords for a field's type: bools as --x/--no-x, tuples as lists, dicts as JSON."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = typing.get_origin(annotation) or annotation
    if base in (typing.Union, types.UnionType):
        return _argument_kind(args[0])
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if base is tuple:
        item = args[0]
        return {"nargs": "*", "type": json.loads if item in (dict, tuple) else item}
    if base is dict:
        return {"type": json.loads, "metavar": "JSON"}
    return {"type": annotation}


def add_option_flags(parser: argparse.ArgumentParser, classes) -> None:
    """``--options`` and one flag per field of each option class (``--<field>``, or ``--<section>-<field>`` where
    two classes of the stage share a field name)."""
    parser.add_argument("--options", default="", metavar="JSON",
                        help="the job's options document (what a rule passes); flags override it")
    counts = Counter(item.name for cls in classes for item in dataclasses.fields(cls))
    for cls in classes:
        add_field_flags(parser, cls, prefixed={name for name, count in counts.items() if count > 1})


def add_field_flags(parser: argparse.ArgumentParser, cls, prefixed=frozenset(), only=None) -> None:
    """One flag per field of ``cls`` (of the fields named in ``only``, where given): ``--<field>``, or
    ``--<section>-<field>`` for the fields named in ``prefixed``."""
    group = parser.add_argument_group(f"{cls.section} options")
    types = field_types(cls)
    for item in dataclasses.fields(cls):
        if only is not None and item.name not in only:
            continue
        name = item.metadata["flag"] or item.name
        name = f"{cls.section}_{name}" if item.name in prefixed else name
        key = item.metadata["key"] or "derived"
        kind = _argument_kind(types[item.name])
        if item.metadata["choices"]:
            kind["choices"] = item.metadata["choices"]
        kind.setdefault("metavar", None if "action" in kind else item.name.upper())
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"{cls.section}.{item.name}",
                           default=argparse.SUPPRESS, help=f"{item.metadata['help']} "
                           f"[{key}; default {item.default!r}]", **kind)


def flag_values(args: argparse.Namespace, cls) -> dict:
    """The fields of ``cls`` that flags of the command line set (lists as tuples)."""
    given = vars(args)
    flags = {item.name: given[f"{cls.section}.{item.name}"] for item in dataclasses.fields(cls)
             if f"{cls.section}.{item.name}" in given}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in flags.items()}


def options_from_args(args: argparse.Namespace, classes) -> dict:
    """The option objects of a parsed command line: defaults, then the document, then the flags."""
    objects = read_document(args.options, classes)
    for cls in classes:
        objects[cls] = dataclasses.replace(objects[cls], **flag_values(args, cls))
    return objects


def provenance(args: argparse.Namespace, options: dict) -> dict:
    """What every output of a stage carries: the stage, its arguments and its options document."""
    files = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
             if key not in ("func", "options", "stage") and "." not in key}
    return {"stage": args.command, **files, "options": json.loads(document(*options.values()))}
