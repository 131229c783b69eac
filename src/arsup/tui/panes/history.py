"""The History pane: the experiments as a tree (the kept line as its trunk), a results table and a chart.

Each kept experiment is a trunk node; every attempt that started from it
(discarded, crashed, invalid, skipped) hangs off it, found by
`experiment.parent == kept.commit`. Choosing a node or a row posts `Picked`,
and the app shows that experiment in the other panes.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, TabbedContent, Tabs, TabPane, Tree
from textual.widgets.tree import TreeNode

from arsup.core.experiment import Experiment, Status
from arsup.tui import labels, text
from arsup.tui.palette import Palette
from arsup.tui.panes.chart import MetricChart
from arsup.view import SessionView


VIM_MOVES = [Binding("j", "cursor_down", "down", show=False), Binding("k", "cursor_up", "up", show=False)]
TABS = ("tab-tree", "tab-table", "tab-chart")
COMPACT_BELOW = 44  # a tree narrower than this (an 80-column terminal) gets compact labels


def matches(experiment: Experiment, query: str) -> bool:
    """Whether `/`'s words all occur (any case) in the experiment's id, status or hypothesis: `keep lr`."""
    said = f"{experiment.id} {experiment.status} {experiment.hypothesis}".lower()
    return all(word in said for word in query.lower().split())


def filtered(view: SessionView, query: str) -> list[Experiment]:
    """The history as the filter shows it (all of it without one)."""
    return [e for e in view.history if matches(e, query)] if query.strip() else view.history


class ExperimentTree(Tree[Experiment]):
    """Kept experiments at the top level, attempts under the commit they started from."""

    BINDINGS = VIM_MOVES

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("experiments", id=id)
        self.show_root = False
        self.guide_depth = 3
        self._trunk: dict[str, TreeNode[Experiment]] = {}
        self._running_nodes: dict[str, TreeNode[Experiment]] = {}  # by experiment id: one per busy slot
        self.compact = False  # narrow (80 columns): labels that leave room for the hypothesis
        self.query_text = ""  # the history's `/` filter
        self._shown: tuple[SessionView, Palette] | None = None  # what the last rebuild drew, to redraw on a resize

    def on_resize(self, event: events.Resize) -> None:
        compact = event.size.width < COMPACT_BELOW
        if compact != self.compact and self._shown is not None:
            self.compact = compact
            self.rebuild(*self._shown)
        self.compact = compact

    def rebuild(self, view: SessionView, palette: Palette) -> None:
        self._shown = (view, palette)
        self.clear()
        self._trunk, self._running_nodes = {}, {}
        for experiment in filtered(view, self.query_text):
            self.add_experiment(experiment, view, palette)

    def add_experiment(self, experiment: Experiment, view: SessionView, palette: Palette) -> TreeNode[Experiment]:
        label = labels.tree_label(experiment, view.parent_metric(experiment), view.goal, palette, self.compact)
        if experiment.status == Status.KEEP:
            node = self.root.add(label, data=experiment, expand=True, allow_expand=False)
            self._trunk[experiment.commit] = node
        else:
            parent = self._trunk.get(experiment.parent, self.root)
            node = parent.add_leaf(label, data=experiment)
            parent.allow_expand = parent is not self.root
        return node

    def set_running(self, experiments: list[tuple[Experiment, str]], palette: Palette) -> None:
        """Show (or update) a node for each experiment in flight (one per busy slot, with its state), and no other."""
        wanted = {experiment.id: (experiment, state) for experiment, state in experiments}
        for gone in [key for key in self._running_nodes if key not in wanted]:
            self._running_nodes.pop(gone).remove()
        for key, (experiment, state) in wanted.items():
            label = labels.running_label(experiment, state, palette)
            if key in self._running_nodes:
                self._running_nodes[key].set_label(label)
                continue
            parent = self._trunk.get(experiment.parent, self.root)
            self._running_nodes[key] = parent.add_leaf(label, data=experiment)
            parent.allow_expand = parent is not self.root
            parent.expand()


class ResultsTable(DataTable[Text]):
    """autoresearch's results.tsv as a table, one row per finished experiment, every cell a `Text`."""

    BINDINGS = VIM_MOVES

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.query_text = ""  # the history's `/` filter

    def rebuild(self, view: SessionView, palette: Palette) -> None:
        """Columns too: the metric's name arrives with the session, after the first frame."""
        self.clear(columns=True)
        holdout = ("holdout",) if view.holdout_keeps else ()
        for name in ("id", "commit", view.metric, *holdout, "Δ", "GB", "status", "description"):
            self.add_column(name, key=name)
        for experiment in filtered(view, self.query_text):
            self.add_experiment(experiment, view, palette)

    def add_experiment(self, experiment: Experiment, view: SessionView, palette: Palette) -> None:
        trained = experiment.status in (Status.KEEP, Status.DISCARD)
        shown = experiment.metric if trained else None
        parent = view.parent_metric(experiment)
        change = None if shown is None or parent is None else shown - parent
        vram = experiment.metrics.get("peak_vram_mb")
        holdout = [Text(text.metric(experiment.holdout))] if view.holdout_keeps else []
        self.add_row(
            Text(experiment.id),
            Text(experiment.commit[:7]),
            Text(text.metric(shown)),
            *holdout,
            Text(text.delta(change), style=palette.change(text.improves(change, view.goal)) if change else ""),
            Text("-" if vram is None or not trained else f"{vram / 1024:.1f}"),
            Text(experiment.status, style=palette.status(experiment.status)),
            Text(text.one_line(experiment.hypothesis)),
            key=experiment.id,
        )


