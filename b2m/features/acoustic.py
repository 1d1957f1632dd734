"""The offline acoustic embedding: hand-made spectral statistics per window, no weights.

Per window: log-mel band means and standard deviations (40 bands), 13 MFCC means, spectral centroid,
bandwidth, 85 % roll-off and flatness, RMS level mean and sd (dB), spectral flux (onset strength) mean
and sd, zero-crossing rate, a 12-bin chroma, spectral contrast in 6 octave bands (dB), and onset/tempo
statistics (log tempo of the strongest onset periodicity, its pulse clarity, onset rate per second):
123 dimensions. The SoundStream-avg analogue.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct
from scipy.signal import find_peaks

from b2m.features.audio import window_crops

N_FFT = 1024
HOP = 256
N_MELS = 40
N_MFCC = 13
CONTRAST_EDGES_HZ = (0.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 8000.0)
CONTRAST_QUANTILE = 0.02
TEMPO_RANGE_BPM = (40.0, 240.0)


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(sr: int, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 30.0) -> np.ndarray:
    """Triangular mel filters (HTK mel scale), n_mels × (n_fft // 2 + 1), each of unit area."""
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(sr / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    return bank / np.maximum(bank.sum(axis=1, keepdims=True), 1e-12)


def power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """|STFT|² with a Hann window, frames × bins (N_FFT, hop HOP, no padding)."""
    if len(audio) < N_FFT:
        audio = np.pad(audio, (0, N_FFT - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, N_FFT)[::HOP]
    return np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)) ** 2


def spectral_contrast(power: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Peak-to-valley ratio (dB) of each octave band of ``CONTRAST_EDGES_HZ``, averaged over frames:
    the mean of the top and of the bottom ``CONTRAST_QUANTILE`` of the band's bins in each frame."""
    contrast = []
    for low, high in zip(CONTRAST_EDGES_HZ[:-1], CONTRAST_EDGES_HZ[1:]):
        band = np.sort(power[:, (freqs >= low) & (freqs < high)], axis=1)
        k = max(1, int(round(CONTRAST_QUANTILE * band.shape[1])))
        contrast.append(10 * np.log10(band[:, -k:].mean(axis=1) / band[:, :k].mean(axis=1)).mean())
    return np.asarray(contrast)


def onset_statistics(flux: np.ndarray, frame_rate: float) -> np.ndarray:
    """Log tempo (BPM) of the strongest periodicity of the onset strength, its pulse clarity (the
    normalised autocorrelation there, 0..1) and the onset rate (peaks per second)."""
    centred = flux - flux.mean()
    energy = float(centred @ centred)
    lags = np.arange(int(frame_rate * 60 / TEMPO_RANGE_BPM[1]), int(frame_rate * 60 / TEMPO_RANGE_BPM[0]) + 1)
    lags = lags[(lags > 0) & (lags < len(flux) - 1)]
    if energy == 0 or len(lags) == 0:
        return np.array([np.log(120.0), 0.0, 0.0])
    autocorr = np.array([centred[:-lag] @ centred[lag:] for lag in lags]) / energy
    best = int(np.argmax(autocorr))
    peaks, _ = find_peaks(flux, height=flux.mean() + flux.std())
    return np.array([np.log(60.0 * frame_rate / lags[best]), max(0.0, autocorr[best]),
                     len(peaks) * frame_rate / len(flux)])


class AcousticExtractor:
    """Offline spectral statistics; ``embed(audio, starts)`` → windows × 123 (float32) for one excerpt."""

    name = "acoustic"
    input = "audio"
    sample_rate = 16000
    dim = 2 * N_MELS + N_MFCC + 4 + 2 + 2 + 1 + 12 + len(CONTRAST_EDGES_HZ) - 1 + 3

    def __init__(self, window: float = 1.5, stride: float = 1.5):
        self.window, self.stride = window, stride
        self._mel = mel_filterbank(self.sample_rate)
        freqs = np.fft.rfftfreq(N_FFT, 1 / self.sample_rate)
        self._freqs = freqs
        audible = (freqs >= 55) & (freqs <= 5000)
        pitch_class = np.zeros(len(freqs), dtype=int)
        pitch_class[audible] = np.round(12 * np.log2(freqs[audible] / 440.0) + 69).astype(int) % 12
        self._chroma = np.zeros((12, len(freqs)))
        self._chroma[pitch_class[audible], np.flatnonzero(audible)] = 1.0

    def embed_window(self, audio: np.ndarray) -> np.ndarray:
        """The 114 statistics of one window of audio at ``sample_rate``."""
        power = power_spectrogram(audio) + 1e-10
        log_mel = 10 * np.log10(power @ self._mel.T + 1e-10)
        mfcc = dct(log_mel, type=2, norm="ortho", axis=1)[:, :N_MFCC]
        total = power.sum(axis=1)
        centroid = (power @ self._freqs) / total
        bandwidth = np.sqrt((power @ self._freqs ** 2) / total - centroid ** 2)
        rolloff = self._freqs[np.argmax(np.cumsum(power, axis=1) >= 0.85 * total[:, None], axis=1)]
        flatness = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
        level = 10 * np.log10(power.mean(axis=1))
        flux = np.maximum(0.0, np.diff(log_mel, axis=0)).sum(axis=1) if len(log_mel) > 1 else np.zeros(1)
        crossings = np.mean(np.abs(np.diff(np.signbit(audio).astype(np.int8))))
        chroma = power @ self._chroma.T
        chroma = (chroma / np.maximum(chroma.sum(axis=1, keepdims=True), 1e-12)).mean(axis=0)
        return np.concatenate([
            log_mel.mean(axis=0), log_mel.std(axis=0), mfcc.mean(axis=0),
            [np.log(centroid.mean()), np.log(bandwidth.mean() + 1.0), np.log(rolloff.mean() + 1.0),
             np.log(flatness.mean())],
            [level.mean(), level.std()], [flux.mean(), flux.std()], [crossings], chroma,
            spectral_contrast(power, self._freqs), onset_statistics(flux, self.sample_rate / HOP),
        ]).astype(np.float32)

    def embed(self, audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Windows × dim for the windows starting at ``starts`` (s) of one excerpt."""
        return np.stack([self.embed_window(crop) for crop in window_crops(audio, self.sample_rate, starts,
                                                                          self.window)])
