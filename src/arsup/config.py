"""arsup.toml -> a typed, validated config; and the layout detection behind `arsup init`.

A research night that dies at 3 a.m. on a typo is the worst outcome, so every
key is checked up front and a bad one ends in one message that names the key
and says how to fix it (`ConfigError`, exit code 2 in the CLI), never a
traceback. Two rules hold for every key:

* A number is a number: TOML's `true` is refused where a number belongs
  (pydantic would read it as 1, and `time_budget = true` would train for 1 s).
* A path is relative to the project folder and stays inside it: arsup edits,
  protects and reads only the project's own files.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_NAME = "arsup.toml"
AGENT_KINDS = ("tuner", "llm", "script:FILE", "claude-code", "codex", "command", "external")
CLI_AGENT_KINDS = ("claude-code", "codex", "command")  # a coding agent CLI run in a scratch copy


class ConfigError(Exception):
    """A config problem the user must fix; its text is shown as is."""


# autoresearch's fast fail (`FAIL`, also glued to the end of a \r progress line)
# and a loss printed as NaN; not `val_bpb: 0.95`, not "nano", not "failed".
DEFAULT_ABORT_ON = r"\bFAIL\b|(?i:loss\s*[:=]?\s*[-+]?nan\b)"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads true as 1; in a config that is a typo, not a number."""
        if isinstance(value, bool) and info.field_name and _is_number(cls.model_fields[info.field_name].annotation):
            raise ValueError("must be a number, not true or false; write the number")
        return value


def _is_number(annotation: Any) -> bool:
    """int, float, or an Optional of them."""
    kinds = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    numbers = [kind for kind in kinds if kind is not type(None)]
    return bool(numbers) and all(kind in (int, float) for kind in numbers)


def _inside(path: str) -> str:
    """A config path must name something in the project: relative, without `..`."""
    if not path:
        raise ValueError("an empty path; name a file relative to the project folder, e.g. 'train.py'")
    if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
        raise ValueError(
            f"{path!r} is outside the project folder; paths are relative to the project folder "
            "and stay inside it, e.g. 'train.py'"
        )
    return path


class ProjectConfig(_Section):
    instructions: str = "program.md"
    editable: list[str] = Field(min_length=1)
    protected: list[str] = []
    run: str = Field(min_length=1)
    time_budget: float = Field(300, gt=0)
    timeout: float = Field(600, gt=0)
    kill_grace: float = Field(5, ge=0)
    seed: int = 0
    pass_env: list[str] = []  # variables (secrets included) the training may see
    env: dict[str, str] = {}  # variables set for every run

    @field_validator("instructions")
    @classmethod
    def _instructions_inside(cls, value: str) -> str:
        return _inside(value)

    @field_validator("editable", "protected")
    @classmethod
    def _files_inside(cls, value: list[str]) -> list[str]:
        return [_inside(entry) for entry in value]

    @model_validator(mode="after")
    def _timeout_covers_budget(self) -> ProjectConfig:
        if self.timeout < self.time_budget:
            raise ValueError(
                f"timeout ({self.timeout:g} s) is shorter than time_budget ({self.time_budget:g} s); "
                "set timeout to at least the budget plus start-up and evaluation time"
            )
        return self


def _one_group(value: str) -> str:
    if not value:
        return value
    compiled = _compile(value)
    if compiled.groups != 1:
        raise ValueError(f"needs exactly one capture group around the number, has {compiled.groups}")
    return value


MetricPattern = Annotated[str, AfterValidator(_one_group)]  # a regex with one group around the number


class MetricConfig(_Section):
    name: str = Field("val_bpb", min_length=1)
    goal: Literal["minimize", "maximize"] = "minimize"
    pattern: MetricPattern = ""  # default: a line "<name>: <number>"
    record: list[str] = ["peak_vram_mb", "training_seconds", "num_steps"]


class HoldoutConfig(_Section):
    """A score the agent never sees: each kept commit measured on data no decision was made on.

    Keeping only what beats the validation set, night after night, fits the
    validation set; the holdout says whether the gains are real. The holdout
    run is the training run with `env` set (the protected evaluation reads it
    and scores another split), or its own `run` command.
    """

    run: str = ""  # the holdout command; "": [project] run
    env: dict[str, str] = {}  # set for holdout runs only, e.g. {EVAL_SPLIT = "holdout"}
    name: str = ""  # the metric line the holdout run prints; "": [metric] name
    pattern: MetricPattern = ""  # as [metric] pattern
    diverge_keeps: int = Field(3, ge=2, le=50)  # warn when over this many keeps val improved and holdout worsened

    @property
    def enabled(self) -> bool:
        return bool(self.run or self.env)

    @property
    def warn_keeps(self) -> int:
        """The keeps a divergence is looked for over; 0 when there is no holdout."""
        return self.diverge_keeps if self.enabled else 0


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None


