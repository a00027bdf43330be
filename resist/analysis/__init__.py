"""Run directories as tables and plots (:mod:`.runs` pure, :mod:`.plots` matplotlib)."""
