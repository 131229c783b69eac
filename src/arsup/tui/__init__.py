"""The supervisor's screen: a Textual app over a research loop's events and controls.

Nothing here is imported by `arsup --help` or by the core; `arsup.tui.launch`
is the entry point the CLI imports when a screen is wanted.
"""
