"""Reports of finished runs: ``report.md`` with plots and the data-quality audit; run comparisons.

``python -m erts_tf.report RUN_DIR`` writes the report of one run into it;
``python -m erts_tf.report RUN_A RUN_B ... --out=DIR`` writes a side-by-side
comparison. See ``erts_tf.report.report``.
"""

_EXPORTS = ("ReportError", "compare_runs", "comparison_rows", "write_run_report")
__all__ = list(_EXPORTS)


def __getattr__(name):  # lazy: the CLI's flag errors do not import pandas and matplotlib
    if name in _EXPORTS:
        from erts_tf.report import report

        return getattr(report, name)
    raise AttributeError(f"module 'erts_tf.report' has no attribute {name!r}")
