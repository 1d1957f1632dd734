"""Scores of a listening test: the share of two-alternative trials a listener answered with the true
reconstruction, with its exact binomial (Clopper–Pearson) 95 % interval and the exact binomial p against chance
(0.5), two-sided and one-sided (above chance), per listener, method, space, subject, foil scheme and pooled. No
correction is made for the number of rows.

Answer files are the page's exports (JSON or CSV); each carries the page id and trial hash it was made for and
is refused against any other page's key. Pooled rows treat every answer as one Bernoulli draw; listeners who
heard the same trials are not independent, so the per-listener rows are the ones to compare.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from b2m.errors import InputError
from b2m.io import regular_file
from b2m.report.listening_test import (ANSWER_FORMAT, ANSWER_VERSION, EXPORT_COLUMNS, LISTENER_ID, SIDES, ListeningKey,
                                       PageAudio)

log = logging.getLogger(__name__)

ALL = "all"  # a grouping column's value where a row pools over it
# scope → the columns its rows are grouped by
SCOPES = {
    "pooled": (),
    "listener": ("listener",),
    "method": ("method",),
    "feature": ("feature",),
    "subject": ("subject",),
    "feature × method": ("feature", "method"),
    "listener × method": ("listener", "method"),
    "foil scheme": ("foil_scheme",),
    "foil scheme × method": ("foil_scheme", "method"),
}
GROUPS = ("listener", "subject", "feature", "method", "foil_scheme")  # the columns a scope groups by
SCORE_COLUMNS = ["scope", *GROUPS, "fold", "model", "trials", "correct", "accuracy", "ci_low", "ci_high",
                 "p_two_sided", "p_above_chance", "page_id"]
# the key's columns the scores carry
KEY_TEXT = ("subject", "fold", "feature", "method", "foil_scheme", "model", "page_id")
EXPORT_FIX = "pass the JSON or CSV file the listening test page's Export button saved, unedited"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell that starts so as a formula


@dataclass(frozen=True)
class AnswerSheet:
    """One listener's export: ``answers`` (trial, choice A/B, answered_at) for page ``page_id``."""

    path: Path
    listener: str
    page_id: str
    trial_hash: str
    answers: pd.DataFrame


def _not_an_export(path, problem: str) -> InputError:
    return InputError(path, f"not a b2m listening-test export: {problem}", EXPORT_FIX)


def _answer_text(path: Path) -> str:
    """The text of answer file ``path``: a regular, non-empty UTF-8 file (its type checked before it is opened, so
    a FIFO never blocks)."""
    regular_file(path, "answer file", EXPORT_FIX)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise _not_an_export(path, "it is binary, not UTF-8 text") from None
    if "\0" in text:
        raise _not_an_export(path, "it is binary, not UTF-8 text (it holds NUL bytes)")
    return text


def _sheet_of_json(path: Path, text: str) -> AnswerSheet:
    if text.startswith(",".join(EXPORT_COLUMNS)):
        raise _not_an_export(path, "it holds a CSV export under a .json name")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise _not_an_export(path, f"unreadable JSON ({err}), cut short or corrupt") from None
    except RecursionError:
        raise _not_an_export(path, "JSON nested too deep to be an export") from None
    if not isinstance(doc, dict) or doc.get("format") != ANSWER_FORMAT or doc.get("version") != ANSWER_VERSION:
        raise _not_an_export(path, f"format is not {ANSWER_FORMAT} version {ANSWER_VERSION}")
    rows = doc.get("answers") or []
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise _not_an_export(path, "`answers` is not a list of {trial, choice, answered_at}")
    fields = [doc.get(name, "") for name in ("listener", "page_id", "trial_hash")]
    if not all(isinstance(field, str) for field in fields):
        raise _not_an_export(path, "listener, page_id or trial_hash is not a string")
    answers = pd.DataFrame(rows, columns=["trial", "choice", "answered_at"])
    return AnswerSheet(path, *fields, answers.astype(str))


