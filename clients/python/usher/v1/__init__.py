"""Generated from protos/usher/v1 by scripts/gen_protos.py. Do not edit."""
