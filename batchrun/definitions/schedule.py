"""Schedules in job files: `schedule:` as a cron string, a mapping, or a list of mappings.

Every supervisor on every host computes the same due times from the same
definition, which is what lets them fire each due time exactly once with no
leader: the due time is the fire's identity (see store/lua/fire.lua). So due
times must not depend on when a supervisor started: cron times come from the
expression (parsed and iterated by cronsim, in the schedule's time zone, which
handles daylight-saving changes), and `every:` times are whole multiples of
the interval since the Unix epoch (`every: 10m` fires at :00, :10, :20, ...).

cronsim and zoneinfo are imported where a schedule is parsed or computed, not
with this module: the registry imports it in every process, and most job files
have no schedule.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import orjson

from batchrun.definitions.durations import parse_duration
from batchrun.definitions.params import Param, validate_params
from batchrun.definitions.yamlfile import Document, did_you_mean
from batchrun.errors import SubmitError

MISFIRE_POLICIES = ("once", "skip")
_KEYS = ("cron", "every", "params", "timezone", "misfire")
_CRON_FIELDS = "minute hour day-of-month month day-of-week"


@dataclass(frozen=True)
class Schedule:
    """One schedule of one job. `id` names it in Redis: the job's name, and its place in the job's list."""

    job: str
    index: int
    cron: str | None
    every_s: float | None
    timezone: str = "UTC"
    misfire: str = "once"
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def id(self) -> str:
        return f"{self.job}#{self.index}"

    @property
    def expression(self) -> str:
        return self.cron if self.cron is not None else f"every {self.every_s:g}s"

    @property
    def params_json(self) -> bytes:
        return orjson.dumps(dict(self.params))

    def next_after(self, t: float) -> float:
        """The first due time strictly after unix time t."""
        if self.every_s is not None:
            return (math.floor(t / self.every_s) + 1) * self.every_s
        from cronsim import CronSim
        from zoneinfo import ZoneInfo

        start = datetime.fromtimestamp(t, ZoneInfo(self.timezone))
        return next(CronSim(self.cron, start)).timestamp()

    def latest_at_or_before(self, t: float) -> float:
        """The last due time not after unix time t: the one a late supervisor fires."""
        if self.every_s is not None:
            return math.floor(t / self.every_s) * self.every_s
        from cronsim import CronSim
        from zoneinfo import ZoneInfo

        whole = datetime.fromtimestamp(math.floor(t), ZoneInfo(self.timezone))
        return next(CronSim(self.cron, whole + timedelta(seconds=1), reverse=True)).timestamp()


def parse_schedules(doc: Document, job: str, params: Mapping[str, Param]) -> tuple[Schedule, ...]:
    """The `schedule:` of a job file; raises a ConfigError naming the field of the first problem."""
    value = doc.data.get("schedule")
    if value is None:
        return ()
    if isinstance(value, str):
        return (_schedule(doc, ("schedule",), job, 0, {"cron": value}, params),)
    if isinstance(value, dict):
        return (_schedule(doc, ("schedule",), job, 0, value, params),)
    if isinstance(value, list) and value:
        return tuple(_schedule(doc, ("schedule", i), job, i, item, params) for i, item in enumerate(value))
    raise doc.error(("schedule",), "expected a cron string like \"0 3 * * *\", a mapping with 'cron' or "
                                   f"'every', or a list of such mappings; got {value!r}")


def _schedule(doc: Document, where: tuple, job: str, index: int, spec: object,
              params: Mapping[str, Param]) -> Schedule:
    if not isinstance(spec, dict):
        raise doc.error(where, f"expected a mapping with 'cron' or 'every', got {spec!r}")
    unknown = doc.unknown_key_errors(where, spec, _KEYS)
    if unknown:
        raise unknown[0]
    if ("cron" in spec) == ("every" in spec):
        raise doc.error(where, "give exactly one of 'cron' and 'every'")
    timezone = _checked(doc, where + ("timezone",), _timezone, spec.get("timezone", "UTC"))
    cron = _checked(doc, where + ("cron",), _cron, spec["cron"]) if "cron" in spec else None
    every = _checked(doc, where + ("every",), _every, spec["every"]) if "every" in spec else None
    misfire = _checked(doc, where + ("misfire",), _misfire, spec.get("misfire", "once"))
    given = spec.get("params", {})
    try:
        checked = validate_params(job, params, given)
    except SubmitError as exc:
        raise doc.error(where + ("params",), str(exc)) from None
    return Schedule(job, index, cron, every, timezone, misfire, MappingProxyType(checked))


def _checked(doc: Document, where: tuple, parse: Any, value: object) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise doc.error(where, str(exc)) from None


def _cron(value: object) -> str:
    if not isinstance(value, str) or len(value.split()) != 5:
        raise ValueError(f"expected a cron expression of 5 fields ({_CRON_FIELDS}), got {value!r}")
    from cronsim import CronSim, CronSimError
    from zoneinfo import ZoneInfo

    try:
        CronSim(value, datetime.now(ZoneInfo("UTC")))
    except CronSimError as exc:
        raise ValueError(f"bad cron expression {value!r}: {exc} (fields: {_CRON_FIELDS})") from None
    return value


def _every(value: object) -> float:
    seconds = parse_duration(value)
    if not 0 < seconds < math.inf:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return seconds


def _timezone(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected an IANA time zone name like Europe/Paris, got {value!r}")
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (expected an IANA name like UTC or Europe/Paris)") from None
    return value


def _misfire(value: object) -> str:
    if value not in MISFIRE_POLICIES:
        raise ValueError(f"unknown misfire policy {value!r}{did_you_mean(value, MISFIRE_POLICIES)} "
                         f"(expected one of: {', '.join(MISFIRE_POLICIES)})")
    return str(value)

