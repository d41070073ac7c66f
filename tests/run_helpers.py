"""Helpers of the tests that interrupt and resume training runs."""

import keras


def decisions(summary):
    """Every epoch's ledger entry without its timings: keep-masks (crc32), samples_read and every counter."""
    return [{k: v for k, v in e.items() if not k.endswith("_s")} for e in summary["epochs"]]


class Killed(Exception):
    pass


class StopAfter(keras.callbacks.Callback):
    """Kills the run (an exception) at the end of ``epoch``, before that epoch's checkpoint."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Killed
