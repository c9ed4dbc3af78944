"""The companion attaches to the scan's shared images with the layouts the scan process handed
it (``SharedImage.attachment()``), never with layouts of its own making: a segment made with
another layout refuses it, its reason naming both fingerprints, before it says it is ready; so
does a segment of the same layout made for another configuration (both hashes named)."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

from softrelay.config import load
from softrelay.config.identity import config_hash
from softrelay.field.companion import REFUSED_EXIT, attach_images, companion_main
from softrelay.image.shared import (
    Attachment,
    LayoutMismatchError,
    SharedImage,
    fingerprint,
    layout_from_json,
    layout_json,
)
from softrelay.image.signals import input_layout
from softrelay.image.snapshot import snapshot_layout
from softrelay.modbus.register_image import register_layout, register_maps
from softrelay.telemetry.feed import feed_pair
from softrelay.telemetry.process import telemetry_main
from softrelay.telemetry.reading import RelayView

PADDED = np.dtype({"names": ["quality", "value", "window"],
                   "formats": ["u1", "<f8", ("<f4", (3,))], "offsets": [0, 8, 20],
                   "itemsize": 40})
NESTED = np.dtype([("stamp", ">f8"), ("reading", [("value", "<f8"), ("quality", "u1")]),
                   ("name", "S12")])


def demo_layouts():
    config = load(None)
    return config, input_layout(config), snapshot_layout(
        config, register_layout(register_maps(config)))


def other_layout(layout):
    """``layout`` with its last table one element longer: the same names, another image."""
    name, (dtype, shape) = list(layout.items())[-1]
    return layout | {name: (dtype, (shape[0] + 1, *shape[1:]))}


def test_a_layout_handed_over_as_text_is_the_same_layout():
    _, inputs, snapshot = demo_layouts()
    extra = {"padded": (PADDED, (2,)), "nested": (NESTED, (3, 2)), "plain": (np.dtype("<u2"),
                                                                           (5,))}
    for layout in (inputs, snapshot, extra):
        again = layout_from_json(layout_json(layout))
        assert list(again) == list(layout)
        assert fingerprint(again) == fingerprint(layout)
        assert all(again[t][0] == layout[t][0] and again[t][1] == layout[t][1] for t in layout)


def test_the_images_attach_with_the_layouts_handed_over():
    _, inputs_layout, snapshot_layout_ = demo_layouts()
    inputs, snapshot = SharedImage(inputs_layout), SharedImage(snapshot_layout_)
    try:
        with snapshot.writing() as tables:
            tables["coils"][1] = 1
        attached_inputs, attached_snapshot = attach_images(inputs.attachment(),
                                                           snapshot.attachment(), 0)
        assert attached_snapshot.read()["coils"][1] == 1
        assert attached_inputs.offsets == inputs.offsets
        attached_inputs.close()
        attached_snapshot.close()
    finally:
        inputs.close()
        snapshot.close()


def test_a_companion_handed_another_layout_is_refused_naming_both_digests():
    _, inputs_layout, snapshot_layout_ = demo_layouts()
    inputs, snapshot = SharedImage(inputs_layout), SharedImage(snapshot_layout_)
    wrong = Attachment(snapshot.name, layout_json(other_layout(snapshot_layout_)))
    try:
        with pytest.raises(LayoutMismatchError) as refused:
            attach_images(inputs.attachment(), wrong, 0)
        made = fingerprint(snapshot_layout_).hex()[:12]
        handed = fingerprint(layout_from_json(wrong.layout)).hex()[:12]
        assert made != handed
        assert made in str(refused.value) and handed in str(refused.value)
        assert snapshot.name in str(refused.value)
    finally:
        inputs.close()
        snapshot.close()


def edited(config):
    """``config`` as a file edited under a running relay: a setting changed, the same images."""
    point = config.thermal_points[0]
    changed = config.model_copy(update={"points": tuple(
        p.model_copy(update={"settings": p.settings.model_copy(
            update={"theta_trip": p.settings.theta_trip * 0.9})}) if p is point else p
        for p in config.points)})
    assert config_hash(changed) != config_hash(config)
    return changed


def test_images_made_for_one_configuration_refuse_a_process_on_another_naming_both_hashes():
    config, inputs_layout, snapshot_layout_ = demo_layouts()
    other = edited(config)
    assert input_layout(other) == inputs_layout  # the layouts alone could not tell them apart
    made = config_hash(config)
    inputs = SharedImage(inputs_layout, configuration=made)
    snapshot = SharedImage(snapshot_layout_, configuration=made)
    try:
        attached = attach_images(inputs.attachment(), snapshot.attachment(), made)
        for image in attached:
            image.close()
        for attach in (lambda: attach_images(inputs.attachment(), snapshot.attachment(),
                                             config_hash(other)),
                       lambda: RelayView(other, snapshot.attachment(), inputs.attachment())):
            with pytest.raises(LayoutMismatchError) as refused:
                attach()
            said = str(refused.value)
            assert f"{made:08x}" in said and f"{config_hash(other):08x}" in said, said
            assert "another configuration" in said
        view = RelayView(config, snapshot.attachment(), inputs.attachment())  # its own: reads
        try:
            assert view.read() is not None
        finally:
            view.close()
    finally:
        inputs.close()
        snapshot.close()


def refused_companion(config_json: str, inputs: Attachment, snapshot: Attachment,
                      capfd) -> str:
    """Spawn a companion as the relay spawns it (killed if still running after 30 s), assert
    that it was refused (exit REFUSED_EXIT, never ready, one line saying it cannot attach, no
    traceback) and return what it wrote to stderr."""
    ctx = multiprocessing.get_context("spawn")
    stop, ready = ctx.Event(), ctx.Event()
    child = ctx.Process(target=companion_main, args=(config_json, inputs, snapshot, stop, ready))
    child.start()
    child.join(30.0)
    if child.is_alive():
        child.kill()
        child.join(5.0)
        raise AssertionError("the refused companion kept running")
    assert child.exitcode == REFUSED_EXIT and not ready.is_set()
    said = capfd.readouterr().err
    assert "the I/O process cannot attach" in said
    assert "Traceback" not in said
    return said


@pytest.mark.e2e
def test_a_spawned_companion_on_another_configuration_than_the_images_exits_refused(capfd):
    config, inputs_layout, snapshot_layout_ = demo_layouts()
    made = config_hash(config)
    inputs = SharedImage(inputs_layout, configuration=made)
    snapshot = SharedImage(snapshot_layout_, configuration=made)
    try:
        said = refused_companion(edited(config).model_dump_json(), inputs.attachment(),
                                 snapshot.attachment(), capfd)
    finally:
        inputs.close()
        snapshot.close()
    assert f"{made:08x}" in said


@pytest.mark.e2e
def test_a_spawned_companion_refused_by_the_snapshot_exits_before_it_is_ready(capfd):
    config, inputs_layout, snapshot_layout_ = demo_layouts()
    inputs, snapshot = SharedImage(inputs_layout), SharedImage(snapshot_layout_)
    wrong = Attachment(snapshot.name, layout_json(other_layout(snapshot_layout_)))
    try:
        said = refused_companion(config.model_dump_json(), inputs.attachment(), wrong, capfd)
    finally:
        inputs.close()
        snapshot.close()
    assert fingerprint(snapshot_layout_).hex()[:12] in said
    assert fingerprint(layout_from_json(wrong.layout)).hex()[:12] in said


@pytest.mark.e2e
def test_a_spawned_telemetry_process_on_another_configuration_says_why_and_exits_refused(capfd):
    """The telemetry process is the first helper the relay starts: refused by the images, it
    tells the relay why (which refuses to start saying so) and exits with REFUSED_EXIT,
    without a traceback."""
    config, inputs_layout, snapshot_layout_ = demo_layouts()
    made = config_hash(config)
    other = edited(config)
    inputs = SharedImage(inputs_layout, configuration=made)
    snapshot = SharedImage(snapshot_layout_, configuration=made)
    ctx = multiprocessing.get_context("spawn")
    answer, ready = ctx.Pipe(duplex=False)
    sender, receiver = feed_pair()
    stop = ctx.Event()  # held here until the child has it
    child = ctx.Process(target=telemetry_main, args=(
        other.model_dump_json(), snapshot.attachment(), inputs.attachment(), receiver, stop,
        ready))
    try:
        child.start()
        ready.close()
        assert answer.poll(30.0), "the refused telemetry process said nothing"
        said = answer.recv()
        child.join(30.0)
        assert not child.is_alive(), "the refused telemetry process kept running"
    finally:
        if child.is_alive():
            child.kill()
            child.join(5.0)
        answer.close()
        sender.close()
        receiver.close()
        inputs.close()
        snapshot.close()
    assert isinstance(said, str) and "cannot attach" in said, said
    assert f"{made:08x}" in said and f"{config_hash(other):08x}" in said, said
    assert child.exitcode == REFUSED_EXIT
    logged = capfd.readouterr().err
    assert "the telemetry process cannot attach" in logged
    assert "Traceback" not in logged
