"""Reading order of metrics and tasks, and the terminal tables that use it (no truncation, transposed when wide)."""

from rich.console import Console

from cirkit.ordering import flatten, headline_metrics, metric_order_of, order_columns, order_metrics, order_rows
from cirkit.report import metrics_table, metrics_tables


def test_recall_at_k_sorts_by_k_and_chance_comes_last():
    names = ["R@10", "chance R@1", "R@50", "R@5", "R@1", "mAP@10", "mAP@5", "Rs@1", "Hits@10 r10", "Hits@10 r2"]
    assert order_metrics(names) == ["R@1", "R@5", "R@10", "R@50", "Rs@1", "Hits@10 r2", "Hits@10 r10",
                                    "mAP@5", "mAP@10", "chance R@1"]


def test_tasks_keep_the_declared_order_with_chance_rows_last():
    declared = ["text-to-image · text", "text-to-image · chance", "composed cirr · image", "composed cirr · chance",
                "composed cirr · text"]
    alphabetical = sorted(declared)  # what a JSON record with sorted keys gives back
    assert order_rows(alphabetical, declared) == ["text-to-image · text", "text-to-image · chance",
                                                   "composed cirr · image", "composed cirr · text",
                                                   "composed cirr · chance"]
    assert order_columns(["b · x/R@10", "a · chance/R@1", "b · x/R@1", "a · y/R@5"], ["b · x", "a · chance", "a · y"]) \
        == ["b · x/R@1", "b · x/R@10", "a · y/R@5", "a · chance/R@1"]


def test_headline_is_the_first_real_row_not_the_alphabetically_first_chance_value():
    metrics = {"text-to-image · text": {"R@1": 87.3, "R@10": 99.9, "R@5": 99.4},
               "text-to-image · chance": {"R@1": 0.1}, "composed cirr · image": {"R@1": 13.0}}
    declared = metric_order_of(metrics)
    stored = dict(sorted(metrics.items()))  # composed... and chance first, as JSON gives it back
    assert headline_metrics(stored, declared) == ("text-to-image · text", {"R@1": 87.3, "R@5": 99.4, "R@10": 99.9})
    assert headline_metrics({"chance R@1": 0.02, "R@5": 89.5, "R@1": 66.1}) == ("", {"R@1": 66.1, "R@5": 89.5})


def _render(table, width):
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_narrow_table_keeps_metrics_as_columns_in_order():
    text = _render(metrics_table({"R@10": 94.4, "R@1": 66.1, "chance R@1": 0.02, "R@5": 89.5}, title="t"), 120)
    header = next(line for line in text.splitlines() if "R@1" in line)
    assert header.index("R@1") < header.index("R@5") < header.index("R@10") < header.index("chance R@1")


def test_wide_table_prints_transposed_without_truncating_names():
    row = {f"{name} R@{k}": 1.0 for name in ("cardinality", "comparative", "viewpoint", "background") for k in (1, 5, 10)}
    text = _render(metrics_table({"composed circo · image": row, "composed circo · text": row}, title="t"), 80)
    assert "…" not in text
    rows = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert rows[:3] == ["background R@1", "background R@5", "background R@10"]  # one metric per row, in order
    assert sorted(rows) == sorted(row)


def test_per_task_tables_follow_the_declared_task_order():
    metrics = {"text-to-image · text": {"R@1": 1.0}, "chat · text": {"Hits@10 r0": 2.0},
               "composed cirr · image": {"R@1": 3.0}}
    titles = [t.title for t in metrics_tables(dict(sorted(metrics.items())), title="m", declared=list(metrics))]
    assert titles == ["m: text-to-image", "m: chat", "m: composed cirr"]


def test_flatten_joins_nested_names_and_keeps_leaves_that_are_not_tables():
    nested = {"s2": {"R@1": 1.5, "subset": {"Rs@1": 3}}, "chance R@1": 0.1, "empty": {}}
    assert flatten(nested) == {"s2/R@1": 1.5, "s2/subset/Rs@1": 3, "chance R@1": 0.1}
    assert flatten({"fusion": {"tau": [0.1, 0.2]}}, ".") == {"fusion.tau": [0.1, 0.2]}
    assert flatten(3) == {}