class KindSettings(_Section):
    """`[agent.<kind>]`: what differs between the agents of one night (`kind` a list)."""

    model: str = ""
    command: str = ""


PER_KIND = "per_kind"
MODEL_TIMEOUT_S = 300.0  # [agent] timeout's default for one LLM call
CLI_TIMEOUT_S = 1800.0  # and for a coding agent's whole proposal


class AgentConfig(_Section):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    # `kind` in arsup.toml: one researcher, or a list of them whose proposals alternate ("a,b" on the command line)
    kinds: list[str] = Field(default_factory=lambda: ["tuner"], alias="kind")
    space: dict[str, list[Union[float, str]]] = {}
    model: str = ""  # litellm model name, e.g. anthropic/claude-sonnet-4-5; ARSUP_MODEL when empty
    api_base: str = ""  # an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(4096, gt=0)
    # wall-clock deadline of one model call (default 300 s), or of a CLI agent's whole call (default 1800 s:
    # a coding agent reads, edits and checks for minutes)
    timeout: Optional[float] = Field(None, gt=0)
    retries: int = Field(6, ge=0)  # transient failures (429, 5xx, timeouts) retried with backoff
    context_tokens: int = Field(0, ge=0)  # 0: litellm's model card, else 32768
    # kind = "command": the command line ({prompt}, {prompt_file}, {files}, {workdir}); claude-code, codex: the CLI
    command: str = ""
    session: Literal["fresh", "resume"] = "fresh"  # resume: each proposal continues the CLI's previous session
    allow_shell: bool = False  # claude-code: a shell too (Bash), not only the file tools
    at_once: int = Field(0, ge=0, le=64)  # proposals a CLI or LLM agent makes at once; 0: one per slot (rate limits: 1)
    max_idle_blocks: int = Field(3, ge=0)  # external: the Stop hook blocks this many stops in a row without a proposal
    per_kind: dict[str, KindSettings] = {}  # [agent.codex] model = "...": one kind's own model or command

    @model_validator(mode="before")
    @classmethod
    def _kind_tables(cls, data: Any) -> Any:
        """`[agent.codex]` is a table under [agent] named like a kind: kept apart from the fields (`command` is
        both a field and a kind; the table is the one that is a table)."""
        if not isinstance(data, dict):
            return data
        tables = {
            key: value for key, value in data.items() if isinstance(value, dict) and key not in ("space", PER_KIND)
        }
        if not tables:
            return data
        rest = {key: value for key, value in data.items() if key not in tables}
        return {**rest, PER_KIND: {**data.get(PER_KIND, {}), **tables}}

    @field_validator("kinds", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",")] if "," in value else [value]
        return value

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        if not kinds:
            raise ValueError(f"names no agent; use one of {', '.join(AGENT_KINDS)}, or a list of them")
        for value in kinds:
            known = value in ("tuner", "llm", "external", *CLI_AGENT_KINDS)
            if not (known or (value.startswith("script:") and len(value) > 7)):
                raise ValueError(f"{value!r}: must be one of {', '.join(AGENT_KINDS)}" if len(kinds) > 1
                                 else f"must be one of {', '.join(AGENT_KINDS)}")
        if "external" in kinds and len(kinds) > 1:
            raise ValueError("external takes no turns with other agents: its proposals come from your own session")
        if len(set(kinds)) < len(kinds):
            raise ValueError(f"{kinds}: an agent is named twice; each kind makes every other proposal once")
        return kinds

    @model_validator(mode="after")
    def _tables_of_kinds(self) -> AgentConfig:
        strays = sorted(set(self.per_kind) - set(self.kinds))
        if strays:
            kinds = ", ".join(self.kinds)
            raise ValueError(f"[agent.{strays[0]}] is set but {strays[0]!r} is not in [agent] kind ({kinds})")
        return self

    @property
    def kind(self) -> str:
        """The first (with one agent, the only) researcher."""
        return self.kinds[0]

    @property
    def script_path(self) -> str:
        return next((kind for kind in self.kinds if kind.startswith("script:")), "").partition(":")[2]

    def timeout_for(self, kind: str) -> float:
        if self.timeout is not None:
            return self.timeout
        return CLI_TIMEOUT_S if kind in CLI_AGENT_KINDS else MODEL_TIMEOUT_S

    def model_for(self, kind: str) -> str:
        settings = self.per_kind.get(kind)
        return settings.model if settings and settings.model else self.model

    def command_for(self, kind: str) -> str:
        """[agent.<kind>] command, else [agent] command where it is this kind's: the one agent's, or kind
        command's among several (claude-code and codex are then found on PATH)."""
        settings = self.per_kind.get(kind)
        if settings and settings.command:
            return settings.command
        return self.command if len(self.kinds) == 1 or kind == "command" else ""

    @property
    def shown_model(self) -> str:
        """The model the screen names: the LLM's or a CLI agent's (its --model), none for the tuner or a script;
        with several agents, theirs in order."""
        models = [self.model_for(kind) for kind in self.kinds if kind in ("llm", *CLI_AGENT_KINDS)]
        return " / ".join(model for model in models if model)


