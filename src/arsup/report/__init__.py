"""What arsup tells a person after the fact: the checks' lines, the night's chart, Markdown and JSON.

Consumers of the core like the screen; matplotlib is imported only here and
only when a chart is drawn.
"""
