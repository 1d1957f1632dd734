"""The results tree: the one place that knows its paths.

``Layout(results, models)`` gives each stage's folder as a small ``Folder`` object whose attributes are the
files in it, so stages, rules and figures name a file by what it is (``layout.decoding(s, f, x).predictions``),
never by a path literal. Arguments may be values or Snakemake wildcards (``"{subject}"``): the same code builds a
job's paths and a rule's patterns.

    results/validation.txt                           b2m validate's report on the dataset
    results/features/<feature>.parquet
    results/<subject>/responses/                      scans.npy, scans.parquet, voxels.parquet, mask.nii.gz
    results/<subject>/responses/window-<w>s-stride-<s>s/   train.npy, test.npy, test_repeats.npy + row tables
    results/<subject>/<fold>/factors/window-<w>s-stride-<s>s/   factors.npz: the decoders' stimulus sides
    results/<subject>/<fold>/<feature>/decoding|encoding|retrieval|generation/<generator>|brain|reconstruction/
                                                      (brain: the brain-scored candidates, b2m brain-score)
    results/<subject>/<fold>/banded/encoding/
    results/<subject>/cv-all/<feature>/decoding/     every cv-<k> fold's predictions together: scores, label_scores,
                                                      predictions, target_scale
    results/<subject>/cv-all/<feature>|banded/encoding/   every cv-<k> fold's held-out predictions scored together
    results/pooled/<fold>/<feature>/decoding/         the pooled decoder over subjects: scores, predictions, alignment
    results/<subject>/<fold>/<feature>/kshot/          the subject left out of the pool, aligned from minutes of its
                                                      data: scores per k-shot point, alignments
    results/corpus/<feature>/                         vectors.npy, tracks.parquet, skipped.tsv
    results/corpus/listing/chunk-<n>.parquet         one chunk's tracks and their sha256 (a track's chunk: a hash of its id)
    results/corpus/<feature>/chunks/chunk-<n>/         vectors.npy, tracks.parquet: one chunk job's tracks
    results/corpus-cache/                             corpus vectors by audio content (where a config puts the cache)
    results/corpus/duplicates.tsv, fingerprints/chunk-<n>.parquet   corpus tracks holding a test clip's audio,
                                                      and each chunk's acoustic fingerprints they were found by
    results/summary/<table>.parquet|.tsv, results/report/figures/, results/report/listening.html
    results/report/listening_test.html, listening_test_key.tsv, listening_test_scores.tsv|.html
    results/logs/...
    <models>/fetched/<feature>.json, <models>/fetched/generator-<generator>.json
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BANDED = "banded"  # the feature folder of the banded-ridge encoding model
CV_ALL = "cv-all"  # the fold folder of every cv-<k> fold's out-of-fold predictions together


def _file(name: str, optional: bool = False, folder: bool = False):
    """A file of a ``Folder`` (or, with ``folder``, a subfolder); ``optional`` ones are written only in some cases
    and declared by no rule."""

    def get(parent: "Folder") -> Path:
        return parent.path / name

    get.optional, get.file_name, get.folder = optional, name, folder
    return property(get)


class Folder:
    """A folder of the results tree; its ``_file`` attributes are the files in it."""

    def __init__(self, path):
        self.path = Path(path)

    @classmethod
    def names(cls, optional: bool = False) -> list[str]:
        """Attribute names of the folder's files (with the optional ones if asked)."""
        return [name for name, value in vars_of(cls).items() if isinstance(value, property)
                and hasattr(value.fget, "file_name") and (optional or not value.fget.optional)]

    def outputs(self, *extra: str) -> dict[str, str]:
        """name → path of the files a rule declares: the non-optional ones and ``extra``."""
        return {name: str(getattr(self, name)) for name in self.names() + list(extra)}

    @classmethod
    def subfolders(cls) -> set[str]:
        """Attribute names of the entries that are folders (a rule declares them as directories)."""
        return {name for name in cls.names(optional=True) if vars_of(cls)[name].fget.folder}


