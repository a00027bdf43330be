"""The training loop (``loop``), evaluation (``evaluate``) and learning-rate schedules (``schedule``)."""
