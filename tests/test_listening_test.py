"""The listening test: its trials (drawn with a seed, no trial its own foil; foils random or matched on a label),
its page (blind: the page holds no answer) and key, the scores of exported answers (Clopper–Pearson intervals and
exact binomial p, against a reference), and the page taken in Debian's chromium with clicks and key presses,
reloaded midway, exported and scored, with both foil schemes."""

from __future__ import annotations

import json
import math
from dataclasses import replace
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.stats import beta

from b2m.data.simulate import DESIGN
from b2m.errors import ConfigError, InputError
from b2m.cli import main
from b2m.evaluate.listeners import (FORMULA_STARTS, SCORE_COLUMNS, answered_trials, binomial_row, machine_listener,
                                    read_answer_sheet, score_answer_files, score_answers)
from b2m.report.listening_test import (LISTENER_ID, RETRIEVAL, ListeningKey, PageAudio, balanced_sides, draw_trials,
                                       generation_candidates, page_html, retrieval_candidates, write_listening_test)
from b2m.data.bids import BidsDataset
from b2m.options import DatasetOptions, DesignOptions, ListeningOptions, ListeningTestOptions, document
from b2m.stages.report import foil_labels
from browser import Chromium
from conftest import REPO

RATE = 16000
CLIPS = [f"{genre}.{i:05d}" for genre in ("blues", "jazz") for i in range(5)]
GENRES = {"genre": {clip: clip.split(".")[0] for clip in CLIPS}}  # label → clip → value, as foil_labels gives
MATCHED = "genre-matched"


def write_audio(path, seconds: float, rng) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.3 * rng.standard_normal(int(seconds * RATE)), RATE, format="FLAC")
    return path.name


def study_audio(folder, rng, clips=CLIPS, same_track=(), same_caption=()):
    """Retrieval audio (original + top 1) and MusicLDM samples per clip, as the pipeline writes them; every
    file has its own duration (0.3 s + 50 ms steps), so a player's sound tells which file it is. The clips in
    ``same_track`` retrieve one and the same corpus track, those in ``same_caption`` are generated from one
    caption."""
    audio, generated, rows, pieces, step = folder / "audio", folder / "generation", [], [], iter(range(1000))
    for clip in clips:
        for role, rank, name in (("original", 0, "original.flac"), ("retrieved", 1, "top1.flac")):
            write_audio(audio / clip / name, 0.3 + 0.05 * next(step), rng)
            track = "shared-track" if clip in same_track and rank else f"track-{clip}"
            rows.append((clip, clip.split(".")[0], role, rank, track, "pop", 0.5, f"{clip}/{name}"))
        for model in ("oracle", "whole-mask"):
            for sample in (1, 0):
                name = write_audio(generated / clip / f"{model}-{sample}.flac", 0.3 + 0.05 * next(step), rng)
                pieces.append({"clip_id": clip, "method": "musicldm", "model": model, "sample": sample,
                               "seed": 7, "file": f"{clip}/{name}",
                               "caption": "a slow blues" if clip in same_caption else ""})
    pd.DataFrame(rows, columns=["clip_id", "label", "role", "rank", "track_id", "track_genre", "similarity",
                                "file"]).to_parquet(audio / "listening.parquet")
    pd.DataFrame(pieces).to_parquet(generated / "generated.parquet")
    return audio, generated


def candidates_of(folder, subject="sub-001", **kwargs):
    audio, generated = study_audio(folder, np.random.default_rng(len(subject)), **kwargs)
    retrieved = retrieval_candidates(audio, subject, "test", "acoustic", "whole-mask")
    return [retrieved, generation_candidates(generated, retrieved)]


# ---------------------------------------------------------------- the trials


def test_each_clip_is_heard_once_per_method_against_another_clips_reconstruction(tmp_path):
    candidates = candidates_of(tmp_path)
    trials = draw_trials(candidates, seed=0)
    assert [t.trial for t in trials] == [f"t{i:03d}" for i in range(1, 21)]
    for method in (RETRIEVAL, "musicldm"):
        mine = [t for t in trials if t.method == method]
        assert sorted(t.clip_id for t in mine) == CLIPS
        assert all(t.foil_id != t.clip_id and t.foil_id in CLIPS for t in mine)
    by_clip = {(t.method, t.clip_id): t for t in trials}
    for trial in trials:  # the foil is the other clip's own reconstruction; generation uses sample 0 of the model
        assert trial.foil == by_clip[(trial.method, trial.foil_id)].reconstruction
        assert trial.original.endswith(f"{trial.clip_id}/original.flac")
        expected = "top1.flac" if trial.method == RETRIEVAL else "whole-mask-0.flac"
        assert trial.reconstruction.endswith(f"{trial.clip_id}/{expected}")
    for method in (RETRIEVAL, "musicldm"):  # balanced: always pressing A scores 0.5
        assert [t.true_side for t in trials if t.method == method].count("A") == 5
    methods = [t.method for t in trials]  # one shuffled order, not blocks of a method
    assert methods != sorted(methods) and methods != sorted(methods, reverse=True)


