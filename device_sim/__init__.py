"""The MQTT blood-pressure monitor simulator (issue "Blood-pressure monitor"): not built yet."""
