"""The lazy backend (``--data_backend=lazy``): records read by sample id, at random access, from ArrayRecord.

Storage. A dataset is prepared once, as TFRecord (``pipeline.prepare``, what the
memory backend reads). The lazy backend needs random access, which TFDS offers
for ArrayRecord only (``builder.as_data_source``). ``add_array_record`` writes
an ArrayRecord copy of every shard of the prepared dataset into the same folder
and lists ``array_record`` in ``dataset_info.json`` as an alternative file
format, which is what ``tfds convert_format`` does (its module needs
apache_beam even without Beam, hence this copy of its few steps). Why a
converted copy rather than preparing with ``file_format="array_record"``:

- the serialized examples are byte-for-byte those of the TFRecord shards, so
  both backends read the same records (no second generation, which for a
  PhysioNet dataset would re-read ``--manual_dir``);
- one folder, one ``dataset_info.json``: both backends work on the same
  prepared dataset, and switching backend never prepares it again;
- the cost is the disk space of a second copy, written on the first lazy run.

Reading. ``open_split`` reads every record's scalar features once (the signal
is not decoded) into memory: labels and extras ``(n,)`` are what selection,
class weights and the audit need, and the sample ids give the record position
of each id. The signal stays on disk as a ``LazySignal`` ``(n, time, leads)``:
indexing it reads and z-scores exactly the records indexed (``pipeline.zscore``
per record, the z-score of the memory backend and of the exported model).
A run on windows (``--window_s``) reads raw windows of the kept records instead
(``window_reader``; records may then differ in length).

Decoding. The records are read as serialized bytes and their signal is parsed
in TensorFlow, a batch at a time (``SignalDecoder``: ``tf.io.parse_example``, and
``tf.io.decode_raw`` for a signal stored as bytes), not by TFDS's per-record
NumPy decoding under Python's lock: the values are the same, and only the
read and the z-score (``pipeline.zscore``, the memory backend's) stay in Python.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

ARRAY_RECORD = tfds.core.file_adapters.FileFormat.ARRAY_RECORD
_METADATA_CHUNK = 1024


def has_array_record(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether the prepared dataset of ``builder`` has its ArrayRecord copy (as its format or an alternative one)."""
    return tfds.core.dataset_info.supports_file_format(builder.info.as_proto, ARRAY_RECORD)


