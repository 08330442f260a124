"""One deployed app version, indexed for execution: graphs by topic, activities by id,
transitions by source, and the app-wide hook rules (a signal topic names hooks in any graph).
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.errors import NoActiveVersion
from mesh.model.graph.manifest import Activity, Graph, HookRule, Manifest, Transition
from mesh.model.retry import RetryPolicy, policy_from_spec


@dataclass(frozen=True, slots=True)
class Located:
    graph: Graph
    activity: Activity


class CompiledApp:
    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.id = manifest.app.id
        self.version = manifest.app.version
        self.graphs: dict[str, Graph] = {g.subscribes: g for g in manifest.app.graphs}
        self.activities: dict[str, Located] = {
            aid: Located(graph, activity)
            for graph in manifest.app.graphs
            for aid, activity in graph.activities.items()
        }
        self.transitions: dict[str, list[Transition]] = {
            source: targets
            for graph in manifest.app.graphs
            for source, targets in graph.transitions.items()
        }
        self.retry_policies: dict[str, RetryPolicy] = {
            aid: policy_from_spec(located.activity.retry)
            for aid, located in self.activities.items()
            if located.activity.retry
        }
        """activity id -> the retry policy its ``retry:`` sets (requests carry it)."""
        self.hook_rules: dict[str, list[HookRule]] = {}
        self.hook_topics: dict[str, str] = {}
        """activity id -> the signal topic that resumes it."""
        for graph in manifest.app.graphs:
            for topic, rules in graph.hooks.items():
                self.hook_rules.setdefault(topic, []).extend(rules)
                for rule in rules:
                    self.hook_topics.setdefault(rule.to, topic)

    def graph(self, topic: str) -> Graph | None:
        return self.graphs.get(topic)

    def rule_for(self, topic: str, activity: str) -> HookRule | None:
        return next((r for r in self.hook_rules.get(topic, []) if r.to == activity), None)


def no_active_version(app: str) -> NoActiveVersion:
    """The error for an app with nothing activated: says what to run."""
    return NoActiveVersion(
        f"app {app!r} has no active version: run `mesh deploy PATH` and "
        "`mesh activate VERSION` first"
    )
