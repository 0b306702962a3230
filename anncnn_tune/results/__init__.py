"""Results: leaderboards, run files, the final retrain and its report."""
