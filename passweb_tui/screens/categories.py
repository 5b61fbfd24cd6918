"""The category tree with article counts and the web flag; the articles of a category."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar, cast

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Tree
from textual.widgets.tree import TreeNode
from textual.worker import Worker, WorkerState

from passweb_tui.i18n import t
from passweb_tui.screens.base import BaseScreen, KeyTable, fmt_int, localize_bindings, value_of
from passweb_tui.screens.fit_table import Col, FitTable
from passweb_tui.screens.sync_state import SyncSnapshot

ARTICLES_SHOWN = 200


#: the tree's node for the articles linked to no category the site has
UNCATEGORISED = "\x00uncategorised"


def node_label(node: Any, total: int | None = None) -> Text:
    """Code, article count and web flag first, then the description: in a narrow pane a
    long description is what gets cut, not the figures. `total`, for a category with
    others below it, counts the articles of the whole branch."""
    label = Text()
    label.append(str(value_of(node, "code")), style="bold")
    count = value_of(node, "article_count") if total is None else total
    if count:
        label.append(f" ({fmt_int(count)})", style="dim")
    if value_of(node, "web"):
        label.append(" " + t("categories.web"), style="cyan")
    label.append(" " + str(value_of(node, "description") or ""))
    return label


class CategoryTree(Tree[str]):
    """Product groups; j/k move like in tables. A label wider than the pane ends in an
    ellipsis, so that a cut name reads as cut (the pane does not scroll sideways)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "key.down", show=False, id="tree.down"),
        Binding("k", "cursor_up", "key.up", show=False, id="tree.up"),
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        localize_bindings(self)

    def render_label(self, node: TreeNode[str], base_style: Style, style: Style) -> Text:
        label = super().render_label(node, base_style, style)
        width = self.size.width
        if width <= 0:  # not laid out yet: cut once it is
            return label
        if self.last_line + 1 > self.size.height:
            # the vertical scrollbar's room, known before the scrollbar shows
            width -= self.styles.scrollbar_size_vertical
        depth = 0
        parent = node.parent
        while parent is not None:
            depth, parent = depth + 1, parent.parent
        indent = self.guide_depth * (depth if self.show_root else depth - 1)
        room = max(width - indent, 1)
        if label.cell_len > room:
            label.truncate(room, overflow="ellipsis")
        return label


KEYMAP_CLASSES = [CategoryTree]


