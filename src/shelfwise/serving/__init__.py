"""Serving: the bundle (the one thing serving loads) and request answering."""

from ._bundle import Bundle, current_bundle, write_bundle
from ._recommend import Recommendations

__all__ = ["Bundle", "Recommendations", "current_bundle", "write_bundle"]
