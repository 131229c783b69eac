"""The TPE tuner agent, driven through a simulated night: propose, score, keep or discard, observe."""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from optuna.trial import TrialState

from arsup.core.agents.base import AgentContext, Proposal
from arsup.core.agents.tuner import TunerAgent
from arsup.core.experiment import Experiment, Status

pytestmark = pytest.mark.slow  # optuna's TPE sampler over simulated nights: seconds in all

TRAIN = '''"""Train a small GPT on TinyStories for a fixed time budget; prints val_bpb at the end."""

import math
import time

import torch
import torch.nn.functional as F

from prepare import TIME_BUDGET, get_batches  # fixed by the harness

# --- hyperparameters (edit me) ---
LR = 5e-4  # peak AdamW learning rate
MIN_LR_FRAC = 0.1
WARMUP_STEPS = 100
WARMDOWN_RATIO = 0.5
WEIGHT_DECAY = 0.0  # off for now
ADAM_BETA2 = 0.95
BATCH_SIZE = 64  # sequences per step
SEQ_LEN = 256
N_LAYER = 6
N_EMBD = 384
DROPOUT: float = 0.1
ACTIVATION = "gelu"
OPTIMIZER = 'adamw'  # or 'sgd'
SCHEDULE = "cosine"
GRAD_CLIP = 1.0
VOCAB_SIZE = 50257; N_HEAD = 6

# --- plumbing ---
SEED = 1337
EVAL_EVERY = 250
LOG_INTERVAL = 10
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
COMPILE = True
DTYPE = "bfloat16"
OFFSET = -3
BETAS = (0.9, 0.95)
STEPS = 1000
STEPS = 2000  # set twice: which one counts is not clear, so it is not tuned
data_dir = "data"


def lr_at(step: int, total: int) -> float:
    """Linear warmup, then cosine decay to MIN_LR_FRAC of the peak."""
    MAX_LR = LR
    if step < WARMUP_STEPS:
        return MAX_LR * step / WARMUP_STEPS
    progress = (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS)
    return MAX_LR * (MIN_LR_FRAC + (1 - MIN_LR_FRAC) * 0.5 * (1 + math.cos(math.pi * progress)))


def main() -> None:
    torch.manual_seed(SEED)
    started = time.time()
    while time.time() - started < TIME_BUDGET:
        x, y = get_batches(BATCH_SIZE, SEQ_LEN, DEVICE)
    print(f"val_bpb: {0.0:.4f}")


if __name__ == "__main__":
    main()
'''

TUNABLE = [
    "LR",
    "MIN_LR_FRAC",
    "WARMUP_STEPS",
    "WARMDOWN_RATIO",
    "ADAM_BETA2",
    "BATCH_SIZE",
    "SEQ_LEN",
    "N_LAYER",
    "N_EMBD",
    "DROPOUT",
    "ACTIVATION",
    "OPTIMIZER",
    "SCHEDULE",
    "GRAD_CLIP",
    "N_HEAD",
]

Score = Callable[[dict[str, Any]], "float | None"]  # constants -> metric, None for a crash


