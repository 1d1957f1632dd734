"""A captions CSV (columns ``ID,DescEN``, UTF-8 with or without BOM), one caption per stimulus.

An ID names a stimulus by its id (the file name without suffix), optionally with a length suffix such as ``_15s``
(the Brain2Music captions: ``blues.00000_15s``). An ID that names no stimulus of the study but whose trailing number
is that of exactly one stimulus with the same prefix is read as that stimulus (the real file's
``disco.000011_15s`` means ``disco.00011``), and said so (``mended_ids``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from b2m.errors import InputError
from b2m.io import regular_file

CAPTIONS_FIX = "point `dataset.captions` in the config to the captions CSV (columns ID,DescEN)"
LENGTH_SUFFIX = re.compile(r"_\d+(\.\d+)?s$")
NUMBERED = re.compile(r"^(.*?)(\d+)$")


def _number_key(clip_id: str) -> tuple[str, int] | None:
    match = NUMBERED.match(clip_id)
    return (match.group(1), int(match.group(2))) if match else None


def mended_ids(ids, clip_ids) -> dict[str, str]:
    """ID → the stimulus it names where it names none as written but its trailing number is exactly one stimulus's
    (same prefix, other zero-padding)."""
    known = set(clip_ids)
    by_number: dict = {}
    for clip in known:
        by_number.setdefault(_number_key(clip), []).append(clip)
    mended = {}
    for given in ids:
        candidates = by_number.get(_number_key(given), []) if given not in known and _number_key(given) else []
        if len(candidates) == 1:
            mended[given] = candidates[0]
    return mended


def read_captions(path, clip_ids=()) -> pd.DataFrame:
    """Captions as columns clip_id, caption (one row per stimulus); with ``clip_ids`` (the study's stimuli), IDs
    that name one of them in other zero-padding are mended (``mended_ids``)."""
    path = regular_file(path, "captions file", CAPTIONS_FIX)
    _check_comma_separated(path)
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise InputError(path, f"cannot read captions ({err})", CAPTIONS_FIX) from err
    if not {"ID", "DescEN"} <= set(table.columns):
        raise InputError(path, f"columns {list(table.columns)}, expected ID and DescEN",
                         "give a captions CSV with the columns ID (the stimulus) and DescEN (its caption)")
    ids = [LENGTH_SUFFIX.sub("", raw.strip()) for raw in table["ID"]]
    blank = [line for line, given in enumerate(ids, start=2) if not given]
    if blank:
        raise InputError(path, f"line {blank[0]}: an empty ID", "give each caption its stimulus's id")
    mended = mended_ids(ids, clip_ids)
    captions = pd.DataFrame({"clip_id": [mended.get(given, given) for given in ids],
                             "caption": table["DescEN"].str.strip()})
    empty = [line for line, text in enumerate(captions["caption"], start=2) if not text]
    if empty:
        raise InputError(path, f"empty caption on line{'s' * (len(empty) > 1)} {', '.join(map(str, empty[:5]))} "
                         f"({captions['clip_id'].iloc[empty[0] - 2]})", "write the clip's caption (CLAP's text "
                         "tower would embed an empty string as if it were one)")
    duplicated = captions["clip_id"][captions["clip_id"].duplicated()].tolist()
    if duplicated:
        raise InputError(path, f"clips captioned twice: {duplicated[:5]}", "keep one caption per clip")
    return captions


def _check_comma_separated(path: Path) -> None:
    """The header names ID and DescEN between commas; another separator gets its own message."""
    try:
        with open(path, encoding="utf-8-sig") as file:
            header = file.readline().strip()
    except (OSError, UnicodeDecodeError):
        return  # read_csv says what is wrong
    separator = next((s for s in (";", "\t", "|") if s in header), None)
    if "," not in header and separator:
        raise InputError(path, f"not comma-separated: the header {header!r} is split by {separator!r}",
                         "save the captions as CSV with commas between the columns ID,DescEN (captions that hold "
                         "commas in double quotes)")


def captions_for(path, clip_ids) -> list[str]:
    """The caption of each of ``clip_ids``, in order; a clip without one is an error naming the file."""
    captions = read_captions(path, clip_ids).set_index("clip_id")["caption"]
    missing = sorted(set(clip_ids) - set(captions.index))
    if missing:
        raise InputError(path, f"no caption for {len(missing)} stimuli ({', '.join(missing[:5])})",
                         "give a caption for every stimulus of the study (ID: the stimulus's file name without "
                         "its suffix)")
    return captions.loc[list(clip_ids)].tolist()