def test_the_draw_is_fixed_by_its_seed(tmp_path):
    candidates = candidates_of(tmp_path)
    assert draw_trials(candidates, seed=3) == draw_trials(candidates, seed=3)
    assert draw_trials(candidates, seed=3) != draw_trials(candidates, seed=4)


def test_a_subset_of_clips_is_shared_by_the_methods(tmp_path):
    trials = draw_trials(candidates_of(tmp_path), seed=1, clips=4)
    chosen = {m: sorted(t.clip_id for t in trials if t.method == m) for m in (RETRIEVAL, "musicldm")}
    assert len(chosen[RETRIEVAL]) == 4 and chosen[RETRIEVAL] == chosen["musicldm"]
    assert {t.foil_id for t in trials} - set(chosen[RETRIEVAL])  # foils come from every test clip


def test_a_foil_is_never_the_same_sound(tmp_path):
    """Two clips that retrieved the same track, or whose samples were generated from the same caption, are never
    each other's foil: the trial would have no answer."""
    same = CLIPS[:2]
    candidates = candidates_of(tmp_path, same_track=same, same_caption=same)
    paired = {(t.method, frozenset((t.clip_id, t.foil_id))) for seed in range(20)
              for t in draw_trials(candidates, seed=seed)}
    assert not {(RETRIEVAL, frozenset(same)), ("musicldm", frozenset(same))} & paired
    assert ("musicldm", frozenset(CLIPS[2:4])) in paired  # other pairs are drawn


def test_a_foil_is_never_the_original_itself(tmp_path, caplog):
    """In a corpus of the stimuli, one clip's retrieval may return another clip's stimulus (its id) or a copy of
    it (a duplicate): that reconstruction is never the other clip's foil, whose trial would hold its original twice.
    A clip left without a foil has no trial, said in the log."""
    audio, _ = study_audio(tmp_path, np.random.default_rng(0))
    listing = pd.read_parquet(audio / "listening.parquet")
    top = {CLIPS[1]: CLIPS[0], CLIPS[3]: "copies/jazz-copy"}  # clip → the track its retrieval returned
    listing["track_id"] = [top.get(c, t) if role == "retrieved" else t
                           for c, t, role in zip(listing.clip_id, listing.track_id, listing.role)]
    listing.to_parquet(audio / "listening.parquet")
    duplicates = pd.DataFrame({"clip_id": [CLIPS[2]], "track_id": ["copies/jazz-copy"], "source": "corpus",
                               "path": "", "offset_s": 0.0, "overlap_s": 15.0, "ber": 0.0, "same_id": False})
    candidates = [retrieval_candidates(audio, "sub-001", "test", "acoustic", "whole-mask", duplicates)]
    pairs = {(t.clip_id, t.foil_id) for seed in range(30) for t in draw_trials(candidates, seed=seed)}
    assert (CLIPS[0], CLIPS[1]) not in pairs and (CLIPS[2], CLIPS[3]) not in pairs
    assert (CLIPS[1], CLIPS[0]) in pairs and (CLIPS[3], CLIPS[2]) in pairs and (CLIPS[0], CLIPS[2]) in pairs
    lonely = [retrieval_candidates(audio, "sub-001", "test", "acoustic", "whole-mask")]
    lonely = [replace(lonely[0], reconstructions={c: lonely[0].reconstructions[c] for c in CLIPS[:2]})]
    with caplog.at_level("WARNING"):
        trials = draw_trials(lonely, seed=0)
    assert [t.clip_id for t in trials] == [CLIPS[1]] and "is its own audio: no trial" in caplog.text


