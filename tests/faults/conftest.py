"""The fault suite: black-box tests of `ocs serve` as a hostile or unlucky
network and host would treat it (duplicate storms, kill -9, fuzz over the
wire, slow peers, a stalled Redis).

Each test drives a real `ocs serve` subprocess (tests/serve_harness.py) over
real sockets on 127.0.0.1 with a real Redis, prints its counts, and asserts
outcomes, never speed. The fast cases run in the default suite; the long
ones carry the ``faults`` marker and run with ``make test-faults``.
"""
