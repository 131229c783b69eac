"""Any CLI agent as a command line: `[agent] command = "aider --yes --message-file {prompt_file} {files}"`.

The placeholders are filled in shell-quoted, so a prompt or a path with
spaces or quotes stays one argument: ``{prompt}`` (the prompt's text),
``{prompt_file}`` (a file holding it), ``{files}`` (the editable files,
relative to the working directory) and ``{workdir}`` (the scratch copy,
which is also the working directory). Its output is plain text: every line
is shown, and the hypothesis is the last ``HYPOTHESIS:`` line. A command
reports no cost; it has no session, so a correction is a fresh call told why.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from arsup.core.agents.cli_agent import Invocation, Stream, quoted

_PLACEHOLDER = re.compile(r"\{(?:prompt|prompt_file|files|workdir)\}")


def program_of(template: str) -> str:
    """The executable a command line starts (its first word), '' when there is none."""
    try:
        words = shlex.split(template)
    except ValueError:
        return ""
    return words[0] if words else ""


@dataclass
class CommandDialect:
    template: str
    name: str = "command"
    install: str = "install it, or fix the command line in [agent] command"
    login: str = "log the command's CLI in, or set its API key in the environment"
    resumes: bool = False

    @property
    def program(self) -> str:
        return program_of(self.template)

    def fence(self, call: Invocation) -> tuple[str, ...]:
        return ()

    def command(self, call: Invocation) -> str:
        values = {
            "{prompt}": shlex.quote(call.prompt),
            "{prompt_file}": shlex.quote(str(call.prompt_file)),
            "{files}": quoted(call.files),
            "{workdir}": shlex.quote(str(call.workdir)),
        }
        return _PLACEHOLDER.sub(lambda match: values[match[0]], self.template)  # one pass: no prompt is re-read

    def read(self, line: str, stream: Stream) -> None:
        stream.unpriced = "a command agent reports no cost"
        stream.plain(line)
        stream.messages.append(line)
