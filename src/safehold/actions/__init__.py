"""Actions: policies turn decisions and detections into platform actions, delivered by signed webhooks."""