def test_each_clip_has_a_trial_per_foil_scheme_and_a_matched_foil_shares_its_label(tmp_path):
    candidates = candidates_of(tmp_path)
    trials = draw_trials(candidates, seed=0, schemes=("random", MATCHED), labels=GENRES)
    assert len(trials) == 40 and len({t.trial for t in trials}) == 40
    for method in (RETRIEVAL, "musicldm"):
        for scheme in ("random", MATCHED):  # every clip once in each scheme, sides balanced within it
            mine = [t for t in trials if (t.method, t.foil_scheme) == (method, scheme)]
            assert sorted(t.clip_id for t in mine) == CLIPS and [t.true_side for t in mine].count("A") == 5
    genre = GENRES["genre"]
    assert all(genre[t.foil_id] == genre[t.clip_id] != "" and t.foil_id != t.clip_id
               for t in trials if t.foil_scheme == MATCHED)
    same = {genre[t.foil_id] == genre[t.clip_id] for seed in range(5)
            for t in draw_trials(candidates, seed=seed, schemes=("random", MATCHED), labels=GENRES)
            if t.foil_scheme == "random"}
    assert same == {True, False}  # a random foil is of any genre


def test_a_clip_whose_label_has_no_other_different_sounding_clip_gets_a_random_foil_recorded_as_such(tmp_path):
    """blues.00000 is alone in its genre; jazz.00000 and jazz.00001 share one, but retrieved the same track (so
    they are no foils of each other in retrieval) and their samples differ (they are in generation)."""
    labels = {"genre": {**GENRES["genre"], CLIPS[0]: "gospel", CLIPS[5]: "soul", CLIPS[6]: "soul"}}
    candidates = candidates_of(tmp_path, same_track=CLIPS[5:7])
    trials = draw_trials(candidates, seed=0, schemes=(MATCHED,), labels=labels)
    schemes = {(t.method, t.clip_id): t.foil_scheme for t in trials}
    fallback = "random (no genre match)"
    assert {k for k, scheme in schemes.items() if scheme == fallback} == {
        (RETRIEVAL, CLIPS[0]), ("musicldm", CLIPS[0]), (RETRIEVAL, CLIPS[5]), (RETRIEVAL, CLIPS[6])}
    assert {(t.clip_id, t.foil_id) for t in trials if t.method == "musicldm"} >= {(CLIPS[5], CLIPS[6]),
                                                                                   (CLIPS[6], CLIPS[5])}
    assert all(labels["genre"][t.foil_id] == labels["genre"][t.clip_id] for t in trials if t.foil_scheme == MATCHED)


def test_matched_foils_read_the_designs_label_and_a_label_it_lacks_is_refused(real):
    """On ds003720's real events: the genre of every stimulus (its file's genre), read only for a matched scheme."""
    options = {DatasetOptions: DatasetOptions(bids_root=str(real / "ds003720")), DesignOptions: DESIGN}
    labels = foil_labels(options, ("random", MATCHED))
    assert list(labels) == ["genre"] and len(labels["genre"]) == 540
    assert all(clip == f"{genre}.{clip.split('.')[1]}" for clip, genre in labels["genre"].items())
    assert foil_labels({}, ("random",)) == {}
    with pytest.raises(ConfigError, match=r"\['mood-matched'\] match on no label of design.labels \['genre'\]"):
        foil_labels(options, ("random", "mood-matched"))


def test_the_listening_test_command_matches_foils_on_the_designs_genre(real, tmp_path):
    """`b2m listening-test` as the rule runs it, on ds003720's real design and two test clips of each genre (as
    audio): each clip is heard against a random foil and against the other clip of its genre."""
    table = BidsDataset(real / "ds003720", DESIGN).stimulus_table()
    test = table[table.split == "test"].groupby("genre").head(2)
    audio, _ = study_audio(tmp_path, np.random.default_rng(2), clips=sorted(test.clip_id))
    doc = document(DatasetOptions(bids_root=str(real / "ds003720")), DESIGN,
                   ListeningOptions(subjects=("sub-001",), features=("acoustic",), model="whole-mask"),
                   ListeningTestOptions(foils=("random", MATCHED)))
    assert main(["listening-test", "--options", doc, "--retrieved", f"sub-001:acoustic={audio}", "--page",
                 str(tmp_path / "test.html"), "--key", str(tmp_path / "key.tsv")]) == 0
    key = pd.read_csv(tmp_path / "key.tsv", sep="\t")
    assert len(key) == 40 and key.groupby("foil_scheme").clip_id.nunique().to_dict() == {"random": 20, MATCHED: 20}
    genre = dict(zip(test.clip_id, test.genre))
    matched = key[key.foil_scheme == MATCHED]
    assert all(genre[f] == genre[c] and f != c for c, f in zip(matched.clip_id, matched.foil_id))