def vars_of(cls) -> dict:
    found = {}
    for base in reversed(cls.__mro__):
        found.update(vars(base))
    return found


class ScanFiles(Folder):
    """A subject's cleaned scans (all scans × voxels) and the voxels' positions."""

    scans = _file("scans.npy")
    table = _file("scans.parquet")
    voxels = _file("voxels.parquet")
    mask = _file("mask.nii.gz")


class WindowFiles(Folder):
    """Responses averaged over one window grid: rows × voxels with their row tables; the per-repeat test
    responses exist only where the input has repeats (raw or fMRIPrep BOLD, not the authors' arrays)."""

    train = _file("train.npy")
    train_rows = _file("train_rows.parquet")
    test = _file("test.npy")
    test_rows = _file("test_rows.parquet")
    test_repeats = _file("test_repeats.npy", optional=True)
    test_repeats_rows = _file("test_repeats_rows.parquet", optional=True)

    def array(self, name: str) -> Path:
        """``train``, ``test`` or ``test_repeats`` (.npy)."""
        return getattr(self, name)

    def rows(self, name: str) -> Path:
        return getattr(self, f"{name}_rows")

    @property
    def scans(self) -> "ScanFiles":
        """The subject's cleaned scans and voxel positions: the folder this window folder lies in."""
        return ScanFiles(self.path.parent)


class FactorFiles(Folder):
    """The factorisation of one subject × fold × window (``b2m.models.factors``), read by every decode job of
    that window; kept, or with ``decoding.keep_factors: false`` removed once they have run."""

    factors = _file("factors.npz")


class PredictionFiles(Folder):
    """Scored predictions: identification scores, label accuracy scores (rows only where the space is a label
    space), the predictions table and the target scale (mean, sd) its rows are standardised by. Alone, the
    ``cv-all`` fold of a subject × feature: every cv-<k> fold's predictions together (``b2m.evaluate.out_of_fold``)."""

    scores = _file("scores.parquet")
    label_scores = _file("label_scores.parquet")
    predictions = _file("predictions.parquet")
    target_scale = _file("target_scale.npy")


class DecodingFiles(PredictionFiles):
    """One subject × fold × feature's decoders: their scored predictions, and the whole-mask decoder's alphas and
    CV scores (and the ROI table of the ROI models)."""

    alphas = _file("alphas.npy")
    cv_scores = _file("cv_scores.npy")
    rois = _file("rois.parquet", optional=True)


class PooledFiles(Folder):
    """The pooled decoder of one fold × feature over every subject (``b2m.models.pooled``): each subject's scores
    and test predictions (a ``subject`` column), and each subject's alignment to the reference space."""

    scores = _file("scores.parquet")
    predictions = _file("predictions.parquet")
    alignment = _file("alignment.parquet")


class KshotFiles(Folder):
    """A subject left out of the pool and decoded from minutes of its data (``decode-kshot``): its scores at each
    k-shot point (a ``point`` column: zero-shot, k-shot, or its own full-data decoder's), and its alignment at each."""

    scores = _file("scores.parquet")
    alignment = _file("alignment.parquet")


class EncodingFiles(Folder):
    summary = _file("summary.parquet")
    voxels = _file("voxels.parquet")
    alphas = _file("alphas.npy", optional=True)

    def voxel_map(self, column: str) -> Path:
        """The NIfTI map of one column of ``voxels`` (r, q, ...)."""
        return self.path / f"{column}.nii.gz"


class CorpusFiles(Folder):
    """A feature space's corpus index, gathered from its chunks."""

    vectors = _file("vectors.npy")
    tracks = _file("tracks.parquet")
    skipped = _file("skipped.tsv")

    def chunk(self, chunk) -> "CorpusChunkFiles":
        return CorpusChunkFiles(self.path / "chunks" / f"chunk-{chunk}")


