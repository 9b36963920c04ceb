"""The online-risk data-sharing hub: shared core (settings, contract, broker, CLI)."""

__version__ = "0.1.0"
