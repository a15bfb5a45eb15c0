"""Static checks of deploy/, runnable without Docker, Kubernetes or Prometheus:

- every YAML file under deploy/ parses (all documents), and so does every JSON file;
- every PromQL expression of the Grafana dashboard (panel targets and templating queries) names only metrics that
  Warden's code defines, and groups or filters only by labels those metrics carry (plus ``le`` for histogram
  buckets and the ``job``/``instance`` labels Prometheus adds);
- the dashboard's panels have unique ids and query the dashboard's ``${datasource}``.

    python deploy/check.py     # exit status 0 when everything holds, 1 otherwise

Metric definitions are read from the source with ``ast`` (calls to prometheus_client's Counter, Gauge, Histogram,
Summary, Info, Enum), not by importing the services, so no service dependency has to be importable or running.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "warden-dashboard.json"
SOURCE_PACKAGES = ("schemas", "plumbing", "providers", "services", "warden")

# Series Prometheus makes itself for every target, and the labels it attaches to every scraped series.
PROMETHEUS_SERIES = {"up": frozenset(), "scrape_duration_seconds": frozenset(), "scrape_samples_scraped": frozenset()}
TARGET_LABELS = frozenset({"job", "instance", "__name__"})

# The series a metric of each kind exposes, from its base name (prometheus_client strips a ``_total`` a Counter is
# declared with and adds it back).
EXPOSED_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("", "_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}
IMPLICIT_LABELS = {"Histogram": frozenset({"le"}), "Summary": frozenset({"quantile"})}

PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf"}
    | {"nan", "atan2"}
)


@dataclass(frozen=True)
class MetricDef:
    name: str
    """The name as declared in the code."""
    kind: str
    labels: frozenset[str] | None
    """None when the label names are not literal enough to read statically (labels are then not checked)."""
    where: str


# -- metric definitions in the code -----------------------------------------------------------------------------------


def _assignments(tree: ast.AST) -> dict[str, ast.expr]:
    """Simple ``name = value`` assignments of a module, so ``(*labels, "status")`` can be read when ``labels`` is a
    literal tuple assigned nearby."""
    found: dict[str, ast.expr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
    return found


def _literal_names(node: ast.expr | None, names: dict[str, ast.expr], depth: int = 0) -> frozenset[str] | None:
    if node is None:
        return frozenset()
    if depth > 5:
        return None
    if isinstance(node, ast.Name) and node.id in names:
        return _literal_names(names[node.id], names, depth + 1)
    if not isinstance(node, ast.Tuple | ast.List):
        return None
    labels: set[str] = set()
    for element in node.elts:
        if isinstance(element, ast.Constant) and isinstance(element.value, str):
            labels.add(element.value)
        elif isinstance(element, ast.Starred):
            inner = _literal_names(element.value, names, depth + 1)
            if inner is None:
                return None
            labels |= inner
        else:
            return None
    return frozenset(labels)


def _metric_call(node: ast.Call) -> tuple[str, str, ast.expr | None] | None:
    """(kind, name, labelnames node) of a prometheus_client metric constructor call, else None."""
    func = node.func
    kind = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if kind not in EXPOSED_SUFFIXES:
        return None
    keywords = {k.arg: k.value for k in node.keywords if k.arg}
    name_node = node.args[0] if node.args else keywords.get("name")
    if not (isinstance(name_node, ast.Constant) and isinstance(name_node.value, str)):
        return None
    labels_node = node.args[2] if len(node.args) > 2 else keywords.get("labelnames")
    return kind, name_node.value, labels_node


def defined_metrics(root: Path = ROOT) -> dict[str, MetricDef]:
    """Every series name the code can expose, mapped to its definition."""
    series: dict[str, MetricDef] = {}
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            names = _assignments(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                call = _metric_call(node)
                if call is None:
                    continue
                kind, name, labels_node = call
                labels = _literal_names(labels_node, names)
                if labels is not None:
                    labels |= IMPLICIT_LABELS.get(kind, frozenset())
                definition = MetricDef(name, kind, labels, f"{path.relative_to(root)}:{node.lineno}")
                base = name.removesuffix("_total") if kind == "Counter" else name
                for suffix in EXPOSED_SUFFIXES[kind]:
                    series[base + suffix] = definition
    return series


# -- PromQL -----------------------------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_NUMBER = re.compile(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?(?![\w:])")
_IDENTIFIER = re.compile(r"[A-Za-z_:][\w:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),\s*)?([A-Za-z_]\w*)\s*\)\s*$", re.DOTALL)


def parse_promql(expr: str) -> tuple[set[str], set[str]]:
    """The metric names an expression selects and the label names it matches or groups on.

    Grafana's variables are blanked first ($__rate_interval, $provider, ...). Identifiers followed by ``(`` are
    functions or aggregations, not metrics."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    labels: set[str] = set()
    for block in _MATCHERS.findall(text):
        labels.update(_MATCHER_LABEL.findall(block))
    text = _MATCHERS.sub(" ", text)
    for group in _GROUPING.findall(text):
        labels.update(label.strip() for label in group.split(",") if label.strip())
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    metrics: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0)
        if word in PROMQL_KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        metrics.add(word)
    return metrics, labels


