"""Physiologically plausible blood-pressure readings: a pure, seeded generator (no I/O, no clock).

The caller says *when* a measurement happens; the generator says *what* the cuff reads then.
The model, per reading:

    value = baseline + daily rhythm(hour) + slow drift + measurement noise [+ spike]

- daily rhythm: blood pressure dips at night and peaks in the afternoon (a "dipper" profile,
  about 10-15 % lower asleep than awake; Mancia et al. on ambulatory BP);
- slow drift: an AR(1) walk, so consecutive readings are related the way a body's are;
- noise: the cuff's and the arm's few mm[Hg] from one reading to the next;
- spikes: rare hypertensive episodes (stress, pain, a missed pill), flagged on the reading
  so tests and demos can find them; the flag is not sent on the wire.

Bounds keep every value inside what a home cuff can display, and the diastolic pressure always
stays below the systolic by at least MIN_PULSE_PRESSURE.
"""

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

# Shared by every profile: what a home cuff can show, and physiology's hard edges.
SYSTOLIC_BOUNDS = (70, 250)
DIASTOLIC_BOUNDS = (40, 150)
PULSE_BOUNDS = (35, 200)
MIN_PULSE_PRESSURE = 15  # systolic − diastolic; below this a real cuff reports an error


@dataclass(frozen=True, slots=True)
class Profile:
    """One patient's numbers. Defaults: a post-operative adult with mildly high BP."""

    systolic: float = 132.0
    diastolic: float = 84.0
    pulse: float = 70.0
    # Half the day-night swing; 9/6 mm[Hg] gives a ~13 % nocturnal dip, a normal "dipper".
    systolic_rhythm: float = 9.0
    diastolic_rhythm: float = 6.0
    pulse_rhythm: float = 8.0
    peak_hour: float = 14.0  # local time of the daily maximum; the minimum is 12 h later
    # Reading-to-reading scatter (standard deviations, mm[Hg] / beats per minute).
    systolic_noise: float = 4.0
    diastolic_noise: float = 3.0
    pulse_noise: float = 3.0
    # AR(1) drift: keeps 95 % of the last offset, so it wanders a few mm[Hg] over hours.
    drift_memory: float = 0.95
    drift_step: float = 1.0
    # About one reading in seventy is a hypertensive episode.
    spike_probability: float = 0.015
    spike_systolic: tuple[float, float] = (30.0, 55.0)
    spike_diastolic: tuple[float, float] = (12.0, 25.0)
    spike_pulse: tuple[float, float] = (10.0, 25.0)


DEFAULT_PROFILE = Profile()


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement. `seq` starts at `first_seq` (1 by default) and grows by one per
    reading of a generator."""

    seq: int
    measured_at: datetime
    systolic: int
    diastolic: int
    pulse: int
    spike: bool = False


class ReadingGenerator:
    """Successive readings of one device; the same seed and times give the same readings."""

    def __init__(
        self,
        seed: int | None = None,
        profile: Profile = DEFAULT_PROFILE,
        local_tz: tzinfo = UTC,
        first_seq: int = 1,
    ):
        # A private Random: seeding must not touch (or depend on) the global random state.
        self._random = random.Random(seed)
        self.profile = profile
        self.local_tz = local_tz
        self._seq = first_seq - 1
        self._drift = [0.0, 0.0, 0.0]  # systolic, diastolic, pulse

    @property
    def seq(self) -> int:
        """The seq of the last reading made (0 before the first)."""
        return self._seq

    def measure(self, measured_at: datetime) -> Reading:
        """The next reading, taken at `measured_at` (zone-aware)."""
        if measured_at.tzinfo is None:
            raise ValueError("measured_at must be zone-aware")
        p, rnd = self.profile, self._random
        self._seq += 1

        rhythm = self.daily_rhythm(measured_at)
        for i in range(3):
            self._drift[i] = p.drift_memory * self._drift[i] + rnd.gauss(0.0, p.drift_step)

        systolic = p.systolic + p.systolic_rhythm * rhythm + self._drift[0]
        diastolic = p.diastolic + p.diastolic_rhythm * rhythm + self._drift[1]
        pulse = p.pulse + p.pulse_rhythm * rhythm + self._drift[2]
        systolic += rnd.gauss(0.0, p.systolic_noise)
        diastolic += rnd.gauss(0.0, p.diastolic_noise)
        pulse += rnd.gauss(0.0, p.pulse_noise)

        spike = rnd.random() < p.spike_probability
        if spike:
            systolic += rnd.uniform(*p.spike_systolic)
            diastolic += rnd.uniform(*p.spike_diastolic)
            pulse += rnd.uniform(*p.spike_pulse)

        sys_i = _clamp(round(systolic), SYSTOLIC_BOUNDS)
        dia_i = _clamp(round(diastolic), DIASTOLIC_BOUNDS)
        # After clamping, so the rule holds even at the edges: 70 systolic allows 55 at most.
        dia_i = min(dia_i, sys_i - MIN_PULSE_PRESSURE)
        return Reading(
            seq=self._seq,
            measured_at=measured_at,
            systolic=sys_i,
            diastolic=dia_i,
            pulse=_clamp(round(pulse), PULSE_BOUNDS),
            spike=spike,
        )

    def daily_rhythm(self, moment: datetime) -> float:
        """−1 (deep night) … +1 (the daily peak): a cosine over the patient's local day."""
        local = moment.astimezone(self.local_tz)
        hour = local.hour + local.minute / 60 + local.second / 3600
        return math.cos(2 * math.pi * (hour - self.profile.peak_hour) / 24)


def series(
    start: datetime,
    interval: timedelta,
    seed: int | None = None,
    profile: Profile = DEFAULT_PROFILE,
) -> Iterator[Reading]:
    """An endless series of readings every `interval` from `start`: for tests and replays."""
    generator = ReadingGenerator(seed=seed, profile=profile)
    moment = start
    while True:
        yield generator.measure(moment)
        moment += interval


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return max(low, min(high, value))