def test_balanced_sides_take_one_draw_for_an_odd_count():
    rng = np.random.default_rng(0)
    counts = [balanced_sides(7, rng).count("A") for _ in range(40)]
    assert set(counts) == {3, 4}


def test_a_space_with_one_distinct_reconstruction_is_refused(tmp_path):
    with pytest.raises(InputError, match="fewer than two distinct reconstructions"):
        draw_trials(candidates_of(tmp_path, same_track=CLIPS), seed=0)


def test_a_generator_without_samples_of_the_decoder_is_refused(tmp_path):
    audio, generated = study_audio(tmp_path, np.random.default_rng(0))
    retrieved = retrieval_candidates(audio, "sub-001", "test", "acoustic", "roi-ensemble")
    with pytest.raises(InputError, match="no samples generated from the roi-ensemble decoder") as error:
        generation_candidates(generated, retrieved)
    assert error.value.path.endswith("generated.parquet")


# ---------------------------------------------------------------- the page and its key


def written_test(folder, seed=0, **kwargs):
    trials = draw_trials(candidates_of(folder, **kwargs), seed=seed)
    key = write_listening_test(folder / "test.html", folder / "key.tsv", trials, jobs=2)
    return trials, key


def test_the_key_reads_back_and_its_ids_follow_the_design_and_the_audio(tmp_path):
    trials, key = written_test(tmp_path)
    assert ListeningKey.read(tmp_path / "key.tsv") == key and list(key.trials) == trials
    again = write_listening_test(tmp_path / "again.html", tmp_path / "again.tsv", trials)
    assert (again.page_id, again.trial_hash) == (key.page_id, key.trial_hash)
    other = draw_trials(candidates_of(tmp_path / "other"), seed=1)
    assert ListeningKey.of(other).trial_hash != key.trial_hash
    write_audio(tmp_path / "audio" / CLIPS[0] / "top1.flac", 0.5, np.random.default_rng(9))  # a regenerated file
    changed = ListeningKey.of(trials)
    assert changed.trial_hash == key.trial_hash and changed.page_id != key.page_id


def test_the_page_is_self_contained_and_holds_no_answer(tmp_path):
    trials, key = written_test(tmp_path)
    page = (tmp_path / "test.html").read_text()
    text = re.sub(r"data:audio/ogg;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r'(src|href)="(?!data:)', page) and "http" not in text  # no network
    assert "autoplay" not in text
    for trial in trials:  # neither clip names, files, methods nor sides
        assert trial.clip_id not in text and "top1" not in text and "musicldm" not in text
    heard = PageAudio.read(tmp_path / "test.html")
    shown, sounds = heard.trials, heard.sounds
    assert [t["id"] for t in shown] == [t.trial for t in trials]
    assert all(list(row) == ["id", "original", "A", "B"] for row in shown)  # the order says nothing either
    for trial, row in zip(trials, shown):  # each side plays its file (told apart by duration)
        for side, path in trial.sides.items():
            assert duration(heard, row[side]) == pytest.approx(sf.info(path).duration, abs=1e-3)
    assert len(sounds) == len({p for t in trials for p in (t.original, t.reconstruction, t.foil)})


def test_a_machine_listener_hears_the_page_and_finds_a_reconstruction_equal_to_its_original(tmp_path):
    """With each clip's retrieved track a copy of its original, the machine listener (hearing the page's own
    audio) is right on every retrieval trial."""
    audio, _ = study_audio(tmp_path, np.random.default_rng(3))
    for clip in CLIPS:
        shutil.copy(audio / clip / "original.flac", audio / clip / "top1.flac")
    trials = draw_trials([retrieval_candidates(audio, "sub-001", "test", "acoustic", "whole-mask")], seed=0)
    write_listening_test(tmp_path / "test.html", tmp_path / "key.tsv", trials)
    choices = machine_listener(tmp_path / "test.html")
    assert choices == {t.trial: t.true_side for t in trials}


def test_a_file_that_is_not_a_test_page_is_refused(tmp_path):
    (tmp_path / "page.html").write_text("<html></html>")
    with pytest.raises(InputError, match="not a listening-test page"):
        PageAudio.read(tmp_path / "page.html")


def duration(page: PageAudio, name: str) -> float:
    return sf.info(page.audio(name)).duration


# ---------------------------------------------------------------- scores


@pytest.mark.parametrize("correct, trials", [(0, 10), (10, 10), (7, 12), (52, 100), (1, 1)])
def test_the_interval_is_clopper_pearson_and_p_the_exact_binomial(correct, trials):
    row = binomial_row(correct, trials)
    low = beta.ppf(0.025, correct, trials - correct + 1) if correct else 0.0
    high = beta.ppf(0.975, correct + 1, trials - correct) if correct < trials else 1.0
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-9)
    pmf = [math.comb(trials, k) / 2 ** trials for k in range(trials + 1)]
    p = sum(q for q in pmf if q <= pmf[correct] * (1 + 1e-7))  # two-sided: every outcome as unlikely or less
    assert row["p_two_sided"] == pytest.approx(min(1.0, p), rel=1e-9) and row["accuracy"] == correct / trials
    assert row["p_above_chance"] == pytest.approx(sum(pmf[correct:]), rel=1e-9)


