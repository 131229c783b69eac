"""The offline default agent: tunes the training script's UPPER_CASE constants with compass steps, then TPE.

It needs no network and no API key, so `arsup run` works out of the box and a
night of tuning is a fair baseline for smarter agents. Each proposal changes
one constant, so the hypothesis reads like a researcher's ("LR 0.0005 ->
0.0021") and a keep is credited to exactly one change.

Each constant is searched in a window around its current value, which
re-centres on every keep. The first picks from a value are fixed big moves
(the window's edges, then half-way; see `_compass`), the way that last paid
off first; TPE picks only once those are spent. A string constant is tuned
among a family of interchangeable choices, narrowed to those a comment beside
it names (`# one of "gelu", "relu"`): the code's own list of what it accepts. `sampler="random"` draws every
pick uniformly from the same windows instead: bench/bench_search.py measures
the one against the other.

The search state is an optuna study driven by ask/tell. Everything optuna needs
to replay a trial (the sampled value, its distribution) travels in
``Proposal.meta`` and comes back as ``Experiment.agent_data``, so an agent
created on a resumed run rebuilds the study from the journal's history and
continues the search where the night left off.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from arsup.core import acceptance
from arsup.core.agents.base import AgentContext, Proposal
from arsup.core.changes import CONSTANT_NAME
from arsup.core.experiment import Experiment, Status

if TYPE_CHECKING:
    from optuna import Study
    from optuna.distributions import BaseDistribution
    from optuna.samplers import BaseSampler
    from optuna.trial import Trial

_Number = int | float
_Value = int | float | str  # what a tunable constant holds

_QUOTED = re.compile(r""""([^"\\]*)"|'([^'\\]*)'""")

# Default search window: a factor of 4 either side of the current value (16x in
# all). Wide enough to find a badly set learning rate within two or three keeps,
# since the window re-centres on the kept value; narrow enough that most picks
# still train.
_FACTOR = 4.0
# Floats this close to 1 (Adam betas, momentum, EMA decay) are searched as 1 - x:
# 0.95 vs 0.99 is a 5x change in the quantity that matters, and a window of
# 0.95/4 .. 0.95*4 would be mostly nonsense.
_NEAR_ONE = 0.9
# Power-of-two ints (batch sizes, widths, head dims) stay powers of two:
# 2**(k-2) .. 2**(k+2). An odd batch size rarely helps and often breaks asserts.
_POW2_STEPS = 2

# Strings are tuned only within a family of well-known interchangeable choices;
# an arbitrary string ("cuda", a data path) is not a hyperparameter.
_FAMILIES: tuple[tuple[str, ...], ...] = (
    ("relu", "gelu", "silu", "tanh"),  # activations
    ("adam", "adamw", "sgd"),  # optimizers
    ("cosine", "linear", "constant"),  # learning-rate schedules
    ("layernorm", "rmsnorm"),  # normalisation layers
)

