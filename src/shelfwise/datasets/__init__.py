"""Loaders for public dataset formats into the canonical dataset directory."""

from ._loaders import CONVERTERS, ConvertResult, convert, detect_format

__all__ = ["CONVERTERS", "ConvertResult", "convert", "detect_format"]