def array_record_reader(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetBuilder:
    """A read-only builder of the same prepared dataset that reads its ArrayRecord copy.

    A separate builder: ``as_data_source`` switches its builder's file format, which would break
    ``as_dataset`` on ``builder``; and TFDS 4.9.10 does not restore ``alternative_file_formats``
    from ``dataset_info.json`` into ``info.available_file_formats()``, so the format is set here.
    """
    reader = tfds.builder_from_directory(builder.data_dir)
    reader.info.set_file_format(ARRAY_RECORD, override=True, override_if_initialized=True)
    return reader


def add_array_record(builder: tfds.core.DatasetBuilder) -> None:
    """Writes the ArrayRecord copy of every shard of a prepared dataset beside it (see the module docstring).

    A shard already converted is kept; ``dataset_info.json`` lists the format only once all are written,
    so an interrupted conversion is finished by the next call.
    """
    from tensorflow_datasets.core import dataset_info, file_adapters
    from tensorflow_datasets.core.utils import py_utils

    source = file_adapters.ADAPTER_FOR_FORMAT[builder.info.file_format]
    target = file_adapters.ADAPTER_FOR_FORMAT[ARRAY_RECORD]
    for split in builder.info.splits.values():
        template = split.filename_template
        out_template = template.replace(filetype_suffix=ARRAY_RECORD.file_suffix)
        for shard in range(split.num_shards):
            out_path = out_template.sharded_filepath(shard_index=shard, num_shards=split.num_shards)
            if out_path.exists():
                continue
            records = source.make_tf_data(template.sharded_filepath(shard_index=shard, num_shards=split.num_shards))
            with py_utils.incomplete_file(out_path) as tmp:
                target.write_examples(tmp, ((i, r.numpy()) for i, r in enumerate(records)))
    proto = builder.info.as_proto
    proto.alternative_file_formats.append(ARRAY_RECORD.value)
    dataset_info.write_dataset_info_proto(proto, builder.data_dir)


class SignalDecoder:
    """Serialized records ``(batch,)`` tf.string -> their ``signal`` ``(batch, time, leads)`` float32, in TensorFlow.

    ``feature``: the dataset's ``signal`` feature, a float ``tfds.features.Tensor`` ``(time, leads)`` stored as a
    float list or as raw bytes (``physionet.features.signal_feature``); ``time`` may be None (records of several
    lengths: each is zero-padded to the longest of its batch, what ``windows`` cuts past a record's end).
    ``ValueError`` for any other storage (a compressed encoding), named, when the split is opened.
    """

    def __init__(self, feature):
        info = feature.get_serialized_info()
        encoding = getattr(feature, "_encoding", None)
        self.shape = tuple(feature.shape)
        self.dtype = tf.as_dtype(feature.np_dtype)
        self.stored_as_bytes = info.tf_dtype == tf.string
        if len(self.shape) != 2 or None in self.shape[1:] or not self.dtype.is_floating or (
                self.stored_as_bytes and encoding != tfds.features.Encoding.BYTES):
            raise ValueError(f"--data_backend=lazy reads a float signal (time, leads) stored as a float list or as raw "
                             f"bytes; this dataset stores {feature!r}")
        if self.stored_as_bytes:
            self.spec = tf.io.FixedLenFeature([], tf.string)
        elif self.shape[0] is None:
            self.spec = tf.io.FixedLenSequenceFeature(self.shape[1:], self.dtype, allow_missing=True)
        else:
            self.spec = tf.io.FixedLenFeature(self.shape, self.dtype)

    def __call__(self, serialized: tf.Tensor) -> tf.Tensor:
        values = tf.io.parse_example(serialized, {"signal": self.spec})["signal"]
        if self.stored_as_bytes:
            row_bytes = self.dtype.size * self.shape[1]
            longest = tf.reduce_max(tf.concat([tf.strings.length(values), [row_bytes]], 0))  # >= one row: an empty batch
            values = tf.io.decode_raw(values, self.dtype, fixed_length=longest)
            values = tf.reshape(values, [tf.shape(values)[0], longest // row_bytes, self.shape[1]])
        return tf.cast(values, tf.float32)


class LazySignal:
    """The z-scored signal ``(n, time, leads)`` float32 of a split, read from disk when indexed.

    Index ``i`` is a sample id; ``positions[i]`` is its record in ``source``, a random-access source of serialized
    records (the ArrayRecord files: ``__getitems__(positions) -> list of bytes``), which ``decode`` parses.
    Indexing with an int, a slice, an int array or a bool mask returns a NumPy array and reads exactly those
    records; ``take`` selects samples without reading. There is deliberately no ``__array__``: turning the
    whole split into an array is what this class exists to avoid.
    """

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, source, positions: np.ndarray, record_shape: tuple[int | None, int], decode: SignalDecoder):
        self.source = source
        self.positions = np.asarray(positions, np.int64)
        self.record_shape = tuple(None if d is None else int(d) for d in record_shape)
        self.decode = decode

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.positions), *self.record_shape)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self.read(self.positions[[index]])[0]
        return self.read(self.positions[index])

    def __array__(self, *args, **kwargs):
        raise TypeError("LazySignal: index it (signal[ids]) rather than converting the whole split to an array")

    def take(self, index: np.ndarray, axis: int = 0) -> LazySignal:
        """The samples ``index`` ``(k,)`` (positions, in that order), not read (``np.ndarray.take``)."""
        if axis != 0:
            raise ValueError("LazySignal.take selects samples (axis 0) only")
        return LazySignal(self.source, self.positions[np.asarray(index)], self.record_shape, self.decode)

    def _records(self, positions: np.ndarray) -> np.ndarray:
        """The serialized records at data-source ``positions`` ``(k,)``: ``(k,)`` bytes objects, each read once."""
        return np.array(self.source.__getitems__(positions.tolist()) if len(positions) else [], dtype=object)

    def _serialized(self, ids: tf.Tensor) -> tf.Tensor:
        """The serialized records of sample ids ``ids`` ``(batch,)``: ``(batch,)`` tf.string, each read once."""
        serialized = tf.numpy_function(lambda i: self._records(self.positions[np.asarray(i, np.int64)]), [ids],
                                       tf.string, stateful=False)
        serialized.set_shape([None])
        return serialized

    def window_reader(self, window: int):
        """``(ids (batch,), starts (batch, k)) -> raw windows (batch, k, window, leads)`` float32, a TF op.

        Each record of ``ids`` is read once, NOT z-scored (windows are z-scored one by one), and cut at its
        ``starts``, zero past its end (``windows.slice_windows``'s rule, as ``FlatSignal.window_reader`` cuts)."""
        leads = self.record_shape[-1]

        def gather(ids, starts):
            records = self.decode(self._serialized(ids))  # (batch, longest, leads), zero past each record's end
            records = tf.pad(records, [[0, 0], [0, window], [0, 0]])
            index = tf.cast(starts, tf.int64)[..., None] + tf.range(window, dtype=tf.int64)  # (batch, k, window)
            index = tf.minimum(index, tf.cast(tf.shape(records)[1] - 1, tf.int64))  # the padding's last zero
            signal = tf.gather(records, index, batch_dims=1)
            signal.set_shape([None, None, window, leads])
            return signal

        return gather

    def read(self, positions: np.ndarray) -> np.ndarray:
        """The z-scored records ``(k, time, leads)`` float32 at data-source ``positions`` ``(k,)``."""
        from erts_tf.data import pipeline

        positions = np.asarray(positions, np.int64).reshape(-1)
        if not len(positions):
            return np.zeros((0, *self.record_shape), np.float32)
        return pipeline.zscore(self.decode(tf.constant(self._records(positions))).numpy())

    def gather(self, ids: tf.Tensor) -> tf.Tensor:
        """The records of sample ids ``ids`` ``(batch,)`` int64 as a TF op: ``(batch, time, leads)`` float32."""
        from erts_tf.data import pipeline

        signal = tf.numpy_function(pipeline.zscore, [self.decode(self._serialized(ids))], tf.float32, stateful=False)
        signal.set_shape([None, *self.record_shape])
        return signal


def scalar_columns(builder: tfds.core.DatasetBuilder, split: str, keys: list[str]):
    """The serialized records of ``split`` (random access, ``__getitems__``), the ``SignalDecoder`` of their
    signal, and their features ``keys`` (scalars, each ``(n,)``, record order).

    The signal of each record is skipped, not decoded; the records are still read once.
    """
    reader = array_record_reader(builder)
    source = reader.as_data_source(split).data_source
    decode = SignalDecoder(reader.info.features["signal"])
    metadata = reader.as_data_source(split, decoders={k: tfds.decode.SkipDecoding()
                                                      for k in reader.info.features if k not in keys})
    columns = {k: [] for k in keys}
    for start in range(0, len(metadata), _METADATA_CHUNK):
        for record in metadata.__getitems__(list(range(start, min(start + _METADATA_CHUNK, len(metadata))))):
            for k in keys:
                columns[k].append(record[k])
    return source, decode, {k: np.asarray(v) for k, v in columns.items()}