def constants(text: str) -> dict[str, Any]:
    """The test's own reading of top-level literal assignments (last binding wins); {} for broken code."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    found = {}
    for stmt in tree.body:
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else getattr(stmt, "target", None)
        if isinstance(target, ast.Name) and getattr(stmt, "value", None) is not None:
            try:
                found[target.id] = ast.literal_eval(stmt.value)
            except ValueError:
                continue
    return found


def only(*names: str) -> dict[str, list]:
    """A space that excludes every tunable constant of TRAIN except these."""
    return {name: [] for name in TUNABLE if name not in names}


class Night:
    """Plays the engine: asks for proposals, scores them, keeps improvements, tells the agent.

    Experiments go through JSON, as the journal stores them, before the agent sees them.
    """

    def __init__(self, agent: TunerAgent, score: Score, files: dict[str, str] | None = None, goal: str = "minimize"):
        self.agent, self.score, self.goal = agent, score, goal
        self.files = dict(files or {"train.py": TRAIN})
        self.best = score(self.all_constants())
        self.history = [self._record("baseline", "arsup", Status.KEEP, self.best, {})]
        self.proposals: list[tuple[Proposal, dict[str, str]]] = []  # each with the files it was made on
        self.earlier: list[Experiment] = []  # an earlier night's history, as the engine hands it on a new tag

    def all_constants(self) -> dict[str, Any]:
        return {k: v for text in self.files.values() for k, v in constants(text).items()}

    def context(self) -> AgentContext:
        return AgentContext(
            instructions="",
            files=dict(self.files),
            history=[e.copy() for e in self.history],
            earlier=[e.copy() for e in self.earlier],
            metric="val_bpb",
            goal=self.goal,
            time_budget=300,
        )

    def step(self, status: str | None = None, metric: float | None = None) -> Proposal | None:
        """One experiment; ``status`` (with ``metric``) forces an outcome instead of scoring."""
        proposal = self.agent.propose(self.context())
        if proposal is None:
            return None
        self.proposals.append((proposal, dict(self.files)))
        ((path, text),) = proposal.files.items()
        if status is None:
            metric = self.score({**self.all_constants(), **constants(text)})
            if metric is None:
                status = Status.CRASH
            elif (metric < self.best) if self.goal == "minimize" else (metric > self.best):
                status = Status.KEEP
            else:
                status = Status.DISCARD
        experiment = self._record(proposal.hypothesis, "tuner", status, metric, proposal.meta)
        if status == Status.KEEP:
            self.best = metric
            self.files[path] = text
        self.agent.observe(experiment.copy())
        self.history.append(experiment)
        return proposal

    def run(self, steps: int) -> None:
        for _ in range(steps):
            assert self.step() is not None

    def _record(self, hypothesis: str, agent: str, status: str, metric: float | None, meta: dict) -> Experiment:
        experiment = Experiment(
            id=f"{len(getattr(self, 'history', [])):04d}",
            tag="night",
            parent="abc",
            hypothesis=hypothesis,
            agent=agent,
            status=status,
            metric=metric,
            agent_data=dict(meta),
        )
        return Experiment.from_json(json.loads(json.dumps(experiment.to_json())))


def flat(_: dict[str, Any]) -> float:
    """Nothing ever improves: every proposal is discarded."""
    return 1.0


def lr_bowl(optimum: float) -> Score:
    """A quadratic in log10(LR) with its minimum at ``optimum``."""
    return lambda c: 1.0 + (math.log10(c["LR"]) - math.log10(optimum)) ** 2


def completed(agent: TunerAgent) -> int:
    assert agent.study is not None
    return len(agent.study.get_trials(states=(TrialState.COMPLETE,)))


def test_each_proposal_changes_exactly_one_constant_as_a_compilable_edit() -> None:
    night = Night(TunerAgent(seed=1), flat)
    night.run(len(TUNABLE) + 6)
    for proposal, files in night.proposals:
        ((path, new),) = proposal.files.items()
        old = files[path]
        compile(new, path, "exec")
        before, after = constants(old), constants(new)
        changed = [name for name in before if before[name] != after[name]]
        assert changed == [proposal.meta["param"]]
        assert after[changed[0]] == proposal.meta["value"]
        assert proposal.hypothesis.startswith(f"{changed[0]} ")
        # Everything but the literal stays: only one line differs, and its comment survives.
        assert len(old.splitlines()) == len(new.splitlines())
        diff = [(a, b) for a, b in zip(old.splitlines(), new.splitlines(), strict=True) if a != b]
        assert len(diff) == 1
        ((a, b),) = diff
        assert a.partition("#")[2] == b.partition("#")[2]
        assert a.split("=")[0] == b.split("=")[0]


def test_tunes_hyperparameters_and_ignores_plumbing_bools_lowercase_and_unclear_constants() -> None:
    night = Night(TunerAgent(seed=0), flat)
    night.run(len(TUNABLE))
    # With every proposal discarded, one round visits each tunable constant once, in file order.
    assert [p.meta["param"] for p, _ in night.proposals] == TUNABLE


def test_moves_toward_an_optimum_far_from_the_start() -> None:
    start, optimum = 5e-4, 8e-3  # 16x away: outside the first search window
    night = Night(TunerAgent(space=only("LR"), seed=0), lr_bowl(optimum))
    night.run(15)
    kept = night.all_constants()["LR"]
    assert abs(math.log10(kept / optimum)) < math.log10(1.5), kept
    assert abs(math.log10(kept / optimum)) < abs(math.log10(start / optimum))


def test_maximize_goal_climbs() -> None:
    bowl = lr_bowl(3e-5)
    night = Night(TunerAgent(space=only("LR"), seed=2), lambda c: -bowl(c), goal="maximize")
    night.run(15)
    assert abs(math.log10(night.all_constants()["LR"] / 3e-5)) < math.log10(1.5)
    assert night.agent.study is not None and night.agent.study.best_value == night.best  # TPE's "good" is high


def test_values_keep_the_constants_kind() -> None:
    night = Night(TunerAgent(space=only("BATCH_SIZE", "N_LAYER", "ADAM_BETA2", "WARMDOWN_RATIO", "LR"), seed=4), flat)
    night.run(40)
    values: dict[str, list[Any]] = {}
    for proposal, _ in night.proposals:
        values.setdefault(proposal.meta["param"], []).append(proposal.meta["value"])
    assert all(isinstance(v, int) and v & (v - 1) == 0 and 16 <= v <= 256 for v in values["BATCH_SIZE"])
    assert all(isinstance(v, int) and 2 <= v <= 24 for v in values["N_LAYER"])
    assert all(0.5 < v < 1 for v in values["ADAM_BETA2"])  # searched as 1 - beta
    assert all(float(f"{1 - v:.3g}") == pytest.approx(1 - v) for v in values["ADAM_BETA2"])
    assert all(0.5 / 4 <= v < 1 for v in values["WARMDOWN_RATIO"])  # a fraction stays one
    assert all(isinstance(v, float) and float(f"{v:.3g}") == v and 5e-4 / 4 <= v <= 5e-4 * 4 for v in values["LR"])
    assert max(values["LR"]) / min(values["LR"]) > 4  # the window is wide enough to matter


def test_stays_on_a_constant_while_it_keeps_improving_up_to_three_times() -> None:
    counter = iter(range(1000))
    night = Night(TunerAgent(space=only("LR", "DROPOUT", "GRAD_CLIP"), seed=0), lambda _: next(counter), goal="maximize")
    night.run(9)
    assert [p.meta["param"] for p, _ in night.proposals] == ["LR"] * 3 + ["DROPOUT"] * 3 + ["GRAD_CLIP"] * 3


def test_never_repeats_a_value_on_the_same_code_and_stops_when_out_of_values() -> None:
    night = Night(TunerAgent(seed=0), flat, files={"train.py": 'ACTIVATION = "relu"\nCOMPILE = True\n'})
    for _ in range(3):
        assert night.step() is not None
    assert sorted(p.meta["value"] for p, _ in night.proposals) == ["gelu", "silu", "tanh"]
    assert night.step() is None


def test_small_discrete_spaces_are_covered_after_tpe_warms_up() -> None:
    # TPE's pick barely moves in a five-value space; the retries still reach every value.
    night = Night(TunerAgent(space=only("BATCH_SIZE", "LR"), seed=0), flat)
    night.run(12)
    assert sorted(p.meta["value"] for p, _ in night.proposals if p.meta["param"] == "BATCH_SIZE") == [16, 32, 128, 256]


def test_space_ranges_choices_and_exclusions_are_honoured() -> None:
    space = {
        "LR": [1e-5, 1e-4],
        "ACTIVATION": ["relu", "swiglu"],
        "BATCH_SIZE": [],
        "WEIGHT_DECAY": [0.0, 0.2],  # zero: tunable only with a range
        "SEED": [1, 100],  # plumbing: tunable only when asked for
        **{name: [] for name in TUNABLE if name not in ("LR", "ACTIVATION", "BATCH_SIZE")},
    }
    night = Night(TunerAgent(space=space, seed=0), flat)
    night.run(12)
    values: dict[str, list[Any]] = {}
    for proposal, _ in night.proposals:
        values.setdefault(proposal.meta["param"], []).append(proposal.meta["value"])
    assert set(values) == {"LR", "ACTIVATION", "WEIGHT_DECAY", "SEED"}
    assert all(1e-5 <= v <= 1e-4 for v in values["LR"])
    assert sorted(values["ACTIVATION"]) == ["relu", "swiglu"]  # the listed choices, not the built-in family
    assert all(0.0 <= v <= 0.2 for v in values["WEIGHT_DECAY"])
    assert all(isinstance(v, int) and 1 <= v <= 100 for v in values["SEED"])


@pytest.mark.parametrize(
    ("space", "name"),
    [
        ({"LR": [1e-3, 1e-4]}, "LR"),  # low >= high
        ({"LR": [1e-3, 1e-3]}, "LR"),
        ({"LR": [1e-4, "big"]}, "LR"),  # mixed types
        ({"LR": [1e-4, 1e-3, 1e-2]}, "LR"),  # not [low, high]
        ({"LR": [True, False]}, "LR"),
        ({"LR": [0.0, math.inf]}, "LR"),
        ({"DROPOUT": 0.1}, "DROPOUT"),  # not a list
        ({"ACTIVATION": ["relu"]}, "ACTIVATION"),  # one choice is no choice
        ({"ACTIVATION": ["relu", "relu"]}, "ACTIVATION"),
    ],
)
def test_bad_space_shape_raises_naming_the_constant(space: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"\[agent.space\] {name}:"):
        TunerAgent(space=space)


@pytest.mark.parametrize(
    ("space", "name"),
    [
        ({"LEARNING_RATE": [1e-4, 1e-3]}, "LEARNING_RATE"),  # not in the files
        ({"COMPILE": []}, "COMPILE"),  # a bool is not a tunable constant
        ({"DEVICE": ["cpu", "cuda"]}, "DEVICE"),  # not a literal
        ({"LR": ["low", "high"]}, "LR"),  # choices for a number
        ({"ACTIVATION": [1, 4]}, "ACTIVATION"),  # a range for a string
        ({"BATCH_SIZE": [8.5, 64]}, "BATCH_SIZE"),  # an int constant needs whole bounds
    ],
)
def test_space_that_does_not_fit_the_files_raises_naming_the_constant(space: dict, name: str) -> None:
    agent = TunerAgent(space=space)
    with pytest.raises(ValueError, match=rf"\[agent.space\] {name}:"):
        agent.propose(Night(TunerAgent(), flat).context())


def test_none_when_nothing_is_tunable() -> None:
    files = {
        "train.py": 'COMPILE = True\nlr = 3e-4\nSEED = 0\nWEIGHT_DECAY = 0.0\nDTYPE = "bf16"\nBETAS = (0.9, 0.95)\n',
        "config.yaml": "LR = 3e-4\n",  # not Python
        "broken.py": "LR = = 3e-4\n",
    }
    agent = TunerAgent()
    assert agent.propose(Night(agent, flat, files=files).context()) is None


def test_edit_is_placed_by_characters_even_after_non_ascii_text_on_the_line() -> None:
    text = 'NOTE = "naïve → baseline"; LR = 3e-4  # η\nDEPTH = 4\n'
    agent = TunerAgent(space={"DEPTH": []})
    proposal = agent.propose(Night(agent, flat, files={"train.py": text}).context())
    assert proposal is not None
    new = proposal.files["train.py"]
    assert new == f'NOTE = "naïve → baseline"; LR = {proposal.meta["value"]!r}  # η\nDEPTH = 4\n'


def test_baseline_gives_no_trial() -> None:
    agent = TunerAgent()
    assert agent.propose(Night(agent, flat).context()) is not None  # the history holds just the baseline
    assert agent.study is not None
    assert [t.state for t in agent.study.trials if t.state != TrialState.FAIL] == [TrialState.RUNNING]


def test_crashes_and_invalid_edits_become_failed_trials_and_the_search_goes_on() -> None:
    bowl = lr_bowl(8e-3)
    night = Night(TunerAgent(space=only("LR", "DROPOUT"), seed=5), lambda c: None if c["LR"] > 1.5e-3 else bowl(c))
    night.run(6)
    night.step(status=Status.INVALID)
    night.step(status=Status.CRASH, metric=0.5)  # a metric printed before the crash does not count
    night.step(status=Status.DISCARD, metric=math.nan)
    night.run(10)
    statuses = [e.status for e in night.history[1:]]
    assert Status.CRASH in statuses and Status.INVALID in statuses
    scored = sum(e.status in (Status.KEEP, Status.DISCARD) and not math.isnan(e.metric) for e in night.history[1:])
    assert completed(night.agent) == scored
    assert all(math.isfinite(t.value) for t in night.agent.study.get_trials(states=(TrialState.COMPLETE,)))
    failed = night.agent.study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) >= statuses.count(Status.CRASH) + 2
    # A crashed value is not tried again on the same code.
    seen = [(p.meta["param"], p.meta["value"], p.meta["base"]) for p, _ in night.proposals]
    assert len(seen) == len(set(seen))


def test_resume_rebuilds_the_study_and_continues_the_same_search() -> None:
    bowl, space = lr_bowl(8e-3), only("LR", "DROPOUT", "N_LAYER")
    night = Night(TunerAgent(space=space, seed=3), lambda c: None if c["LR"] > 4e-3 else bowl(c))
    night.run(12)
    resumed = TunerAgent(space=space, seed=3)
    context = night.context()
    live_next, resumed_next = night.agent.propose(context), resumed.propose(context)
    assert (
        completed(resumed)
        == completed(night.agent)
        == sum(e.status in (Status.KEEP, Status.DISCARD) for e in night.history[1:])
    )
    assert completed(resumed) >= 8
    assert resumed_next is not None and live_next is not None
    assert resumed_next.hypothesis == live_next.hypothesis
    assert resumed_next.files == live_next.files
    # Trial numbers are per agent instance (the live study also holds the asks it rejected).
    assert {**resumed_next.meta, "trial": 0} == {**live_next.meta, "trial": 0}


def test_same_seed_and_history_give_the_same_night_and_another_seed_another() -> None:
    def hypotheses(seed: int) -> list[str]:
        night = Night(TunerAgent(space=only("LR", "DROPOUT"), seed=seed), lr_bowl(8e-3))
        night.run(10)
        return [p.hypothesis for p, _ in night.proposals]

    assert hypotheses(7) == hypotheses(7)
    assert hypotheses(7) != hypotheses(8)


def test_meta_is_json_and_names_the_change() -> None:
    night = Night(TunerAgent(space=only("LR")), flat)
    proposal = night.step()
    assert proposal is not None
    meta = json.loads(json.dumps(proposal.meta))
    assert meta == proposal.meta
    assert (meta["param"], meta["from"]) == ("LR", 5e-4)
    assert proposal.hypothesis.startswith(f"LR 5e-4 -> {meta['value']!r}: ")


def test_random_sampler_searches_the_same_space_uniformly_and_reproducibly() -> None:
    def night(sampler: str, seed: int = 0) -> list[Proposal]:
        night = Night(TunerAgent(seed=seed, sampler=sampler), flat)  # type: ignore[arg-type]
        night.run(len(TUNABLE) + 6)
        return [p for p, _ in night.proposals]

    tpe, rand = night("tpe"), night("random")
    # The same constants in the same order, each searched over the same window: only the picks differ.
    assert [(p.meta["param"], p.meta["distribution"]) for p in rand] == [
        (p.meta["param"], p.meta["distribution"]) for p in tpe
    ]
    assert all(p.hypothesis.endswith(": random pick") for p in rand)
    assert all("before TPE" in p.hypothesis for p in tpe)  # no compass steps for the random sampler
    assert [p.hypothesis for p in night("random")] == [p.hypothesis for p in rand]
    assert [p.hypothesis for p in night("random", seed=1)] != [p.hypothesis for p in rand]


def test_unknown_sampler_raises() -> None:
    with pytest.raises(ValueError, match="sampler"):
        TunerAgent(sampler="grid")  # type: ignore[arg-type]


def test_first_picks_from_a_value_are_the_window_edges_then_half_way_then_tpe() -> None:
    night = Night(TunerAgent(space=only("LR"), seed=0), flat)
    night.run(6)
    values = [p.meta["value"] for p, _ in night.proposals]
    assert sorted(values[:2]) == [1.25e-4, 2e-3]  # 5e-4 / 4 and * 4: the edges of the first window
    assert sorted(values[2:4]) == [2.5e-4, 1e-3]  # then half-way
    assert all("before TPE" in p.hypothesis for p, _ in night.proposals[:4])
    assert all("before TPE" not in p.hypothesis for p, _ in night.proposals[4:])


def test_after_a_keep_the_next_step_goes_further_the_same_way() -> None:
    night = Night(TunerAgent(space=only("LR"), seed=3), lr_bowl(1.0))  # far above the start: up always pays
    night.run(6)
    steps = [(p.meta["from"], p.meta["value"]) for p, _ in night.proposals]
    kept = [e.status == Status.KEEP for e in night.history[1:]]
    assert sum(kept) >= 4
    for (old, new), was_kept, (next_old, next_new) in zip(steps, kept, steps[1:]):
        if was_kept:
            assert next_old == new and next_new == pytest.approx(4 * new, rel=0.01), steps
    assert night.all_constants()["LR"] >= 5e-4 * 4**4


def test_a_first_step_that_hurts_is_followed_by_the_step_the_other_way() -> None:
    # LR's optimum is above the start: a first step down hurts, so the metric is sensitive to LR and the
    # next proposal is LR's step up rather than the next constant's turn.
    for seed in range(20):
        night = Night(TunerAgent(space=only("LR", "DROPOUT"), seed=seed), lr_bowl(8e-3))
        night.run(2)
        (first, _), (second, _) = night.proposals
        if first.meta["value"] < first.meta["from"]:
            assert night.history[1].status == Status.DISCARD
            assert (second.meta["param"], second.meta["value"]) == ("LR", 2e-3)
            break
    else:
        pytest.fail("no seed's first step went down")
    # A step that changes nothing (a flat metric) does not hold the turn: the rotation goes on.
    night = Night(TunerAgent(space=only("LR", "DROPOUT"), seed=0), flat)
    night.run(4)
    assert [p.meta["param"] for p, _ in night.proposals] == ["LR", "DROPOUT", "LR", "DROPOUT"]


def test_after_a_keep_no_compass_step_goes_back_past_the_value_it_came_from() -> None:
    # BATCH_SIZE's window is bounded at 16: after a kept step 64 -> 16 the window's other edge (256) lies
    # beyond 64, which the keep showed to be worse; a step there is wasted. LR (flat) takes the turn instead.
    space = {**only("LR", "BATCH_SIZE"), "BATCH_SIZE": [16, 256]}
    smaller_is_better = lambda c: math.log2(c["BATCH_SIZE"])  # noqa: E731
    for seed in range(20):
        night = Night(TunerAgent(space=space, seed=seed), smaller_is_better)
        while night.step() is not None and night.proposals[-1][0].meta["param"] != "BATCH_SIZE":
            pass
        first, _ = night.proposals[-1]
        if (first.meta["param"], first.meta["value"]) == ("BATCH_SIZE", 16):
            break
    else:
        pytest.fail("no seed's first step took BATCH_SIZE to 16")
    assert night.history[-1].status == Status.KEEP
    kept_at = len(night.proposals)
    night.run(3)
    batch_steps = [p.meta["value"] for p, _ in night.proposals[kept_at:] if p.meta["param"] == "BATCH_SIZE"]
    compass = [p for p, _ in night.proposals[kept_at:] if "before TPE" in p.hypothesis]
    assert compass and all(p.meta["param"] == "LR" for p in compass), [p.hypothesis for p in compass]
    assert all(value < 64 for value in batch_steps[:1]), batch_steps


def test_a_string_constant_takes_only_the_choices_its_comment_names() -> None:
    files = {
        "train.py": 'ACTIVATION = "gelu"  # one of "gelu", "relu", "silu"\n'
        'NORM = "layernorm"  # "layernorm" or "rmsnorm"\n'
        'DEVICE = "cuda"  # or "cpu"\n'
        'OPTIMIZER = "adamw"\n'
    }
    night = Night(TunerAgent(seed=0), flat, files=files)
    night.run(3)
    while night.step() is not None:
        pass
    tried = {(p.meta["param"], p.meta["value"]) for p, _ in night.proposals}
    assert {v for name, v in tried if name == "ACTIVATION"} == {"relu", "silu"}  # never "tanh": train.py lacks it
    assert {v for name, v in tried if name == "NORM"} == {"rmsnorm"}
    assert {v for name, v in tried if name == "OPTIMIZER"} == {"adam", "sgd"}  # no comment: the whole family
    assert "DEVICE" not in {name for name, _ in tried}  # a comment does not make plumbing a hyperparameter


def test_a_constant_in_flight_waits_for_its_result_while_another_has_a_step() -> None:
    # With proposals made ahead ([slots] queue = 1) the next proposal is made while one trains. A second step
    # on the constant in flight is stale however that run ends: kept, the line moved and the edit no longer
    # applies (the engine skips it); discarded, the step was chosen without its result.
    def ahead(space: dict[str, list]) -> Proposal:
        for seed in range(20):
            night = Night(TunerAgent(space=space, seed=seed), lr_bowl(8e-3))
            night.run(1)  # LR's first step; when it went down it hurt, so LR's step up comes next
            if night.proposals[0][0].meta["value"] < 5e-4:
                break
        else:
            pytest.fail("no seed's first step went down")
        up = night.agent.propose(night.context())
        assert up is not None and (up.meta["param"], up.meta["value"]) == ("LR", 2e-3)
        context = night.context()  # made while LR's step up trains: it is in flight, not in the history
        context.in_flight = [night._record(up.hypothesis, "tuner", Status.RUNNING, None, up.meta)]
        following = night.agent.propose(context)
        assert following is not None
        return following

    assert ahead(only("LR", "DROPOUT")).meta["param"] == "DROPOUT"
    alone = ahead(only("LR"))  # no other constant: better a step than no proposal, but not the one in flight
    assert alone.meta["param"] == "LR" and alone.meta["value"] != 2e-3


def tuned(night: Night) -> dict[str, set[Any]]:
    """Runs the night until the tuner is out of values: each constant it changed, with the values it tried."""
    while night.step() is not None:
        pass
    values: dict[str, set[Any]] = {}
    for proposal, _ in night.proposals:
        values.setdefault(proposal.meta["param"], set()).add(proposal.meta["value"])
    return values


def test_data_constants_are_left_alone_and_only_the_training_choices_are_tuned() -> None:
    assert set(tuned(Night(TunerAgent(seed=0), flat, files={"train.py": "N_FEATURES = 2\nLR = 0.01\n"}))) == {"LR"}
    files = {
        "train.py": "NUM_CLASSES = 10\nN_TRAIN = 1000\nVAL_FRACTION = 0.1\nINPUT_DIM = 784\n"
        "H100_BF16_PEAK_FLOPS = 989.5e12\nDATA_DIR = 'data'\nTRAIN_STEPS = 1000\nLABEL_SMOOTHING = 0.1\n"
    }
    # A size, split, dimension or path the data fixes, and the hardware's peak, are not training choices.
    assert set(tuned(Night(TunerAgent(seed=0), flat, files=files))) == {"TRAIN_STEPS", "LABEL_SMOOTHING"}


def test_a_comment_on_its_line_freezes_a_constant_and_a_space_entry_still_tunes_it() -> None:
    files = {
        "train.py": "HIDDEN = 32  # fixed: the checkpoint's width\n"
        "DEPTH = 4  # do not tune\n"
        "IMAGE = 28  # data\n"
        "MIXUP = 0.2  # data augmentation strength\n"
        "BATCH_SIZE = 64  # the data budget is fixed, so a smaller batch means more steps\n"
        "LR = 0.01\n"
    }
    assert set(tuned(Night(TunerAgent(seed=0), flat, files=files))) == {"MIXUP", "BATCH_SIZE", "LR"}
    opted_in = tuned(Night(TunerAgent(space={"HIDDEN": [16, 64]}, seed=0), flat, files=files))
    assert "HIDDEN" in opted_in and "DEPTH" not in opted_in


def test_a_pattern_in_the_space_excludes_every_constant_it_matches_but_one_given_a_range() -> None:
    files = {"train.py": "N_HEAD = 4\nN_EMBD = 128\nN_LAYER = 2\nLR = 0.01\n"}
    night = Night(TunerAgent(space={"N_*": [], "N_LAYER": [1, 8]}, seed=0), flat, files=files)
    assert set(tuned(night)) == {"N_LAYER", "LR"}
    with pytest.raises(ValueError, match=r"\[agent.space\] N_\*: a name pattern can only exclude"):
        TunerAgent(space={"N_*": [1, 8]})
    agent = TunerAgent(space={"DATA_*": []})
    with pytest.raises(ValueError, match=r"\[agent.space\] DATA_\*: no top-level constant matching `DATA_\*`"):
        agent.propose(Night(agent, flat, files=files).context())


def test_a_new_night_on_the_same_code_does_not_try_again_what_an_earlier_night_tried() -> None:
    files = {"train.py": "LR = 0.01\nDROPOUT = 0.1\n"}
    first = Night(TunerAgent(seed=0), flat, files=files)
    first.run(4)
    before = {(p.meta["param"], p.meta["value"]) for p, _ in first.proposals}
    again = Night(TunerAgent(seed=0), flat, files=files)
    again.earlier = first.history
    again.run(4)
    assert before.isdisjoint((p.meta["param"], p.meta["value"]) for p, _ in again.proposals)
    # On other code what the earlier night learnt may not hold: the same seed makes the same night again.
    other = Night(TunerAgent(seed=0), flat, files={"train.py": files["train.py"] + "WIDTH_NOTE = 'wider'\n"})
    other.earlier = first.history
    other.run(4)
    assert {(p.meta["param"], p.meta["value"]) for p, _ in other.proposals} == before