# Words that mark a constant as plumbing, data or measurement rather than a
# hyperparameter: tuning a seed fits noise, a vocabulary size must match the
# tokenizer, tuning EVAL_* or a time budget games the metric. The data words
# name what the data fixes (N_FEATURES, NUM_CLASSES must match it; a path or a
# split is where it lies and how much of it there is) and the hardware's
# figures (autoresearch's H100_BF16_PEAK_FLOPS); none is a training choice.
# [agent.space] can still opt such a constant in.
_NOT_HYPERPARAMETERS = frozenset(
    {"SEED", "VOCAB", "EVAL", "LOG", "PRINT", "VERBOSE", "WORKERS"}
    | {"BUDGET", "TIME", "TIMEOUT", "PORT", "SAVE", "CHECKPOINT"}
    | {"DATA", "DATASET", "CORPUS", "TOKENIZER", "FEATURES", "CLASSES", "LABELS", "SAMPLES", "EXAMPLES"}
    | {"VAL", "TEST", "HOLDOUT", "SHARD", "SHARDS", "PATH", "DIR", "FILE", "FILENAME", "URL", "FLOPS"}
)
# Whole names of data sizes whose words alone would say too much (TRAIN_STEPS is a training choice).
_DATA_NAMES = re.compile(r"(?:N|NUM)_(?:TRAIN|INPUTS?|OUTPUTS?)|TRAIN_(?:SIZE|FRAC|FRACTION|SPLIT)|(?:IN|OUT)PUT_DIM")
# A comment on the constant's line that says it is not to be tuned: one that opens with the word
# (`# data`, `# fixed: set by prepare.py`, `# dataset (MNIST)`, `# fixed by the loader`, not `# data augmentation`)
# or that says so anywhere (`# do not tune`).
_FROZEN_COMMENT = re.compile(
    r"^#\s*(?:data|dataset|fixed|frozen)(?:\s*$|\s*[:;,.(\u2013\u2014]|\s+-|\s+by\b)"
    r"|\b(?:do\s+not|don'?t|never)\s+tune\b|\bnot\s+(?:tunable|a\s+hyperparameter)\b",
    re.IGNORECASE,
)

_STARTUP_TRIALS = 5  # random picks before TPE models; a night holds ~100 experiments over several constants
_ATTEMPTS = 5  # asks per constant before it counts as exhausted on this kept line
_MAX_STREAK = 3  # proposals in a row on one constant, even while it keeps improving


@dataclass(frozen=True)
class _Constant:
    """A module-level ``NAME = literal`` in an editable file, with where its value sits."""

    name: str
    path: str
    value: _Value
    source: str  # the literal as written, e.g. "5e-4"
    start: int  # character offsets of the literal in the file's text
    end: int
    named: tuple[str, ...] = ()  # the strings quoted in a comment after it: `# one of "gelu", "relu"`
    frozen: bool = False  # its comment says it is data or fixed: `# data`, `# fixed`, `# do not tune`


@dataclass(frozen=True)
class _Knob:
    """How one constant is searched: the optuna parameter and how a sample becomes a value.

    ``key`` names the optuna parameter. It differs from the constant's name when
    the sample is not the value itself (``1-BETA2``, ``log2(BATCH_SIZE)``), so
    TPE never mixes observations made in different coordinates.
    """

    constant: _Constant
    key: str
    distribution: BaseDistribution
    transform: Literal["identity", "one_minus", "pow2"] = "identity"  # one_minus: 1 - sample; pow2: 2**sample

    def value(self, sample: Any) -> _Value:
        """The literal to write for an optuna sample, rounded to what a person would write."""
        if self.transform == "pow2":
            return 2 ** int(sample)
        if self.transform == "one_minus":
            complement = _round_sig(float(sample))
            return round(1.0 - complement, _decimals(complement))
        if isinstance(sample, float):
            return _round_sig(sample)
        return sample


