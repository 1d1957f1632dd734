"""How close two CLAP embedding spaces are on the same music: by default laion-clap's music checkpoint (the
MuLan-music stand-in) and MusicLDM's own CLAP (the space its generator is conditioned in). Needs both models in
the model cache (``b2m fetch-models``); laion-clap needs the .venv-clap environment.

Both spaces embed the 20 real GTZAN test clips of shared/real (their presented 15 s excerpts, 10 s windows at a
1.5 s stride, averaged per clip). The two spaces have unrelated bases, so they are compared by what they say
about the clips:

- representational similarity: Spearman correlation of the two clip × clip cosine-similarity matrices
  (upper triangles);
- nearest-neighbour agreement: the share of clips whose most similar other clip is the same in both spaces;
- the same figures for a random pairing of the clips, as the baseline.

    python benchmarks/clap_spaces.py --cache models [--first laion-clap:<checkpoint>] [--second transformers:<repo>]
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from b2m.features import extract_features, make_extractor
from b2m.features.clap import LAION_CHECKPOINT
from b2m.features.weights import use_cache
from b2m.reconstruct.generation import MUSICLDM

REAL = Path(__file__).resolve().parents[2] / "shared" / "real" / "gtzan-sample"


def clip_embeddings(spec: str, cache, clips: pd.DataFrame, stimuli) -> np.ndarray:
    """Clips × 512 for a space given as ``backend:model-or-checkpoint``."""
    backend, _, name = spec.partition(":")
    options = {"checkpoint": name} if backend == "laion-clap" else {"model": name}
    extractor = make_extractor("clap-audio", 10.0, 1.5, backend=backend, cache=cache, device="auto", **options)
    table = extract_features(clips, stimuli, extractor)
    return np.stack(table.groupby("clip_id", sort=False).embedding.apply(lambda v: np.mean(np.stack(v), axis=0)))


def similarity(vectors: np.ndarray) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit @ unit.T


def agreement(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """Spearman ρ of the two similarity matrices' upper triangles, and the nearest-other-clip agreement."""
    a, b = similarity(first), similarity(second)
    upper = np.triu_indices(len(a), k=1)
    np.fill_diagonal(a, -np.inf), np.fill_diagonal(b, -np.inf)
    return float(spearmanr(a[upper], b[upper]).statistic), float(np.mean(a.argmax(1) == b.argmax(1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("models"))
    parser.add_argument("--first", default=f"laion-clap:{LAION_CHECKPOINT}")
    parser.add_argument("--second", default=f"transformers:{MUSICLDM}")
    parser.add_argument("--clips", type=Path, default=REAL, help="shared/real/gtzan-sample (MANIFEST.tsv)")
    args = parser.parse_args()
    use_cache(args.cache, offline=True)
    manifest = pd.read_csv(args.clips / "MANIFEST.tsv", sep="\t")
    clips = manifest.assign(clip_id=[f"{g}.{t:05d}" for g, t in zip(manifest.genre, manifest.track)],
                            start=manifest.excerpt_start_s, end=manifest.excerpt_end_s, split="test")
    first, second = (clip_embeddings(spec, args.cache, clips, args.clips) for spec in (args.first, args.second))
    rho, nearest = agreement(first, second)
    shuffled = np.random.default_rng(0).permutation(len(second))
    rho_null, nearest_null = agreement(first, second[shuffled])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{len(clips)} clips; {args.first} vs {args.second}")
    print(f"representational similarity (Spearman ρ): {rho:.3f} (clips paired at random: {rho_null:.3f})")
    print(f"same nearest other clip: {nearest:.2f} (clips paired at random: {nearest_null:.2f})")


if __name__ == "__main__":
    main()
