"""The two error kinds that map to exit codes: bad input (2) and a failed instrument check (1).

Both print as one line: a value a user typed may hold a newline or another control character,
which the message shows escaped.
"""


def one_line(text: str) -> str:
    """``text`` with every unprintable character (newlines too) escaped as Python writes it."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class ConfigError(ValueError):
    """Bad user input: an unknown key, a wrong type, an out-of-range value, a bad file. Exit 2."""

    def __str__(self) -> str:
        return one_line(super().__str__())


class InstrumentError(RuntimeError):
    """An identity or instrument check failed: the measurement cannot be trusted. Exit 1."""

    def __str__(self) -> str:
        return one_line(super().__str__())
