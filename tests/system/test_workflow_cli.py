"""``mesh workflow`` against a node process running code workflows: start and wait, signal,
result, status, cancel, ``mesh job`` showing the recorded calls, and refused input."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import NodeProcess, mesh, write_config

APP = "cli-code"


def test_workflow_commands__start_signal_result_status_job_and_refusals(
    tmp_path: Path, dsn: str
) -> None:
    config = write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
streams: {{poll_interval: 0.5 seconds}}
task_queues:
  - name: q
    workflows: [tests.code_workflows:sequence, tests.code_workflows:approval]
    activities: [tests.code_workflows:add_one]
""",
    )
    node = NodeProcess(config, dsn, log=tmp_path / "node.log")

    def run(*args: str) -> tuple[int, str, str]:
        done = mesh("--config", str(config), *args, dsn=dsn, cwd=tmp_path)
        return done.returncode, done.stdout.strip(), done.stderr.strip()

    try:
        node.wait_for_log("event=node_ready")
        code, out, err = run("workflow", "start", "sequence", "[1]", "--task-queue", "q", "--wait")
        assert code == 0, err
        assert json.loads(out)["result"] == 4
        code, out, err = run(
            "workflow", "start", "approval", "[5]", "--task-queue", "q", "--workflow-id", "a-1"
        )
        assert (code, out) == (0, "a-1"), err
        assert run("workflow", "status", "a-1")[1] == "running"
        code, out, err = run("workflow", "describe", "a-1")
        described = json.loads(out)
        assert code == 0 and described["status"] == "running", err
        assert [(c["kind"], c["name"]) for c in described["pending"]] == [("condition", "approve")]
        assert {p["stream"] for p in described["pollers"]} == {"q", "q-activity"}, described
        code, out, err = run("workflow", "signal", "a-1", "approve", '{"ok": 5}')
        assert code == 0 and "approve" in out, err
        code, out, err = run("workflow", "result", "a-1", "--timeout", "30")
        assert code == 0 and json.loads(out) == {
            "workflow_id": "a-1",
            "status": "done",
            "result": {"ok": 5},
        }, err
        code, out, err = run("job", "a-1")
        assert code == 0 and "0:approve" in out and "completed 200" in out, err
        # Refused, with what to do, before anything is written.
        code, _, err = run(
            "workflow", "start", "sequence", '{"not": "a list"}', "--task-queue", "q"
        )
        assert code == 2 and "JSON list" in err
        code, _, err = run("workflow", "start", "sequence", "[1]", "--wait", "--timeout", "nan")
        assert code == 2 and "--timeout" in err
        code, _, err = run("workflow", "signal", "nobody", "approve")
        assert code == 2 and "no running workflow 'nobody'" in err
        code, _, err = run("workflow", "start", "sequence", "[1]", "--workflow-id", "a-1")
        assert code == 2 and "taken" in err
        code, out, err = run("workflow", "start", "approval", "[6]", "--task-queue", "q")
        assert code == 0, err
        code, out2, err = run("workflow", "cancel", out)
        assert code == 0 and "stop" in out2, err
        code, out3, _ = run("workflow", "result", out, "--timeout", "30")
        assert code == 1 and json.loads(out3)["status"] == "interrupted"
        code, out4, err = run("workflow", "start", "approval", "[7]", "--task-queue", "q")
        assert code == 0, err
        code, _, err = run("workflow", "terminate", out4, "--reason", "from the cli")
        assert code == 0, err
        code, out5, _ = run("workflow", "result", out4, "--timeout", "30")
        ended = json.loads(out5)
        assert code == 1 and ended["status"] == "interrupted"
        assert ended["error"]["type"] == "WorkflowTerminated"
        assert ended["error"]["message"] == "from the cli"
        code, out6, err = run("workflow", "export", "a-1", "--allow", "status", "timeline")
        exported = json.loads(out6)
        assert code == 0 and set(exported) == {"status", "timeline"}, err
        assert exported["status"] == "done"
        assert [s["activity"] for s in exported["timeline"]] == ["0:approve"] * 2
        code, _, err = run("workflow", "export", "a-1", "--allow", "everything")
        assert code == 2 and "choose among data, state, status, timeline" in err
    finally:
        node.ensure_stopped()