def test_known_clopper_pearson_values():
    assert binomial_row(0, 10)["ci_high"] == pytest.approx(0.30850, abs=1e-5)  # 1 - 0.025 ** (1 / 10)
    assert binomial_row(10, 10)["ci_low"] == pytest.approx(0.69150, abs=1e-5)
    row = binomial_row(5, 10)
    assert (row["ci_low"], row["ci_high"], row["p_two_sided"]) == pytest.approx((0.1871, 0.8129, 1.0), abs=1e-4)


def answer_file(folder, key: ListeningKey, listener: str, choose, kind="json", changes=None):
    """An export as the page writes it, answering each trial with ``choose(trial)``, with ``changes`` to its
    fields."""
    answers = [{"trial": t.trial, "choice": choose(t), "answered_at": "2026-12-02T10:00:00Z"} for t in key.trials]
    doc = {"format": "b2m-listening-test", "version": 1, "page_id": key.page_id, "trial_hash": key.trial_hash,
           "listener": listener, "n_trials": len(key.trials), "exported_at": "2026-12-02T10:05:00Z",
           "answers": answers, **(changes or {})}
    path = folder / f"listening-test_{listener or 'none'}_{doc['page_id']}.{kind}"
    if kind == "json":
        path.write_text(json.dumps(doc))
    else:
        rows = [[doc["listener"], doc["page_id"], doc["trial_hash"], a["trial"], a["choice"], a["answered_at"]]
                for a in answers]
        pd.DataFrame(rows, columns=["listener", "page_id", "trial_hash", "trial", "choice", "answered_at"]).to_csv(
            path, index=False)
    return path


def true_side(trial):
    return trial.true_side


def wrong_side(trial):
    return "B" if trial.true_side == "A" else "A"


def test_scores_per_listener_method_space_and_pooled(tmp_path):
    _, key = written_test(tmp_path)
    perfect = answer_file(tmp_path, key, "L01", true_side)
    wrong = answer_file(tmp_path, key, "L02", wrong_side, kind="csv")
    table = score_answer_files(tmp_path / "key.tsv", [perfect, wrong])
    row = table.set_index(["scope", "listener", "method"])
    assert row.loc[("listener", "L01", "all"), "accuracy"] == 1.0 and row.loc[("listener", "L02", "all"),
                                                                                "accuracy"] == 0.0
    assert row.loc[("listener × method", "L01", "musicldm"), "trials"] == 10
    assert row.loc[("pooled", "all", "all"), ["trials", "correct"]].tolist() == [40, 20]
    assert row.loc[("method", "all", RETRIEVAL), "accuracy"] == 0.5
    assert set(table.scope) == {"pooled", "listener", "method", "feature", "subject", "feature × method",
                                "listener × method", "foil scheme", "foil scheme × method"}
    assert row.loc[("foil scheme", "all", "all"), "trials"] == 40 and set(table.foil_scheme) == {"all", "random"}
    assert row.loc[("listener", "L01", "all"), "p_two_sided"] == pytest.approx(2 / 2 ** 20)
    assert row.loc[("listener", "L02", "all"), "p_above_chance"] == 1.0
    assert set(table.fold) == {"test"} and set(table.model) == {"whole-mask"} and set(table.page_id) == {key.page_id}


