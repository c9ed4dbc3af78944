"""What a configuration would run, in the words of ``softrelay check``."""

from __future__ import annotations

from collections import defaultdict

from softrelay.config.modbus import Access
from softrelay.config.relay import RelayConfig
from softrelay.config.state import settings_path, state_paths
from softrelay.gpio.coils import planned_factory


def describe(config: RelayConfig) -> list[str]:
    """Lines that say what would run: scan, memory, I/O, points, outputs, Modbus, plant."""
    scan, rt = config.scan, config.scan.realtime
    paths = state_paths(config)
    lines = [
        f"relay {config.name!r}: scan every {scan.period * 1000:g} ms, healthy contact drops "
        f"after {scan.watchdog_periods} missed periods "
        f"({scan.watchdog_periods * scan.period * 1000:g} ms)",
        "  real time: " + (
            f"SCHED_FIFO {rt.priority}" if rt.priority else "normal priority"
        ) + (", memory locked" if rt.lock_memory else "")
        + (f", CPU {rt.cpu}" if rt.cpu is not None else "")
        + (f", timer slack {rt.timer_slack_ns} ns" if rt.timer_slack_ns else ""),
        f"  state directory: {paths.dir} (from {paths.origin})",
        f"  thermal memory: {paths.memory}, every {config.state.checkpoint_interval:g} s, "
        f"power loss: {config.state.power_loss}"
        + (f" (theta {config.state.preset_theta:g})" if config.state.power_loss == "preset"
           else ""),
        f"  settings changed in service: {settings_path(paths.memory)}",
        f"  events: ring of {config.events.ring_size}"
        + (f", on disk {paths.events} (rotated at {config.events.max_bytes} bytes, "
           f"{config.events.keep} files kept)" if paths.events else ", memory only"),
    ]
    by_bus: dict[str, list] = defaultdict(list)
    for signal in config.signals:
        by_bus[signal.bus].append(signal)
    for bus in config.buses:
        polls = sorted({s.poll for s in by_bus[bus.name]})
        rates = ", ".join(f"{p * 1000:g} ms" for p in polls) or "-"
        lines.append(f"  bus {bus.name} ({bus.kind}): {len(by_bus[bus.name])} signals, "
                     f"polled every {rates}, timeout {bus.timeout * 1000:g} ms")
    for point in config.points:
        if point.kind == "thermal":
            s = point.settings
            lines.append(
                f"  point {point.name} (thermal, {s.input_mode}"
                + (f" of {point.samples}: {config.sampling.cycles} x "
                   f"{config.sampling.samples_per_cycle} samples at "
                   f"{config.sampling.frequency:g} Hz" if point.samples else "")
                + f"): I_B {s.i_b:g} A, "
                f"T+ {s.t_heat:g} s, T- {s.t_cool:g} s, K2 {s.k2:g}, KST {s.kst:g}, "
                f"trip {s.theta_trip:g}, alarms {s.theta_al1:g}/{s.theta_al2:g}, "
                f"inhibit {s.theta_inhibit:g}, reset {s.theta_reset:g}"
                f"{', latched' if s.latch else ', self-resetting'}"
            )
            lines.append("    " + input_loss_line(s))
        else:
            b = point.settings
            lines.append(
                f"  point {point.name} (busbar): warning {b.warning_delta:g} C, critical "
                f"{b.critical_delta:g} C, imbalance {b.imbalance_max:g} C, rate "
                f"{b.rate_limit:g} C/min{', with currents' if point.currents else ''}"
            )
            lines.append("    " + busbar_input_loss_line(b))
    for out in config.outputs:
        source = "healthy" if out.healthy else " OR ".join(out.flags)
        extras = [w for w, on in (("inverted", out.invert), ("latched", out.latched),
                                  (f"min pulse {out.min_pulse:g} s", out.min_pulse > 0)) if on]
        lines.append(f"  coil {out.name} (pin {out.pin}): {source}"
                     + (f" [{', '.join(extras)}]" if extras else ""))
    lines.append(f"  gpio: coils driven by {planned_factory(config.gpio.factory)}")
    for item in config.inputs:
        lines.append(f"  input {item.name} (pin {item.pin}): {item.command} "
                     f"{', '.join(item.points) or 'all points'}")
    m = config.modbus
    if m is None:
        lines.append("  modbus slave: none")
    else:
        units = ", ".join(map(str, m.units)) or "any"
        plain = f"{m.host}:{m.port}" if m.port is not None else f"{m.host} (no plain port)"
        lines.append(f"  modbus slave: {plain}, units {units}, up to "
                     f"{m.max_connections} connections, allow {', '.join(m.allow) or 'any'}")
        if m.tls is not None:
            roles = ", ".join(f"{role!r} -> level {level}" for role, level in
                              m.tls.roles.items()) or "none (every client reads only)"
            lines.append(f"  modbus TLS (Modbus/TCP Security): {m.host}:{m.tls.port}, TLS "
                         f"{m.tls.min_version}+, client certificates from {m.tls.ca}; roles "
                         f"{roles}")
    if config.modbus_rtu is not None:
        r = config.modbus_rtu
        lines.append(f"  modbus RTU slave: {r.port}, unit {r.unit}, {r.baudrate} "
                     f"8{r.parity}{r.stopbits}")
    if m is not None or config.modbus_rtu is not None:
        lines += access_lines(config.access)
    lines += telemetry_lines(config)
    if config.plant is not None:
        lines.append(f"  plant model: {len(config.plant.motors)} motors, "
                     f"{len(config.plant.busbars)} busbars, speed x{config.plant.speed:g}")
    return lines


