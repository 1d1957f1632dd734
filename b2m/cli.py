"""The ``b2m`` command: a registry of stages (``b2m.stages``), one subcommand each; the Snakemake rules call
these with the job's options document, people with flags generated from the same option objects."""

from __future__ import annotations

import argparse
import logging
import sys

from b2m.job import die_with_parent
from b2m.stages import STAGES, add_option_flags, options_from_args
# each module registers its stages
from b2m.stages import cluster, config, data, features, models, reconstruct, report  # noqa: F401

log = logging.getLogger("b2m")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="b2m", description=__doc__, allow_abbrev=False)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES.values():
        command = sub.add_parser(stage.name, help=stage.help, description=stage.help, allow_abbrev=False)
        stage.arguments(command)
        add_option_flags(command, stage.options)
    return parser


def main(argv=None) -> int:
    from b2m.errors import ConfigError, InputError, NoSpaceError

    die_with_parent()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    stage = STAGES[args.command]
    try:
        stage.run(args, options_from_args(args, stage.options))
    except InputError as err:
        log.error("bad input: %s", err)
        return 2
    except ConfigError as err:
        log.error("bad config: %s", err)
        return 2
    except NoSpaceError as err:
        log.error("disk full: %s", err)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
