"""Intake (Principle 8): reports from a platform's users and trusted flaggers, and the reported side's appeals."""
