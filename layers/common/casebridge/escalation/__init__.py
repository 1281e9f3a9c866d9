"""The escalation around a hand-off: availability (business hours + Real-time Metrics), refusing to queue where
nobody answers, wait updates, queue and idle timers, hand-back, transcripts and delivery status."""
