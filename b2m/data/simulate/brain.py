"""Synthetic brain geometry, ROI atlas, HRF and the BOLD signal model of the simulated study."""

from __future__ import annotations

import numpy as np
from scipy import signal as sps
from scipy.special import gammaln

ROI_SECTORS = ("frontal", "precentral", "parietal", "occipital", "temporal_inferior", "temporal_superior")
PLANTED_ROIS = {"temporal_superior": 1.0, "temporal_inferior": 0.5}  # ROI -> share of the planted SNR


def roi_names() -> list[str]:
    """Atlas labels 1..12: left then right hemisphere, sectors in ``ROI_SECTORS`` order."""
    return [f"{hemi}_{sector}" for hemi in ("L", "R") for sector in ROI_SECTORS]


def brain_geometry(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brain mask (ellipsoid), cortex mask (its outer shell) and atlas labels (0 outside cortex)."""
    centre = (np.array(shape) - 1) / 2
    axes = 0.42 * np.array(shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    rel = (grid - centre) / axes
    radius = np.sqrt((rel ** 2).sum(axis=-1))
    brain = radius <= 1.0
    cortex = brain & (radius >= 0.72)
    angle = np.arctan2(rel[..., 2], rel[..., 1])  # in the sagittal plane: 0 = anterior, pi/2 = superior
    sector = ((np.pi / 2 - angle) % (2 * np.pi) / (2 * np.pi) * len(ROI_SECTORS)).astype(int) % len(ROI_SECTORS)
    hemisphere = (rel[..., 0] > 0).astype(int)
    atlas = np.where(cortex, 1 + sector + len(ROI_SECTORS) * hemisphere, 0).astype(np.int16)
    return brain, cortex, atlas


def double_gamma_hrf(peak_s: float, dt: float, length_s: float = 32.0) -> np.ndarray:
    """SPM-style double-gamma HRF sampled every ``dt`` s, peak near ``peak_s``, undershoot at ~15 s,
    normalised to unit sum."""
    t = np.arange(0, length_s, dt)
    shape_peak = peak_s + 1.0

    def gamma_pdf(x, k):
        with np.errstate(divide="ignore"):
            return np.exp((k - 1) * np.log(np.maximum(x, 1e-12)) - x - gammaln(k))

    hrf = gamma_pdf(t, shape_peak) - gamma_pdf(t, 16.0) / 6.0
    return hrf / hrf.sum()


def convolve_drive(drive: np.ndarray, tr: float, peak_s: float, upsample: int = 15) -> np.ndarray:
    """BOLD-shaped time courses: piecewise-constant ``drive`` (scans × k, one value per scan) convolved
    with the HRF on a fine grid and sampled at each scan's midpoint."""
    dt = tr / upsample
    fine = np.repeat(drive, upsample, axis=0)
    hrf = double_gamma_hrf(peak_s, dt)
    conv = sps.fftconvolve(fine, hrf[:, None], axes=0)[: len(fine)]
    return conv[upsample // 2::upsample]


def ar1_noise(rng: np.random.Generator, n_scans: int, n_voxels: int, rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise, scans × voxels."""
    white = rng.standard_normal((n_scans, n_voxels)).astype(np.float32)
    noise = sps.lfilter([np.sqrt(1 - rho ** 2)], [1, -rho], white, axis=0)
    return noise.astype(np.float32)


def drift(rng: np.random.Generator, n_scans: int, n_voxels: int, tr: float) -> np.ndarray:
    """Slow scanner drift in units of the voxel's baseline: a linear trend plus a sinusoid of 10-20
    minutes' period (scans × voxels)."""
    t = np.arange(n_scans)[:, None] * tr
    slope = rng.normal(0, 0.02, n_voxels) / (n_scans * tr)
    period = rng.uniform(600, 1200, n_voxels)
    phase = rng.uniform(0, 2 * np.pi, n_voxels)
    amplitude = rng.uniform(0, 0.015, n_voxels)
    return (slope * t + amplitude * np.sin(2 * np.pi * t / period + phase)).astype(np.float32)
