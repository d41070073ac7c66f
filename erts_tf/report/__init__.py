"""Reports of finished runs: ``report.md`` with plots and the data-quality audit; run comparisons.

``python -m erts_tf.report RUN_DIR`` writes the report of one run into it;
``python -m erts_tf.report RUN_A RUN_B ... --out=DIR`` writes a side-by-side
comparison. See ``erts_tf.report.report``.
"""

from erts_tf.report.report import ReportError, compare_runs, comparison_rows, write_run_report

__all__ = ["ReportError", "compare_runs", "comparison_rows", "write_run_report"]
