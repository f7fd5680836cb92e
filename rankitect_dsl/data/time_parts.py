"""Parts of a time stamp as categorical values — the hour of day and day of week ranking models learn daily
and weekly cycles from. A stamp is Unix seconds (MovieLens's `timestamp`) or `YYMMDDHH` (Avazu's `hour`),
read in UTC; `auto` takes an eight-digit value as YYMMDDHH (as Unix seconds it would fall in 1970–73)
and any other number as Unix seconds."""

from __future__ import annotations

import math
from datetime import datetime, timezone


class NotATime(ValueError):
    """The value is not a time stamp of the format asked for."""


def time_part(raw: str, part: str, fmt: str = "auto") -> str:
    """`part` (hour 0–23, weekday 0–6 from Monday, day 1–31, month 1–12) of the stamp `raw`, as a string."""
    stamp = raw.strip()
    if fmt == "yymmddhh" or (fmt == "auto" and len(stamp) == 8 and stamp.isdigit()):
        if len(stamp) != 8 or not stamp.isdigit():
            raise NotATime(f"`{raw[:40]}` is not YYMMDDHH")
        try:
            when = datetime.strptime(stamp, "%y%m%d%H")
        except ValueError:
            raise NotATime(f"`{raw[:40]}` is not a valid YYMMDDHH date and hour") from None
    else:
        try:
            seconds = int(stamp) if stamp.lstrip("-").isdigit() else float(stamp)
            if not math.isfinite(seconds):
                raise ValueError
            when = datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise NotATime(f"`{raw[:40]}` is not Unix seconds") from None
    return str({"hour": when.hour, "weekday": when.weekday(), "day": when.day, "month": when.month}[part])
