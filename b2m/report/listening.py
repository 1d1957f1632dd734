"""The listening page: each test clip's original excerpt beside its reconstructions (retrieved tracks and
generated samples), with its label (the design's first label, where it has one) and identification rank, as one
self-contained HTML file.

Audio is embedded as data URIs in Ogg Vorbis at most 22,050 Hz (about a tenth of the FLAC size), so the page
plays anywhere,
including inside ``snakemake --report``'s single HTML file. A status line counts the players whose audio
loaded (``data-loaded``, ``data-failed``, ``data-durations``), for the reader and for browser tests.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from b2m.evaluate import correlation_matrix
from b2m.features.audio import resample
from b2m.io import atomic_path
from b2m.layout import AudioFiles, GenerationFiles

PAGE_RATE = 22050  # Hz: the page's audio; the FLAC files beside it keep the source's rate
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.4em 0.6em; vertical-align: top; text-align: left; }
td small { color: #555; display: block; }
audio { width: 13em; height: 2.2em; }
#audio-status { font-weight: bold; }
"""

# Counts the players that loaded their audio (and their durations) and those that failed.
SCRIPT = """
const players = Array.from(document.querySelectorAll("audio"));
const status = document.getElementById("audio-status");
const durations = [], failed = [];
function update() {
  status.dataset.loaded = durations.length;
  status.dataset.failed = failed.length;
  status.dataset.durations = JSON.stringify(durations);
  status.textContent = `${durations.length} of ${players.length} audio files ready` +
    (failed.length ? `, ${failed.length} failed: ${failed.join(", ")}` : "");
}
players.forEach(player => {
  player.addEventListener("loadedmetadata", () => { durations.push(player.duration); update(); });
  player.addEventListener("error", () => { failed.push(player.title); update(); });
  player.load();
});
update();
"""


def ogg_data_uri(path) -> str:
    """The audio file at ``path`` as an Ogg Vorbis data URI, at most ``PAGE_RATE`` Hz."""
    audio, rate = sf.read(path, dtype="float32")
    if rate > PAGE_RATE:
        audio, rate = resample(audio, rate, PAGE_RATE), PAGE_RATE
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="OGG", subtype="VORBIS")
    return "data:audio/ogg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def identification_ranks(predictions: pd.DataFrame, model: str) -> pd.Series:
    """Rank of each clip among all test clips by correlation with its own prediction (1 = identified first),
    from the clip-level rows of a decoding ``predictions`` table; ties count against the clip, as in the
    identification accuracy."""
    clips = predictions[(predictions.level == "clip") & (predictions.model == model)]
    corr = correlation_matrix(np.stack(clips.predicted.to_numpy()), np.stack(clips["true"].to_numpy()))
    beaten_by = (corr >= np.diag(corr)[:, None]).sum(axis=1) - 1
    return pd.Series(beaten_by + 1, index=clips.clip_id.to_numpy())


def player(uri: str, title: str, caption: str) -> str:
    return (f'<audio controls preload="metadata" title="{html.escape(title)}" src="{uri}"></audio>'
            f"<small>{html.escape(caption)}</small>")


def audio_uris(paths: list, jobs: int = 1) -> dict:
    """``ogg_data_uri`` of every path (path → URI), ``jobs`` files encoded at once (libsndfile runs outside the
    GIL, so threads share the cores)."""
    from concurrent.futures import ThreadPoolExecutor

    unique = list(dict.fromkeys(paths))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return dict(zip(unique, pool.map(ogg_data_uri, unique)))


def section_html(title: str, retrieval_audio, predictions: pd.DataFrame, model: str, generated=(),
                 jobs: int = 1) -> str:
    """One table: a row per test clip of ``model`` with the original, the retrieved tracks and the samples of
    each ``b2m generate`` folder in ``generated``; ``jobs`` audio files encoded at once."""
    retrieval_audio = AudioFiles(retrieval_audio)
    listing = pd.read_parquet(retrieval_audio.listing)
    ranks = identification_ranks(predictions, model)
    samples = [(GenerationFiles(folder), pd.read_parquet(GenerationFiles(folder).listing)) for folder in generated]
    samples = [(folder, table[table.model == model]) for folder, table in samples]
    top = int(listing["rank"].max())
    head = ["clip", "original"] + [f"retrieved {r}" for r in range(1, top + 1)]
    head += [f"{table.method.iloc[0]} {s + 1}" for _, table in samples if len(table)
             for s in sorted(table["sample"].unique())]
    uris = audio_uris([retrieval_audio.path / name for name in listing.file]
                      + [folder.path / name for folder, table in samples for name in table.file], jobs)
    rows = []
    for clip_id, clip_rows in listing.groupby("clip_id", sort=False):
        original = clip_rows[clip_rows.role == "original"].iloc[0]
        label = f"{original.label}; " if original.label else ""
        cells = [f"<b>{html.escape(clip_id)}</b><small>{html.escape(label)}identification rank "
                 f"{ranks[clip_id]} of {len(ranks)}</small>",
                 player(uris[retrieval_audio.path / original.file], f"{clip_id} original", "as presented")]
        for hit in clip_rows[clip_rows.role == "retrieved"].sort_values("rank").itertuples():
            track = f"{hit.track_id} ({hit.track_genre})" if hit.track_genre else hit.track_id
            cells.append(player(uris[retrieval_audio.path / hit.file], f"{clip_id} retrieved {hit.rank}",
                                f"{track}, cos {hit.similarity:.2f}"))
        for folder, table in samples:
            for piece in table[table.clip_id == clip_id].sort_values("sample").itertuples():
                caption = piece.caption or f"seed {piece.seed}"
                cells.append(player(uris[folder.path / piece.file], f"{clip_id} {piece.method} {piece.sample}",
                                    caption))
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    return f"<h2>{html.escape(title)}</h2>\n<table>\n{header}\n" + "\n".join(rows) + "\n</table>"


def write_listening_page(path, sections: list[str], title: str = "b2m: listen to the reconstructions") -> None:
    """The HTML page of ``sections`` (``section_html`` outputs), written atomically."""
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            "<p>Each test clip's original excerpt (as presented in the scanner, up to the length of a corpus track's "
            "indexed opening) beside the corpus tracks retrieved from its decoded embedding and the music generated "
            "from it. The identification rank is the place of "
            "the clip's own embedding among all test clips by correlation with its prediction.</p>\n"
            f"<p id=\"audio-status\">loading audio</p>\n" + "\n".join(sections) +
            f"\n<script>{SCRIPT}</script>\n</body></html>\n")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")