def _sheet_of_csv(path: Path, text: str) -> AnswerSheet:
    if text.lstrip().startswith("{"):
        raise _not_an_export(path, "it holds a JSON export under a .csv name")
    if not text.endswith("\n"):
        raise _not_an_export(path, "its last line has no end: the file was cut short")
    try:
        header, *rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    except csv.Error as err:
        raise _not_an_export(path, f"unreadable CSV ({err})") from None
    if tuple(header) != EXPORT_COLUMNS:
        raise _not_an_export(path, f"columns {header}, not {list(EXPORT_COLUMNS)}")
    if not rows:
        raise _not_an_export(path, "it holds no answers")
    lengths = [len(row) for row in rows]
    if set(lengths) != {len(EXPORT_COLUMNS)}:
        line = next(i for i, n in enumerate(lengths) if n != len(EXPORT_COLUMNS))
        raise _not_an_export(path, f"unreadable CSV (answer row {line + 1} has {lengths[line]} fields, not "
                             f"{len(EXPORT_COLUMNS)})")
    table = pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))
    for column in ("listener", "page_id", "trial_hash"):
        if table[column].nunique() > 1:
            raise _not_an_export(path, f"more than one {column}")
    first = table.iloc[0]
    return AnswerSheet(path, first.listener, first.page_id, first.trial_hash,
                       table[["trial", "choice", "answered_at"]].reset_index(drop=True))


def read_answer_sheet(path) -> AnswerSheet:
    """An exported answer file (``.json`` or ``.csv``), its rows checked: choices A or B, each trial once, a
    listener id of ``LISTENER_ID``."""
    path = Path(path)
    if path.suffix not in (".json", ".csv"):
        raise _not_an_export(path, "neither .json nor .csv")
    sheet = (_sheet_of_json if path.suffix == ".json" else _sheet_of_csv)(path, _answer_text(path))
    if sheet.answers.empty:
        raise _not_an_export(path, "it holds no answers")
    if not sheet.listener:
        raise _not_an_export(path, "no listener id")
    if not re.fullmatch(LISTENER_ID, sheet.listener):
        raise InputError(path, f"listener id {sheet.listener[:50]!r} is not 1 to 40 letters, digits, - or _ "
                         "starting with a letter or a digit",
                         "export the answers again under such an id (e.g. L01); an id that starts with =, +, - or "
                         "@ is run as a formula by a spreadsheet")
    bad = sorted(set(sheet.answers.choice) - set(SIDES))
    twice = sorted(sheet.answers.trial[sheet.answers.trial.duplicated()])
    if bad or twice:
        raise _not_an_export(path, f"choices {bad} (only A or B)" if bad else f"trials answered twice: {twice[:5]}")
    return sheet


def check_key(key: ListeningKey, key_path) -> None:
    """Refuse a key whose names that the scores carry (``KEY_TEXT``) hold a tab or line break or start as a
    spreadsheet formula: b2m never writes one, so the key was edited."""
    table = key.table()
    for column in KEY_TEXT:
        bad = [v for v in table[column] if v.startswith(FORMULA_STARTS) or re.search(r"[\t\r\n]", v)]
        if bad:
            raise InputError(key_path, f"{column} {bad[0][:50]!r} starts with =, +, -, @ or holds a tab or line "
                             "break, which the score table cannot carry",
                             "pass the listening_test_key.tsv that b2m listening-test wrote, unedited")


def check_sheet(sheet: AnswerSheet, key: ListeningKey, key_path) -> None:
    """Refuse an answer file made for another page than ``key``'s, or naming trials the page does not have."""
    if (sheet.page_id, sheet.trial_hash) != (key.page_id, key.trial_hash):
        raise InputError(sheet.path, f"answers page {sheet.page_id} (trials {sheet.trial_hash}), but {key_path} is "
                         f"the key of page {key.page_id} (trials {key.trial_hash})",
                         "score it with the listening_test_key.tsv written beside the page this listener took, or "
                         "move it out of the answers folder")
    unknown = sorted(set(sheet.answers.trial) - {t.trial for t in key.trials})
    if unknown:
        raise InputError(sheet.path, f"trials {unknown[:5]} are not on page {key.page_id}",
                         "pass the file the page exported, unedited")