def test_the_scores_compare_the_foil_schemes(tmp_path):
    """A listener right on every random-foil trial and wrong on every genre-matched one: the schemes' rows say so,
    each with its own interval."""
    trials = draw_trials(candidates_of(tmp_path), seed=0, schemes=("random", MATCHED), labels=GENRES)
    key = write_listening_test(tmp_path / "test.html", tmp_path / "key.tsv", trials)
    assert ListeningKey.read(tmp_path / "key.tsv") == key  # the schemes read back
    path = answer_file(tmp_path, key, "L01", lambda t: true_side(t) if t.foil_scheme == "random" else wrong_side(t))
    table = score_answer_files(tmp_path / "key.tsv", [path]).set_index(["scope", "foil_scheme", "method"])
    random, matched = (table.loc[("foil scheme", scheme, "all")] for scheme in ("random", MATCHED))
    assert (random.trials, random.accuracy, matched.trials, matched.accuracy) == (20, 1.0, 20, 0.0)
    assert (random.ci_low, random.ci_high) == pytest.approx((beta.ppf(0.025, 20, 1), 1.0))
    assert table.loc[("foil scheme × method", MATCHED, RETRIEVAL), "trials"] == 10
    assert table.loc[("pooled", "all", "all"), "accuracy"] == 0.5


def test_a_key_written_before_foil_schemes_reads_as_random_foils(tmp_path):
    _, key = written_test(tmp_path)
    old = pd.read_csv(tmp_path / "key.tsv", sep="\t", dtype=str, keep_default_na=False).drop(columns="foil_scheme")
    old.to_csv(tmp_path / "old.tsv", sep="\t", index=False)
    assert ListeningKey.read(tmp_path / "old.tsv") == key


def test_a_partial_export_scores_its_answered_trials(tmp_path):
    _, key = written_test(tmp_path)
    path = answer_file(tmp_path, key, "L03", true_side)
    doc = json.loads(path.read_text())
    doc["answers"] = doc["answers"][:5]
    path.write_text(json.dumps(doc))
    table = score_answers(answered_trials(key, [read_answer_sheet(path)]))
    assert table[table.scope == "pooled"].trials.item() == 5


@pytest.mark.parametrize("changes, named", [
    ({"page_id": "b2m-000000000000"}, "but .*key.tsv is the key of page"),
    ({"trial_hash": "0" * 16}, "but .*key.tsv is the key of page"),
    ({"format": "something-else"}, "not a b2m listening-test export"),
    ({"listener": ""}, "no listener id"),
    ({"answers": [{"trial": "t999", "choice": "A", "answered_at": ""}]}, r"trials \['t999'\] are not on page"),
    ({"answers": [{"trial": "t001", "choice": "C", "answered_at": ""}]}, r"choices \['C'\]"),
    ({"answers": [{"trial": "t001", "choice": "A", "answered_at": ""}] * 2}, "trials answered twice"),
    ({"answers": []}, "it holds no answers"),
    ({"answers": ["t001 A"]}, "is not a list of"),
])
def test_an_answer_file_for_another_page_or_edited_is_refused_naming_it(tmp_path, changes, named):
    _, key = written_test(tmp_path)
    path = answer_file(tmp_path, key, "L04", true_side, changes=changes)
    with pytest.raises(InputError, match=named) as error:
        score_answer_files(tmp_path / "key.tsv", [path])
    assert error.value.path == str(path) and error.value.fix


def test_two_files_of_one_listener_are_refused(tmp_path):
    _, key = written_test(tmp_path)
    first = answer_file(tmp_path, key, "L05", true_side)
    second = answer_file(tmp_path, key, "L05", wrong_side, kind="csv")
    with pytest.raises(InputError, match=r"listeners \['L05'\] have more than one answer file") as error:
        score_answer_files(tmp_path / "key.tsv", [first, second])
    assert str(first) in str(error.value) and str(second) in str(error.value)


def test_every_cell_the_scorer_writes_is_one_cell_and_no_formula(tmp_path):
    """Read as a naive spreadsheet would (split on tabs and lines; the HTML's cells), no text cell starts with =,
    +, -, @, a tab or a carriage return, and every row has every column."""
    _, key = written_test(tmp_path)
    answers = [answer_file(tmp_path, key, listener, true_side, kind=kind)
               for listener, kind in (("0x", "json"), ("L-01_b", "csv"))]
    out = tmp_path / "out"
    assert main(["score-listening", *map(str, answers), "--key", str(tmp_path / "key.tsv"), "--out",
                 str(out / "scores.tsv"), "--html", str(out / "scores.html")]) == 0
    lines = (out / "scores.tsv").read_text().split("\n")
    rows = [line.split("\t") for line in lines[:-1]]
    assert lines[-1] == "" and {len(row) for row in rows} == {len(SCORE_COLUMNS)} and rows[0] == SCORE_COLUMNS
    cells = re.findall(r"<td>(.*?)</td>", (out / "scores.html").read_text(), re.DOTALL)
    assert len(cells) == (len(rows) - 1) * len(SCORE_COLUMNS)
    text = [SCORE_COLUMNS.index(c) for c in ("scope", "listener", "subject", "feature", "method", "foil_scheme",
                                              "fold", "model", "page_id")]
    written = [row[i] for row in rows[1:] for i in text] + [c for i in text for c in cells[i::len(SCORE_COLUMNS)]]
    assert {"0x", "L-01_b"} <= set(written) and not [c for c in written if c.startswith(FORMULA_STARTS)]