@dataclass(frozen=True)
class _Record:
    """The tuner's part of an experiment (``agent_data``): what changed and how to replay it in optuna."""

    param: str
    path: str
    old: _Value
    value: _Value
    key: str
    sample: Any
    distribution: dict[str, Any]
    trial: int  # the live trial's number; only meaningful to the agent instance that asked
    base: str  # fingerprint of the files the edit was made on, i.e. of the kept line at the time

    def to_meta(self) -> dict[str, Any]:
        return {
            "param": self.param,
            "path": self.path,
            "from": self.old,
            "value": self.value,
            "key": self.key,
            "sample": self.sample,
            "distribution": self.distribution,
            "trial": self.trial,
            "base": self.base,
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> _Record | None:
        """The record in an experiment's agent_data, or None when it is not a tuner trial."""
        try:
            record = cls(
                param=meta["param"],
                path=meta["path"],
                old=meta["from"],
                value=meta["value"],
                key=meta["key"],
                sample=meta["sample"],
                distribution=meta["distribution"],
                trial=meta["trial"],
                base=meta["base"],
            )
        except (KeyError, TypeError):
            return None
        well_formed = isinstance(record.param, str) and isinstance(record.key, str)
        return record if well_formed and isinstance(record.distribution, dict) else None


class TunerAgent:
    """Proposes one-constant changes: compass steps, then optuna's TPE sampler; see the module docstring."""

    name = "tuner"

    def __init__(
        self, space: Mapping[str, list] | None = None, seed: int = 0, sampler: Literal["tpe", "random"] = "tpe"
    ) -> None:
        """``space`` is arsup.toml's ``[agent.space]``: ``NAME = [low, high]``, ``["a", "b"]`` or ``[]``.

        Its shape is checked here so a typo fails before the night starts; whether
        each name is a constant of the editable files is checked on the first
        propose, when the files are known. ``sampler="random"`` draws every value
        uniformly from the same windows (same constants, same rotation, same
        re-centring): the baseline that bench/bench_search.py measures TPE against.
        """
        if sampler not in ("tpe", "random"):
            raise ValueError(f'sampler: expected "tpe" or "random", got {sampler!r}')
        self._seed = seed
        self._sampler = sampler
        self._excluded: set[str] = set()
        self._choices: dict[str, tuple[str, ...]] = {}
        self._ranges: dict[str, tuple[_Number, _Number]] = {}
        for name, entry in (space or {}).items():
            self._add_space_entry(name, entry)
        self._study: Study | None = None
        self._pending: dict[int, Trial] = {}  # asked trials by number, until their experiment is observed
        self._ingested: set[str] = set()  # ids of experiments already told to the study

    @property
    def study(self) -> Study | None:
        """The optuna study behind the proposals (None before the first propose); for inspection."""
        return self._study

    def propose(self, context: AgentContext) -> Proposal | None:
        """Change one constant to its next compass step or TPE's pick; None when no constant has a new value."""
        import optuna

        knobs = self._knobs(context.files)
        study = self._ensure_study(context.goal)
        for experiment in context.history:
            self._ingest(study, experiment)
        # Seeding from the history makes the pick a function of (seed, history):
        # a restarted run proposes exactly what the uninterrupted one would have.
        seed = (self._seed * 1_000_003 + len(context.history)) % 2**32
        explore = optuna.samplers.RandomSampler(seed=seed)
        tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=_STARTUP_TRIALS)
        samplers = (tpe if self._sampler == "tpe" else explore, explore)
        records = [r for r in (_Record.from_meta(e.agent_data) for e in context.history) if r is not None]
        in_flight = [r for r in (_Record.from_meta(e.agent_data) for e in context.in_flight) if r is not None]
        base = _fingerprint(context.files)
        # An earlier night's value counts as tried where it was tried on this same code (a new tag started on
        # that night's line, or on the commit it started from): what it learnt there still holds.
        earlier = [r for r in (_Record.from_meta(e.agent_data) for e in context.earlier) if r is not None]
        tried = {(r.param, r.value) for r in records + in_flight + earlier if r.base == base}
        # With TPE, a constant whose first step from its value was clearly worse goes first: the metric is
        # sensitive to it, so the step the other way is the most promising one. A constant with a step in
        # flight (proposals made ahead) goes last: the next step on it depends on that result, and a keep
        # would leave the step's edit nothing to apply to.
        sensitive = None
        if self._sampler == "tpe":
            sensitive = _clearly_worse_first_step(context.history, context.goal, context.metric)
        busy = {r.param for r in in_flight}
        order = _rotation(knobs, context.history)
        order.sort(key=lambda knob: (knob.constant.name in busy, knob.constant.name != sensitive))
        if self._sampler == "tpe":
            # A compass step on any constant that has one left comes first: a constant whose steps are
            # spent (none paid off) gets TPE's picks only once every other constant's steps are spent too.
            for knob in order:
                steps = _compass(knob, context.history, seed)
                if steps and (proposal := self._try_knob(study, samplers, knob, context, base, tried, steps)):
                    return proposal
        for knob in order:
            proposal = self._try_knob(study, samplers, knob, context, base, tried)
            if proposal is not None:
                return proposal
        return None

    def observe(self, experiment: Experiment) -> None:
        """Tell the study how the trial behind this experiment went."""
        if self._study is not None:
            self._ingest(self._study, experiment)

    # -- search space -------------------------------------------------------

    def _add_space_entry(self, name: str, entry: Any) -> None:
        where = f"[agent.space] {name}"
        if not isinstance(entry, (list, tuple)):
            raise ValueError(f'{where}: expected [low, high], ["a", "b", ...] or [] to exclude it, got {entry!r}')
        if not entry:
            self._excluded.add(name)
        elif _is_pattern(name):
            raise ValueError(f"{where}: a name pattern can only exclude (give []); a range or choices need one name")
        elif all(isinstance(item, str) for item in entry):
            if len(entry) < 2 or len(set(entry)) != len(entry):
                raise ValueError(f"{where}: choices must be at least two different strings, got {list(entry)!r}")
            self._choices[name] = tuple(entry)
        elif all(_is_number(item) for item in entry):
            if len(entry) != 2:
                raise ValueError(f"{where}: a number range is [low, high], got {list(entry)!r}")
            low, high = entry
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"{where}: bounds must be finite numbers, got [{low!r}, {high!r}]")
            if not low < high:
                raise ValueError(f"{where}: low must be below high, got [{low!r}, {high!r}]")
            self._ranges[name] = (low, high)
        else:
            raise ValueError(f'{where}: expected numbers [low, high] or strings ["a", "b", ...], got {list(entry)!r}')

    def _knobs(self, files: Mapping[str, str]) -> list[_Knob]:
        """The searchable constants in file order; raises ValueError for a space entry that fits no constant."""
        constants = {c.name: c for c in _find_constants(files)}
        excluded: set[str] = set()
        for name in sorted(self._excluded | set(self._choices) | set(self._ranges)):
            pattern = _is_pattern(name)
            if pattern:
                matched = [c for c in constants if fnmatch.fnmatchcase(c, name)]
            else:
                matched = [name] if name in constants else []
            if not matched:
                found = ", ".join(constants) or "none"
                wanted = f"constant matching `{name}`" if pattern else f"`{name} = <number or string>`"
                raise ValueError(
                    f"[agent.space] {name}: no top-level {wanted} in the editable files "
                    f"({', '.join(files) or 'none'}); constants found: {found}"
                )
            if name in self._excluded:
                excluded.update(matched)
        knobs = []
        for constant in constants.values():
            # A name's own range or choices win over a pattern that excludes it ("N_*" = [] with N_LAYER = [1, 8]).
            if constant.name not in excluded or constant.name in self._choices or constant.name in self._ranges:
                knob = self._knob(constant)
                if knob is not None:
                    knobs.append(knob)
        return knobs

    def _knob(self, constant: _Constant) -> _Knob | None:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        name, value = constant.name, constant.value
        where = f"[agent.space] {name}"
        if name in self._choices:
            if not isinstance(value, str):
                raise ValueError(f"{where}: choices are strings but {name} is {value!r} in {constant.path}")
            return _Knob(constant, name, CategoricalDistribution(self._choices[name]))
        if name in self._ranges:
            if isinstance(value, str):
                raise ValueError(f"{where}: a number range, but {name} is {value!r} in {constant.path}")
            low, high = self._ranges[name]
            if isinstance(value, int):  # the file's type decides: an int constant stays an int
                if low != int(low) or high != int(high):
                    raise ValueError(f"{where}: {name} is an int in {constant.path}; give whole-number bounds")
                return _Knob(constant, name, IntDistribution(int(low), int(high), log=low > 0))
            return _Knob(constant, name, FloatDistribution(float(low), float(high), log=low > 0))
        if constant.frozen or _NOT_HYPERPARAMETERS & set(name.split("_")) or _DATA_NAMES.fullmatch(name):
            return None
        if isinstance(value, str):
            family = next((f for f in _FAMILIES if value in f), None)
            if family is None:
                return None
            # The code's own list of what it accepts narrows the family: a value it lacks would only crash.
            listed = tuple(choice for choice in family if choice == value or choice in constant.named)
            return _Knob(constant, name, CategoricalDistribution(listed if len(listed) > 1 else family))
        if value <= 0:  # no scale to search around; a range in [agent.space] can still tune it
            return None
        if isinstance(value, int):
            exponent = value.bit_length() - 1
            if value >= 2 and value == 2**exponent:
                low = max(0, exponent - _POW2_STEPS)
                return _Knob(constant, f"log2({name})", IntDistribution(low, exponent + _POW2_STEPS), "pow2")
            low = max(1, round(value / _FACTOR))
            return _Knob(constant, name, IntDistribution(low, int(value * _FACTOR), log=True))
        if _NEAR_ONE <= value < 1:
            complement = 1.0 - value
            distribution = FloatDistribution(complement / _FACTOR, complement * _FACTOR, log=True)
            return _Knob(constant, f"1-{name}", distribution, "one_minus")
        high = value * _FACTOR if value >= 1 else min(value * _FACTOR, (1.0 + value) / 2)  # a fraction stays below 1
        return _Knob(constant, name, FloatDistribution(value / _FACTOR, high, log=True))

    # -- optuna -------------------------------------------------------------

    def _ensure_study(self, goal: str) -> Study:
        import optuna

        if self._study is None:
            optuna.logging.set_verbosity(optuna.logging.ERROR)  # its per-trial INFO lines would flood the TUI
            direction = "maximize" if goal == "maximize" else "minimize"
            # No sampler here: propose sets a history-seeded one before every ask.
            self._study = optuna.create_study(direction=direction)
        return self._study

    def _try_knob(
        self,
        study: Study,
        samplers: tuple[BaseSampler, BaseSampler],
        knob: _Knob,
        context: AgentContext,
        base: str,
        tried: set[tuple[str, _Value]],
        steps: Sequence[tuple[Any, str]] = (),  # (sample, why) in order
    ) -> Proposal | None:
        """Pick a value of this knob that is new on this kept line, and write it as an edit.

        With ``steps`` (see `_compass`): the first one that is new here, as a
        fixed trial, or None. Without: TPE asks. When its pick was already tried (TPE's argmax barely moves
        in a small discrete space), or the engine would refuse it (the same
        setting was tried on an earlier line), the retries draw at random: a
        fresh value still teaches something, a repeat teaches nothing.
        """
        from optuna.distributions import distribution_to_json
        from optuna.trial import TrialState

        tpe, explore = samplers
        constant = knob.constant
        text = context.files[constant.path]

        def edit(value: _Value) -> tuple[str, dict[str, str]] | None:
            """The literal and the edited files, or None when this value is not worth a run."""
            literal = _render(value, constant.source)
            edited = {constant.path: text[: constant.start] + literal + text[constant.end :]}
            if (
                value == constant.value
                or (constant.name, value) in tried
                or context.check(Proposal(hypothesis="", files=edited))
            ):
                return None
            return literal, edited

        step = next(((sample, why) for sample, why in steps if edit(knob.value(sample)) is not None), None)
        if steps and step is None:
            return None  # compass steps asked for, and none is new here
        for attempt in range(_ATTEMPTS):
            if attempt == 0 and step is not None:
                study.enqueue_trial({knob.key: step[0]}, skip_if_exists=False)  # the next ask takes this value
            study.sampler = tpe if attempt == 0 else explore
            trial = study.ask({knob.key: knob.distribution})
            sample = trial.params[knob.key]
            value = knob.value(sample)
            made = edit(value)
            if made is None:
                study.tell(trial, state=TrialState.FAIL)  # never trained; TPE ignores failed trials
                continue
            literal, edited = made
            self._pending[trial.number] = trial
            record = _Record(
                param=constant.name,
                path=constant.path,
                old=constant.value,
                value=value,
                key=knob.key,
                sample=sample,
                distribution=json.loads(distribution_to_json(knob.distribution)),
                trial=trial.number,
                base=base,
            )
            completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            if attempt == 0 and step is not None:
                why = step[1]
            elif self._sampler == "random":
                why = "random pick"
            elif attempt > 0:
                why = "random pick (TPE's pick was already tried)"
            elif completed < _STARTUP_TRIALS:
                why = f"random pick while TPE warms up ({completed} of {_STARTUP_TRIALS} trials)"
            else:
                why = f"TPE's pick after {completed} trials"
            return Proposal(
                hypothesis=f"{constant.name} {constant.source} -> {literal}: {why}",
                files=edited,
                meta=record.to_meta(),
            )
        return None

    def _ingest(self, study: Study, experiment: Experiment) -> None:
        """Turn a finished experiment into a finished trial, once.

        The live trial is told when this agent asked it; otherwise (a resumed run)
        the trial is replayed from the experiment's record.
        """
        import optuna
        from optuna.distributions import json_to_distribution
        from optuna.trial import TrialState

        if experiment.id in self._ingested:
            return
        self._ingested.add(experiment.id)
        record = _Record.from_meta(experiment.agent_data)
        if record is None:  # the baseline, or another agent's experiment
            return
        metric = experiment.metric
        trained = experiment.status in (Status.KEEP, Status.DISCARD) and metric is not None and math.isfinite(metric)
        trial = self._pending.get(record.trial) if isinstance(record.trial, int) else None
        if trial is not None and trial.params == {record.key: record.sample}:
            del self._pending[record.trial]
            if trained:
                study.tell(trial, metric)
            else:
                study.tell(trial, state=TrialState.FAIL)
            return
        distribution = json_to_distribution(json.dumps(record.distribution))
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE if trained else TrialState.FAIL,
                value=metric if trained else None,
                params={record.key: record.sample},
                distributions={record.key: distribution},
            )
        )


