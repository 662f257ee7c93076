"""Reports: rollups kept as events are stored, and the figures read from them."""
