"""custpulse: real-time customer analytics on Kafka, Faust and Redis.

The repository keeps the pipeline's stages in top-level folders that are installed into
this namespace: ``custpulse.schemas`` (records, parsing), ``custpulse.processors`` (pure
domain logic), ``custpulse.state`` (tables, Redis) and ``custpulse.streams`` (Faust app,
agents, CLI).
"""

__version__ = "0.1.0"