def _rotation(knobs: list[_Knob], history: Sequence[Experiment]) -> list[_Knob]:
    """The knobs in the order to try them: round-robin in file order, staying on a constant that was just kept.

    A keep means the metric is sensitive to that constant and its best value may
    lie further the same way (the window re-centres on the kept value), so it
    gets another turn, up to _MAX_STREAK in a row so the others are not starved.
    Derived from the history alone, so it survives a restart.
    """
    ours = [(e, r) for e in history if (r := _Record.from_meta(e.agent_data)) is not None]
    names = [k.constant.name for k in knobs]
    if not ours or ours[-1][1].param not in names:
        return knobs
    last_experiment, last = ours[-1]
    streak = 0
    for _, record in reversed(ours):
        if record.param != last.param:
            break
        streak += 1
    start = names.index(last.param)
    if not (last_experiment.status == Status.KEEP and streak < _MAX_STREAK):
        start += 1
    start %= len(knobs)
    return knobs[start:] + knobs[:start]


_COMPASS = ((1.0, "to the window's edge"), (0.5, "half-way to the window's edge"))  # fractions of the way


def _compass(knob: _Knob, history: Sequence[Experiment], seed: int) -> list[tuple[Any, str]]:
    """Fixed samples to try from the constant's current value before TPE: big moves first.

    Numbers: the window's edge each way (x4 and /4 for a default window), then
    half-way to each edge (x2, /2), in the window's own scale (log for most).
    The way that last paid off for this constant comes first (after a keep the
    window re-centres on the kept value, so the next step goes further the same
    way); before any keep, a seeded coin decides. Choices: those not yet tried,
    in a seeded order. Values this constant had or was tried at are skipped,
    whatever else changed since: a repeat rarely teaches anything. So is a
    step back past the value the keep to the current one came from (see
    `_past`): a bounded window's far edge lies there.

    Why not TPE from the start: a night gives each constant a handful of trials,
    one at a time from a moving centre, under noise. With so few points TPE
    exploits the best draws so far, often lucky ones near the centre, and small
    moves rarely show a gain above the noise; on the sample projects it lost to
    uniform picks over the same windows (bench/bench_search.py).
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    constant = knob.constant
    seen = {constant.value}
    way = 0.0
    came_from: _Value | None = None  # the value the kept move to the current one left
    for experiment in history:
        record = _Record.from_meta(experiment.agent_data)
        if record is None or record.param != constant.name:
            continue
        seen.update((record.old, record.value))
        if experiment.status == Status.KEEP and _is_number(record.value) and _is_number(record.old):
            way = 1.0 if record.value > record.old else -1.0
            came_from = record.old if record.value == constant.value else None
    coin = hashlib.sha256(f"{seed}:{constant.name}:{len(history)}".encode()).digest()
    distribution = knob.distribution
    if isinstance(distribution, CategoricalDistribution):
        fresh = [choice for choice in distribution.choices if choice not in seen]
        fresh.sort(key=lambda choice: hashlib.sha256(coin + str(choice).encode()).digest())
        return [(choice, "a choice not tried yet, before TPE") for choice in fresh]
    log = bool(getattr(distribution, "log", False))
    integer = not isinstance(distribution, FloatDistribution)
    current = _sample_of(knob, constant.value)
    if current is None or (log and current <= 0):
        return []

    def coordinate(sample: float) -> float:
        return math.log(sample) if log else float(sample)

    centre = coordinate(current)
    edges = {1.0: coordinate(distribution.high), -1.0: coordinate(distribution.low)}
    if knob.transform == "one_minus":
        way = -way  # the sample is 1 - value
    if not way:
        way = 1.0 if coin[0] % 2 else -1.0
    steps: list[tuple[Any, str]] = []
    for fraction, how in _COMPASS:
        for direction in (way, -way):
            t = centre + fraction * (edges[direction] - centre)
            x = math.exp(t) if log else t
            x = min(max(x, distribution.low), distribution.high)  # exp(log(x)) may miss the bound by an ulp
            sample = int(round(x)) if integer else x
            value = knob.value(sample)
            if _past(value, came_from, constant.value):
                continue
            if value not in seen and all(value != knob.value(other) for other, _ in steps):
                up = (direction > 0) != (knob.transform == "one_minus")
                steps.append((sample, f"{'up' if up else 'down'} {how}, before TPE"))
    return steps


def _past(value: _Value, came_from: _Value | None, current: _Value) -> bool:
    """True when ``value`` lies at or beyond ``came_from``, seen from ``current``.

    The keep from ``came_from`` to ``current`` says the metric is worse there;
    for a metric with one optimum along this constant, so is everything beyond.
    """
    if not (_is_number(value) and _is_number(came_from) and _is_number(current)):
        return False
    return (value - current) * (came_from - current) > 0 and abs(value - current) >= abs(came_from - current)


def _sample_of(knob: _Knob, value: _Value) -> Any:
    """The optuna sample that stands for a value of the constant (the inverse of ``_Knob.value``)."""
    if not _is_number(value):
        return None
    if knob.transform == "pow2":
        return int(round(math.log2(value))) if value > 0 else None
    if knob.transform == "one_minus":
        return 1.0 - value
    return value


def _clearly_worse_first_step(history: Sequence[Experiment], goal: str, metric: str) -> str | None:
    """The constant changed by the last finished experiment, when that was its first move from its current
    value and made the metric worse than the best by more than the noise (any amount before the noise is known).

    The last finished, not the last: with proposals made ahead, the last one is still training.
    """
    done = [i for i, e in enumerate(history) if e.status in Status.FINAL]
    if not done or (last := _Record.from_meta(history[done[-1]].agent_data)) is None:
        return None
    experiment = history[done[-1]]
    head = next((e for e in reversed(history[: done[-1]]) if e.status == Status.KEEP and e.metric is not None), None)
    if experiment.status != Status.DISCARD or experiment.metric is None or head is None or head.metric is None:
        return None
    moves = [r for e in history if (r := _Record.from_meta(e.agent_data)) and r.param == last.param]
    if sum(r.old == last.old for r in moves) != 1:
        return None
    noise = acceptance.noise(history, metric)
    if acceptance.gain(experiment.metric, head.metric, goal) >= -(noise.sigma if noise else 0.0):
        return None
    return last.param


def _find_constants(files: Mapping[str, str]) -> list[_Constant]:
    """Module-level ``NAME = <int, float or str literal>`` in the Python files, in file order.

    A name bound more than once at the top of its module is skipped (which
    binding counts is not clear), as is a name already found in an earlier file.
    """
    found: dict[str, _Constant] = {}
    for path, text in files.items():
        if not path.endswith(".py"):
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        bound = Counter(name for stmt in tree.body for name in _bound_names(stmt))
        offsets = _Offsets(text)
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, node = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, node = stmt.target, stmt.value
            else:
                continue
            if not isinstance(target, ast.Name) or not CONSTANT_NAME.fullmatch(target.id):
                continue
            value = _literal(node)
            if value is None or bound[target.id] > 1 or target.id in found:
                continue
            assert node.end_lineno is not None and node.end_col_offset is not None
            start = offsets.at(node.lineno, node.col_offset)
            end = offsets.at(node.end_lineno, node.end_col_offset)
            after = text[end:].partition("\n")[0].lstrip()
            comment = after if after.startswith("#") else ""
            named = tuple(a or b for a, b in _QUOTED.findall(comment[1:]))
            frozen = bool(_FROZEN_COMMENT.search(comment))
            found[target.id] = _Constant(target.id, path, value, text[start:end], start, end, named, frozen)
    return list(found.values())


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.Assign):
        targets: list[ast.expr] = list(stmt.targets)
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    else:
        return []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _literal(node: ast.expr) -> _Value | None:
    """The value of an int, float (optionally signed) or str literal; None for anything else, bools included."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = node.operand.value if isinstance(node.operand, ast.Constant) else None
        if not _is_number(inner):
            return None
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Constant) and (_is_number(node.value) or isinstance(node.value, str)):
        value: _Value = node.value
        return value
    return None


