"""A machine listener takes a finished run's listening test: it hears the page's own audio and picks, on each
trial, the candidate whose acoustic statistics correlate more with the original's (``b2m.evaluate.listeners.
machine_listener``); its answers are scored against the key as a person's would be (Clopper–Pearson 95 %
intervals, exact binomial p). Whether the trials can be told apart by sound, and how far above chance a
listener of the acoustics alone gets, before people take the test.

    make demo && python benchmarks/machine_listener.py [--work .]   # the demo's results/ in --work
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from b2m.evaluate.listeners import AnswerSheet, answered_trials, machine_listener, score_answers
from b2m.layout import Layout
from b2m.report.listening_test import ListeningKey
from full_size import machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("."), help="the folder Snakemake ran the demo in")
    parser.add_argument("--results", default="results", help="its results folder, relative to --work")
    args = parser.parse_args()
    files = Layout(args.work / args.results).listening_test()
    key = ListeningKey.read(files.key)
    choices = machine_listener(files.page)
    answers = pd.DataFrame({"trial": list(choices), "choice": list(choices.values()), "answered_at": ""})
    sheet = AnswerSheet(files.page, "machine", key.page_id, key.trial_hash, answers)
    table = score_answers(answered_trials(key, [sheet]))
    print(f"{machine()}; page {key.page_id}, {len(key.trials)} trials")
    said, true = list(choices.values()).count("A"), [t.true_side for t in key.trials].count("A")
    print(f"side A chosen {said} times, true {true} times")
    shown = table[table.scope.isin(["pooled", "subject", "feature × method"])]
    print(shown.drop(columns=["listener", "page_id"]).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
