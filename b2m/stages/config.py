"""Writing a study's config from its BIDS folder: ``b2m init-config``."""

from __future__ import annotations

import logging
from pathlib import Path

from b2m.stages import stage

log = logging.getLogger("b2m")


def _init_arguments(parser) -> None:
    parser.add_argument("bids_root", type=Path, metavar="BIDS_ROOT", help="the study's BIDS folder")
    parser.add_argument("--stimuli", type=Path, help="the folder the events' stimulus names are relative to "
                        "(default: BIDS_ROOT/stimuli)")
    stimulus = parser.add_mutually_exclusive_group()
    stimulus.add_argument("--stimulus-column", metavar="COLUMN", help="events column naming each stimulus's file "
                          "(default: stim_file, else the first column whose values name files in the stimuli folder)")
    stimulus.add_argument("--stimulus-template", metavar="TEMPLATE", help="the stimulus file as a template of events "
                          "columns, e.g. {genre}/{genre}.{track:05d}")
    parser.add_argument("--labels", nargs="+", default=[], metavar="COLUMN", help="events columns labelling a "
                        "stimulus (default: text columns of 2-20 values, constant per stimulus)")
    parser.add_argument("--results", help="the results folder (default: results-<folder name>)")
    parser.add_argument("-o", "--out", type=Path, help="write the config here (default: print it)")


@stage("init-config", "write a commented config for a BIDS study from what its folder holds (stimulus, labels, "
       "events left out, TR, folds, feature spaces), checked against the schema", arguments=_init_arguments)
def init_config(args, options) -> None:
    import yaml

    from b2m.data.infer import infer_study, render_config
    from b2m.io import atomic_path
    from b2m.study import checked_study

    inferred = infer_study(args.bids_root, args.stimuli, args.stimulus_column, args.stimulus_template,
                           tuple(args.labels), args.results)
    text = render_config(inferred.settings)
    checked_study(yaml.safe_load(text), args.out or "the inferred config")
    if args.out is None:
        print(text, end="", flush=True)
        return
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(text)
    log.info("config written: %s (design: stimulus %s, labels %s, cv %s, folds %s)", args.out,
             inferred.stimulus.column or inferred.stimulus.template or "none", list(inferred.design.labels),
             inferred.design.cv, list(inferred.folds.folds))
