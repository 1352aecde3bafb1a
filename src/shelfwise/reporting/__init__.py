"""Reports: HTML with inline charts, and plain-text summaries."""

from ._quality import summary_lines, write_quality_report

__all__ = ["summary_lines", "write_quality_report"]
