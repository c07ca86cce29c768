"""The detection pipeline: every door hands detector results to it; it applies bank and classifier policy and
opens cases and actions (docs/architecture.md)."""
