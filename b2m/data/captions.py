"""The Brain2Music captions CSV (columns ``ID,DescEN``, UTF-8 with BOM, IDs like ``blues.00000_15s``).

IDs are normalised to clip ids (``<genre>.<track:05d>``) by parsing genre and track, which also mends
the one typo of the real file (``disco.000011_15s`` means ``disco.00011``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from b2m import GTZAN_GENRES
from b2m.data.events import clip_id
from b2m.errors import InputError
from b2m.io import regular_file

CAPTIONS_FIX = "point `captions` in the config to the Brain2Music captions CSV (columns ID,DescEN)"
CAPTION_ID = re.compile(r"^([a-z]+)\.(\d+)(?:_15s)?$")


def read_captions(path) -> pd.DataFrame:
    """Captions as columns clip_id, caption (one row per clip)."""
    path = regular_file(path, "captions file", CAPTIONS_FIX)
    _check_comma_separated(path)
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise InputError(path, f"cannot read captions ({err})", CAPTIONS_FIX) from err
    if not {"ID", "DescEN"} <= set(table.columns):
        raise InputError(path, f"columns {list(table.columns)}, expected ID and DescEN",
                         "use the Brain2Music captions CSV (columns ID,DescEN)")
    ids = []
    for line, raw in enumerate(table["ID"], start=2):
        match = CAPTION_ID.match(raw.strip())
        if not match or match.group(1) not in GTZAN_GENRES:
            raise InputError(path, f"line {line}: caption ID {raw!r} is not <genre>.<track>_15s",
                             "fix the ID to a GTZAN clip name such as blues.00000_15s")
        ids.append(clip_id(match.group(1), int(match.group(2))))
    captions = pd.DataFrame({"clip_id": ids, "caption": table["DescEN"].str.strip()})
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
    captions = read_captions(path).set_index("clip_id")["caption"]
    missing = sorted(set(clip_ids) - set(captions.index))
    if missing:
        raise InputError(path, f"no caption for {len(missing)} clips ({', '.join(missing[:5])})",
                         "use the caption file of the study's 540 clips (ID column <genre>.<nnnnn>)")
    return captions.loc[list(clip_ids)].tolist()