class CategoriesScreen(BaseScreen):
    """Browse the tree; the highlighted category's articles show beside it."""

    # focused as soon as it is composed, so that keys typed right behind the one that
    # opened the screen go to it, not to the first field (see OrderedScroll)
    AUTO_FOCUS = "#cat-tree"

    TITLE_KEY = "nav.categories"
    RELOAD_WHEN_STALE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "reload", "key.reload", id="categories.reload", show=False),
        Binding("tab", "switch_pane", "key.switch_pane", id="categories.switch"),
        Binding("n", "page(1)", "key.next_page", id="categories.next", show=False),
        Binding("b", "page(-1)", "key.prev_page", id="categories.prev", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="cat-body"):
            with Vertical(id="cat-tree-panel", classes="panel"):
                yield Label(t("categories.tree"), id="cat-title", classes="panel-title")
                yield CategoryTree(t("categories.root"), id="cat-tree")
            with Vertical(id="cat-articles-panel", classes="panel"):
                yield Label(
                    t("categories.articles"), id="cat-articles-title", classes="panel-title"
                )
                # a long description ends in an ellipsis; the code is always whole
                yield FitTable(
                    [
                        Col("code", t("col.code")),
                        Col("description", t("col.description"), shrink=True),
                    ],
                    id="cat-articles",
                )

    #: per category shown: the codes of its branch (itself first) and their articles
    _branches: dict[str, tuple[list[str], int]]
    #: each category's name, by code
    _names: dict[str, str]

    #: the category whose articles are shown, and the first of them shown (a page)
    _shown: str | None = None
    _offset: int = 0

    def on_mount(self) -> None:
        self._branches = {}
        self._names = {}
        self.query_one("#cat-tree", CategoryTree).focus()
        self.load()

    def sync_finished(self, snap: SyncSnapshot) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    def action_switch_pane(self) -> None:
        tree = self.query_one("#cat-tree", CategoryTree)
        table = self.query_one("#cat-articles", KeyTable)
        (table if tree.has_focus else tree).focus()

    def load(self) -> None:
        engine = self.papp.engine
        if engine is None:
            return
        self.run_worker(
            lambda: (list(engine.categories()), engine.uncategorised_count()),
            group="categories",
            thread=True,
            exclusive=True,
            exit_on_error=False,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.SUCCESS:
            return
        if event.worker.group == "categories":
            nodes, uncategorised = cast(Any, event.worker.result)
            self.show_tree(nodes, uncategorised)
        elif event.worker.group == "category-articles":
            code, offset, rows = cast(Any, event.worker.result)
            self.show_articles(code, rows, offset)

    def show_tree(self, nodes: list[Any], uncategorised: int = 0) -> None:
        """The tree as the ERP links it. A category with others below it counts the
        articles of its whole branch, which is what highlighting it lists."""
        tree = self.query_one("#cat-tree", CategoryTree)
        tree.clear()
        self._branches = {}
        children: dict[str | None, list[Any]] = defaultdict(list)
        codes = {str(value_of(n, "code")) for n in nodes}
        for node in nodes:
            parent = value_of(node, "parent")
            # an orphan (parent not synced) is shown at the top rather than lost
            children[parent if parent in codes else None].append(node)

        shown: set[str] = set()

        def add(branch: TreeNode[str], parent: str | None) -> tuple[list[str], int]:
            """Add the categories below `parent`; the codes and articles they hold."""
            codes: list[str] = []
            total = 0
            for node in sorted(children.get(parent, []), key=lambda n: str(value_of(n, "code"))):
                code = str(value_of(node, "code"))
                if code in shown:
                    continue
                shown.add(code)
                own = int(value_of(node, "article_count") or 0)
                if children.get(code):
                    child = branch.add(node_label(node), data=code, expand=True)
                    below, below_total = add(child, code)
                    mine = ([code, *below], own + below_total)
                    if below:
                        child.set_label(node_label(node, mine[1]))
                else:
                    branch.add_leaf(node_label(node), data=code)
                    mine = ([code], own)
                self._branches[code] = mine
                codes += mine[0]
                total += mine[1]
            return codes, total

        add(tree.root, None)
        # categories whose parents loop back to them (an ERP data error: G1 under G2 under
        # G1) reach no top: each loop is shown at the top from its first code, marked,
        # with what hangs below it
        parent_of = {str(value_of(n, "code")): value_of(n, "parent") for n in nodes}
        by_code = {str(value_of(n, "code")): n for n in nodes}
        # each category's name whole, for the articles' title (the tree may cut it)
        self._names = {c: str(value_of(n, "description") or "") for c, n in by_code.items()}
        for code in sorted(by_code):
            if code in shown:
                continue
            path: list[str] = []  # up the parents until one repeats: that one is on a loop
            at: str | None = code
            while at is not None and at in by_code and at not in path:
                path.append(at)
                at = parent_of[at]
            if at is None or at not in path:
                continue  # not below a loop after all (shown by now, or an orphan's)
            loop = path[path.index(at) :]
            start = min(loop)
            if start in shown:
                continue
            shown.add(start)
            node = by_code[start]
            top = tree.root.add(node_label(node), data=start, expand=True)
            below, below_total = add(top, start)
            own = int(value_of(node, "article_count") or 0)
            self._branches[start] = ([start, *below], own + below_total)
            label = node_label(node, own + below_total if below else None)
            label.append(" " + t("categories.loop"), style="yellow")
            top.set_label(label)
        if uncategorised:
            label = Text(t("categories.uncategorised"), style="italic")
            label.append(f" ({fmt_int(uncategorised)})", style="dim")
            tree.root.add_leaf(label, data=UNCATEGORISED)
            self._branches[UNCATEGORISED] = ([], uncategorised)
        tree.root.expand()
        if nodes and tree.cursor_line <= 0:
            tree.cursor_line = 1  # the first category, so its articles show at once
        self.query_one("#cat-title", Label).update(
            t("categories.tree_count", count=fmt_int(len(nodes)))
        )

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        code = event.node.data
        if code is not None:
            self.fetch_articles(code, 0)

    def action_page(self, step: int) -> None:
        """The next or the previous page of the category's articles."""
        if self._shown is None:
            return
        _, total = self._branches.get(self._shown, ([self._shown], 0))
        offset = self._offset + step * ARTICLES_SHOWN
        if offset < 0 or (step > 0 and offset >= max(total, 1)):
            return
        self.fetch_articles(self._shown, offset)

    def fetch_articles(self, code: str, offset: int) -> None:
        engine = self.papp.engine
        if engine is None:
            return
        codes, _ = self._branches.get(code, ([code], 0))

        def fetch() -> tuple[str, int, list[dict[str, Any]]]:
            page = {"limit": ARTICLES_SHOWN, "offset": offset}
            if code == UNCATEGORISED:
                rows = engine.articles(uncategorised=True, **page)
            elif len(codes) > 1:  # a branch: the articles of every category in it
                rows = engine.articles(categories=codes, **page)
            else:
                rows = engine.articles(category=code, **page)
            return code, offset, list(rows)

        self.run_worker(
            fetch, group="category-articles", thread=True, exclusive=True, exit_on_error=False
        )

    def on_data_table_row_selected(self, event: KeyTable.RowSelected) -> None:
        """Enter on an article of the category opens it in full."""
        if event.data_table.id == "cat-articles" and event.row_key.value is not None:
            from passweb_tui.screens.record import RecordScreen

            self.app.push_screen(RecordScreen("articles", str(event.row_key.value)))

    def show_articles(self, code: str, rows: list[Any], offset: int = 0) -> None:
        self._shown, self._offset = code, offset
        table = self.query_one("#cat-articles", FitTable)
        shown = []
        for row in rows:
            key = str(value_of(row, "codice") or value_of(row, "code"))
            shown.append((key, [key, str(value_of(row, "description") or "")]))
        table.show_rows(shown)
        table.move_cursor(row=0)
        codes, total = self._branches.get(code, ([code], len(rows)))
        total = max(total, offset + len(rows))
        if code == UNCATEGORISED:
            title = t("categories.articles_uncategorised", count=fmt_int(total))
        else:
            named = " ".join(filter(None, (code, self._names.get(code))))
            key = "categories.articles_branch" if len(codes) > 1 else "categories.articles_of"
            title = t(key, code=named, count=fmt_int(total))
        if total > len(rows):
            title += " " + t(
                "categories.page_shown",
                first=fmt_int(offset + 1 if rows else offset),
                last=fmt_int(offset + len(rows)),
                next=self.bound_key("categories.next"),
                prev=self.bound_key("categories.prev"),
            )
        self.query_one("#cat-articles-title", Label).update(title)
