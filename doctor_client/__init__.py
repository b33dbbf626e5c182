"""The doctors' UMA client app (issue "Doctor app"): not built yet."""
