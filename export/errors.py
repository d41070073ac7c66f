"""User-facing errors of the export and prediction commands: one line, exit code 2."""


class ExportError(Exception):
    """The run cannot be exported as asked (message is for the user)."""


class PredictError(Exception):
    """A record or the model cannot be used for a prediction (message names the file, lead or rate)."""
