"""Limits on every ``usher.v1`` request field, declared once (``limits``) and enforced at the
edge (``edge.Limits``, a server interceptor) by walking each request's descriptor (``walk``)."""

from core.api.validation.edge import Limits
from core.api.validation.limits import LIMITS, Limit
from core.api.validation.walk import Violation, violations

__all__ = ["LIMITS", "Limit", "Limits", "Violation", "violations"]
