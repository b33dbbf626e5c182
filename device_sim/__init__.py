"""The MQTT blood-pressure monitor simulator: Alice's BP monitor, or a fleet of them.

`readings` makes the numbers (pure, seeded), `wire` holds the MQTT contract with the EHR,
`publisher` speaks MQTT (paho), `cli` is `python -m device_sim` / `uma-health-device`.
"""
