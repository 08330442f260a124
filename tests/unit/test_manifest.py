"""Manifests: the shipped order workflow, validation that lists every problem with its path,
``$ref`` resolution, and the JSON Schema subset for graph input."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.errors import ManifestInvalid
from mesh.manifests import load_manifest
from mesh.model.graph.schema import schema_problems
from mesh.model.pipe import resolve

ROOT = Path(__file__).resolve().parents[2]

SHOP = """
app:
  id: shop
  version: 3
  graphs:
    - subscribes: shop.order.placed
      publishes: shop.order.done
      expire: 600
      activities:
        t1:
          type: trigger
          stats: {id: '{$self.input.data.orderId}'}
          job: {maps: {orderId: '{$self.output.data.orderId}', attempts: 0}}
        pivot: {type: hook}
        price:
          type: worker
          topic: shop.price.calc
          input: {maps: {sku: '{t1.output.data.sku}'}}
          job:
            maps:
              attempts:
                '@pipe':
                  - ['{$job.data.attempts}', 1]
                  - ['{@math.add}']
        retry_later: {type: hook, sleep: 30}
        loop: {type: cycle, ancestor: pivot}
        approve: {type: hook, sleep: 86400, job: {maps: {approved: '{$self.hook.data.approved}'}}}
        notify: {type: await, topic: shop.notify, await: false}
      transitions:
        t1: [{to: pivot}]
        pivot: [{to: price}]
        price:
          - to: approve
            conditions:
              match:
                - expected: true
                  actual: {'@pipe': [['{price.output.data.total}', 1000], ['{@number.gte}']]}
          - to: retry_later
            conditions: {code: 500}
        retry_later: [{to: loop}]
        approve: [{to: notify}]
      hooks:
        shop.order.approval:
          - to: approve
            conditions: {match: [{expected: '{$job.metadata.jid}', actual: '{$self.hook.data.id}'}]}
    - subscribes: shop.notify
      activities:
        n1: {type: trigger}
        send: {type: worker, topic: shop.notify.send}
      transitions:
        n1: [{to: send}]
"""


def test_the_order_workflow__ships_valid() -> None:
    manifest = load_manifest(ROOT / "config" / "orders.yaml")
    graph = manifest.app.graphs[0]
    assert (manifest.app.id, graph.subscribes, graph.trigger_id) == (
        "orders",
        "order.placed",
        "placed",
    )
    assert {a.topic for a in graph.activities.values() if a.type == "worker"} == {
        "inventory.check",
        "inventory.reserve",
        "inventory.backorder.notify",
    }
    branch = graph.transitions["checkInventory"][0].conditions
    assert branch is not None
    data = {"checkInventory": {"output": {"data": {"availableQty": 5, "requestedQty": 3}}}}
    assert resolve(branch.match[0].actual, data) is True
    data["checkInventory"]["output"]["data"]["availableQty"] = 2
    assert resolve(branch.match[0].actual, data) is False


def test_the_reference_example__is_valid_inline() -> None:
    manifest = load_manifest(SHOP)
    assert manifest.app.version == "3"
    graph = manifest.app.graphs[0]
    assert graph.activities["notify"].await_ is False
    assert graph.hooks["shop.order.approval"][0].to == "approve"


BROKEN = """
app:
  id: shop
  version: '1'
  graphs:
    - subscribes: shop.order
      colour: blue
      activities:
        t1: {type: trigger}
        price:
          type: worker
          topic: shop.order
          input: {maps: {qty: '{prise.output.data.qty}', note: '{@string.shout}'}}
        child: {type: await, topic: nobody.listens}
        wait: {type: worker}
        loop: {type: cycle, ancestor: price}
        lonely: {type: hook}
        spin_a: {type: hook}
        spin_b: {type: hook}
      transitions:
        t1: [{to: price}, {to: spin_a}]
        price: [{to: child}, {to: missing}]
        child: [{to: wait}]
        spin_a: [{to: spin_b}]
        spin_b: [{to: spin_a}]
        wait: [{to: loop, conditions: {gate: maybe}}]
      hooks:
        shop.signal: [{to: price}]
      input:
        schema: {type: obj}
    - subscribes: shop.order
      activities:
        price: {type: trigger}
