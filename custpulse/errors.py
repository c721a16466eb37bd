"""One exception root for custpulse; every message tells the operator what to do next."""


class CustpulseError(Exception):
    """Base of all custpulse errors. ``str(err)`` is one sentence meant for a human."""


class ConfigError(CustpulseError):
    """A setting is missing or invalid."""


class ServiceUnavailable(CustpulseError):
    """Kafka or Redis cannot be reached."""


class InputError(CustpulseError):
    """An input file or argument cannot be used."""
