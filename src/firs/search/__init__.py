"""The search modes; every answer carries per-stage timings."""
