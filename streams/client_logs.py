"""Kafka client logs never carry records: at DEBUG aiokafka and kafka-python dump fetched
responses byte for byte, raw input topics included (personal data, issue 10)."""

from __future__ import annotations

import logging

CLIENT_LOGGERS = ("aiokafka", "kafka")
"""Kafka client loggers: at DEBUG they dump fetched records byte for byte, raw input included,
so they never log below INFO, whatever the worker's log level (personal data stays out of
logs)."""


class _InfoOrAbove(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


_FILTER = _InfoOrAbove()


def cap_client_logs() -> None:
    """Keep the Kafka client loggers at INFO or above (see :data:`CLIENT_LOGGERS`): a filter on
    each of their loggers (levels are reset when the worker configures logging; filters stay).
    Called before the worker starts and again when its services start."""
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in CLIENT_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
