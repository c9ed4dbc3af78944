"""Test scaffolding shared by the tests (never a test module: no test imports another, and
``tests/test_test_layout.py`` holds it so). One module per subject:

- ``relays``: a relay built, started, yielded and stopped (``running``), the fast
  configuration (``fast_config``, ``FAST``) and ``Driver``, which scans it in the test's thread;
- ``configs``: the demo's text and the small configurations tests build on; ``problems_of``;
- ``core``: good, fresh inputs written into a ``ProtectionCore`` as the input image would;
- ``banks``: random valid banks and scan inputs for the compiled == reference proofs;
- ``modbus``: the DCS's side of the relay's Modbus/TCP slave (frames, access codes, floats);
- ``mbserver``: the compiled Modbus server alone, on a test image;
- ``twins``: Modbus field buses and their simulated devices (the master's peers);
- ``scrape``: the Prometheus endpoint read and parsed; the fast relay with extra sections;
- ``broker``: a real mosquitto, certificates, a subscriber, the relay publishing to it;
- ``processes``: ``softrelay run`` as a process on a twin, and the /proc views of its children;
- ``ports``: a free port, where a configuration must name one before the relay starts;
- ``golden_map``, ``golden_telemetry``, ``golden_run``: the golden files' contents, compared by
  the tests and written by the scripts ``tests/golden_*.py``.
"""