class CorpusChunkFiles(Folder):
    """One chunk job's part of a corpus index: its tracks' vectors (tracks × dim) and their table."""

    vectors = _file("vectors.npy")
    tracks = _file("tracks.parquet")


class DuplicateFiles(Folder):
    """Corpus tracks that duplicate a test clip's presented excerpt (b2m.reconstruct.duplicates), whatever the
    feature space, and the corpus's fingerprints, chunk by chunk, they were found by."""

    table = _file("duplicates.tsv")

    def chunk(self, chunk) -> Path:
        """The fingerprints of one chunk's corpus tracks (the chunks of ``CorpusFiles.chunk``)."""
        return self.path / "fingerprints" / f"chunk-{chunk}.parquet"


class AudioFiles(Folder):
    """Each test clip's original excerpt and its reconstructions as audio, with their listing."""

    listing = _file("listening.parquet")

    def clip_file(self, clip_id: str, name: str) -> Path:
        return self.path / clip_id / name

    def relative(self, clip_id: str, name: str) -> str:
        return f"{clip_id}/{name}"


class RetrievalFiles(Folder):
    neighbours = _file("neighbours.parquet")
    audio_folder = _file("audio", folder=True)

    @property
    def audio(self) -> AudioFiles:
        return AudioFiles(self.audio_folder)


class GenerationFiles(AudioFiles):
    listing = _file("generated.parquet")


class BrainScoreFiles(Folder):
    """Reconstructions chosen by the brain score (b2m.models.brain_score): every candidate's score; with
    ``reconstruction.rerank``, each clip's top-k tracks re-ranked (retrieval's columns) and the audio model's audio
    (as retrieval's); with ``reconstruction.generation.select: brain``, each generator's chosen samples (as a
    generation folder)."""

    scores = _file("scores.parquet")
    neighbours = _file("neighbours.parquet", optional=True)
    audio_folder = _file("audio", folder=True, optional=True)

    @property
    def audio(self) -> AudioFiles:
        return AudioFiles(self.audio_folder)

    def generation(self, generator) -> GenerationFiles:
        return GenerationFiles(self.path / "generation" / str(generator))

    def generations(self) -> list[GenerationFiles]:
        """The chosen samples of every generator scored, in name order."""
        return [GenerationFiles(path) for path in sorted(self.generation("").path.glob("*"))]


class ListeningTestFiles(Folder):
    """The listening test: its page, its key (the true side of every trial) and the scores of its answers."""

    page = _file("listening_test.html")
    key = _file("listening_test_key.tsv")
    scores = _file("listening_test_scores.tsv")
    scores_html = _file("listening_test_scores.html")


class FigureFiles(Folder):
    identification = _file("identification.svg")
    table2 = _file("table2.html")
    scatter = _file("voxel_scatter.png", optional=True)
    roi = _file("roi.html", optional=True)
    roi_weights = _file("decoding_roi_weights.html", optional=True)
    variance = _file("variance_partitioning.svg", optional=True)
    variance_table = _file("variance_partitioning.html", optional=True)
    kshot = _file("kshot.svg", optional=True)

    def encoding_map(self, feature: str) -> Path:
        return self.path / "maps" / f"{feature}.png"


def window_label(window_s, stride_s) -> str:
    """Folder name of the responses averaged over a window grid, e.g. window-1.5s-stride-1.5s."""
    def text(value):
        return format(value, "g") if isinstance(value, (int, float)) else str(value)

    return f"window-{text(window_s)}s-stride-{text(stride_s)}s"


