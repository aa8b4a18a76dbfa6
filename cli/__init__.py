"""The ``ferv`` command line."""
