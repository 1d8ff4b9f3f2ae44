"""Microseconds since the epoch (UTC): the online store's one unit of time, in blobs, expiries,
watermarks and the meta hash."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EPOCH_DATE = date(1970, 1, 1)
MIN_US = -62_135_596_800_000_000
MAX_US = 253_402_300_799_999_999
"""Microseconds of 0001-01-01 and 9999-12-31T23:59:59.999999 UTC: what a reader can decode."""
MIN_DAYS, MAX_DAYS = -719_162, 2_932_896


def from_days(days: int) -> date:
    return EPOCH_DATE + timedelta(days=days)


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def moment_micros(value: datetime | date | None) -> int | None:
    """Microseconds since the epoch of a timestamp (naive ones are UTC) or a date (midnight)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return to_micros(value)
    if isinstance(value, date):
        return to_micros(datetime(value.year, value.month, value.day))
    raise TypeError(f"not a point in time: {value!r}")


def iso_micros(us: int | str | None, timespec: str = "auto") -> str | None:
    """ISO 8601 (UTC) of microseconds since the epoch, as kept in the meta hash."""
    return None if us in (None, "") else from_micros(int(us)).isoformat(timespec=timespec)


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
