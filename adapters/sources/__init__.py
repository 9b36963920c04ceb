"""One module per kind of agency source, each behind the ``Source`` protocol (``base``)."""
