"""The relay's state lives in one declared place, whatever the working directory.

``$STATE_DIRECTORY`` (systemd's StateDirectory=) wins; else ``state.dir``; else
``$XDG_STATE_HOME/softrelay/<relay name>``. Relative file names resolve there; ``softrelay
check`` prints the absolute paths; running the demo writes nothing into the repository.
(The autouse fixture in conftest.py points ``$XDG_STATE_HOME`` at a directory of the test's.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from softrelay.config import demo_path, load
from softrelay.config.state import state_paths
from softrelay.modbus.regmap import config_hash

from support.configs import problems_of

REPO = Path(__file__).parents[1]
FAST = Path(__file__).parent / "configs" / "fast.yaml"


def relative_fast(tmp_path: Path, extra: str = "") -> Path:
    """The fast relay with relative state files (state.json, events.jsonl) and no dir."""
    path = tmp_path / "fast.yaml"
    text = FAST.read_text().replace("STATE_DIR/", "").replace("power_loss: cool",
                                                              "power_loss: freeze")
    path.write_text(text + extra)
    return path


def test_the_state_directory_is_systemds_else_the_files_else_the_users(tmp_path):
    config = load(relative_fast(tmp_path))
    env = {"STATE_DIRECTORY": "/var/lib/softrelay:/var/lib/other", "XDG_STATE_HOME": "/x",
           "HOME": "/home/op"}
    paths = state_paths(config, env)
    assert paths.dir == Path("/var/lib/softrelay") and paths.origin == "$STATE_DIRECTORY"
    assert paths.memory == Path("/var/lib/softrelay/state.json")
    assert paths.events == Path("/var/lib/softrelay/events.jsonl")
    del env["STATE_DIRECTORY"]
    assert state_paths(config, env).memory == Path("/x/softrelay/fast/state.json")
    del env["XDG_STATE_HOME"]
    assert state_paths(config, env).memory == Path(
        "/home/op/.local/state/softrelay/fast/state.json")
    env["XDG_STATE_HOME"] = "relative/dir"  # XDG: a relative value is ignored
    assert state_paths(config, env).dir == Path("/home/op/.local/state/softrelay/fast")
    in_file = config.model_copy(update={"state": config.state.model_copy(
        update={"dir": Path("/srv/relay")})})
    assert state_paths(in_file, env).memory == Path("/srv/relay/state.json")
    assert state_paths(in_file, {"STATE_DIRECTORY": "/run/sd"}).dir == Path("/run/sd")
    absolute = config.model_copy(update={"state": config.state.model_copy(
        update={"file": Path("/data/m.json")})})
    assert state_paths(absolute, env).memory == Path("/data/m.json")


def test_the_mqtt_queue_lives_in_the_state_directory(tmp_path):
    config = load(relative_fast(tmp_path, "mqtt: {host: 127.0.0.1}\n"))
    assert state_paths(config, {"STATE_DIRECTORY": "/var/lib/softrelay"}).mqtt_queue == \
        Path("/var/lib/softrelay/mqtt-queue.sqlite")


def test_a_relative_state_dir_is_refused_with_its_key():
    text = demo_path().read_text().replace("\nstate:\n", "\nstate:\n  dir: state\n", 1)
    problems = problems_of(text)
    assert any("relay.yaml:15" in p and "state.dir" in p and "must be absolute" in p
               for p in problems), problems


def test_the_configuration_hash_does_not_depend_on_the_machines_directory(tmp_path,
                                                                          monkeypatch):
    path = relative_fast(tmp_path)
    first = config_hash(load(path))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "other"))
    assert config_hash(load(path)) == first  # kept settings and the DCS see the file's hash


def run_and_stop(config_path: Path, theta: float | None = None):
    from softrelay.relay.relay import Relay

    relay = Relay(load(config_path), str(config_path), factory=MockFactory())
    restored = float(relay.core.thermal_state["theta"][0])
    relay.start(companion=False)
    try:
        if theta is not None:
            relay.core.thermal_state["theta"][0] = theta
        relay.loop.step()
    finally:
        relay.stop()
    return relay, restored


def test_the_same_relay_from_another_directory_restores_the_same_hot_motor(
        tmp_path, monkeypatch, user_state_dir):
    config = relative_fast(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    first, _ = run_and_stop(config, theta=1.15)
    assert first.paths.memory == user_state_dir / "softrelay" / "fast" / "state.json"
    monkeypatch.chdir(tmp_path / "b")
    second, restored = run_and_stop(config)
    assert restored == pytest.approx(1.15), "the hot motor's memory survives"
    assert second.memory.restored.outcome == "restored"
    assert list((tmp_path / "a").iterdir()) == [] and list((tmp_path / "b").iterdir()) == []


@pytest.mark.e2e
def test_check_prints_the_absolute_state_paths(tmp_path, user_state_dir):
    config = relative_fast(tmp_path, "mqtt: {host: 127.0.0.1}\n")
    home = user_state_dir / "softrelay" / "fast"
    out = subprocess.run([sys.executable, "-m", "softrelay", "check", str(config)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path).stdout
    assert f"state directory: {home} (from $XDG_STATE_HOME)" in out
    assert f"thermal memory: {home}/state.json, every 0.5 s" in out
    assert f"settings changed in service: {home}/state.settings.json" in out
    assert f"on disk {home}/events.jsonl (rotated at 1048576 bytes, 5 files kept)" in out
    assert f"queue {home}/mqtt-queue.sqlite" in out

    systemd = subprocess.run([sys.executable, "-m", "softrelay", "check", str(config)],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path,
                             env=os.environ | {"STATE_DIRECTORY": "/var/lib/softrelay"}).stdout
    assert "thermal memory: /var/lib/softrelay/state.json" in systemd


def git_status() -> list[str]:
    """Changed, new and ignored files of the repository (ignored too: a state file written
    under an ignored name is still written into the repository); bytecode aside."""
    out = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--ignored"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "__pycache__" not in line]


@pytest.mark.e2e
def test_running_the_demo_writes_nothing_into_the_repository(tmp_path, monkeypatch,
                                                            user_state_dir):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    demo = tmp_path / "demo.yaml"  # the demo as it is, on free ports
    demo.write_text(demo_path().read_text().replace("port: 5020", "port: 0")
                    .replace("port: 9650", "port: 0"))
    monkeypatch.chdir(REPO)  # where a relative path would land
    before = git_status()
    relay, _ = run_and_stop(demo)
    assert git_status() == before
    home = user_state_dir / "softrelay" / "demo"
    assert (home / "demo-state.json").exists() and (home / "demo-events.jsonl").exists()
    assert relay.paths.dir == home


@pytest.fixture(scope="module")
def environment_of_a_module_fixture():
    return dict(os.environ)


def test_no_test_nor_fixture_sees_the_real_state_directory(
        environment_of_a_module_fixture, user_state_dir, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    seen = environment_of_a_module_fixture  # set up before any test's own fixtures
    assert Path(seen["XDG_STATE_HOME"]).is_relative_to(base)
    assert "STATE_DIRECTORY" not in seen
    assert os.environ["XDG_STATE_HOME"] == str(user_state_dir)
    assert user_state_dir.is_relative_to(base)
