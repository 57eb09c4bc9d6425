"""ocs: an online charging server (Diameter Gy, RADIUS accounting, Redis balances)."""

__version__ = "0.1.0"
