"""What the training signal is: sampling rate, lead names and units, as the dataset's TFDS builder declares them.

For each fact the first place that declares it wins:

1. ``builder.info.metadata``: keys ``sampling_rate``, ``lead_names``, ``units``;
2. the builder config's ``sampling_rate`` (ptbxl's ``100hz``/``500hz``);
3. the builder class's constants ``SAMPLING_RATE``, ``LEADS``, ``UNITS`` (the
   Challenge 2020 builders' 500 Hz and mV);
4. the builder module's constants ``SAMPLING_RATE``, ``LEADS``, ``UNITS``
   (cinc2017's 300 Hz, mitbih_arrhythmia's 360 Hz, ptbxl's lead order, and the
   units of ptbxl, cinc2017, mitbih_arrhythmia and synthetic_ecg).

A fact declared nowhere is ``None``, unknown: it is never inferred from a
description, a shape or another dataset. An export flag (``--sampling_rate``,
``--lead_names``, ``--units``) may fill in an unknown fact; one that
contradicts a declared fact is an error.
"""

from __future__ import annotations

from export.errors import ExportError

from erts_tf.data.registry import DECLARED_FACTS as FACTS
from erts_tf.data.registry import FACT_METADATA_KEYS as _METADATA_KEYS
from erts_tf.data.registry import declared_fact as _declared


def _normalise(fact: str, value):
    if value is None:
        return None
    if fact == "sampling_rate_hz":
        return int(value) if float(value).is_integer() else float(value)
    if fact == "lead_names":
        return [str(name) for name in value]
    return str(value)


def dataset_facts(builder, n_leads: int, overrides: dict | None = None) -> dict:
    """Sampling rate, lead names and units of ``builder``'s signal, and where each comes from.

    Args:
      builder: a TFDS builder of ``datasets/``.
      n_leads: the model's lead count (declared lead names must match it).
      overrides: ``{fact: value}`` from the export flags, for facts the dataset does not declare.

    Returns:
      ``{"sampling_rate_hz", "lead_names", "units", "sources": {fact: where, or None if unknown}}``.

    Raises:
      ExportError: an override contradicts a declared fact, or the lead names do not fit ``n_leads``.
    """
    facts, sources = {}, {}
    for fact in FACTS:
        value, where = _declared(builder, fact)
        value = _normalise(fact, value)
        given = _normalise(fact, (overrides or {}).get(fact))
        if given is not None and value is not None and given != value:
            raise ExportError(f"--{_METADATA_KEYS[fact]}={given} contradicts {where}, which declares {value}")
        if given is not None and value is None:
            value, where = given, f"export flag --{_METADATA_KEYS[fact]}"
        facts[fact], sources[fact] = value, where
    if facts["lead_names"] is not None and len(facts["lead_names"]) != n_leads:
        raise ExportError(f"{sources['lead_names']} names {len(facts['lead_names'])} leads "
                          f"({', '.join(facts['lead_names'])}); the model takes {n_leads}")
    if facts["sampling_rate_hz"] is not None and not facts["sampling_rate_hz"] > 0:
        raise ExportError(f"{sources['sampling_rate_hz']}: sampling rate {facts['sampling_rate_hz']} is not positive")
    return {**facts, "sources": sources}