@pytest.mark.parametrize("listener, valid", [("L01", True), ("0x", True), ("a-b_c", True), ("L" * 40, True),
                                             ("L" * 41, False), ("-L01", False), ("_L01", False), ("=1+2", False),
                                             ("L 01", False), ("L01\n", False), ("Lé", False), ("", False)])
def test_the_page_and_the_scorer_share_one_listener_pattern(listener, valid, tmp_path):
    """The page's input takes its pattern from ``LISTENER_ID`` and its export check reads it there; JavaScript
    (node, where installed, with the u and v flags browsers use) and Python agree on it."""
    assert bool(re.fullmatch(LISTENER_ID, listener)) is valid
    page = page_html(ListeningKey((), "0" * 16, "b2m-0"), {}, {}, "test")
    assert f'pattern="{LISTENER_ID}"' in page and page.count("A-Za-z0-9") == 2  # the pattern's two classes, once
    assert 'new RegExp(`^(?:${$("listener").pattern})$`, "u")' in page
    node = shutil.which("node")
    if node:
        script = ("const [p, id] = process.argv.slice(1); console.log(['u', 'v'].map(f => "
                  "new RegExp(`^(?:${p})$`, f).test(id)).join())")
        result = subprocess.run([node, "-e", script, LISTENER_ID, listener], capture_output=True, text=True,
                                check=True)
        assert result.stdout.strip() == f"{str(valid).lower()},{str(valid).lower()}"