class _Offsets:
    """Maps ast (line, UTF-8 byte column) positions to offsets in the text, as Python's tokenizer splits lines."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]

    def at(self, lineno: int, col_offset: int) -> int:
        start = self._starts[lineno - 1]
        line = self._text[start : self._starts[lineno] if lineno < len(self._starts) else len(self._text)]
        return start + len(line.encode("utf-8")[:col_offset].decode("utf-8"))


def _render(value: _Value, old_source: str) -> str:
    """Python source for the new value; a string keeps the quote character the file used."""
    if isinstance(value, str):
        quote = old_source[0] if old_source[:1] in ("'", '"') else '"'
        return f"{quote}{value}{quote}" if quote not in value and "\\" not in value else repr(value)
    return repr(value)


def _round_sig(x: float) -> float:
    """Three significant digits: more is noise at the resolution one experiment can tell apart."""
    return float(f"{x:.3g}")


def _decimals(x: float) -> int:
    """Decimal places that keep three significant digits of ``x`` (> 0)."""
    return max(0, 2 - math.floor(math.log10(x)))


def _is_pattern(name: str) -> bool:
    """An [agent.space] key like ``"DATA_*"``: it excludes every constant whose name it matches (fnmatch)."""
    return any(char in name for char in "*?[")


def _is_number(x: object) -> TypeGuard[int | float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _fingerprint(files: Mapping[str, str]) -> str:
    """Identifies the kept line's code: values tried on the same code are not tried again."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return digest.hexdigest()[:16]
