"""Seeded generator of music-like audio for the ``synthetic`` datasets.

Pure numpy. A clip is a monophonic lead melody on an eighth-note grid, optionally over a drum
kit and a chord pad, mixed with distractors that carry no label. Every label is a value of one
*factor* (register, timbre, tempo, contour, drums, articulation, feel, vibrato, chords); the
first value of each factor is the untagged default, every other value is a tag, so tags of one
factor (``rising``/``falling``, ``slow``/``fast``, ``low``/``high``, ``bright``/``hollow``)
exclude each other by construction.

Why the task needs both time and frequency (no single mel bin or frame gives a label away):

* Spectral tags (register, timbre, chords) are spread over many mel bins because the key is
  random (with a detune), phrases cover more than an octave and registers overlap. A *drone*
  (a held triad that never changes chord, or held tones at random pitches) looks like the chord
  pad on average, and random tone *blips* put energy where the lead is not.
* The percussion band (``drums``) is masked on average by a stationary *hiss* in the same band and
  by irregular *clicks*: only the regular pattern (hats on the grid, kick and snare on the beats)
  identifies drums.
* Tempo, feel (swing), articulation, contour and vibrato are temporal. ``rising`` and
  ``falling`` play the same notes in opposite orders inside each phrase, so their time-averaged
  spectra agree and only the spectrogram's time axis separates them.
* Loudness, key, detune, tempo inside its range, grid phase, note velocities, rests and the
  background-noise level are random.

Determinism: :func:`generate_clip` draws every random quantity in a fixed order and in fixed
amounts, whatever the parameters, so one seed with two parameter sets renders "the same clip"
differing only in the changed factor (the tests compare ``rising`` with ``falling`` this way).

Speed: everything is vectorised over samples (wavetable oscillators, closed-form envelopes, one
inverse FFT for all stationary noise, drum hits added as non-overlapping template copies).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

import numpy as np

#: Bumped whenever the rendering or the label sampling changes: a dataset on disk written by
#: another version is refused instead of being silently mixed with new clips.
GENERATOR_VERSION = 2

#: factor -> its values; the first value is the untagged default, the others are tag names.
FACTORS: dict[str, tuple[str, ...]] = {
    "register": ("mid", "low", "high"),
    "timbre": ("soft", "bright", "hollow"),
    "tempo": ("medium", "slow", "fast"),
    "contour": ("wandering", "rising", "falling"),
    "drums": ("no_drums", "drums"),
    "articulation": ("legato", "staccato"),
    "feel": ("straight", "swing"),
    "vibrato": ("steady", "vibrato"),
    "chords": ("no_chords", "chords"),
}

#: tag -> (factor, what it sounds like, how a model can see it).
TAG_INFO: dict[str, tuple[str, str, str]] = {
    "low": ("register", "lead melody with its tonic at MIDI 40-47 (82-123 Hz)", "spectral"),
    "high": ("register", "lead melody with its tonic at MIDI 64-71 (330-494 Hz)", "spectral"),
    "bright": ("timbre", "sawtooth-like lead: every harmonic at k^-0.75 up to 5.5 kHz", "spectral"),
    "hollow": ("timbre", "square-like lead: odd harmonics only at 1/k", "spectral"),
    "drums": ("drums", "kick, snare and band-pass noise hats on the grid", "spectral+temporal"),
    "slow": ("tempo", "60-76 BPM", "temporal"),
    "fast": ("tempo", "140-176 BPM", "temporal"),
    "rising": ("contour", "each 8-note phrase climbs the scale, mostly in thirds (steps of 1-2 degrees)", "temporal"),
    "falling": ("contour", "each 8-note phrase descends: the notes of rising, reversed", "temporal"),
    "staccato": ("articulation", "notes sound for 25-35 % of their slot (legato: 80-90 %)", "temporal"),
    "swing": ("feel", "eighth pairs long-short (72-80 % / 20-28 %), the short one ghosted", "temporal"),
    "vibrato": ("vibrato", "5-7 Hz pitch modulation of 1.0-1.6 semitones", "temporal"),
    "chords": ("chords", "soft triad pad alternating two chords bar by bar", "spectral+temporal"),
}

#: The tag vocabulary in documentation order (the annotation file's column order).
TAGS: tuple[str, ...] = tuple(TAG_INFO)

#: genre -> {factor: allowed values}; factors not named are free. Every pair of genres is
#: separated by at least two factors fixed to different values (see the tests), and each genre
#: fixes a temporal factor as well as a spectral one, so genre needs time and frequency too.
GENRE_RECIPES: dict[str, dict[str, tuple[str, ...]]] = {
    "ambient": {"tempo": ("slow",), "chords": ("chords",), "drums": ("no_drums",),
                "articulation": ("legato",), "feel": ("straight",), "vibrato": ("steady",)},
    "techno": {"tempo": ("fast",), "drums": ("drums",), "timbre": ("bright",),
               "feel": ("straight",), "chords": ("no_chords",), "vibrato": ("steady",)},
    "jazz": {"feel": ("swing",), "chords": ("chords",), "drums": ("drums",),
             "articulation": ("legato",), "tempo": ("medium",)},
    "march": {"drums": ("drums",), "articulation": ("staccato",), "timbre": ("hollow",),
              "feel": ("straight",), "chords": ("no_chords",), "tempo": ("medium",)},
    "ballad": {"tempo": ("slow",), "vibrato": ("vibrato",), "register": ("high",),
               "drums": ("no_drums",), "chords": ("no_chords",), "articulation": ("legato",)},
    "folk": {"contour": ("rising", "falling"), "timbre": ("hollow", "soft"),
             "drums": ("no_drums",), "chords": ("no_chords",), "articulation": ("legato",),
             "tempo": ("medium", "fast"), "register": ("low", "mid")},
}
GENRES: tuple[str, ...] = tuple(GENRE_RECIPES)

#: The tagging flavour draws each clip's latent style from the genre recipes plus this free one
#: (every factor uniform), so tags co-occur the way styles make them (fast+drums+bright, ...).
FREE_STYLE = "free"


@dataclass(frozen=True)
class ClipParams:
    """The value of every factor for one clip (defaults: the untagged values)."""

    register: str = "mid"
    timbre: str = "soft"
    tempo: str = "medium"
    contour: str = "wandering"
    drums: str = "no_drums"
    articulation: str = "legato"
    feel: str = "straight"
    vibrato: str = "steady"
    chords: str = "no_chords"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in FACTORS[f.name]:
                raise ValueError(f"{f.name} must be one of {FACTORS[f.name]}, got {value!r}")

    @property
    def tags(self) -> tuple[str, ...]:
        """The clip's tags, in :data:`TAGS` order."""
        present = {getattr(self, f.name) for f in fields(self)}
        return tuple(t for t in TAGS if t in present)

    @classmethod
    def from_tags(cls, tags: Iterable[str]) -> ClipParams:
        """Parameters from a tag set; two tags of one factor (``rising`` + ``falling``) are refused."""
        values: dict[str, str] = {}
        for tag in tags:
            if tag not in TAG_INFO:
                raise ValueError(f"unknown tag {tag!r}; known tags: {', '.join(TAGS)}")
            factor = TAG_INFO[tag][0]
            if factor in values and values[factor] != tag:
                raise ValueError(f"tags {values[factor]!r} and {tag!r} exclude each other ({factor})")
            values[factor] = tag
        return cls(**values)

    def replace(self, **changes: str) -> ClipParams:
        return ClipParams(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


def _as_rng(rng_or_seed) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def clip_rng(seed: int, *key: int) -> np.random.Generator:
    """Independent stream for one clip, from the dataset seed and the clip's position.

    Keyed by position rather than drawn from a shared stream so that parallel workers and any
    execution order give the same clips.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, key)]))


def sample_params(rng, recipe: Mapping[str, Iterable[str]] | None = None) -> ClipParams:
    """Draw every factor uniformly from the values ``recipe`` allows (all values if unnamed)."""
    rng = _as_rng(rng)
    recipe = recipe or {}
    u = rng.random(len(FACTORS))  # one draw per factor, always, for a stable stream
    values = {}
    for ui, (factor, options) in zip(u, FACTORS.items(), strict=True):
        allowed = tuple(recipe.get(factor, options))
        values[factor] = allowed[min(int(ui * len(allowed)), len(allowed) - 1)]
    return ClipParams(**values)


def sample_genre_params(rng, genre: str) -> ClipParams:
    """A clip of ``genre``: its recipe's fixed factors, the others at random."""
    return sample_params(rng, GENRE_RECIPES[genre])


def sample_tagging_params(rng) -> tuple[str, ClipParams]:
    """A tagging clip: a latent style (a genre or ``free``), then its factors."""
    rng = _as_rng(rng)
    styles = (*GENRES, FREE_STYLE)
    style = styles[int(rng.integers(len(styles)))]
    return style, sample_params(rng, GENRE_RECIPES.get(style))


# --------------------------------------------------------------------------- rendering constants

_TEMPO_BPM = {"slow": (60.0, 76.0), "medium": (92.0, 116.0), "fast": (140.0, 176.0)}
_TONIC_MIDI = {"low": 40, "mid": 52, "high": 64}  # + 0..7 semitones, + detune
_GATE = {"legato": (0.80, 0.90), "staccato": (0.25, 0.35)}
_SWING = (0.72, 0.80)  # share of the beat taken by the first eighth of a pair
_GHOST = 0.35  # velocity of the short eighth under swing
_SCALES = (np.array([0, 2, 4, 5, 7, 9, 11]), np.array([0, 2, 3, 5, 7, 8, 10]))  # major, minor
_PHRASE = 8  # notes per contour phrase: one bar of eighths, a scale run
_MAX_HARMONIC_HZ = 5500.0  # below the 6 kHz Nyquist of the 12 kHz front end
_TABLE = 8192
_ATTACK_S, _DECAY_S, _SUSTAIN, _RELEASE_S = 0.008, 0.12, 0.6, 0.008
_PAD_TONIC_MIDI = 45  # + the key's pitch class + 0 or 12: the pad's range is random too
_MIN_BPM = 60.0
_MAX_BPM = 176.0
_F32 = np.float32


def _harmonic_amplitudes(timbre: str, n_harm: int) -> np.ndarray:
    k = np.arange(1, n_harm + 1, dtype=np.float64)
    if timbre == "bright":
        return k**-0.75
    if timbre == "hollow":
        return np.where(k % 2 == 1, 1.0 / k, 0.0)
    return 0.35 ** (k - 1) * (k <= 4)


def _n_harmonics(freq_max) -> np.ndarray:
    """Harmonics below 5.5 kHz: band-limited, so nothing aliases into the 12 kHz front end."""
    return np.maximum(1, np.floor(_MAX_HARMONIC_HZ / np.asarray(freq_max))).astype(np.int64)


class _Wavetables:
    """One band-limited period per harmonic count, unit RMS, flattened for a single gather.

    Each period is the inverse FFT of its harmonic amplitudes (exact, and cheaper than summing
    sines). The table is long enough (8192) for a nearest-sample lookup: the phase error of
    harmonic k is at most pi k / 8192, far below the noise floor we add anyway.
    """

    def __init__(self, timbre: str, n_harms):
        uniq, index = np.unique(np.asarray(n_harms).ravel(), return_inverse=True)
        spec = np.zeros((len(uniq), _TABLE // 2 + 1), dtype=np.complex128)
        for row, k in enumerate(uniq):
            amps = _harmonic_amplitudes(timbre, int(k))
            # irfft of -i a T / 2 at bin k is a * sin(2 pi k x)
            spec[row, 1 : len(amps) + 1] = -0.5j * _TABLE * amps / np.sqrt(0.5 * np.sum(amps**2))
        self.flat = np.fft.irfft(spec, _TABLE, axis=1).astype(_F32).ravel()
        self.offset = (index * _TABLE).astype(np.int64)  # per segment

    def lookup(self, seg, cycles: np.ndarray) -> np.ndarray:
        """Table values at ``cycles`` (phase in cycles, any real value) for segments ``seg``."""
        i = (cycles * _TABLE).astype(np.int64)
        i &= _TABLE - 1  # the phase modulo one period
        i += self.offset[seg]
        return self.flat.take(i)


def _segment_cycles(t_rel: np.ndarray, seg: np.ndarray, seg_start: np.ndarray,
                    seg_hz: np.ndarray, fm=None) -> np.ndarray:
    """Phase in cycles of a piecewise-constant frequency, continuous across segments.

    ``t_rel`` is the time since the start of each sample's segment ``seg``. Closed form instead
    of a cumulative sum over samples (the slow part of a naive oscillator). ``fm = (a, w, phi,
    cos_wt)`` adds vibrato f(t) = f_k (1 + a sin(w t + phi)), whose integral is
    -f_k a / w cos(w t + phi); ``cos_wt`` is that cosine per sample.
    """
    seg_len = np.diff(seg_start, append=seg_start[-1])
    inc = seg_hz * seg_len
    if fm is not None:
        a, w, phi, cos_wt = fm
        c_start = np.cos(w * seg_start + phi)
        c_end = np.cos(w * (seg_start + seg_len) + phi)
        inc = inc - seg_hz * a / w * (c_end - c_start)
    base = np.concatenate([[0.0], np.cumsum(inc)[:-1]])
    base -= np.floor(base)
    cycles = seg_hz[seg] * t_rel
    cycles += base[seg]
    if fm is not None:
        cycles -= (seg_hz * a / w)[seg] * (cos_wt - c_start[seg])
    return cycles


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """Unit-RMS noise band-limited to [lo, hi] Hz (random-phase spectrum, one inverse FFT)."""
    f = np.fft.rfftfreq(n, 1 / sr)
    spec = np.exp(2j * np.pi * rng.random(len(f))) * ((f >= lo) & (f <= hi))
    y = np.fft.irfft(spec, n)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def _add_hits(out: np.ndarray, starts: np.ndarray, template: np.ndarray) -> None:
    """Add ``template`` at every start (hits of one instrument never overlap, so plain +=)."""
    starts = starts[(starts >= 0) & (starts < len(out) - len(template))]
    if len(starts):
        out[starts[:, None] + np.arange(len(template))[None, :]] += template


def generate_clip(rng_or_seed, params: ClipParams | Iterable[str] = (), seconds: float = 29.0,
                  sr: int = 16_000) -> np.ndarray:
    """Render one clip: mono float32 in [-1, 1], ``round(seconds * sr)`` samples.

    ``params`` is a :class:`ClipParams` or a tag collection (``("fast", "drums")``).
    ``rng_or_seed`` is a ``numpy.random.Generator`` or anything ``default_rng`` accepts.
    """
    rng = _as_rng(rng_or_seed)
    p = params if isinstance(params, ClipParams) else ClipParams.from_tags(params)
    if sr < 12_000:
        raise ValueError(f"sr must be at least 12 kHz (the front end's rate), got {sr}")
    n = int(round(seconds * sr))
    t = np.arange(n) / sr

    # --- global draws (fixed order and count, whatever the parameters) ----------------------
    g = rng.random(36)
    lo, hi = _TEMPO_BPM[p.tempo]
    beat = 60.0 / (lo + g[0] * (hi - lo))
    grid_phase = g[1] * 2 * beat  # the first pair of eighths starts this far before t = 0
    swing = _SWING[0] + g[2] * (_SWING[1] - _SWING[0]) if p.feel == "swing" else 0.5
    gate_lo, gate_hi = _GATE[p.articulation]
    gate = gate_lo + g[3] * (gate_hi - gate_lo)
    tonic = _TONIC_MIDI[p.register] + int(g[4] * 8) + (g[5] - 0.5) * 0.6  # semitones + detune
    scale = _SCALES[int(g[6] * 2)]
    vib_w, vib_depth, vib_phase = 2 * np.pi * (5 + 2 * g[7]), 1.0 + 0.6 * g[8], 2 * np.pi * g[9]
    pad_level, pad_octave = 0.20 + 0.15 * g[10], 12 * int(g[26] * 2)
    drone_kind = "none" if g[11] < 0.5 else "held_chord" if g[11] < 0.8 else "tones"
    drone_level, drone_octave, drone_root = 0.06 + 0.10 * g[13], 12 * int(g[29] * 2), int(g[28] * 7)
    drone_tones_hz = 80 * 10 ** g[30:33]  # one to three sustained tones, 80-800 Hz
    n_tones = 1 + int(g[12] * 3)
    kick_level, snare_level, hat_level = 0.6 + 0.3 * g[14], 0.35 + 0.25 * g[15], 0.25 + 0.25 * g[16]
    hat_centre = 3200 + 1300 * g[17]
    clicks_on, hiss_on, hiss_level = g[18] < 0.5, g[19] < 0.5, 0.03 + 0.07 * g[20]
    blips_on = g[21] < 0.4
    snr_db = 20 + 15 * g[22]
    rms_db = -26 + 10 * g[23]
    drone_period, drone_swell_phase = 7 + 6 * g[24], 2 * np.pi * g[25]

    # --- the note grid: pairs of eighths, long-short under swing ------------------------------
    n_pairs_max = int(np.ceil((seconds + 2 * 60 / _MIN_BPM) / (60 / _MAX_BPM))) + 2
    n_pairs = int(np.ceil((seconds + grid_phase) / beat)) + 1
    pair_start = -grid_phase + beat * np.arange(n_pairs)
    slot_start = np.stack([pair_start, pair_start + swing * beat], axis=1).ravel()
    slot_len = np.diff(slot_start, append=slot_start[-1] + (1 - swing) * beat)
    n_slots = len(slot_start)

    # --- melody: phrases of _PHRASE notes; the contour orders the same notes -------------------
    n_phr_max = 2 * n_pairs_max // _PHRASE + 1
    start_deg = rng.integers(0, 3, n_phr_max)
    steps = 1 + (rng.random((n_phr_max, _PHRASE - 1)) < 0.7)  # mostly thirds, some seconds
    degrees = np.concatenate([start_deg[:, None], start_deg[:, None] + np.cumsum(steps, 1)], 1)
    rest = rng.random((n_phr_max, _PHRASE)) < 0.08
    velocity = 0.75 + 0.25 * rng.random((n_phr_max, _PHRASE))
    perm = np.argsort(rng.random((n_phr_max, _PHRASE)), axis=1)
    if p.contour == "rising":
        order = np.broadcast_to(np.arange(_PHRASE), perm.shape)
    elif p.contour == "falling":
        order = np.broadcast_to(np.arange(_PHRASE)[::-1], perm.shape)
    else:
        order = perm
    # rests and velocities travel with their notes, so every contour plays the same notes
    degrees = np.take_along_axis(degrees, order, 1).ravel()[:n_slots]
    rest = np.take_along_axis(rest, order, 1).ravel()[:n_slots]
    velocity = np.take_along_axis(velocity, order, 1).ravel()[:n_slots]
    if p.feel == "swing":
        velocity[1::2] *= _GHOST  # the short offbeat eighth is a lighter "ghost" note
    note_hz = 440.0 * 2 ** ((tonic + 12 * (degrees // 7) + scale[degrees % 7] - 69) / 12)

    slot = np.searchsorted(slot_start, t, side="right") - 1
    t_rel64 = t - slot_start[slot]
    t_rel = t_rel64.astype(_F32)
    on_len = (gate * slot_len).astype(_F32)[slot]
    env = np.minimum(t_rel * _F32(1 / _ATTACK_S), _F32(1))
    env *= _F32(_SUSTAIN) + _F32(1 - _SUSTAIN) * np.exp(t_rel * _F32(-1 / _DECAY_S))
    env *= np.exp(np.maximum(t_rel - on_len, _F32(0)) * _F32(-1 / _RELEASE_S))
    env *= np.where(rest, 0.0, velocity).astype(_F32)[slot]
    fm = None
    vib_a = 2 ** (vib_depth / 12) - 1
    if p.vibrato == "vibrato":
        fm = (vib_a, vib_w, vib_phase, np.cos((vib_w * t + vib_phase).astype(_F32)))
    lead_tables = _Wavetables(p.timbre, _n_harmonics(note_hz * (1 + vib_a)))
    mix = env * lead_tables.lookup(slot, _segment_cycles(t_rel64, slot, slot_start, note_hz, fm))

    # --- chord pad: a triad per bar (4 beats) ------------------------------------------------
    # a two-chord vamp (I-IV, I-V, vi-IV, I-vi), one chord per bar
    vamp = np.array([(0, 3), (0, 4), (5, 3), (0, 5)])[int(rng.integers(0, 4))]
    key_pc = (tonic - _TONIC_MIDI[p.register]) % 12
    pad_tonic = _PAD_TONIC_MIDI + pad_octave + key_pc
    if p.chords == "chords":
        bar_len = 4 * beat
        bar_start = -grid_phase + bar_len * np.arange(int(np.ceil((seconds + grid_phase) / bar_len)) + 1)
        bar = np.searchsorted(bar_start, t, side="right") - 1
        b_rel64 = t - bar_start[bar]
        b_rel = b_rel64.astype(_F32)
        pad_env = np.minimum(b_rel * _F32(1 / 0.15), _F32(1))
        pad_env *= np.minimum((_F32(bar_len) - b_rel) * _F32(1 / 0.05), _F32(1))
        pad = np.zeros(n, _F32)
        for voice in range(3):
            deg = vamp[np.arange(len(bar_start)) % 2] + 2 * voice
            hz = 440.0 * 2 ** ((pad_tonic + 12 * (deg // 7) + scale[deg % 7] - 69) / 12)
            tables = _Wavetables("soft", _n_harmonics(hz))
            pad += tables.lookup(bar, _segment_cycles(b_rel64, bar, bar_start, hz))
        mix += _F32(pad_level) * pad_env * pad

    # --- drone distractor: a held triad (a pad that never changes chord) or held tones --------
    drone_timbre = ("soft", "bright", "hollow")[int(rng.integers(0, 3))]
    if drone_kind != "none":
        if drone_kind == "held_chord":
            deg = drone_root + 2 * np.arange(3)
            hz = 440.0 * 2 ** ((_PAD_TONIC_MIDI + drone_octave + key_pc + 12 * (deg // 7)
                                + scale[deg % 7] - 69) / 12)
            tables = _Wavetables("soft", _n_harmonics(hz))
        else:
            hz = drone_tones_hz[:n_tones]
            tables = _Wavetables(drone_timbre, _n_harmonics(hz))
        drone = np.zeros(n, _F32)
        for k in range(len(hz)):
            drone += tables.lookup(k, hz[k] * t)
        swell = _F32(0.7) + _F32(0.3) * np.sin(
            (2 * np.pi / drone_period * t + drone_swell_phase).astype(_F32))
        mix += _F32(drone_level) * swell * drone

    # --- blip distractor: sparse tone bursts at random times and pitches -----------------------
    n_blips = int(seconds) + 1
    blip_t, blip_hz, blip_len = rng.random(n_blips) * seconds, 100 * 20 ** rng.random(n_blips), \
        0.05 + 0.15 * rng.random(n_blips)
    if blips_on:
        for bt, bh, bl in zip(blip_t, blip_hz, blip_len, strict=True):
            i0, m = int(bt * sr), int(bl * sr)
            m = min(m, n - i0)
            if m > 1:
                burst = np.sin(2 * np.pi * bh * np.arange(m) / sr) * np.hanning(m)
                mix[i0:i0 + m] += _F32(0.12) * burst.astype(_F32)

    # --- drums: kick on 1 and 3, snare on 2 and 4, hats on every eighth -----------------------
    noise_snare = _band_noise(rng, int(0.15 * sr), sr, 1000, 5000)
    noise_hat = _band_noise(rng, int(0.05 * sr), sr, hat_centre - 800, hat_centre + 800)
    hat = hat_level * noise_hat * np.exp(-np.arange(len(noise_hat)) / sr / 0.012)
    click_t = rng.random(3 * int(seconds) + 1) * seconds
    if p.drums == "drums":
        kt = np.arange(int(0.15 * sr)) / sr
        kick_hz = 45 + 105 * np.exp(-kt / 0.03)
        kick = kick_level * np.sin(2 * np.pi * np.cumsum(kick_hz) / sr) * np.exp(-kt / 0.08)
        snare = snare_level * (noise_snare * np.exp(-kt / 0.05)
                               + 0.4 * np.sin(2 * np.pi * 190 * kt) * np.exp(-kt / 0.04))
        beats = np.round(pair_start * sr).astype(np.int64)
        drums = np.zeros(n + sr)
        beat_no = np.arange(n_pairs)
        _add_hits(drums, beats[beat_no % 2 == 0], kick)
        _add_hits(drums, beats[beat_no % 2 == 1], snare)
        _add_hits(drums, np.round(slot_start * sr).astype(np.int64), hat)
        mix += drums[:n].astype(_F32)
    if clicks_on:
        # irregular hats: the same sound off the grid, so the band's energy alone is no cue.
        # Clicks may overlap: bincount sums coinciding indices (np.add.at with broadcast values
        # crashed numpy 2.4.6 here).
        idx = (click_t * sr).astype(np.int64)[:, None] + np.arange(len(hat))[None, :]
        vals = np.broadcast_to(0.5 * hat, idx.shape)
        mix += np.bincount(idx.ravel(), vals.ravel(), minlength=n + len(hat))[:n].astype(_F32)

    # --- stationary noise: pink background + optional hiss in the hat band (one irfft) ---------
    f = np.fft.rfftfreq(n, 1 / sr)
    spec_phase = rng.random(len(f), dtype=_F32) * _F32(2 * np.pi)
    gain = 1 / np.sqrt(np.maximum(f, 20.0))
    gain *= np.sqrt(np.mean(mix**2, dtype=np.float64) / np.mean(gain**2)) * 10 ** (-snr_db / 20)
    if hiss_on:
        band = (f > hat_centre - 1200) & (f < hat_centre + 1200)
        gain += band * (hiss_level / np.sqrt(band.mean()))
    gain[0] = 0
    # a random-phase spectrum with RMS gain g per bin gives time-domain RMS g * sqrt(2 / n)
    gain *= np.sqrt(n / 2)
    spec = (np.cos(spec_phase) + 1j * np.sin(spec_phase)) * gain.astype(_F32)
    mix += np.fft.irfft(spec.astype(np.complex64), n)

    # loudness by RMS, not peak, so that loud drum hits do not turn everything else down
    mix *= _F32(10 ** (rms_db / 20) / (np.sqrt(np.mean(mix**2, dtype=np.float64)) + 1e-12))
    peak = float(np.max(np.abs(mix)))
    if peak > 0.98:
        mix *= _F32(0.98 / peak)
    return mix.astype(_F32)