class PolicyConfig(_Section):
    approve: Literal["auto", "edits", "runs", "keeps"] = "auto"


class AcceptanceConfig(_Section):
    mode: Literal["confirm", "greedy"] = "confirm"
    baseline_runs: Optional[int] = Field(None, ge=1, le=50)  # default: max_runs to confirm, 1 for greedy
    confirm_runs: int = Field(3, ge=2, le=50)  # runs in all for a candidate past the screen: the first look
    max_runs: int = Field(5, ge=2, le=50)  # runs in all for a borderline one: the second look (= confirm_runs: none)
    borderline: float = Field(4.0, ge=1)  # a first look with p under this times alpha earns the second look
    threshold_sigma: float = Field(1.0, ge=0)  # the screen: beat the best by at least this many sigma
    alpha: float = Field(0.05, gt=0, lt=1)  # the paired test's significance level
    min_effect: float = Field(0.0, ge=0)  # the smallest mean gain worth keeping

    @property
    def runs_for_baseline(self) -> int:
        if self.baseline_runs is not None:
            return self.baseline_runs
        return self.max_runs if self.mode == "confirm" else 1

    @model_validator(mode="after")
    def _pairable(self) -> AcceptanceConfig:
        if self.max_runs < self.confirm_runs:
            raise ValueError(
                f"max_runs ({self.max_runs}) is under confirm_runs ({self.confirm_runs}): max_runs counts the "
                "runs in all after a borderline first look; set it to confirm_runs for a single look"
            )
        if self.mode == "confirm" and self.confirm_runs > self.runs_for_baseline:
            raise ValueError(
                f"confirm_runs ({self.confirm_runs}) exceeds baseline_runs ({self.runs_for_baseline}): "
                "confirmation runs are paired with the baseline's seeds; raise baseline_runs"
            )
        return self


class BudgetConfig(_Section):
    max_experiments: int = Field(0, ge=0)  # 0 = no limit
    max_hours: float = Field(0, ge=0)
    max_cost_usd: float = Field(0, ge=0)  # the LLM's spend; new proposals stop once reached


class WatchdogConfig(_Section):
    """When a run is ended early, and when the loop stops retrying crashes (0 or "" turns a check off)."""

    stall_s: float = Field(0, ge=0)  # the run's log has not grown for this long
    memory_gb: float = Field(0, ge=0)  # the run's processes together use more RAM than this
    abort_on: str = DEFAULT_ABORT_ON  # a regex; a log line matching it ends the run as a crash
    max_log_mb: float = Field(1024, ge=0)  # the run log on disk is capped here
    crashes_in_a_row: int = Field(3, ge=0)  # then the loop pauses and asks (headless: stops)
    same_idea: int = Field(6, ge=0)  # experiments in a row acting on one place (one constant, the same lines): pause

    @field_validator("abort_on")
    @classmethod
    def _usable_pattern(cls, value: str) -> str:
        if value and _compile(value).search("") is not None:
            raise ValueError("matches an empty line, so every run would end at once; make it match failures only")
        return value


class PruneConfig(_Section):
    """Stop a run early when its loss is far above the best run's at the same point (off by default)."""

    enabled: bool = False
    margin: float = Field(0.1, ge=0)  # prune above the best's loss at that point times (1 + margin)
    earliest: float = Field(0.3, ge=0, le=1)  # never before this fraction of the steps
    warmup: int = Field(3, ge=0)  # trained experiments on the branch before pruning starts
    # A progress line: step, total steps and loss as its three groups (autoresearch's `step 00120/00341 | loss 4.28`).
    pattern: str = r"step\s+(\d+)\s*/\s*(\d+).*?\bloss\b\s*[:=]?\s*([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"

    @field_validator("pattern")
    @classmethod
    def _three_groups(cls, value: str) -> str:
        if _compile(value).groups != 3:
            raise ValueError("needs three capture groups: the step, the total steps and the loss")
        return value


