"""Charged-session export for invoicing: ``ocs export`` (DESIGN.md "Data flow" 4).

A side process reads every partition's record stream through a Redis
consumer group and writes invoice-ready files per billing period, exactly
once across crashes. Modules, in the order a record meets them:

* :mod:`ocs.export.streams`  consumer-group reads, claims, fencing, acks, dead letters
* :mod:`ocs.export.commit`   one partition's batch: decode, reconcile with disk, write, ack
* :mod:`ocs.export.rows`     a record's invoice rows (one per service); :mod:`.money`
* :mod:`ocs.export.periods`  billing periods in a time zone, and which one a row goes to
* :mod:`ocs.export.layout`   the on-disk layout and the crash-safe batch commit
* :mod:`ocs.export.manifest` closing a period: rows files, summary, manifest
* :mod:`ocs.export.verify`   ``ocs export verify DIR``
* :mod:`ocs.export.exporter` the process loop and the exactly-once protocol (read this first)
"""
