"""The two error kinds that map to exit codes: bad input (2) and a failed instrument check (1)."""


class ConfigError(ValueError):
    """Bad user input: an unknown key, a wrong type, an out-of-range value, a bad file. Exit 2."""


class InstrumentError(RuntimeError):
    """An identity or instrument check failed: the measurement cannot be trusted. Exit 1."""
