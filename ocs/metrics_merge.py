"""One node's metrics from several processes: the expositions of N workers merged into one.

``ocs serve --workers N`` runs N processes with their own counters; the
supervisor scrapes each worker's private endpoint and exposes the node
(:mod:`ocs.node_ops`). The rules, by metric type:

- counters, histograms, summaries: summed per (sample name, labels). What a
  worker counted before it was restarted is kept (:class:`Retired`), so the
  node's totals never go down when one worker restarts and Prometheus's
  ``rate()`` sees no false reset;
- gauges: summed (requests in flight, peers connected: node totals); the
  ``*_created`` timestamps: the earliest;
- info (``*_info``, a gauge in the text format) and stateset: the largest
  value per label set (the same in every worker);
- the process's own (``process_*``, ``python_*``): one series per worker,
  labelled ``worker``, since a sum of start times or of file-descriptor
  limits means nothing.

Why not prometheus-client's multiprocess mode: it serves only the metric
types it knows, through memory-mapped files, so the Diameter front end's
collector (plain ints on the hot path, read at scrape time) would vanish,
and every increment would take its lock and write its file. Scraping N
processes once per scrape costs nothing on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

PER_PROCESS_PREFIXES = ("process_", "python_")
SUMMED = frozenset({"counter", "histogram", "summary", "gaugehistogram", "unknown"})
LARGEST = frozenset({"info", "stateset"})
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def parse(text: str) -> list[Metric]:
    """The metric families of one Prometheus text exposition."""
    return list(text_string_to_metric_families(text))


def _key(name: str, labels: dict[str, str]) -> SampleKey:
    return name, tuple(sorted(labels.items()))


def _rule(family: Metric) -> str:
    if family.name.startswith(PER_PROCESS_PREFIXES):
        return "labelled"
    if family.type == "gauge" and family.name.endswith("_created"):
        return "earliest"
    if family.type == "gauge" and family.name.endswith("_info"):
        return "largest"  # an info metric in the text format: a gauge of 1 per label set
    if family.type == "gauge":
        return "sum"
    if family.type in LARGEST:
        return "largest"
    return "sum"


def merge(sources: Iterable[tuple[str, Iterable[Metric]]]) -> list[Metric]:
    """The families of every source merged by the rules above; ``source`` names a worker."""
    heads: dict[str, Metric] = {}
    values: dict[str, dict[SampleKey, float]] = {}
    for source, families in sources:
        for family in families:
            head = heads.setdefault(family.name, family)
            rule = _rule(head)
            samples = values.setdefault(family.name, {})
            for s in family.samples:
                labels = dict(s.labels)
                if rule == "labelled":
                    labels["worker"] = source
                key = _key(s.name, labels)
                old = samples.get(key)
                if old is None:
                    samples[key] = s.value
                elif rule == "earliest":
                    samples[key] = min(old, s.value)
                elif rule == "largest":
                    samples[key] = max(old, s.value)
                else:  # sum (labelled keys are distinct per worker)
                    samples[key] = old + s.value
    out = []
    for name, head in heads.items():
        metric = Metric(name, head.documentation, head.type, head.unit)
        for (sample, pairs), value in values[name].items():
            metric.add_sample(sample, dict(pairs), value)
        out.append(metric)
    return out


def counted(families: Iterable[Metric]) -> list[Metric]:
    """Only what adds up over time (counters, histograms, summaries): what a restart retires."""
    out = []
    for family in families:
        if family.type in SUMMED and not family.name.startswith(PER_PROCESS_PREFIXES):
            out.append(family)
    return out


@dataclass
class Retired:
    """Per worker slot: the last scrape of its live process, and its dead ones' totals."""

    last: dict[int, tuple[int, list[Metric]]] = field(default_factory=dict)
    dead: list[Metric] = field(default_factory=list)

    def seen(self, slot: int, pid: int, families: list[Metric]) -> None:
        """A scrape of ``pid`` in ``slot``: a new pid retires the previous one's counts."""
        previous = self.last.get(slot)
        if previous is not None and previous[0] != pid:
            self.dead = merge([("", self.dead), ("", previous[1])])
        self.last[slot] = (pid, counted(families))

    def sources(self, answered: set[int]) -> list[tuple[str, list[Metric]]]:
        """Counts of the dead, and the last counts of slots that did not answer this time."""
        out = [("retired", self.dead)]
        out += [(str(slot), fams) for slot, (_, fams) in self.last.items() if slot not in answered]
        return out
