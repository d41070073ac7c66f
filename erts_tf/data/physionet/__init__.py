"""Shared machinery of the PhysioNet TFDS builders in ``datasets/``, one module per concern.

Used by ``ptbxl``, ``cpsc2018``, ``georgia``, ``mitbih_arrhythmia`` and
``cinc2017`` so that they do not duplicate code:

* :mod:`~erts_tf.data.physionet.manual_download`: finding the manual download
  (folder or archive), extracting it once, checking listed checksums;
* :mod:`~erts_tf.data.physionet.readers`: reading one record (WFDB, MATLAB v4)
  and rejecting bad ones (:class:`~erts_tf.data.physionet.readers.RecordError`);
* :mod:`~erts_tf.data.physionet.features`: the signal feature, the reference's
  crop/pad and its stratified split;
* :mod:`~erts_tf.data.physionet.builder_base`: the builders' base class, which
  skips, counts and reports bad records;
* :mod:`~erts_tf.data.physionet.challenge2020`: the PhysioNet/CinC Challenge
  2020 release's SNOMED-CT labels and the builder ``cpsc2018`` and ``georgia``
  share.

Import the module you need (``from erts_tf.data.physionet import readers``);
this package re-exports nothing.
"""