class ExecutorConfig(_Section):
    """Where runs execute: here, or on a Ray cluster (pip install 'arsup[ray]')."""

    kind: Literal["local", "ray"] = "local"
    address: str = "auto"  # the Ray cluster: "auto" (the one this machine joined), "HOST:PORT" or "ray://HOST:PORT"
    gpus: float = Field(1.0, ge=0)  # GPUs each run asks the cluster for
    runs: int = Field(1, ge=1, le=256)  # experiments on the cluster at once (one slot each)

    @field_validator("kind")
    @classmethod
    def _installed(cls, value: str) -> str:
        if value == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError("needs the ray extra, which is not installed: pip install 'arsup[ray]'")
        return value


class SlotsConfig(_Section):
    """How the hardware is kept busy."""

    queue: int = Field(1, ge=0, le=8)  # proposals per slot the agent prepares while runs train (0: only once one ended)
    # One slot per GPU: "auto" (every visible GPU), a list of indexes or UUIDs, or "none" (one slot, CUDA as set).
    gpus: Union[Literal["auto", "none"], list[str]] = "auto"
    cpu: int = Field(0, ge=0, le=64)  # instead: this many slots without a GPU (CUDA_VISIBLE_DEVICES="")


class NotifyConfig(_Section):
    """How a person hears that the loop waits for them or found something (a question, a new best, an error end)."""

    bell: bool = True  # the terminal bell on attached screens
    desktop: bool = True  # a desktop notification (OSC 9 / OSC 777) through attached screens' terminals
    command: str = ""  # run by the loop with the event as JSON on stdin (ntfy, a Slack webhook...); "" = none
    timeout: float = Field(10, gt=0)  # seconds the command may take before it is killed


class ExportConfig(_Section):
    """Where finished experiments go besides the journal, for trackers a team already reads."""

    mlflow: bool = False  # each finished experiment an MLflow run as it ends (pip install 'arsup[mlflow]')
    mlflow_uri: str = ""  # a tracking server or store; "": $MLFLOW_TRACKING_URI, else .arsup/mlflow.db


class SandboxConfig(_Section):
    """Where each run may read and write: a bubblewrap sandbox per run (core/sandbox.py), or none.

    The user's home is read-only inside, so the caches a run writes there are
    writable by default: uv's and Hugging Face's (~/.cache, where autoresearch
    keeps its data too) and Triton's (~/.triton).
    """

    kind: Literal["auto", "bwrap", "none"] = "auto"  # auto: bwrap where it works, else none (said once)
    writable: list[str] = ["~/.cache", "~/.triton"]  # beside the project folder and a private /tmp
    network: bool = True  # false: the run has no network (--unshare-net)

    @field_validator("writable")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not (entry.startswith("~") or PurePosixPath(entry).is_absolute()):
                raise ValueError(
                    f"{entry!r} is relative; the project folder is writable already: name a folder outside it, "
                    "absolute or under ~, e.g. '~/.cache'"
                )
        return value

    @model_validator(mode="after")
    def _usable(self) -> SandboxConfig:
        if self.kind == "bwrap":
            from arsup.core import sandbox  # here: the sandbox module imports this one

            problem = sandbox.problem_with(self.network)
            if problem:
                raise ValueError(
                    f'kind = "bwrap" but {problem}; install bubblewrap (apt install bubblewrap) and allow it, '
                    'or set kind = "auto" to run unsandboxed where it cannot run'
                )
        return self


class UiConfig(_Section):
    theme: str = ""  # a theme in themes/ (dark, light, high-contrast); empty: the default


class Config(_Section):
    project: ProjectConfig
    metric: MetricConfig = MetricConfig()
    holdout: HoldoutConfig = HoldoutConfig()
    agent: AgentConfig = AgentConfig()
    policy: PolicyConfig = PolicyConfig()
    acceptance: AcceptanceConfig = AcceptanceConfig()
    budget: BudgetConfig = BudgetConfig()
    watchdog: WatchdogConfig = WatchdogConfig()
    notify: NotifyConfig = NotifyConfig()
    prune: PruneConfig = PruneConfig()
    slots: SlotsConfig = SlotsConfig()
    executor: ExecutorConfig = ExecutorConfig()
    export: ExportConfig = ExportConfig()
    sandbox: SandboxConfig = SandboxConfig()
    ui: UiConfig = UiConfig()
    keys: dict[str, str] = {}  # screen action id -> key, e.g. approve = "y"


