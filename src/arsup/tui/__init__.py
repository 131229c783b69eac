"""The supervisor's screen: a Textual app over the engine.

Nothing here is imported by `arsup --help` or by the core; `arsup.tui.launch`
is the entry point the CLI imports when a screen is wanted.
"""
