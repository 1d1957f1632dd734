"""The listening page: built from retrieval and generation outputs, then opened in a real headless browser
(Debian's chromium), where every audio player must load its audio with a duration above zero."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from b2m.evaluate import correlation_matrix
from b2m.report.listening import identification_ranks, section_html, write_listening_page
from browser import audio_status, screenshot


def predictions(clips, rng):
    true = rng.standard_normal((len(clips), 8))
    predicted = true + rng.standard_normal(true.shape)
    return pd.DataFrame({"clip_id": clips, "label": [c.split(".")[0] for c in clips], "model": "whole-mask",
                         "level": "clip", "predicted": list(predicted), "true": list(true)})


def test_identification_rank_counts_the_clips_correlating_at_least_as_well():
    rng = np.random.default_rng(0)
    table = predictions([f"jazz.{i:05d}" for i in range(12)], rng)
    ranks = identification_ranks(table, "whole-mask")
    corr = correlation_matrix(np.stack(table.predicted), np.stack(table["true"]))
    for i, clip in enumerate(table.clip_id):
        assert ranks[clip] == 1 + sum(corr[i, j] >= corr[i, i] for j in range(12) if j != i)


def listening_fixture(folder, rng, labelled=True):
    """Retrieval audio (original + top 2) and one generated sample for three clips, as the pipeline writes them
    (``labelled``: the clips carry a label and the corpus tracks a class, else neither)."""
    clips = ["blues.00001", "jazz.00002", "rock.00003"] if labelled else ["Finlandia", "Blue_Monk", "Sing_Sing_Sing"]
    audio, generated, rows, pieces = folder / "audio", folder / "generation", [], []
    for clip in clips:
        for role, rank in (("original", 0), ("retrieved", 1), ("retrieved", 2)):
            name = "original.flac" if rank == 0 else f"top{rank}.flac"
            (audio / clip).mkdir(parents=True, exist_ok=True)
            sf.write(audio / clip / name, 0.3 * rng.standard_normal(16000 * 2), 16000, format="FLAC")
            rows.append((clip, clip.split(".")[0] if labelled else "", role, rank, f"track-{rank}",
                         "pop" if labelled else "", 0.5, f"{clip}/{name}"))
        (generated / clip).mkdir(parents=True, exist_ok=True)
        sf.write(generated / clip / "whole-mask-0.flac", 0.3 * rng.standard_normal(16000), 16000, format="FLAC")
        pieces.append({"clip_id": clip, "method": "musicldm", "model": "whole-mask", "sample": 0, "seed": 7,
                       "file": f"{clip}/whole-mask-0.flac", "caption": ""})
    pd.DataFrame(rows, columns=["clip_id", "label", "role", "rank", "track_id", "track_genre", "similarity",
                                "file"]).to_parquet(audio / "listening.parquet")
    pd.DataFrame(pieces).to_parquet(generated / "generated.parquet")
    return audio, generated, predictions(clips, rng)


DURATION_TOLERANCE_S = 0.05


def encoded_durations(html: str) -> list[float]:
    """Durations (s) of the page's embedded audio files, read from the files themselves."""
    uris = re.findall(r'src="data:audio/ogg;base64,([^"]+)"', html)
    return [sf.info(io.BytesIO(base64.b64decode(uri))).duration for uri in uris]


def test_listening_page_plays_in_headless_chromium(tmp_path, chromium):
    audio, generated, table = listening_fixture(tmp_path, np.random.default_rng(1))
    page = tmp_path / "listening.html"
    write_listening_page(page, [section_html("sub-001, test fold, acoustic", audio, table, "whole-mask", [generated])])
    html = page.read_text()
    assert html.count("<audio") == 3 * 4 and "src=\"data:audio/ogg;base64," in html
    assert not re.search(r'(src|href)="(?!data:)', html)  # self-contained: no link to break
    status = audio_status(chromium, page, tmp_path / "profile")
    assert status["loaded"] == "12" and status["failed"] == "0"
    # Browsers report an Ogg Vorbis file's duration from its last granule position, which can include the
    # encoder's padding (chromium 156.0.8078.114: 1.016 s for a 1.000 s file): each player's duration must agree
    # with its encoded file's own within DURATION_TOLERANCE_S.
    encoded = sorted(encoded_durations(html))
    assert encoded == pytest.approx([1.0] * 3 + [2.0] * 9, abs=1e-3)
    assert sorted(status["durations"]) == pytest.approx(encoded, abs=DURATION_TOLERANCE_S)
    shot = tmp_path / "listening.png"
    screenshot(chromium, page, tmp_path / "profile", shot)
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize("labelled", [True, False])
def test_listening_page_names_labels_and_classes_only_where_there_are_some(tmp_path, labelled):
    audio, generated, table = listening_fixture(tmp_path, np.random.default_rng(1), labelled)
    html = section_html("sub-001, cv-1 fold, acoustic", audio, table, "whole-mask", [generated])
    clip = table.clip_id.iloc[0]
    if labelled:
        assert "<small>blues; identification rank" in html and "track-1 (pop), cos 0.50" in html
    else:
        assert f"<b>{clip}</b><small>identification rank" in html and "track-1, cos 0.50" in html
        assert "()" not in html and "genre" not in html


def test_listening_page_command_reads_the_files_it_is_given(tmp_path):
    """b2m listening-page reads each section's predictions, retrieval audio and samples from its arguments, keyed
    by subject and space (and generator), wherever they lie: no results tree."""
    import json

    from b2m.cli import main

    rng, subjects = np.random.default_rng(2), ("sub-001", "sub-002")
    folders = {s: listening_fixture(tmp_path / "anywhere" / s, rng) for s in subjects}
    for subject, (_, _, table) in folders.items():
        table.to_parquet(tmp_path / f"{subject}-predictions.parquet")
    options = {"listening": {"subjects": list(subjects), "features": ["acoustic"], "fold": "test",
                             "model": "whole-mask", "generated": {"acoustic": ["musicldm"]}}}
    page = tmp_path / "listening.html"
    assert main(["listening-page", "--options", json.dumps(options), "--out", str(page),
                 "--predictions", *[f"{s}:acoustic={tmp_path / f'{s}-predictions.parquet'}" for s in subjects],
                 "--retrieved", *[f"{s}:acoustic={folders[s][0]}" for s in subjects],
                 "--samples", *[f"{s}:acoustic:musicldm={folders[s][1]}" for s in subjects]]) == 0
    html = page.read_text()
    assert html.count("<audio") == 2 * 3 * 4 and html.index("sub-001, test fold") < html.index("sub-002, test fold")


def test_a_report_stage_missing_a_file_it_needs_names_the_flag(tmp_path):
    """A report stage given no file for a subject × space it draws (by hand, not by its rule) stops with a config
    error naming the flag and the key, not a traceback."""
    from b2m.errors import ConfigError
    from b2m.stages.report import KeyedPaths

    given = KeyedPaths("--retrieved", ["sub-001:acoustic=a/audio"])
    assert given["sub-001", "acoustic"] == Path("a/audio")
    with pytest.raises(ConfigError, match="--retrieved gives no file for sub-002:acoustic"):
        given["sub-002", "acoustic"]
    assert KeyedPaths("--scans", ["sub-001=results/sub-001/responses"])["sub-001"].name == "responses"
    with pytest.raises(ConfigError, match="is not KEY=PATH"):
        KeyedPaths("--encoding", ["sub-001:acoustic"])
