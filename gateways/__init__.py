"""Channel gateways: one process per provider (``usher gateway NAME``), talking to the core
only through the Python SDK over gRPC. ``gateways.common`` holds what they all share."""
