"""Human review: decisions, second-reviewer confirmation, media reveal and reviewer wellness."""
