"""An exponential moving average of the backbone's weights (``--ema_momentum``).

The optimizer keeps the average (Keras's ``use_ema``: after every step,
``average = m * average + (1 - m) * weights``). ``SwapAveragedWeights`` puts it
into the backbone for everything that reads the model: validation, and every
``on_epoch_end`` consumer (best weights, the checkpoint, per-epoch evaluations,
the saved model); training steps update the raw weights.
"""

from __future__ import annotations

import keras


class AdamW(keras.optimizers.AdamW):
    """Keras's AdamW, except that the end of a ``fit`` call leaves the weights alone.

    ``ERTSModel.fit`` makes one Keras ``fit`` call per epoch, and Keras copies the
    average into the model at the end of each (``finalize_variable_values``),
    which would restart the average every epoch. ``SwapAveragedWeights`` places it
    instead. Without ``use_ema`` this is Keras's AdamW.
    """

    def finalize_variable_values(self, var_list):
        pass


class SwapAveragedWeights(keras.callbacks.SwapEMAWeights):
    """The backbone holds the averaged weights during validation and from the end of an epoch to the
    start of the next; the raw ones while it trains. Put it first among the callbacks, so that every
    other one's ``on_epoch_end`` sees the averaged weights.

    A checkpoint written at the end of an epoch therefore holds the averaged weights in the backbone
    and the raw ones in the optimizer's average slots: ``resumed=True`` says so, and the first epoch
    of a resumed run swaps them back as an uninterrupted run would.
    """

    def __init__(self, resumed: bool = False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = resumed

    def _tf_swap_variables(self, optimizer):
        """An exact swap by copies (Keras's TensorFlow swap adds and subtracts the two, which rounds the
        raw weights by an ulp at every swap and so changes training)."""
        self._backend_swap_variables(optimizer)