class FilterInput(Input):
    """`/`'s line under the history: it filters as it is typed; enter goes back to the rows, esc clears it."""

    BINDINGS = [Binding("escape", "clear", "clear the filter")]

    class Cleared(Message):
        """esc: the filter is gone."""

    def action_clear(self) -> None:
        self.value = ""
        self.post_message(self.Cleared())


class HistoryPane(Vertical):
    """The tab strip is out of the focus chain (tab lands on the rows, where the cursor is); `[` and `]` switch
    views, as in lazygit."""

    BINDINGS = [
        Binding("left_square_bracket", "switch(-1)", "view", show=False),
        Binding("right_square_bracket", "switch(1)", "view", show=False),
    ]

    class Picked(Message):
        """A person chose an experiment to look at."""

        def __init__(self, experiment: Experiment) -> None:
            super().__init__()
            self.experiment = experiment

    def __init__(self, view: SessionView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self.palette = Palette.from_variables({})
        self._stale: set[str] = set()  # hidden tabs to rebuild when shown: a long night's table costs

    def compose(self) -> ComposeResult:
        with TabbedContent(id="history-tabs"):
            with TabPane("Tree", id="tab-tree"):
                yield ExperimentTree(id="history-tree")
            with TabPane("Table", id="tab-table"):
                yield ResultsTable(id="history-table")
            with TabPane("Chart", id="tab-chart"):
                yield MetricChart(id="history-chart")
        yield FilterInput(placeholder="filter: words of the hypothesis, a status, an id", id="history-filter")

    def on_mount(self) -> None:
        self.query_one(Tabs).can_focus = False
        self.query_one(MetricChart).can_focus = True  # so that `[` `]` still reach this pane while the chart shows

    @property
    def query_text(self) -> str:
        return self.experiment_tree.query_text

    def start_filter(self) -> None:
        """`/`: the filter line shows and takes the keys."""
        field = self.query_one(FilterInput)
        field.display = True
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.value == self.query_text:
            return
        self.experiment_tree.query_text = self.query_one(ResultsTable).query_text = event.value
        self.border_subtitle = f"/{event.value}" if event.value.strip() else ""
        self.rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._back_to_rows()

    def on_filter_input_cleared(self, event: FilterInput.Cleared) -> None:
        event.stop()
        self._back_to_rows()

    def _back_to_rows(self) -> None:
        field = self.query_one(FilterInput)
        field.display = bool(field.value.strip())  # a filter in force stays in sight
        tabs = self.query_one(TabbedContent)
        rows = ResultsTable if tabs.active == "tab-table" else ExperimentTree
        self.query_one(rows).focus()

    def action_switch(self, step: int) -> None:
        """The next (or previous) view, its rows focused."""
        tabs = self.query_one(TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + step) % len(TABS)]
        shown = {"tab-tree": ExperimentTree, "tab-table": ResultsTable, "tab-chart": MetricChart}[tabs.active]
        self.query_one(shown).focus()

    @property
    def experiment_tree(self) -> ExperimentTree:
        return self.query_one(ExperimentTree)

    def rebuild(self) -> None:
        """Everything again from the session view: at start and when the theme changes.

        The table and the chart are built when their tab is shown (with a
        thousand experiments the table alone takes longer than a frame)."""
        self.experiment_tree.rebuild(self.view, self.palette)
        self._stale = {"tab-table", "tab-chart"}
        self._refresh_shown()
        self.experiment_tree.scroll_end(animate=False)

    def _refresh_shown(self) -> None:
        shown = self.query_one(TabbedContent).active
        if shown in self._stale:
            self._stale.discard(shown)
            if shown == "tab-table":
                self.query_one(ResultsTable).rebuild(self.view, self.palette)
            else:
                self.query_one(MetricChart).draw(self.view, self.palette)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._refresh_shown()

    def restyle(self, palette: Palette) -> None:
        self.palette = palette
        self.rebuild()

    def finished(self, experiment: Experiment) -> None:
        following = self.experiment_tree.is_vertical_scroll_end  # the person is not reading further up
        self.experiment_tree.set_running([(e, "") for e in self.view.training if e.id != experiment.id], self.palette)
        if not matches(experiment, self.query_text):  # filtered out: not shown until the filter goes
            self._stale.add("tab-chart")
            return
        node = self.experiment_tree.add_experiment(experiment, self.view, self.palette)
        if following:
            self.experiment_tree.call_after_refresh(self.experiment_tree.scroll_to_node, node, animate=False)
        if "tab-table" not in self._stale:
            self.query_one(ResultsTable).add_experiment(experiment, self.view, self.palette)
        self._stale.add("tab-chart")  # the chart is redrawn whole: only when it shows
        self._refresh_shown()

    def running(self, experiments: list[tuple[Experiment, str]]) -> None:
        self.experiment_tree.set_running(experiments, self.palette)

    def on_tree_node_selected(self, event: Tree.NodeSelected[Experiment]) -> None:
        event.stop()
        if event.node.data is not None:
            self.post_message(self.Picked(event.node.data))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        picked = next((e for e in self.view.history if e.id == event.row_key.value), None)
        if picked is not None:
            self.post_message(self.Picked(picked))
