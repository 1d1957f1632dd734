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

CAPTION_ID = re.compile(r"^([a-z]+)\.(\d+)(?:_15s)?$")


def read_captions(path) -> pd.DataFrame:
    """Captions as columns clip_id, caption (one row per clip)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(path, f"cannot read captions ({err})", "point `captions` in the config to the "
                         "Brain2Music captions CSV (columns ID,DescEN)") from err
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
    duplicated = captions["clip_id"][captions["clip_id"].duplicated()].tolist()
    if duplicated:
        raise InputError(path, f"clips captioned twice: {duplicated[:5]}", "keep one caption per clip")
    return captions


def captions_for(path, clip_ids) -> list[str]:
    """The caption of each of ``clip_ids``, in order; a clip without one is an error naming the file."""
    captions = read_captions(path).set_index("clip_id")["caption"]
    missing = sorted(set(clip_ids) - set(captions.index))
    if missing:
        raise InputError(path, f"no caption for {len(missing)} clips ({', '.join(missing[:5])})",
                         "use the caption file of the study's 540 clips (ID column <genre>.<nnnnn>)")
    return captions.loc[list(clip_ids)].tolist()
