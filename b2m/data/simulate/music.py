"""Procedural music whose GTZAN genres differ audibly in tempo, timbre, harmony and rhythm.

Each clip is rendered as two stems, tonal (melody, chords, bass) and drums, from a note list, so the
simulator knows exactly what sounds when: the planted stimulus descriptors come from these stems and
notes, never from b2m's feature extractors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
}


@dataclass(frozen=True)
class Style:
    """How a genre sounds: tempo (bpm), scale, lead timbre (harmonics, rolloff), drum patterns
    (16 steps per bar; probabilities), distortion, swing and melodic register (MIDI)."""

    tempo: tuple[float, float]
    scale: str
    harmonics: int
    rolloff: float
    kick: str
    snare: str
    hat: str
    drive: float
    swing: float
    register: tuple[int, int]
    note_steps: int
    chord_weight: float
    caption: str


STYLES = {
    "blues": Style((70, 95), "blues", 6, 1.4, "x.....x.x.......", "....x.......x...", "x.x.x.x.x.x.x.x.",
                   0.3, 0.33, (55, 72), 2, 0.5, "Slow shuffle blues with a crying lead guitar and a walking bass."),
    "classical": Style((60, 90), "major", 3, 2.5, "", "", "", 0.0, 0.0, (60, 84), 2, 0.8,
                       "Calm classical piece for strings and piano, no drums, flowing melody."),
    "country": Style((100, 130), "major", 5, 1.6, "x.......x.......", "....x.......x...", "x.x.x.x.x.x.x.x.",
                     0.1, 0.1, (57, 76), 2, 0.6, "Bright country song with twangy guitar and a train beat."),
    "disco": Style((115, 128), "dorian", 5, 1.3, "x...x...x...x...", "....x.......x...", "..x...x...x...x.",
                   0.05, 0.0, (60, 79), 2, 0.5, "Four-on-the-floor disco with open hi-hats and a funky bass."),
    "hiphop": Style((80, 98), "minor", 4, 1.8, "x......x..x.....", "....x.......x...", "x.x.x.x.x.x.x.x.",
                    0.15, 0.2, (48, 67), 4, 0.4, "Laid-back hip hop beat with a deep kick and a sparse loop."),
    "jazz": Style((110, 160), "dorian", 4, 2.0, "x.........x.....", "......x.......x.", "x..xx..xx..xx..x",
                  0.0, 0.4, (58, 82), 1, 0.7, "Swinging jazz combo with ride cymbal, piano comping and a saxophone."),
    "metal": Style((150, 190), "minor", 10, 0.8, "xxxxxxxxxxxxxxxx", "....x.......x...", "x.x.x.x.x.x.x.x.",
                   0.9, 0.0, (40, 60), 1, 0.3, "Fast heavy metal with distorted guitars and double-kick drums."),
    "pop": Style((100, 124), "major", 5, 1.5, "x.......x.......", "....x.......x...", "x.x.x.x.x.x.x.x.",
                 0.05, 0.0, (64, 84), 2, 0.6, "Upbeat pop song with a catchy synth melody and steady drums."),
    "reggae": Style((70, 90), "major", 4, 1.7, "........x.......", "........x.......", "..x...x...x...x.",
                    0.05, 0.1, (55, 74), 4, 0.8, "Relaxed reggae with offbeat guitar skank and a one-drop rhythm."),
    "rock": Style((110, 145), "pentatonic", 8, 1.0, "x.....x.x.......", "....x.......x...", "x.x.x.x.x.x.x.x.",
                  0.6, 0.0, (50, 70), 2, 0.4, "Energetic rock with overdriven electric guitar and loud drums."),
}


def midi_to_hz(pitch: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(pitch) - 69) / 12)


def _tone(freq: float, duration: float, sr: int, harmonics: int, rolloff: float, drive: float) -> np.ndarray:
    t = np.arange(int(duration * sr)) / sr
    k = np.arange(1, harmonics + 1)
    k = k[k * freq < sr / 2.2]
    wave = (np.sin(2 * np.pi * freq * np.outer(t, k)) / k ** rolloff).sum(axis=1)
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-t * (1.5 + 2.0 / max(duration, 0.05)))
    wave *= envelope
    if drive > 0:
        wave = np.tanh((1 + 8 * drive) * wave) / np.tanh(1 + 8 * drive)
    return wave


def _drum(kind: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int((0.35 if kind != "hat" else 0.08) * sr)) / sr
    if kind == "kick":
        phase = 2 * np.pi * np.cumsum(50 + 90 * np.exp(-t * 30)) / sr
        return np.sin(phase) * np.exp(-t * 9)
    noise = rng.standard_normal(len(t))
    if kind == "snare":
        return 0.6 * noise * np.exp(-t * 18) + 0.4 * np.sin(2 * np.pi * 185 * t) * np.exp(-t * 25)
    return 0.35 * np.diff(noise, prepend=0.0) * np.exp(-t * 60)


@dataclass
class Clip:
    """A rendered clip: ``tonal`` and ``drums`` stems (samples), and its notes as rows of
    (onset s, duration s, MIDI pitch, velocity) with drum hits at pitch 0."""

    tonal: np.ndarray
    drums: np.ndarray
    notes: np.ndarray
    tempo: float
    mode: str

    @property
    def mix(self) -> np.ndarray:
        return self.tonal + self.drums


def render_clip(genre: str, seconds: float, sr: int, rng: np.random.Generator) -> Clip:
    """Render ``seconds`` of music in the style of ``genre`` at ``sr`` Hz.

    The clip is built of two-bar sections whose intensity (note density, loudness, register) changes,
    so that the descriptors vary within a clip as well as between genres.
    """
    style = STYLES[genre]
    n = int(round(seconds * sr))
    tonal, drums = np.zeros(n + sr), np.zeros(n + sr)
    tempo = rng.uniform(*style.tempo)
    step = 60.0 / tempo / 4  # sixteenth note (s)
    scale = np.array(SCALES[style.scale])
    root = rng.integers(style.register[0], style.register[0] + 7)
    lead_harmonics = max(1, style.harmonics + rng.integers(-1, 2))
    notes = []
    kit = {kind: _drum(kind, sr, rng) for kind in ("kick", "snare", "hat")}
    n_steps = int(seconds / step)
    section_steps = 32
    degree = 0
    for section in range(0, n_steps, section_steps):
        intensity = rng.uniform(0.35, 1.0)
        density = max(1, int(round(style.note_steps / (0.5 + intensity))))
        shift = 12 * (rng.random() < 0.3 * intensity)
        chord_root = root + scale[rng.integers(len(scale))] - 12
        for s in range(section, min(section + section_steps, n_steps)):
            onset = s * step + (style.swing * step if s % 2 else 0.0)
            position = s % 16
            for kind, pattern in (("kick", style.kick), ("snare", style.snare), ("hat", style.hat)):
                if pattern and pattern[position] == "x" and rng.random() < 0.55 + 0.45 * intensity:
                    velocity = intensity * rng.uniform(0.6, 1.0)
                    _add(drums, kit[kind] * velocity, onset, sr)
                    notes.append((onset, len(kit[kind]) / sr, 0, velocity))
            if s % density == 0 and rng.random() < 0.4 + 0.6 * intensity:
                degree = int(np.clip(degree + rng.integers(-2, 3), -len(scale), 2 * len(scale)))
                pitch = root + shift + 12 * (degree // len(scale)) + scale[degree % len(scale)]
                duration = step * density * rng.uniform(0.8, 1.6)
                velocity = (0.4 + 0.6 * intensity) * rng.uniform(0.7, 1.0)
                _add(tonal, velocity * _tone(midi_to_hz(pitch), duration, sr, lead_harmonics, style.rolloff,
                                             style.drive), onset, sr)
                notes.append((onset, duration, pitch, velocity))
            if s % 16 == 0:
                duration = 16 * step
                for interval in (0, scale[2 % len(scale)], 7):
                    _add(tonal, 0.25 * style.chord_weight * intensity *
                         _tone(midi_to_hz(chord_root + interval), duration, sr, 3, 2.0, style.drive / 2), onset, sr)
                    notes.append((onset, duration, chord_root + interval, 0.25 * style.chord_weight * intensity))
    return Clip(tonal[:n], drums[:n], np.array(notes, dtype=np.float64).reshape(-1, 4), tempo, style.scale)


def _add(track: np.ndarray, sound: np.ndarray, onset: float, sr: int) -> None:
    start = int(onset * sr)
    stop = min(len(track), start + len(sound))
    if start < stop:
        track[start:stop] += sound[:stop - start]
