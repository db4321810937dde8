"""The shipped rules on a faster clock, for a lab that cannot wait an hour for a `for: 1h`.

`scale(text, factor)` divides every duration of a Prometheus rule file by `factor`: range
selectors (`[30m]`), `for:` and a group's `interval:`. Nothing else changes: expressions,
thresholds (including `time()` arithmetic such as `14 * 86400`, which is calendar time, not a
window), labels and annotations stay as written. With factor 30, `for: 1h` becomes 120 s,
a `[5m]` rate 10 s (ten 1 s scrapes), and the 30 s endpoints group runs every second.

Each scaled duration is written in whole seconds; a duration that does not divide evenly is
refused rather than rounded, so the scaled windows keep their proportions exactly.
"""

import re

from .netns import LabError

UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# One Prometheus duration: one or more number-unit pairs, e.g. 1h30m.
DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
RANGE = re.compile(r"\[(" + DURATION + r")(:" + DURATION + r")?\]")
KEY = re.compile(r"^(\s*(?:-\s+)?(?:for|interval|keep_firing_for):\s*)(" + DURATION + r")\s*$", re.M)


def seconds(text):
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|[smhdwy])", text):
        total += int(number) * UNIT[unit]
    return total


def divide(text, factor):
    whole = seconds(text)
    scaled = whole / factor
    if scaled != int(scaled) or scaled < 1:
        raise LabError(f"duration {text} ({whole:g} s) does not divide into whole seconds by {factor}")
    return f"{int(scaled)}s"


def scale(text, factor):
    """`text` (a rule file) with every window, `for:` and `interval:` divided by `factor`."""
    if factor == 1:
        return text

    def window(m):
        step = divide(m.group(2)[1:], factor) if m.group(2) else None
        return f"[{divide(m.group(1), factor)}" + (f":{step}" if step else "") + "]"

    text = RANGE.sub(window, text)
    return KEY.sub(lambda m: m.group(1) + divide(m.group(2), factor), text)


def header(source, factor):
    return (f"# {source}, every window, `for:` and `interval:` divided by {factor}\n"
            f"# (tests/lab/hwlab/timescale.py): the lab's clock runs {factor} times faster.\n")