@dataclass(frozen=True)
class Layout:
    """Every path of the results tree (``results``) and the model cache's fetch markers (``models``)."""

    results: str = "results"
    models: str = "models"

    @property
    def root(self) -> Path:
        return Path(self.results)

    def validation(self) -> Path:
        """The report of ``b2m validate`` on the study's dataset (written only when nothing was refused)."""
        return self.root / "validation.txt"

    def features(self, feature) -> Path:
        return self.root / "features" / f"{feature}.parquet"

    def scans(self, subject) -> ScanFiles:
        return ScanFiles(self.root / str(subject) / "responses")

    def windows(self, subject, window_s, stride_s) -> WindowFiles:
        return WindowFiles(self.scans(subject).path / window_label(window_s, stride_s))

    def model_folder(self, subject, fold, feature) -> Path:
        return self.root / str(subject) / str(fold) / str(feature)

    def factors(self, subject, fold, window_s, stride_s) -> FactorFiles:
        return FactorFiles(self.root / str(subject) / str(fold) / "factors" / window_label(window_s, stride_s))

    def decoding(self, subject, fold, feature) -> DecodingFiles:
        return DecodingFiles(self.model_folder(subject, fold, feature) / "decoding")

    def pooled_folds(self, subject, feature) -> PredictionFiles:
        """The ``cv-all`` fold: every cv-<k> fold's predictions of a subject × feature together, scored."""
        return PredictionFiles(self.model_folder(subject, CV_ALL, feature) / "decoding")

    def pooled(self, fold, feature) -> PooledFiles:
        return PooledFiles(self.root / "pooled" / str(fold) / str(feature) / "decoding")

    def kshot(self, subject, fold, feature) -> KshotFiles:
        return KshotFiles(self.model_folder(subject, fold, feature) / "kshot")

    def encoding(self, subject, fold, feature) -> EncodingFiles:
        return EncodingFiles(self.model_folder(subject, fold, feature) / "encoding")

    def banded(self, subject, fold) -> EncodingFiles:
        return self.encoding(subject, fold, BANDED)

    def retrieval(self, subject, fold, feature) -> RetrievalFiles:
        return RetrievalFiles(self.model_folder(subject, fold, feature) / "retrieval")

    def generation(self, subject, fold, feature, generator) -> GenerationFiles:
        return GenerationFiles(self.model_folder(subject, fold, feature) / "generation" / str(generator))

    def brain_score(self, subject, fold, feature) -> BrainScoreFiles:
        return BrainScoreFiles(self.model_folder(subject, fold, feature) / "brain")

    def evaluation(self, subject, fold, feature) -> Path:
        return self.model_folder(subject, fold, feature) / "reconstruction" / "evaluation.parquet"

    def corpus(self, feature) -> CorpusFiles:
        return CorpusFiles(self.root / "corpus" / str(feature))

    def corpus_listing(self, chunk) -> Path:
        """One chunk's corpus tracks with the sha256 of each one's bytes, read by the chunk's index and fingerprint
        jobs of every feature space."""
        return self.root / "corpus" / "listing" / f"chunk-{chunk}.parquet"

    def corpus_cache(self) -> Path:
        """A corpus vector cache kept with the results (``reconstruction.corpus.cache``; ``b2m init-config``)."""
        return self.root / "corpus-cache"

    def duplicates(self) -> DuplicateFiles:
        return DuplicateFiles(self.root / "corpus")

    def summary(self, table: str, suffix: str = ".parquet") -> Path:
        """``identification``, ``label_decoding``, ``encoding``, ``reconstruction`` or ``kshot``: the table over
        every job."""
        return self.root / "summary" / f"{table}{suffix}"

    def figures(self) -> FigureFiles:
        return FigureFiles(self.root / "report" / "figures")

    def listening_page(self) -> Path:
        return self.root / "report" / "listening.html"

    def listening_test(self) -> ListeningTestFiles:
        return ListeningTestFiles(self.root / "report")

    def log(self, *parts: str) -> Path:
        """The log of a job: ``logs/<parts>.log`` (and its benchmark beside it, ``benchmark``)."""
        return self.root / "logs" / (str(Path(*parts)) + ".log")

    def benchmark(self, *parts: str) -> Path:
        return self.root / "logs" / (str(Path(*parts)) + ".benchmark.tsv")

    def fetched(self, name) -> Path:
        """The marker of a feature's (or ``generator-<name>``'s) fetched weights in the model cache."""
        return Path(self.models) / "fetched" / f"{name}.json"
