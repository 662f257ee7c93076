"""The parts of ``Router`` by concern: one mixin of command handlers and event appliers each."""