def test_an_empty_csv_export_is_refused(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("listener,page_id,trial_hash,trial,choice,answered_at\n")
    with pytest.raises(InputError, match="it holds no answers"):
        read_answer_sheet(path)


# ---------------------------------------------------------------- in a real browser


def state(browser) -> dict:
    return browser.evaluate("({...document.querySelector('main').dataset, "
                            "progress: document.getElementById('progress').textContent, "
                            "listener: document.getElementById('listener').value, "
                            "durations: ['original', 'candidate-a', 'candidate-b'].map(i => "
                            "document.getElementById(i).duration)})")


def wait_for_audio(browser) -> list[float]:
    for _ in range(100):
        durations = state(browser)["durations"]
        if all(d and d > 0 for d in durations):
            return durations
        browser.evaluate("new Promise(done => setTimeout(done, 50))")
    raise AssertionError(f"the trial's audio did not load: {durations}")


def type_listener(browser, listener: str) -> None:
    browser.click("#listener")
    browser.type(listener)


def take_test(browser, key: ListeningKey, choose, listener: str, reload_at: int) -> list[str]:
    """Answer every trial with ``choose(trial)``, alternating clicks and key presses, reloading the page once
    after ``reload_at`` answers; returns the trial ids in the order the page showed them."""
    trials = {t.trial: t for t in key.trials}
    shown = []
    for answered in range(len(key.trials)):
        current = state(browser)
        assert current["progress"] == f"Trial {len(shown) + 1} of {len(trials)}"
        assert current["answered"] == str(answered) and current["current"] not in shown
        trial = trials[current["current"]]
        assert wait_for_audio(browser) == pytest.approx(
            [sf.info(p).duration for p in (trial.original, *(trial.sides[s] for s in "AB"))], abs=0.02)
        shown.append(trial.trial)
        side = choose(trial)
        if answered % 2:
            browser.press(side.lower(), repeats=3)  # a held key answers once
        else:
            browser.click(f"#choose-{side}")
        if answered + 1 == reload_at:
            browser.reload()
            after = state(browser)
            assert after["answered"] == str(reload_at) and after["listener"] == listener
    return shown


def export(browser, kind: str):
    mark = len(browser.events)
    browser.click(f"#export-{kind}")
    return browser.downloaded(mark)


def test_a_listener_takes_the_test_in_chromium_and_the_export_scores(tmp_path, chromium):
    """Two listeners on one browser: one always picks the true reconstruction (accuracy 1.0), one picks at
    random (0.5 inside their interval); each reloads midway and loses nothing, exports, and starts over for the
    next. Every control is reached with Tab; a screenshot is saved for the eye."""
    _, key = written_test(tmp_path, seed=2)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    rng = np.random.default_rng(5)
    with Chromium(chromium, tmp_path / "profile", downloads) as browser:
        browser.open((tmp_path / "test.html").as_uri())
        assert browser.evaluate("[...document.querySelectorAll('audio')].every(a => a.paused && !a.autoplay)")
        reached = set()
        for _ in range(60):
            browser.press("Tab")
            reached.add(browser.evaluate("document.activeElement.id"))
        controls = browser.evaluate("[...document.querySelectorAll('button:not(:disabled), input, audio')]"
                                    ".map(e => e.id)")
        assert set(controls) <= reached, set(controls) - reached

        type_listener(browser, "L01")
        shown = take_test(browser, key, true_side, "L01", reload_at=7)
        assert sorted(shown) == sorted(t.trial for t in key.trials)
        assert "all done" in browser.evaluate("document.getElementById('answered').textContent")
        perfect = export(browser, "json")
        save_screenshot(browser, tmp_path)
        browser.click("#start-over")  # the confirm dialog is accepted
        assert state(browser)["answered"] == "0" and state(browser)["listener"] == ""

        for listener, refusal in (("", "Enter your listener id"), ("L02", "Answer at least one trial")):
            type_listener(browser, listener)
            browser.click("#export-json")  # nothing to export yet: refused, saying why
            assert browser.evaluate("document.getElementById('export-status').textContent").startswith(refusal)
        take_test(browser, key, lambda trial: "AB"[rng.integers(2)], "L02", reload_at=13)
        guessing = export(browser, "csv")
    assert perfect.name == f"listening-test_L01_{key.page_id}.json"
    assert guessing.name == f"listening-test_L02_{key.page_id}.csv"
    table = score_answer_files(tmp_path / "key.tsv", [perfect, guessing]).set_index(["scope", "listener"])
    assert table.loc[("listener", "L01"), "accuracy"] == 1.0 and table.loc[("listener", "L01"), "trials"] == 20
    assert table.loc[("listener", "L01"), "p_two_sided"] < 1e-5
    random = table.loc[("listener", "L02")]
    assert random.trials == 20 and random.ci_low < 0.5 < random.ci_high


def test_both_foil_schemes_are_answered_in_chromium_and_scored_apart(tmp_path, chromium):
    """A page of both schemes (retrieval of 10 clips: 20 trials, each clip against a random and a genre-matched
    foil), taken in chromium by a listener who picks the true reconstruction against a random foil and the foil
    against a matched one; the export scores 1.0 on the random scheme and 0.0 on the matched one."""
    audio, _ = study_audio(tmp_path, np.random.default_rng(1))
    candidates = [retrieval_candidates(audio, "sub-001", "test", "acoustic", "whole-mask")]
    trials = draw_trials(candidates, seed=4, schemes=("random", MATCHED), labels=GENRES)
    key = write_listening_test(tmp_path / "test.html", tmp_path / "key.tsv", trials)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with Chromium(chromium, tmp_path / "profile", downloads) as browser:
        browser.open((tmp_path / "test.html").as_uri())
        type_listener(browser, "L07")
        shown = take_test(browser, key, lambda t: true_side(t) if t.foil_scheme == "random" else wrong_side(t),
                          "L07", reload_at=9)
        answers = export(browser, "csv")
    assert sorted(shown) == sorted(t.trial for t in trials)
    table = score_answer_files(tmp_path / "key.tsv", [answers]).set_index(["scope", "foil_scheme"])
    assert table.loc[("foil scheme", "random"), ["trials", "accuracy"]].tolist() == [10, 1.0]
    assert table.loc[("foil scheme", MATCHED), ["trials", "accuracy"]].tolist() == [10, 0.0]
    assert table.loc[("foil scheme", "random"), "p_above_chance"] == pytest.approx(2 ** -10)


def save_screenshot(browser, tmp_path) -> None:
    """The page once answered, for the eye: kept in $B2M_TEST_ARTIFACTS (default: test-artifacts/ in the
    checkout) and the test's folder."""
    browser.click("#previous")
    browser.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "listening_test.png"
    browser.screenshot(shot)
    assert shot.stat().st_size > 10_000
    artifacts = Path(os.environ.get("B2M_TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts / shot.name)
