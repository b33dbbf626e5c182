"""A blood-pressure chart as server-rendered SVG: systolic, diastolic and pulse over time.
Numbers only go into the markup, so no escaping is needed; no script, no CDN."""

from datetime import datetime

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 36
Y_MIN, Y_MAX = 40, 200  # mm[Hg] and beats/min share one axis: both sit in this range
SERIES = (("systolic", "#b42318"), ("diastolic", "#1f6feb"), ("pulse", "#1a7f37"))


def _x(t: float, t0: float, t1: float) -> float:
    span = (t1 - t0) or 1.0
    return LEFT + (t - t0) / span * (WIDTH - LEFT - RIGHT)


def _y(value: float) -> float:
    value = min(max(value, Y_MIN), Y_MAX)
    return TOP + (Y_MAX - value) / (Y_MAX - Y_MIN) * (HEIGHT - TOP - BOTTOM)


# LOINC codes of the blood-pressure panel's components (the EHR's Observations).
SYSTOLIC, DIASTOLIC, PULSE = "8480-6", "8462-4", "8867-4"


def readings_from(bundle: dict) -> list[tuple[datetime, int, int, int]]:
    """The chart's points from a Bundle of the EHR's Observations, oldest first; an
    Observation without a time or a value is left out rather than breaking the page."""
    points = []
    for entry in bundle.get("entry", []) if isinstance(bundle, dict) else []:
        try:
            observation = entry["resource"]
            values = {
                c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"]
                for c in observation["component"]
            }
            when = datetime.fromisoformat(observation["effectiveDateTime"].replace("Z", "+00:00"))
            point = (when, values[SYSTOLIC], values[DIASTOLIC], values[PULSE])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            continue
        if all(isinstance(v, int | float) for v in point[1:]):
            points.append(point)
    return sorted(points, key=lambda p: p[0])


def render(points: list[tuple[datetime, int, int, int]]) -> str:
    """``points``: (measured_at, systolic, diastolic, pulse), oldest first."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="Blood pressure and pulse over time" class="chart">'
    ]
    for level in range(Y_MIN, Y_MAX + 1, 20):
        y = _y(level)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde3ea"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#5f6b7a">{level}</text>'
        )
    if points:
        t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
        for index, (_name, colour) in enumerate(SERIES, start=1):
            coords = " ".join(
                f"{_x(p[0].timestamp(), t0, t1):.1f},{_y(p[index]):.1f}" for p in points
            )
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
            )
        for x, when in ((LEFT, points[0][0]), (WIDTH - RIGHT, points[-1][0])):
            anchor = "start" if x == LEFT else "end"
            parts.append(
                f'<text x="{x}" y="{HEIGHT - 12}" font-size="11" text-anchor="{anchor}" '
                f'fill="#5f6b7a">{when.strftime("%d %b %H:%M:%S")} UTC</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