"""


def test_invalid_manifest__every_problem_is_listed_with_its_path() -> None:
    with pytest.raises(ManifestInvalid) as caught:
        load_manifest(BROKEN)
    problems = caught.value.problems
    expected = [
        "graphs[1].subscribes: topic 'shop.order' is already subscribed by graphs[0]",
        "graphs[1].activities.price: activity id already used in graphs[0]",
        "graphs[0].colour: unknown key",
        "graphs[0].input.schema.type: unknown type 'obj'",
        "graphs[0].activities.price.topic: 'shop.order' is a graph's trigger topic",
        "graphs[0].activities.price.input.maps.qty: unknown activity 'prise'",
        "graphs[0].activities.price.input.maps.note: unknown function '@string.shout'",
        "graphs[0].activities.child.topic: no graph of this app subscribes to 'nobody.listens'",
        "graphs[0].activities.wait.topic: required for a worker activity",
        "graphs[0].transitions.price[1].to: unknown activity 'missing'",
        "graphs[0].transitions.wait[0].conditions.gate: 'and' or 'or'",
        "graphs[0].hooks.shop.signal[0].to: 'price' is a worker activity",
        "graphs[0].activities.lonely: never reached from the trigger",
        "spin_a -> spin_b -> spin_a is a loop",
    ]
    for fragment in expected:
        assert any(fragment in p for p in problems), f"missing {fragment!r} in:\n" + "\n".join(
            problems
        )
    assert "nothing was deployed" in str(caught.value)


def test_a_graph_has_exactly_one_trigger() -> None:
    two = "app:\n  id: a\n  version: '1'\n  graphs:\n    - subscribes: a.b\n      activities:\n        x: {type: trigger}\n        y: {type: trigger}\n"
    with pytest.raises(ManifestInvalid, match="exactly one trigger activity, found 2"):
        load_manifest(two)
    none = "app:\n  id: a\n  version: '1'\n  graphs:\n    - subscribes: a.b\n      activities:\n        x: {type: hook}\n"
    with pytest.raises(ManifestInvalid, match="found 0"):
        load_manifest(none)


def test_cycle_ancestor__must_come_before_the_cycle() -> None:
    manifest = """
app:
  id: loops
  version: '1'
  graphs:
    - subscribes: loops.start
      activities:
        t1: {type: trigger}
        a: {type: hook}
        b: {type: cycle, ancestor: c}
        c: {type: hook}
      transitions:
        t1: [{to: a}, {to: c}]
        a: [{to: b}]
"""
    with pytest.raises(ManifestInvalid, match="'c' does not come before 'b'"):
        load_manifest(manifest)


def test_refs__files_and_json_pointers(tmp_path: Path) -> None:
    (tmp_path / "graphs").mkdir()
    (tmp_path / "schemas.yaml").write_text(
        "order:\n  input:\n    type: object\n    required: [id]\n"
    )
    (tmp_path / "graphs" / "main.yaml").write_text(
        "subscribes: a.start\n"
        "input: {schema: {$ref: '../schemas.yaml#/order/input'}}\n"
        "activities:\n  t1: {type: trigger}\n  w: {type: worker, topic: a.work}\n"
        "transitions:\n  t1: [{to: w}]\n"
    )
    (tmp_path / "app.yaml").write_text(
        "app:\n  id: refs\n  version: '1'\n  graphs:\n    - $ref: ./graphs/main.yaml\n"
    )
    manifest = load_manifest(tmp_path / "app.yaml")
    assert manifest.app.graphs[0].input["schema"]["required"] == ["id"]


def test_refs__missing_and_circular(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(
        "app:\n  id: refs\n  version: '1'\n  graphs:\n    - $ref: ./nope.yaml\n"
    )
    with pytest.raises(ManifestInvalid, match="cannot read"):
        load_manifest(tmp_path / "app.yaml")
    (tmp_path / "loop.yaml").write_text("a: {$ref: '#/b'}\nb: {$ref: '#/a'}\napp: {$ref: '#/a'}\n")
    with pytest.raises(ManifestInvalid, match="refers back to itself"):
        load_manifest(tmp_path / "loop.yaml")


def test_bad_yaml__says_where() -> None:
    with pytest.raises(ManifestInvalid, match=r"line \d+, column \d+: invalid YAML"):
        load_manifest("app:\n  id: x\n   bad: indent\n")


def test_input_schema__lists_every_problem() -> None:
    manifest = load_manifest(ROOT / "config" / "orders.yaml")
    schema = manifest.app.graphs[0].input["schema"]
    assert schema_problems(schema, {"orderId": "o-1", "sku": "sku-100", "qty": 2}) == []
    problems = schema_problems(schema, {"orderId": "", "qty": 0, "extra": True})
    assert "sku: required" in problems
    assert "orderId: shorter than 1 characters" in problems
    assert "qty: 0 must be at least 1" in problems
    assert schema_problems(schema, "not an object") == ["(input): expected object, got string"]
    assert (
        schema_problems({"type": "integer"}, 2.0) == []
        and schema_problems({"type": "integer"}, True) != []
    )
    assert schema_problems({"type": "object", "additionalProperties": False}, {"x": 1}) == [
        "x: not allowed (no such property)"
    ]
    assert schema_problems({"type": "array", "items": {"enum": ["a", "b"]}}, ["a", "c"]) == [
        "[1]: 'c' is not one of ['a', 'b']"
    ]


@pytest.mark.parametrize(
    "prefix", ["# the shop\n", "---\n", "\n\n", "%YAML 1.2\n---\n", "  # indented comment\n"]
)
def test_inline_yaml_is_recognised_by_its_content_whatever_it_starts_with(prefix: str) -> None:
    assert load_manifest(prefix + SHOP.lstrip()).app.id == "shop"


def test_a_path_is_always_a_file_and_a_missing_one_says_so(tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(SHOP)
    assert load_manifest(tmp_path / "shop.yaml").app.id == "shop"
    assert load_manifest(str(tmp_path / "shop.yaml")).app.id == "shop"
    with pytest.raises(ManifestInvalid, match="cannot read the file"):
        load_manifest(tmp_path / "app: shop")