def _describe(error: dict[str, Any], model: type[BaseModel]) -> str:
    """One line for one pydantic error, in the words of the TOML file."""
    loc = [str(part) for part in error["loc"]]
    section = f"[{loc[0]}]" if loc else "(top level)"
    key = ".".join(loc[1:])
    where = f"{section} {key}".strip()
    kind = error["type"]
    if kind == "extra_forbidden":
        owner: type[BaseModel] = model
        for part in loc[:-1]:
            owner = owner.model_fields[part].annotation  # type: ignore[assignment]
        target = f"[{loc[0]}] {loc[-1]}" if len(loc) > 1 else f"[{loc[0]}]"
        return f"{target}: unknown key; remove or rename it (known keys: {', '.join(owner.model_fields)})"
    if kind == "missing":
        return f"{where}: required key is missing; add it"
    message = error["msg"].removeprefix("Value error, ")
    given = error.get("input")
    shown = "" if isinstance(given, (dict, list)) or given is None else f" (got {given!r})"
    return f"{where}: {message}{shown}"


def _check_paths(config: Config, root: Path) -> list[str]:
    """The files the config names must be there, or the loop fails later and worse."""
    problems = []
    if not (root / config.project.instructions).is_file():
        problems.append(
            f"[project] instructions: file {config.project.instructions!r} not found in {root}; "
            "create it or point the key at your research instructions"
        )
    for key in ("editable", "protected"):
        for entry in getattr(config.project, key):
            try:
                found = any(path.is_file() for path in root.glob(entry))
            except (ValueError, IndexError) as exc:  # pathlib's words for a pattern it cannot use
                problems.append(f"[project] {key}: {entry!r} is not a valid path or glob ({exc}); fix it")
                continue
            if not found:
                problems.append(f"[project] {key}: {entry!r} matches no file in {root}; fix the path or remove it")
    for entry in config.project.editable:
        if entry in config.project.protected:
            problems.append(f"[project] editable: {entry!r} is also protected; a file is one or the other")
    if config.agent.script_path and not (root / config.agent.script_path).is_file():
        problems.append(f"[agent] kind: script file {config.agent.script_path!r} not found in {root}")
    return problems


def validate(data: dict[str, Any], root: Path, source: str = CONFIG_NAME) -> Config:
    """Turn raw TOML data into a Config or raise one ConfigError listing every problem."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err, Config) for err in exc.errors()]
        raise ConfigError(f"{source} is not valid:\n  " + "\n  ".join(lines)) from None
    problems = _check_paths(config, root)
    if problems:
        raise ConfigError(f"{source} is not valid:\n  " + "\n  ".join(problems))
    return config


def load_if_present(root: Path) -> Config | None:
    """The project's config, or None where there is no arsup.toml (an imported log needs none); a broken
    one is still a ConfigError."""
    return load(root) if (root / CONFIG_NAME).is_file() else None


def load(root: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    """Read `root/arsup.toml`, apply command-line overrides (section -> key -> value), validate."""
    path = root / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(f"no {CONFIG_NAME} in {root}; run `arsup init` there first")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for section, values in (overrides or {}).items():
        if not isinstance(data.get(section, {}), dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        data.setdefault(section, {}).update(values)
    return validate(data, root, source=str(path))


def detect(root: Path) -> dict[str, dict[str, Any]]:
    """Guess the config of a repo laid out like karpathy/autoresearch."""
    has_uv = (root / "uv.lock").is_file() or (root / "pyproject.toml").is_file()
    protected = ["prepare.py"] if (root / "prepare.py").is_file() else []
    return {
        "project": {
            "instructions": "program.md",
            "editable": ["train.py"],
            "protected": protected,
            "run": "uv run train.py" if has_uv else "{python} train.py",
            "time_budget": 300,
            "timeout": 600,
        },
        "metric": {"name": "val_bpb", "goal": "minimize", "record": ["peak_vram_mb", "training_seconds", "num_steps"]},
        "agent": {"kind": "tuner"},
        "policy": {"approve": "auto"},
        "budget": {"max_experiments": 0, "max_hours": 0},
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(data: dict[str, dict[str, Any]]) -> str:
    """Write a config as TOML, one section after another (arsup.toml is flat enough for this)."""
    out = []
    for section, values in data.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        out.append("")
    return "\n".join(out)