def dashboard_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every templating query of a dashboard."""

    def panels(items: list[dict]) -> Iterator[dict]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield f"panel {panel.get('id')} {panel.get('title')!r} {target.get('refId')}", target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(query or "")
        if match is None:
            yield f"variable ${variable['name']}", query or ""
            continue
        selector, label = match.groups()
        # label_values(metric, label): the label must be one of the metric's, like a `by (label)`.
        yield f"variable ${variable['name']}", f"count by ({label}) ({selector})" if selector else ""


def check_dashboard(dashboard: dict, series: dict[str, MetricDef]) -> tuple[list[str], list[str]]:
    """(failures, notes)."""
    failures: list[str] = []
    notes: list[str] = []
    seen: dict[str, str] = {}
    for where, expr in dashboard_queries(dashboard):
        metrics, labels = parse_promql(expr)
        if not metrics:
            failures.append(f"{where}: no metric found in {expr!r}")
            continue
        available: set[str] = set(TARGET_LABELS)
        complete = True
        for metric in sorted(metrics):
            if metric in PROMETHEUS_SERIES:
                available |= PROMETHEUS_SERIES[metric]
                seen.setdefault(metric, "added by Prometheus")
                continue
            definition = series.get(metric)
            if definition is None:
                failures.append(f"{where}: metric {metric} is not defined in {', '.join(SOURCE_PACKAGES)}")
                complete = False
                continue
            seen.setdefault(metric, f"{definition.kind} {definition.name} at {definition.where}")
            if definition.labels is None:
                complete = False
                notes.append(f"{where}: labels of {metric} not readable statically; not checked")
            else:
                available |= definition.labels
        unknown = labels - available
        if complete and unknown:
            failures.append(
                f"{where}: label(s) {', '.join(sorted(unknown))} not on {', '.join(sorted(metrics))} "
                f"(they carry {', '.join(sorted(available - TARGET_LABELS))})"
            )
    notes.extend(f"{metric}: {origin}" for metric, origin in sorted(seen.items()))

    ids = [p.get("id") for p in dashboard.get("panels", [])]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    if duplicates:
        failures.append(f"duplicate panel ids: {duplicates}")
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard.get("panels", []):
        name = f"panel {panel.get('id')} {panel.get('title')!r}"
        pos = panel.get("gridPos")
        if not pos:
            failures.append(f"{name} has no gridPos")
            continue
        if pos["x"] + pos["w"] > 24:
            failures.append(f"{name} is wider than the 24-column grid")
        # Grafana moves overlapping panels around on load; the layout should not depend on that.
        covered = [(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])]
        clash = next((cells[cell] for cell in covered if cell in cells), None)
        if clash:
            failures.append(f"{name} overlaps {clash}")
        cells.update(dict.fromkeys(covered, name))
        if panel.get("type") == "row":
            continue
        uid = (panel.get("datasource") or {}).get("uid")
        if uid != "${datasource}":
            failures.append(f"{name} queries {uid!r}, not ${{datasource}}")
    return failures, notes


# -- files ------------------------------------------------------------------------------------------------------------


def check_files(deploy: Path = DEPLOY) -> tuple[list[str], list[str]]:
    """Every YAML and JSON file under deploy/ parses. (failures, notes)"""
    try:
        import yaml
    except ImportError:
        return ["PyYAML is not installed (pip install pyyaml): the YAML files were not checked"], []
    failures: list[str] = []
    notes: list[str] = []
    for path in sorted(deploy.rglob("*")):
        relative = path.relative_to(deploy.parent)
        try:
            if path.suffix in (".yaml", ".yml"):
                documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
                notes.append(f"{relative}: {len(documents)} YAML document(s)")
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
                notes.append(f"{relative}: JSON")
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            failures.append(f"{relative}: {exc}")
    return failures, notes


def main() -> int:
    failures, notes = check_files()
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    dashboard_failures, dashboard_notes = check_dashboard(dashboard, defined_metrics())
    failures += dashboard_failures
    for line in notes + dashboard_notes:
        print(f"ok    {line}")
    for line in failures:
        print(f"FAIL  {line}")
    queries = sum(1 for _ in dashboard_queries(dashboard))
    print(f"{'FAILED' if failures else 'passed'}: {queries} dashboard queries, {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
