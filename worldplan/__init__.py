"""The ``worldplan`` command line: one entry point composing each package's commands."""
