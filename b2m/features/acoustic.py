"""The offline acoustic embedding: hand-made spectral statistics per window, no weights.

Per window: log-mel band means and standard deviations (40 bands), 13 MFCC means, spectral centroid,
bandwidth, 85 % roll-off and flatness, RMS level mean and sd (dB), spectral flux (onset strength) mean
and sd, zero-crossing rate, and a 12-bin chroma: 114 dimensions. The SoundStream-avg analogue.
"""

from __future__ import annotations

import numpy as np
from scipy.fft import dct

N_FFT = 1024
HOP = 256
N_MELS = 40
N_MFCC = 13


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


class AcousticExtractor:
    """Offline spectral statistics; ``embed(audio)`` → windows × 114 (float32) for one excerpt."""

    name = "acoustic"
    sample_rate = 16000
    dim = 2 * N_MELS + N_MFCC + 4 + 2 + 2 + 1 + 12

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
        ]).astype(np.float32)

    def embed(self, audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Windows × dim for the windows starting at ``starts`` (s) of one excerpt."""
        width = int(round(self.window * self.sample_rate))
        return np.stack([self.embed_window(audio[int(round(s * self.sample_rate)):][:width]) for s in starts])
