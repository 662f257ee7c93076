"""Bots: automatic responders that answer before a human.

``flow`` (the model), ``validate`` (what may be stored or served), ``interpreter`` (the pure
flow interpreter the shard runs), ``triggers`` (which bot an arrival starts), ``fields`` (customer
answers as typed values), ``webhook`` (a webhook step's signed request and its answer) and
``codec`` (protos, values and JSON). No I/O anywhere here; ``core.store.bots`` keeps the bots.
"""