def access_lines(access: Access) -> list[str]:
    """What each level needs and gives over Modbus, where each code comes from (never the
    code), the lockout and the local/remote switch."""
    lines = []
    for level, name, code in ((1, "operator", access.operator),
                              (2, "engineer", access.engineer)):
        gives = [what for what, need in access.levels.model_dump().items() if need == level]
        lines.append(f"  access level {level} {name}: "
                     + (code.origin() if code else "no code (nobody reaches it over Modbus)")
                     + f"; {', '.join(gives) or 'nothing of its own'}")
    free = [what for what, need in access.levels.model_dump().items() if need == 0]
    lines.append("  access level 0 (any admitted client): reads, the event cursor"
                 + (f", and WITHOUT A CODE: {', '.join(free)}" if free else ""))
    lo = access.lockout
    lines.append(f"  access: a session keeps its level {access.minutes:g} min (never past its "
                 f"connection); a peer is locked out after {lo.attempts} wrong codes for "
                 f"{lo.first_minutes:g} min, doubled each time up to {lo.max_minutes:g} min")
    if access.local_remote is not None:
        lines.append(f"  local/remote switch on pin {access.local_remote.pin}: contact closed "
                     "= local, every Modbus write refused")
    return lines


def _delay(settings) -> str:
    delay = settings.input_loss_delay
    return "?" if delay is None else f"{delay:g} s"


def input_loss_line(s) -> str:
    """A thermal point's declared behaviour while its currents are lost."""
    blind = ("theta frozen" if s.input_loss == "freeze" else
             f"heats at the last good I_eq for at most {s.input_loss_hold:g} s, then frozen")
    return (f"input loss: measurement lost after {_delay(s)} of unusable currents; while "
            f"blind ({s.input_loss}): {blind}")


def busbar_input_loss_line(s) -> str:
    """A busbar point's declared behaviour when a channel is lost."""
    limits = [f"{name} {level:g} C" for name, level in (("warning", s.warning_abs),
                                                        ("critical", s.critical_abs))
              if level is not None]
    return (f"input loss: measurement lost after {_delay(s)} of an excluded phase; ambient "
            f"lost: rises over {s.ambient_fallback:g} C; absolute limits "
            + (", ".join(limits) if limits else "off"))


def telemetry_lines(config: RelayConfig) -> list[str]:
    """The metrics, MQTT and SNMP sections, one line each (what is off, said so); SNMP's
    protocols, and a second line with the receiver's user entry (without the pass phrases)."""
    lines = []
    mt, mq, sn = config.metrics, config.mqtt, config.snmp
    lines.append("  metrics: " + (f"http://{mt.host}:{mt.port}/metrics" if mt else "off"))
    if mq is None:
        lines.append("  mqtt: off")
    else:
        lines.append(f"  mqtt: {mq.host}:{mq.broker_port}{' TLS' if mq.tls else ''}, topic "
                     f"{mq.prefix(config.name)}, telemetry every "
                     f"{mq.telemetry_every:g} s, queue {state_paths(config).mqtt_queue} (up to "
                     f"{mq.queue.max_events} events)")
    if sn is None:
        lines.append("  snmp traps: off")
    else:
        lines.append(f"  snmp traps: v3 authPriv {sn.protocols()} to {sn.host}:{sn.port} as "
                     f"user {sn.user}, engine ID 0x{sn.engine_id_for(config.name)}, on "
                     f"{', '.join(sn.flags)}{' and the healthy contact' if sn.healthy else ''}")
        lines.append(f"    receiver (snmptrapd.conf): {sn.receiver_line(config.name)}")
    return lines
