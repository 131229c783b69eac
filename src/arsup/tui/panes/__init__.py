"""The panes of the main screen, one module each; they draw what the app hands them and own no state of the loop."""