def answered_trials(key: ListeningKey, sheets: list[AnswerSheet]) -> pd.DataFrame:
    """One row per answer: listener, the trial's design columns, choice and whether it is the true side."""
    listeners = pd.Series([s.listener for s in sheets])
    if listeners.duplicated().any():
        twice = sorted(set(listeners[listeners.duplicated()]))
        files = [str(s.path) for s in sheets if s.listener in twice]
        raise InputError(files[0], f"listeners {twice} have more than one answer file: {files}",
                         "keep one export of each listener, the last (it holds all their answers)")
    design = key.table().set_index("trial")
    rows = []
    for sheet in sheets:
        answers = sheet.answers.assign(listener=sheet.listener).join(design, on="trial")
        rows.append(answers.assign(correct=answers.choice == answers.true_side))
        if len(sheet.answers) < len(key.trials):
            log.warning("%s: %s answered %d of %d trials; the others are left out", sheet.path, sheet.listener,
                        len(sheet.answers), len(key.trials))
    return pd.concat(rows, ignore_index=True)


def binomial_row(correct: int, trials: int, level: float = 0.95) -> dict:
    """Accuracy, its Clopper–Pearson interval at ``level`` and the exact binomial p against 0.5, two-sided and
    one-sided (the chance of as many correct or more)."""
    test = binomtest(correct, trials, 0.5)
    interval = test.proportion_ci(confidence_level=level, method="exact")
    return {"trials": trials, "correct": correct, "accuracy": correct / trials, "ci_low": interval.low,
            "ci_high": interval.high, "p_two_sided": test.pvalue,
            "p_above_chance": binomtest(correct, trials, 0.5, alternative="greater").pvalue}


def score_answers(answers: pd.DataFrame) -> pd.DataFrame:
    """The score table of ``answered_trials``: a row per scope (``SCOPES``) and group, ``all`` where pooled; the
    fold, decoder (``model``) and page of its trials."""
    rows = []
    for scope, columns in SCOPES.items():
        groups = answers.groupby(list(columns), sort=True) if columns else [((), answers)]
        for values, group in groups:
            labels = dict(zip(columns, values if isinstance(values, tuple) else (values,)))
            heard = {c: ",".join(sorted(set(group[c]))) for c in ("fold", "model", "page_id")}
            rows.append({"scope": scope, **{c: labels.get(c, ALL) for c in GROUPS}, **heard,
                         **binomial_row(int(group.correct.sum()), len(group))})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def score_answer_files(key_path, paths) -> pd.DataFrame:
    """The score table of the answer files at ``paths`` against the key at ``key_path``, each file checked."""
    key = ListeningKey.read(key_path)
    check_key(key, key_path)
    sheets = [read_answer_sheet(path) for path in paths]
    for sheet in sheets:
        check_sheet(sheet, key, key_path)
    return score_answers(answered_trials(key, sheets))


def machine_listener(page) -> dict:
    """Trial id → side: a listener that hears the page's own audio and picks the candidate whose acoustic
    statistics (b2m's acoustic embedding, the mean of its 1.5 s windows, z-scored over the page's sounds)
    correlate more with the original's. It tells whether a page's trials can be told apart by sound, and,
    scored against the key, that the page plays what its key says."""
    import soundfile as sf

    from b2m.features.acoustic import AcousticExtractor
    from b2m.features.audio import resample

    heard, extractor, stats = PageAudio.read(page), AcousticExtractor(), {}
    for name in heard.sounds:
        audio, rate = sf.read(heard.audio(name), dtype="float32")
        audio = resample(audio, rate, extractor.sample_rate)
        seconds = max(len(audio) / extractor.sample_rate, extractor.window)  # a shorter sound: one padded window
        starts = np.arange(0, seconds - extractor.window + 1e-9, extractor.stride)
        stats[name] = extractor.embed(audio, starts).mean(axis=0)
    table = np.stack(list(stats.values()))
    z = {name: (row - table.mean(axis=0)) / (table.std(axis=0) + 1e-9) for name, row in stats.items()}
    similarity = {side: [np.corrcoef(z[t["original"]], z[t[side]])[0, 1] for t in heard.trials] for side in SIDES}
    return {t["id"]: "A" if a > b else "B" for t, a, b in zip(heard.trials, *similarity.values())}

