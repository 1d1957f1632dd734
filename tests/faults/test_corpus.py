"""Fault injection on the corpus side: tracks that are not what their name says are skipped with their reason (a
FIFO is never opened), and an index gathered from chunks made before the corpus changed is refused by name with
nothing written."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
import soundfile as sf

from b2m.cli import main
from conftest import REPO
from test_reconstruction import tone

SOURCE = '{{"path": "{}", "layout": "gtzan"}}'


@pytest.fixture()
def corpus(tmp_path):
    root = tmp_path / "corpus"
    for number, genre in enumerate(["blues", "jazz", "rock"]):
        (root / genre).mkdir(parents=True)
        sf.write(root / genre / f"{genre}.00000.wav", tone(16.0, 200 + 150 * number), 16000)
    return root


def index_chunks(corpus, tmp_path) -> None:
    """The corpus's two chunks listed, embedded and fingerprinted, as the workflow's chunk jobs make them."""
    for chunk in ("0", "1"):
        listing = str(tmp_path / f"listing/chunk-{chunk}.parquet")
        assert main(["list-chunk", "--sources", SOURCE.format(corpus), "--chunks", "2", "--chunk", chunk,
                     "--out", listing]) == 0
        assert main(["index-chunk", "--feature", "acoustic", "--tracks", listing, "--vector-cache",
                     str(tmp_path / "cache"), "--out", str(tmp_path / f"index/chunks/chunk-{chunk}")]) == 0
        assert main(["fingerprint-chunk", "--tracks", listing,
                     "--out", str(tmp_path / f"fingerprints/chunk-{chunk}.parquet")]) == 0


def gather(corpus, tmp_path) -> int:
    return main(["index", "--feature", "acoustic", "--sources", SOURCE.format(corpus), "--chunks", "2",
                 "--vector-cache", str(tmp_path / "cache"), "--out", str(tmp_path / "index")])


BAD_TRACKS = {
    "empty": (lambda path: path.write_bytes(b""), "audio file is empty"),
    "corrupt": (lambda path: path.write_bytes(b"RIFF\x00\x00garbage"), "unreadable audio"),
    "FIFO": (os.mkfifo, "is a FIFO"),
    "device": (lambda path: path.symlink_to("/dev/zero"), "is a character device"),
    "another format": (lambda path: path.write_text("track,title\n1,x\n"), "unreadable audio"),
}


@pytest.mark.parametrize("kind", BAD_TRACKS)
def test_a_bad_corpus_track_is_skipped_with_its_reason(corpus, tmp_path, kind):
    """In the chunk jobs and the fingerprints alike: the job ends, and skipped.tsv says why."""
    spoil, reason = BAD_TRACKS[kind]
    spoil(corpus / "rock" / "rock.00001.wav")
    index_chunks(corpus, tmp_path)
    assert gather(corpus, tmp_path) == 0
    skipped = pd.read_csv(tmp_path / "index/skipped.tsv", sep="\t")
    assert skipped.track_id.tolist() == ["rock.00001"] and reason in skipped.reason[0]
    fingerprints = pd.concat(pd.read_parquet(p) for p in (tmp_path / "fingerprints").glob("*.parquet"))
    assert reason in fingerprints.set_index("track_id").reason["rock.00001"]


def test_an_index_of_chunks_older_than_the_corpus_is_refused(corpus, tmp_path, caplog):
    index_chunks(corpus, tmp_path)
    added = corpus / "blues" / "blues.00001.wav"
    sf.write(added, tone(16.0, 330), 16000)
    assert gather(corpus, tmp_path) == 2
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert str(added) in error and "changed after its chunks were made" in error and "fix: rerun" in error
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == ["chunks"]


def test_a_corpus_track_snakemake_would_read_as_a_wildcard_stops_the_plan_naming_it(tmp_path, real):
    """The real study's plan over a `folder` corpus holding a{b}.wav: the file and the fix, not a WildcardError."""
    import yaml

    from test_workflow import dry_run, real_paths

    for folder in ("config", "profiles", "workflow"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    braced = tmp_path / "music" / "a{b}.wav"
    braced.parent.mkdir()
    sf.write(braced, tone(16.0, 440), 16000)
    paths = real_paths(tmp_path, real)
    config = yaml.safe_load(paths.read_text())
    config["reconstruction"]["corpus"]["sources"] = [{"path": str(braced.parent), "layout": "folder"}]
    paths.write_text(yaml.safe_dump(config))
    result = dry_run(tmp_path, "--configfile", "config/ds003720.yaml", str(paths))
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "WildcardError" not in output
    assert f"{braced}: a corpus track whose path holds {{ or }}" in output and "fix: rename it without" in output


@pytest.mark.parametrize("content", ["", "index\tname\n1", "label;name\n1;A1\n", "\x89PNG\r\n\x1a\n\x00\x00"])
def test_a_bad_atlas_label_table_is_refused_naming_it(tmp_path, content):
    from b2m.errors import InputError
    from b2m.stages.report import read_atlas_labels

    path = tmp_path / "atlas.tsv"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(InputError, match="atlas label table") as error:
        read_atlas_labels(path)
    assert error.value.path == str(path) and "index and name" in error.value.fix
