"""Embedding throughput of each extractor, with random weights of the real architecture size, on real GTZAN clips.

Throughput is stimulus audio seconds (15 s per excerpt) per wall second, on the torch threads of this machine;
the baseline, measured in the same process, is the offline acoustic extractor. The models are built from their
published configurations with random weights (no weights can be downloaded here), saved into a temporary hub
cache and loaded through the extractors' own code path, so the time includes nothing a real run would skip.

    python benchmarks/embedding_throughput.py                       # acoustic, genre, transformers models
    python benchmarks/embedding_throughput.py --extractors w2v-bert w2v-bert-layer-24   # cost of layer 7 vs 24
    .venv-clap/bin/python benchmarks/embedding_throughput.py --extractors acoustic clap-audio-laion clap-text-laion
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from b2m.data.bids import BidsDataset  # noqa: E402
from b2m.data.simulate import DESIGN  # noqa: E402
from b2m.features import extract_features, make_extractor  # noqa: E402
from tiny_models import byte_level_tokenizer, hub_snapshot, tiny_clap, tiny_mert, tiny_w2v_bert  # noqa: E402

REAL = Path(os.environ.get("B2M_SHARED_REAL", REPO.parent / "shared" / "real"))
CAPTIONS = REAL / "brain2music-captions/brain2music-captions.csv"


def real_size_laion(cache) -> dict:
    """laion-clap's HTSAT-base CLAP, with a random roberta-base-size text branch (the real tokenizer vocabulary
    size; a byte-level tokenizer stands in for the real one, which only changes the token count of captions)."""
    from transformers import RobertaConfig, RobertaModel

    from b2m.features.clap import import_clap_module
    from b2m.features.weights import hub_defaults

    snapshot = hub_snapshot(cache, "roberta-base")
    byte_level_tokenizer(snapshot).save_pretrained(snapshot)
    RobertaModel(RobertaConfig(vocab_size=50265, max_position_embeddings=514)).save_pretrained(snapshot)
    with hub_defaults(cache):
        model, _ = import_clap_module().create_model("HTSAT-base", "roberta", precision="fp32", enable_fusion=False)
    path = Path(cache) / "clap-htsat-base-random.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return {"backend": "laion-clap", "checkpoint": str(path), "amodel": "HTSAT-base"}


# name → (extractor, window s, builder of the random real-size model → options)
CASES = {
    "acoustic": ("acoustic", 1.5, None),
    "genre": ("labels", 1.5, None),
    "clap-audio-transformers": ("clap-audio", 10.0, lambda c: {"backend": "transformers",
                                                               "model": tiny_clap(c, real_size=True)}),
    "clap-text-transformers": ("clap-text", 1.5, lambda c: {"backend": "transformers",
                                                            "model": tiny_clap(c, real_size=True)}),
    "w2v-bert": ("w2v-bert", 5.0, lambda c: {"model": tiny_w2v_bert(c, real_size=True)}),
    "w2v-bert-layer-24": ("w2v-bert", 5.0, lambda c: {"model": tiny_w2v_bert(c, real_size=True), "layer": 24}),
    "mert": ("mert", 5.0, lambda c: {"model": tiny_mert(c, real_size=True)}),
    "clap-audio-laion": ("clap-audio", 10.0, real_size_laion),
    "clap-text-laion": ("clap-text", 1.5, real_size_laion),
}


def clips_of(n_clips: int) -> pd.DataFrame:
    table = pd.read_csv(REAL / "gtzan-sample/MANIFEST.tsv", sep="\t").head(n_clips)
    ids = [f"{g}.{t:05d}" for g, t in zip(table.genre, table.track)]
    return table.assign(clip_id=ids, path=[f"{g}/{c}" for g, c in zip(table.genre, ids)], label=table.genre,
                        start=table.excerpt_start_s, end=table.excerpt_end_s, split="test")


def measure(name: str, cache, clips: pd.DataFrame) -> dict:
    extractor_name, window, build = CASES[name]
    options = {} if build is None else {**build(cache), "cache": cache, "device": "cpu"}
    if extractor_name == "clap-text":
        options["captions"] = CAPTIONS
        clips = BidsDataset(REAL / "ds003720", DESIGN).stimulus_table()  # all 540 captions
    extractor = make_extractor(extractor_name, window, 1.5, **options)
    began = time.perf_counter()
    table = extract_features(clips, REAL / "gtzan-sample", extractor)
    wall = time.perf_counter() - began
    audio_s = 15.0 * len(clips)
    return {"extractor": name, "dim": extractor.dim, "window_s": window, "clips": len(clips), "rows": len(table),
            "wall_s": round(wall, 2), "audio_s_per_wall_s": round(audio_s / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extractors", nargs="+", default=["acoustic", "genre", "clap-audio-transformers",
                                                            "clap-text-transformers", "w2v-bert", "mert"])
    parser.add_argument("--clips", type=int, default=4, help="real GTZAN excerpts per audio extractor")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), Python {platform.python_version()}")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in ["acoustic", *[n for n in args.extractors if n != "acoustic"]]:
            rows.append(measure(name, cache, clips_of(args.clips)))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table["vs_acoustic"] = (table.audio_s_per_wall_s / table.audio_s_per_wall_s.iloc[0]).round(3)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(value) for value in row) + " |")


if __name__ == "__main__":
    main()
