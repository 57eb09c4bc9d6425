"""What one benchmark step made Redis do, per answered request.

- Redis CPU: user + system seconds of the Redis process from ``/proc`` (the
  whole process: commands, I/O, AOF writes), before and after the step;
- ``INFO commandstats``, reset at the step's start (``CONFIG RESETSTAT``):
  calls and ``usec_per_call`` of every command the step sent, so the charging
  functions (``fcall``; ``evalsha`` where the server has no functions) are
  seen with the index commands around them. The functions of one library
  share one ``cmdstat_fcall`` line: ``python -m loadtest.luabench`` measures
  each request type (CCR-I, -U, -T) apart;
- AOF bytes: the growth of ``aof_current_size`` (automatic AOF rewrites are
  turned off while a probe watches, so the size only grows).

A measurement, never a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from loadtest.serverproc import cpu_of


@dataclass
class RedisFigures:
    cpu_s: float = 0.0
    aof_bytes: int = 0
    commands: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> calls, usec

    def per_request(self, answered: int) -> dict[str, Any]:
        """The figures per answered request, as the bench's JSON carries them."""
        n = max(answered, 1)
        scripts = {k: v for k, v in self.commands.items() if k in ("fcall", "evalsha")}
        calls = sum(v["calls"] for v in scripts.values())
        usec = sum(v["usec"] for v in scripts.values())
        return {
            "redis_cpu_s": round(self.cpu_s, 3),
            "redis_cpu_us_per_request": round(self.cpu_s * 1e6 / n, 1),
            "aof_bytes": self.aof_bytes,
            "aof_bytes_per_request": round(self.aof_bytes / n, 1),
            "script_calls_per_request": round(calls / n, 3),
            "script_usec_per_call": round(usec / calls, 2) if calls else None,
            "commandstats": {
                k: {
                    "calls": int(v["calls"]),
                    "usec_per_call": round(v["usec"] / v["calls"], 2) if v["calls"] else 0.0,
                }
                for k, v in sorted(self.commands.items())
            },
        }


class RedisProbe:
    """Start before a step, stop after it: :class:`RedisFigures` of the step."""

    def __init__(self, url: str, pid: int | None) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=10)
        self.pid = pid
        self._cpu0 = 0.0
        self._aof0 = 0
        self.client.config_set("auto-aof-rewrite-percentage", 0)

    def close(self) -> None:
        self.client.close()

    def start(self) -> None:
        self.client.config_resetstat()
        self._cpu0 = cpu_of(self.pid) if self.pid else 0.0
        self._aof0 = self._aof_size()

    def stop(self) -> RedisFigures:
        cpu = (cpu_of(self.pid) - self._cpu0) if self.pid else 0.0
        aof = self._aof_size() - self._aof0
        stats: dict[str, Any] = self.client.info("commandstats")
        commands = {
            name.removeprefix("cmdstat_"): {"calls": float(v["calls"]), "usec": float(v["usec"])}
            for name, v in stats.items()
            if name.startswith("cmdstat_")
            and name not in ("cmdstat_info", "cmdstat_config|resetstat")
        }
        return RedisFigures(cpu, aof, commands)

    def _aof_size(self) -> int:
        info: dict[str, Any] = self.client.info("persistence")
        return int(info.get("aof_current_size", 0))
