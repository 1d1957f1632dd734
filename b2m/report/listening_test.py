"""The listening test: two-alternative identification by ear, as one self-contained HTML page and its key.

Each trial plays the original excerpt of a test clip and two candidates, the reconstruction of that clip and
the reconstruction of another test clip of the same subject, space and method (the foil, drawn among those whose
reconstruction sounds different), the true one on side A in half the trials and B in the other half; the
listener picks the one that matches. Each clip has a trial per foil scheme: ``random`` draws the foil among every
other clip (the published protocol), ``<label>-matched`` among the clips of the same value of a design label
(same genre: harder), or, where no other clip has it, among every clip, recorded as ``random (no <label> match)``
in the key's ``foil_scheme``. Trials come from retrieval (the top retrieved track) and from each generator (its
first sample), for the listening page's subjects and spaces, and are presented in one seeded random order.

The page holds no answer: which side is true is written to the key (``listening_test_key.tsv``) beside it, its
sounds are named by their digest order, not by clip, and each trial lists them as original, A, B. The page
keeps a listener's answers in the browser's localStorage (under the page id, so a reload loses nothing) and
exports them as JSON or CSV carrying the page id and the trial hash, which ``b2m score-listening`` checks
against the key.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from b2m.errors import InputError
from b2m.io import atomic_path, file_digest
from b2m.layout import AudioFiles, GenerationFiles
from b2m.options import RANDOM_FOILS, foil_label
from b2m.reconstruct.duplicates import excluded_ids
from b2m.report.listening import STYLE, audio_uris

log = logging.getLogger(__name__)

ANSWER_FORMAT = "b2m-listening-test"  # the "format" of an exported answer file
ANSWER_VERSION = 1
EXPORT_COLUMNS = ("listener", "page_id", "trial_hash", "trial", "choice", "answered_at")  # of a CSV export
SIDES = ("A", "B")
# A listener id: up to 40 letters, digits, - and _, starting with a letter or a digit (a cell that starts with =,
# +, - or @ is run as a formula by a spreadsheet). The page's input and export check and the scorer share it; it is
# valid in Python and in JavaScript with the u or v flag (an HTML pattern attribute).
LISTENER_ID = r"[A-Za-z0-9][A-Za-z0-9_\-]{0,39}"
RETRIEVAL = "retrieval"  # the method of the trials whose candidates are the top retrieved tracks


@dataclass(frozen=True)
class Candidates:
    """The reconstructions of one subject × fold × space × method, one per test clip, from the ``listing`` file:
    ``reconstructions`` and ``originals`` (clip → audio file), ``identities`` (clip → what makes two
    reconstructions the same sound: the retrieved track, the caption, or else the generated file) and ``own``
    (clip → the identities that are the clip's own audio: its stimulus and its duplicates in the corpus, which
    another clip's retrieval may return: never its foil)."""

    listing: str
    subject: str
    fold: str
    feature: str
    method: str
    model: str
    originals: dict
    reconstructions: dict
    identities: dict
    own: dict


@dataclass(frozen=True)
class Trial:
    """One trial: the original of ``clip_id``, its reconstruction on ``true_side`` and the reconstruction of
    ``foil_id`` on the other side, drawn by ``foil_scheme``; ``trial`` is its id in presentation order (t001,
    ...)."""

    trial: str
    subject: str
    fold: str
    feature: str
    method: str
    model: str
    clip_id: str
    foil_id: str
    foil_scheme: str
    true_side: str
    original: str
    reconstruction: str
    foil: str

    @property
    def sides(self) -> dict:
        """Side → audio file, A first whichever is true (the page's order must say nothing)."""
        return {side: self.reconstruction if side == self.true_side else self.foil for side in SIDES}

    @property
    def files(self) -> tuple[str, str, str]:
        """The audio files heard: the original, then sides A and B."""
        return (self.original, *self.sides.values())


def file_digests(trials) -> dict:
    """Audio file → its sha256, for every file the trials play."""
    return {path: file_digest(path, "sha256") for path in sorted({p for t in trials for p in t.files})}


def trials_table(trials) -> pd.DataFrame:
    """One row per trial, a column per ``Trial`` field."""
    return pd.DataFrame([asdict(t) for t in trials], columns=[f.name for f in fields(Trial)])


DESIGN = ("trial", "subject", "fold", "feature", "method", "model", "clip_id", "foil_id", "true_side")


@dataclass(frozen=True)
class ListeningKey:
    """The trials of one page with its ids: ``trial_hash`` digests the design (who is heard against whom, on
    which side; not the foil scheme, which drew it), ``page_id`` the design and every audio file's bytes."""

    trials: tuple[Trial, ...]
    trial_hash: str
    page_id: str

    @classmethod
    def of(cls, trials: list[Trial], digests: dict | None = None) -> "ListeningKey":
        """The key of ``trials``; ``digests`` (``file_digests``) when already computed."""
        digests = digests or file_digests(trials)
        design = trials_table(trials)[list(DESIGN)]
        trial_hash = hashlib.sha256(design.to_csv(index=False).encode()).hexdigest()[:16]
        audio = hashlib.sha256(trial_hash.encode())
        for trial in trials:
            for path in trial.files:
                audio.update(digests[path].encode())
        return cls(tuple(trials), trial_hash, "b2m-" + audio.hexdigest()[:12])

    def table(self) -> pd.DataFrame:
        return trials_table(self.trials).assign(page_id=self.page_id, trial_hash=self.trial_hash)

    def write(self, path) -> None:
        with atomic_path(path) as tmp:
            self.table().to_csv(tmp, sep="\t", index=False)

    @classmethod
    def read(cls, path) -> "ListeningKey":
        """The key at ``path``; one written before keys had ``foil_scheme`` (every foil random) reads as random."""
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if "foil_scheme" not in table.columns:
            table["foil_scheme"] = RANDOM_FOILS
        missing = [c for c in (*(f.name for f in fields(Trial)), "page_id", "trial_hash") if c not in table.columns]
        if missing or table.page_id.nunique() != 1 or table.trial_hash.nunique() != 1:
            raise InputError(path, f"not a listening-test key (columns missing: {missing}, or more than one page)",
                             "pass the listening_test_key.tsv that b2m listening-test wrote beside the page")
        trials = tuple(Trial(**{f.name: row[f.name] for f in fields(Trial)}) for _, row in table.iterrows())
        return cls(trials, table.trial_hash.iloc[0], table.page_id.iloc[0])


def retrieval_candidates(audio_folder, subject: str, fold: str, feature: str, model: str,
                         duplicates: pd.DataFrame | None = None) -> Candidates:
    """The top retrieved track of each test clip, from ``b2m retrieve``'s audio folder; ``duplicates`` (a
    b2m.reconstruct.duplicates table) names the corpus tracks that are a clip's own audio besides its id."""
    audio = AudioFiles(audio_folder)
    listing = pd.read_parquet(audio.listing)
    originals = listing[listing.role == "original"]
    top = listing[(listing.role == "retrieved") & (listing["rank"] == 1)]
    return Candidates(str(audio.listing), subject, fold, feature, RETRIEVAL, model,
                      {c: str(audio.path / f) for c, f in zip(originals.clip_id, originals.file)},
                      {c: str(audio.path / f) for c, f in zip(top.clip_id, top.file)},
                      dict(zip(top.clip_id, top.track_id)),
                      dict(zip(originals.clip_id, excluded_ids(originals.clip_id, duplicates))))


def generation_candidates(folder, originals: Candidates) -> Candidates:
    """The first sample generated for each test clip from ``originals.model``'s predictions, from a ``b2m
    generate`` folder; the originals are those of the retrieval candidates. Two clips whose predictions picked the
    same caption sound alike (one prompt, two seeds): the caption is their identity."""
    generated = GenerationFiles(folder)
    listing = pd.read_parquet(generated.listing)
    first = listing[listing.model == originals.model].sort_values("sample").drop_duplicates("clip_id")
    if first.empty:
        raise InputError(generated.listing, f"no samples generated from the {originals.model} decoder",
                         "add it to reconstruction.generation.models, or hear another reconstruction.audio.model")
    files = {c: str(generated.path / f) for c, f in zip(first.clip_id, first.file)}
    identities = {c: caption or files[c] for c, caption in zip(first.clip_id, first.caption.fillna(""))}
    return replace(originals, listing=str(generated.listing), method=str(first.method.iloc[0]),
                   reconstructions=files, identities=identities)


def _check_foils(group: Candidates) -> None:
    """Refuse a method whose reconstructions all sound the same: no trial would have a foil."""
    if len(set(group.identities.values())) < 2:
        raise InputError(group.listing, f"{group.subject} {group.feature} {group.method}: fewer than two distinct "
                         "reconstructions, so no trial has a foil",
                         "reconstruct more test clips, or leave this space out of reconstruction.listening")


def balanced_sides(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` true sides, half A and half B (one more of a side drawn at random when ``n`` is odd), in random
    order: a listener who always presses one side scores 0.5."""
    sides = [SIDES[i % 2] for i in range(n)]
    if n % 2:
        sides[-1] = SIDES[rng.integers(2)]
    return [sides[i] for i in rng.permutation(n)]


def foils_of(group: Candidates, clip: str, ids: list[str]) -> list[str]:
    """The clips whose reconstruction may be ``clip``'s foil: those that sound different from its own and are not
    its original's audio (a corpus of the stimuli returns one clip's stimulus for another; logged where that
    leaves a clip without a foil, whose trial is then left out)."""
    own = group.own.get(clip, set())
    foils = [c for c in ids if group.identities[c] != group.identities[clip] and group.identities[c] not in own]
    if not foils:
        log.warning("%s %s %s: every other reconstruction of %s sounds like it or is its own audio: no trial",
                    group.subject, group.feature, group.method, clip)
    return foils


def scheme_foils(group: Candidates, clip: str, foils: list[str], scheme: str, labels: dict) -> tuple[list, str]:
    """The foils ``clip``'s trial of ``scheme`` draws from, among its ``foils`` (``foils_of``), and the scheme as
    the key records it: ``random``, every foil; ``<label>-matched``, those of the clip's value of the label
    (``labels``: label → clip → value) or, where none is (or the clip has no value), every foil, recorded as
    ``random (no <label> match)``."""
    label = foil_label(scheme)
    if label is None:
        return foils, scheme
    value = labels[label].get(clip)  # None: the clip has no value of the label, so no clip matches it
    matched = [c for c in foils if value is not None and labels[label].get(c) == value]
    if matched:
        return matched, scheme
    log.info("%s %s %s: no other clip of %s %s sounds different: %s gets a random foil", group.subject,
             group.feature, group.method, label, value, clip)
    return foils, f"{RANDOM_FOILS} (no {label} match)"


def scheme_trials(group: Candidates, heard: list[str], foils: dict, scheme: str, labels: dict,
                  rng: np.random.Generator) -> list[Trial]:
    """One trial of ``scheme`` per clip ``heard`` (unnumbered), balanced sides and foils drawn with ``rng``."""
    trials = []
    for clip, side in zip(heard, balanced_sides(len(heard), rng)):
        among, recorded = scheme_foils(group, clip, foils[clip], scheme, labels)
        foil = among[rng.integers(len(among))]
        trials.append(Trial("", group.subject, group.fold, group.feature, group.method, group.model, clip, foil,
                            recorded, side, group.originals[clip], group.reconstructions[clip],
                            group.reconstructions[foil]))
    return trials


def draw_trials(candidates: list[Candidates], seed: int, clips: int | None = None,
                schemes: tuple[str, ...] = (RANDOM_FOILS,), labels: dict | None = None) -> list[Trial]:
    """One trial per test clip of each ``Candidates`` (or ``clips`` of them, drawn once per subject × space and
    shared by its methods) and foil scheme of ``schemes`` (``labels``: label → clip → value, for the
    ``<label>-matched`` ones), foils and balanced sides drawn with ``seed``, in one random presentation order."""
    rng = np.random.default_rng(seed)
    chosen, trials = {}, []
    for group in candidates:
        _check_foils(group)
        ids = sorted(group.reconstructions)
        key = (group.subject, group.fold, group.feature)
        if key not in chosen and clips and clips < len(ids):
            chosen[key] = sorted(map(str, rng.choice(ids, clips, replace=False)))
        foils = {clip: foils_of(group, clip, ids) for clip in ids}
        heard = [c for c in chosen.setdefault(key, ids) if c in group.reconstructions and foils[c]]
        for scheme in schemes:
            trials += scheme_trials(group, heard, foils, scheme, labels or {}, rng)
    if not trials:
        raise InputError(candidates[0].listing if candidates else "reconstruction.listening",
                         "no test clip to build a trial from", "reconstruct the test clips of the listening page")
    order = rng.permutation(len(trials))
    return [replace(trials[i], trial=f"t{k + 1:03d}") for k, i in enumerate(order)]


TEST_STYLE = """
main { max-width: 46em; }
h1 { font-size: 1.5em; }
.original h2, .candidates h3 { font-size: 1.05em; margin: 0.2em 0 0.4em; }
.candidates { display: flex; gap: 2em; flex-wrap: wrap; }
.candidates section, .original { border: 1px solid #ccc; border-radius: 6px; padding: 0.6em 1em; }
button { font-size: 1em; padding: 0.4em 0.9em; margin: 0.3em 0.3em 0.3em 0; }
button[aria-pressed="true"] { background: #2a6; color: white; }
:focus-visible { outline: 3px solid #15c; outline-offset: 2px; }
#progress { font-size: 1.2em; font-weight: bold; }
kbd { border: 1px solid #999; border-radius: 3px; padding: 0 0.3em; font-size: 0.9em; }
"""

# The page's logic: state in localStorage under the page id; answers by click or key; export as JSON or CSV.
TEST_SCRIPT = """
const $ = id => document.getElementById(id);
const main = document.querySelector("main");
const PAGE_ID = main.dataset.pageId, TRIAL_HASH = main.dataset.trialHash, FORMAT = main.dataset.format;
const VERSION = Number(main.dataset.version), COLUMNS = main.dataset.csvColumns.split(",");
const TRIALS = JSON.parse($("trials").textContent), SOUNDS = JSON.parse($("sounds").textContent);
const STORE = `b2m-listening-test:${PAGE_ID}`;
const LISTENER = new RegExp(`^(?:${$("listener").pattern})$`, "u");
const fresh = () => ({listener: "", current: 0, answers: {}});
const players = {original: $("original"), A: $("candidate-a"), B: $("candidate-b")};

function unsaved() {
  $("storage-status").textContent = "This browser does not keep the answers (storage blocked or full): " +
    "export them before you close or reload the page.";
}

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) || "{}");
    const usable = saved && typeof saved === "object" && typeof (saved.answers || {}) === "object";
    return Object.assign(fresh(), usable ? saved : {});
  } catch (error) { unsaved(); return fresh(); }
}

function save() {
  try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (error) { unsaved(); }
}

let state = load();
const answered = () => TRIALS.filter(t => state.answers[t.id]).length;

function show(index) {
  state.current = Math.max(0, Math.min(TRIALS.length - 1, index));
  save();
  const trial = TRIALS[state.current], choice = (state.answers[trial.id] || {}).choice;
  for (const [role, player] of Object.entries(players)) {
    player.pause();
    if (player.dataset.sound !== trial[role]) { player.src = SOUNDS[trial[role]]; player.dataset.sound = trial[role]; }
  }
  $("progress").textContent = `Trial ${state.current + 1} of ${TRIALS.length}`;
  $("answered").textContent = `${answered()} of ${TRIALS.length} answered` +
    (answered() === TRIALS.length ? ": all done, export your answers below" : "");
  for (const side of ["A", "B"]) $(`choose-${side}`).setAttribute("aria-pressed", String(choice === side));
  $("choice").textContent = choice ? `Your answer: ${choice}` : "Not answered yet";
  $("previous").disabled = state.current === 0;
  $("next").disabled = state.current === TRIALS.length - 1;
  if (document.activeElement && document.activeElement.disabled) $("choose-A").focus();
  $("listener").value = state.listener;
  Object.assign(main.dataset, {current: trial.id, answered: answered()});
}

function move(step) {
  const index = state.current + step;
  if (index >= 0 && index < TRIALS.length) show(index);
}

function choose(side) {
  state.answers[TRIALS[state.current].id] = {choice: side, answered_at: new Date().toISOString()};
  const after = TRIALS.findIndex((t, i) => i > state.current && !state.answers[t.id]);
  const first = TRIALS.findIndex(t => !state.answers[t.id]);
  show(after >= 0 ? after : first >= 0 ? first : state.current);
}

function exported() {
  const rows = TRIALS.filter(t => state.answers[t.id]).map(t => ({trial: t.id, ...state.answers[t.id]}));
  return {format: FORMAT, version: VERSION, page_id: PAGE_ID, trial_hash: TRIAL_HASH, listener: state.listener,
          n_trials: TRIALS.length, exported_at: new Date().toISOString(), answers: rows};
}

function asCsv(doc) {
  const rows = doc.answers.map(a => ({...doc, ...a})).map(row => COLUMNS.map(c => row[c]).join(","));
  return [COLUMNS.join(","), ...rows].join("\\n") + "\\n";
}

function download(kind) {
  const doc = exported(), say = text => { $("export-status").textContent = text; };
  if (!LISTENER.test(state.listener)) {
    say("Enter your listener id (letters, digits, - or _, starting with a letter or digit) before exporting.");
    $("listener").focus();
    return;
  }
  if (!doc.answers.length) { say("Answer at least one trial before exporting."); return; }
  const name = `listening-test_${state.listener}_${PAGE_ID}.${kind}`;
  const text = kind === "json" ? JSON.stringify(doc, null, 1) + "\\n" : asCsv(doc);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], {type: kind === "json" ? "application/json" : "text/csv"}));
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  say(`Saved ${doc.answers.length} answers as ${name}.`);
}

function startOver() {
  if (!confirm("Clear every answer on this page, for the next listener? Export yours first.")) return;
  state = fresh();
  $("export-status").textContent = "";
  show(0);
}

function toggle(player) {
  Object.values(players).forEach(p => { if (p !== player) p.pause(); });
  if (player.paused) player.play().catch(() => {}); else player.pause();
}

$("listener").addEventListener("input", event => { state.listener = event.target.value.trim(); save(); });
$("choose-A").addEventListener("click", () => choose("A"));
$("choose-B").addEventListener("click", () => choose("B"));
$("previous").addEventListener("click", () => move(-1));
$("next").addEventListener("click", () => move(1));
$("export-json").addEventListener("click", () => download("json"));
$("export-csv").addEventListener("click", () => download("csv"));
$("start-over").addEventListener("click", startOver);
window.addEventListener("storage", event => { if (event.key === STORE) { state = load(); show(state.current); } });
const KEYS = {a: () => choose("A"), b: () => choose("B"), n: () => move(1), p: () => move(-1),
              1: () => toggle(players.original), 2: () => toggle(players.A), 3: () => toggle(players.B)};
document.addEventListener("keydown", event => {
  const action = KEYS[(event.key || "").toLowerCase()];
  if (!action || event.repeat || event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey ||
      event.altKey) return;
  event.preventDefault();
  action();
});
show(state.current);
"""


def sound_names(digests: dict) -> dict:
    """Audio file → opaque name (s0, s1, ... in the order of the files' digests, ``file_digests``), so the page's
    source says nothing about which candidate belongs to which original."""
    paths = sorted(digests, key=lambda path: (digests[path], path))
    return {path: f"s{i}" for i, path in enumerate(paths)}


def page_html(key: ListeningKey, uris: dict, digests: dict, title: str) -> str:
    """The page: ``uris`` and ``digests`` map each audio file of ``key``'s trials to its data URI and sha256."""
    names = sound_names(digests)
    trials = [{"id": t.trial, "original": names[t.original], **{side: names[t.sides[side]] for side in SIDES}}
              for t in key.trials]
    sounds = {name: uris[path] for path, name in names.items()}
    body = f"""<main data-page-id="{key.page_id}" data-trial-hash="{key.trial_hash}" data-format="{ANSWER_FORMAT}"
data-version="{ANSWER_VERSION}" data-csv-columns="{",".join(EXPORT_COLUMNS)}">
<h1>{html.escape(title)}</h1>
<p>Listen to the original excerpt (the music as played in the scanner, up to its first seconds), then to
candidates A and B: one was reconstructed from the brain activity recorded while this music played, the other
from another piece's. Pick the one that matches the original.
Your answers stay in this browser until you export them; a reload loses nothing.</p>
<p>Keys: <kbd>1</kbd> plays the original, <kbd>2</kbd> candidate A, <kbd>3</kbd> candidate B; <kbd>A</kbd> or
<kbd>B</kbd> answers; <kbd>N</kbd> and <kbd>P</kbd> go to the next and previous trial; <kbd>Tab</kbd> reaches
every control.</p>
<p><label for="listener">Your listener id</label>
<input id="listener" autocomplete="off" pattern="{html.escape(LISTENER_ID)}" placeholder="e.g. L01"></p>
<p id="storage-status" role="alert"></p>
<p id="progress" aria-live="polite">Trial 1 of {len(trials)}</p>
<p id="answered"></p>
<div class="original"><h2 id="original-label">Original excerpt</h2>
<audio id="original" controls preload="metadata" aria-labelledby="original-label"></audio></div>
<h2>Which candidate matches the original?</h2>
<div class="candidates">
<section aria-labelledby="label-A"><h3 id="label-A">Candidate A</h3>
<audio id="candidate-a" controls preload="metadata" aria-labelledby="label-A"></audio><br>
<button type="button" id="choose-A" aria-pressed="false">A matches</button></section>
<section aria-labelledby="label-B"><h3 id="label-B">Candidate B</h3>
<audio id="candidate-b" controls preload="metadata" aria-labelledby="label-B"></audio><br>
<button type="button" id="choose-B" aria-pressed="false">B matches</button></section>
</div>
<p id="choice"></p>
<p><button type="button" id="previous">Previous trial</button>
<button type="button" id="next">Next trial</button></p>
<h2>Export</h2>
<p><button type="button" id="export-json">Export answers (JSON)</button>
<button type="button" id="export-csv">Export answers (CSV)</button>
<button type="button" id="start-over">Start over for a new listener</button></p>
<p id="export-status" role="status"></p>
</main>"""
    data = (f'<script type="application/json" id="trials">{json.dumps(trials)}</script>\n'
            f'<script type="application/json" id="sounds">{json.dumps(sounds)}</script>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}{TEST_STYLE}</style></head><body>\n{body}\n{data}\n<script>{TEST_SCRIPT}</script>\n"
            "</body></html>\n")


def write_listening_test(page, key_path, trials: list[Trial], jobs: int = 1,
                         title: str = "b2m listening test: which reconstruction matches?") -> ListeningKey:
    """The page and its key (written atomically); ``jobs`` audio files encoded at once."""
    digests = file_digests(trials)
    key = ListeningKey.of(trials, digests)
    text = page_html(key, audio_uris(list(digests), jobs), digests, title)
    with atomic_path(page) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    key.write(key_path)
    return key


@dataclass(frozen=True)
class PageAudio:
    """What a listening-test page plays, read back from its HTML: ``trials`` (id and the sound names of the
    original, A and B, in page order) and ``sounds`` (name → data URI)."""

    trials: list
    sounds: dict

    @classmethod
    def read(cls, page) -> "PageAudio":
        text = Path(page).read_text(encoding="utf-8")
        found = [re.search(f'<script type="application/json" id="{name}">(.*?)</script>', text)
                 for name in ("trials", "sounds")]
        if not all(found):
            raise InputError(page, "not a listening-test page (no trials or sounds)",
                             "pass the listening_test.html that b2m listening-test wrote")
        return cls(*(json.loads(match.group(1)) for match in found))

    def audio(self, name: str) -> io.BytesIO:
        """The encoded audio file of sound ``name``."""
        return io.BytesIO(base64.b64decode(self.sounds[name].split(",", 1)[1]))

