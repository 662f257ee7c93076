"""Usher's Python SDK: ``usher.v1`` holds the generated gRPC stubs, ``usher.client`` the thin
async clients built on them."""
