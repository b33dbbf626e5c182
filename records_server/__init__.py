"""The EHR resource server (issue "EHR resource server"): not built yet."""
